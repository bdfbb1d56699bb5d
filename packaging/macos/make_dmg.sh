#!/usr/bin/env bash
# Pack a built "MedViewer <Edition>.app" into a compressed, read-only .dmg (macOS only).
#   packaging/macos/make_dmg.sh viewer 0.1.0 dist
# The .app is ad-hoc signed here; a release build signs with a Developer ID and notarises
# (see docs/installing.md) before this step.
set -euo pipefail
edition="$1"; version="$2"; dist="$3"
# (macOS ships bash 3.2: no ${var^})
capitalised="$(printf %s "$edition" | cut -c1 | tr a-z A-Z)$(printf %s "$edition" | cut -c2-)"
title="MedViewer $capitalised"
app="$dist/$title.app"
test -d "$app" || { echo "no $app: run packaging/build.py --edition $edition first" >&2; exit 1; }
codesign --force --deep --sign - "$app"
staging="$(mktemp -d)"
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
dmg="$dist/medviewer-$edition-$version-macos-$(uname -m).dmg"
rm -f "$dmg"
hdiutil create -volname "$title" -srcfolder "$staging" -ov -format UDZO "$dmg"
rm -rf "$staging"
echo "$dmg"

#!/usr/bin/env bash
# The programs the PACS tests and benchmarks run: the Orthanc PACS with its DICOMweb plugin,
# and DCMTK (dsrdump checks the SRs MedViewer writes; getscu is the retrieve baseline).
# Installs the missing Debian packages when run as root with apt-get; otherwise says which
# are missing and leaves it to the tests, which then skip (or fail under
# MEDVIEWER_REQUIRE_PACS=1, as in CI).
set -u
missing=()
command -v Orthanc >/dev/null 2>&1 || missing+=(orthanc)
ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so* /usr/lib/orthanc/libOrthancDicomWeb.so* \
    >/dev/null 2>&1 || missing+=(orthanc-dicomweb)
command -v dsrdump >/dev/null 2>&1 || missing+=(dcmtk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} for the PACS tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || { echo "Could not install ${missing[*]}"; exit 1; }
    # The Debian package may start a system Orthanc; the tests run their own.
    command -v service >/dev/null 2>&1 && service orthanc stop >/dev/null 2>&1
    exit 0
fi
echo "PACS tests will skip: missing Debian packages ${missing[*]} (install them with:" \
     "sudo apt-get install ${missing[*]})"

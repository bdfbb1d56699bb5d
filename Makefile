# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-fast fuzz bench package package-check clean system-packages test-system-packages pacs-deps

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[studio,dev]'
	touch $(STAMP)

# Qt's xcb plugin needs X11 libraries a fresh desktop lacks: installed as root, else the one
# apt-get command is printed (tools/system_packages.py; nothing to do takes a blink).
system-packages: $(STAMP)
	$(PY) tools/system_packages.py run

# The same plus Xvfb and poppler-utils for the tests that start a real X server or render the
# PDF report; without root the tests that need them skip with a sentence.
test-system-packages: $(STAMP)
	$(PY) tools/system_packages.py test --optional

run: $(STAMP) system-packages
	$(PY) -m medviewer

# Orthanc, its DICOMweb plugin and DCMTK for the PACS tests (installed when root, else named).
pacs-deps:
	bash tools/install_pacs_deps.sh

test: $(STAMP) test-system-packages pacs-deps
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

test-fast: $(STAMP) test-system-packages
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not slow"

fuzz: $(STAMP)
	QT_QPA_PLATFORM=offscreen MEDVIEWER_FUZZ_MUTANTS=20000 $(PY) -m pytest tests/dicom/test_fuzz.py

bench: $(STAMP) pacs-deps
	QT_QPA_PLATFORM=offscreen $(PY) -m tests.bench

# Both editions (folder, .tar.gz, .deb) and the Viewer's GPU runtime; e.g.
# `make package PACKAGE_ARGS="--edition viewer"` for the Viewer alone (packaging/build.py -h).
PACKAGE_ARGS ?= --edition all --gpu-runtime
package: $(STAMP)
	$(PY) packaging/build.py $(PACKAGE_ARGS)

# Builds the Viewer bundle and runs it as a user gets it (CI runs this after `make test`).
package-check: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests/packaging/bundle_check.py -q

clean:
	rm -rf $(VENV) build dist .pytest_cache

# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-fast fuzz bench package package-check clean pacs-deps

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[studio,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m medviewer

# Orthanc, its DICOMweb plugin and DCMTK for the PACS tests (installed when root, else named).
pacs-deps:
	bash tools/install_pacs_deps.sh

test: $(STAMP) pacs-deps
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

test-fast: $(STAMP)
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

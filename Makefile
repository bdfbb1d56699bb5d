# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-fast fuzz bench package clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[studio,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m medviewer

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not slow"

fuzz: $(STAMP)
	QT_QPA_PLATFORM=offscreen MEDVIEWER_FUZZ_MUTANTS=20000 $(PY) -m pytest tests/dicom/test_fuzz.py

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m tests.bench

package: $(STAMP)
	$(PY) packaging/build.py

clean:
	rm -rf $(VENV) build dist .pytest_cache

# Each target does its own set-up: a virtual environment in .venv with the
# package installed editable (Python >= 3.10 and the package registries only).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The whole test suite, doctests included (CI runs exactly this).
test: install
	$(PY) -m pytest

# The main job (see README.md).
demo: install
	$(PY) recipes/OpenSLR54/demo.py

bench: install
	$(PY) bench/frontend.py

clean:
	rm -rf $(VENV) results

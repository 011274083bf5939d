# Each target does its own set-up: a virtual environment in .venv holding
# exactly the tested environment (requirements/lock.txt) and the package,
# editable. Needs the Python the lock names (see its header), venv, make and
# the package registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
# make test-latest / make lock: a separate venv with the newest versions
# pyproject.toml allows. PAIR="torch==X torchaudio==Y" there probes a torch
# pair that the pins do not admit yet (pip reports the conflict and goes on).
LATEST_VENV ?= .venv-latest
LATEST_PY := $(LATEST_VENV)/bin/python
PAIR ?=
CHECK_ENV = -m speechbrain_w2vbert.environment

.PHONY: install test test-fast demo bench test-latest lock clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) speechbrain_w2vbert/environment.py --python-of $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) $(CHECK_ENV) --lock $(LOCK) --strict
	touch $@

# The whole test suite, doctests included (CI runs exactly this).
test: install
	$(PY) -m pytest

# Everything but the recipe trainings and the other slow tests (under a minute).
test-fast: install
	$(PY) -m pytest -m "not recipe and not slow"

# The main job (see README.md).
demo: install
	$(PY) recipes/OpenSLR54/demo.py

bench: install
	$(PY) bench/frontend.py

# Not part of CI: the suite in a fresh venv with the newest allowed versions,
# then what differs from the lock. Exits with the suite's status.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_PY) -m pip install --quiet --upgrade pip setuptools
	$(LATEST_PY) -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(if $(PAIR),$(LATEST_PY) -m pip install --quiet $(PAIR) || true)
	status=0; $(LATEST_PY) $(CHECK_ENV) && $(LATEST_PY) -m pytest || status=$$?; \
	$(LATEST_PY) $(CHECK_ENV) --lock $(LOCK) --held-back || true; exit $$status

# Rewrites the lock from the newest allowed versions, only if their suite passes.
lock: test-latest
	$(LATEST_PY) -m pip check
	$(LATEST_PY) $(CHECK_ENV) --write-lock $(LOCK)

clean:
	rm -rf $(VENV) $(LATEST_VENV) results

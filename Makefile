# Each target does its own set-up: a virtual environment in .venv holding
# exactly the tested environment (requirements/lock.txt) and the package,
# editable. Needs the Python the lock names (see its header), venv, make and
# the package registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
# Installed with --no-deps (see NO_DEPS in tools/envcheck.py).
LOCK_NO_DEPS := requirements/lock-no-deps.txt
# make test-latest / make lock: a separate venv with the newest versions
# pyproject.toml allows. PAIR="torch==X torchaudio==Y" there probes a torch
# pair that the pins do not admit yet (pip reports the conflict and goes on).
LATEST_VENV ?= .venv-latest
LATEST_PY := $(LATEST_VENV)/bin/python
PAIR ?=
CHECK_ENV = tools/envcheck.py

.PHONY: install test test-all test-fast demo bench bench-report gpu-report gpu-wheels test-latest lock lmplz clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK) $(LOCK_NO_DEPS)
	$(PYTHON) tools/envcheck.py --python-of $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -r $(LOCK_NO_DEPS)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) $(CHECK_ENV) --lock $(LOCK) --strict
	touch $@

# The test suite CI runs, doctests included, in $(JOBS) processes (pytest-xdist):
# every mechanism, end to end once; `test-all` adds the end-to-end variants
# (marker `extended`: the full-size recipe rows, torch.compile, ...).
JOBS ?= 2
test: install
	$(PY) -m pytest -n $(JOBS) --dist load -m "not extended"

test-all: install
	$(PY) -m pytest -n $(JOBS) --dist load

# Everything but the recipe trainings and the other slow tests (a minute or two).
test-fast: install
	$(PY) -m pytest -m "not recipe and not slow and not extended"

# The main job (see README.md).
demo: install
	$(PY) recipes/OpenSLR54/demo.py

bench: install
	$(PY) bench/frontend.py

# Runs every bench (about half an hour on 2 CPU cores; run it on a quiet machine)
# and rewrites docs/benchmarks.md; results/bench-report/ keeps their JSON.
bench-report: install
	$(PY) bench/report.py

# The GPU report (docs/benchmarks-gpu.md and .json), run on the GPU machine
# with the interpreter there (no venv: the image's torch and transformers, and
# .gpu-wheels/ for what the image lacks). `python bench/gpu_report.py --smoke`
# runs every part on the CPU at tiny sizes (tests/test_gpu_report.py does).
gpu-report:
	$(PYTHON) bench/gpu_report.py

# The wheels the report needs beyond a GPU image with Python 3.12, torch,
# torchaudio, transformers, pandas and sentencepiece (GPU_WHEELS in
# bench/gpu_report.py, at the lock's versions), for manylinux x86_64, into
# .gpu-wheels/: carry that folder to the GPU machine with the checkout.
GPU_WHEELS_DIR := .gpu-wheels
GPU_WHEELS_TARGET := --python-version 3.12 --implementation cp --abi cp312 \
	--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
gpu-wheels: $(VENV)/.installed
	rm -rf $(GPU_WHEELS_DIR) && mkdir -p $(GPU_WHEELS_DIR)
	$(PY) bench/gpu_report.py --list-wheels > $(GPU_WHEELS_DIR)/requirements.txt
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: $(GPU_WHEELS_TARGET) \
		-r $(GPU_WHEELS_DIR)/requirements.txt -d $(GPU_WHEELS_DIR)
	du -sh $(GPU_WHEELS_DIR)

# KenLM's lmplz and build_binary into .lmplz/bin, from the kenlm sdist (needs
# cmake, g++ and Boost; README: Language model). The recipe uses lmplz when it
# is on PATH: export PATH="$$PWD/.lmplz/bin:$$PATH".
lmplz: .lmplz/bin/lmplz

.lmplz/bin/lmplz: $(VENV)/.installed
	rm -rf .lmplz && mkdir -p .lmplz/bin
	$(PY) -m pip download --quiet --no-deps --no-build-isolation kenlm==0.3.0 -d .lmplz  # the sdist (kenlm has no wheels)
	tar -xzf .lmplz/kenlm-0.3.0.tar.gz -C .lmplz
	cmake -S .lmplz/kenlm-0.3.0 -B .lmplz/build -DCMAKE_BUILD_TYPE=Release
	$(MAKE) -C .lmplz/build -j2 lmplz build_binary
	cp .lmplz/build/bin/lmplz .lmplz/build/bin/build_binary .lmplz/bin/

# Not part of CI: the suite in a fresh venv with the newest allowed versions,
# then what differs from the lock. Exits with the suite's status.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_PY) -m pip install --quiet --upgrade pip setuptools
	$(LATEST_PY) -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST_PY) -m pip install --quiet --upgrade --no-deps $$(grep -v '^#' $(LOCK_NO_DEPS) | cut -d= -f1)
	$(if $(PAIR),$(LATEST_PY) -m pip install --quiet $(PAIR) || true)
	status=0; $(LATEST_PY) $(CHECK_ENV) && $(LATEST_PY) -m pytest || status=$$?; \
	$(LATEST_PY) $(CHECK_ENV) --lock $(LOCK) --held-back || true; exit $$status

# Rewrites the lock from the newest allowed versions, only if their suite passes.
lock: test-latest
	! $(LATEST_PY) -m pip check | grep -v -e '^No broken' $(foreach d,$(shell grep -v '^#' $(LOCK_NO_DEPS) | cut -d= -f1),-e '^$(d) ')
	$(LATEST_PY) $(CHECK_ENV) --write-lock $(LOCK)

clean:
	rm -rf $(VENV) $(LATEST_VENV) .lmplz results $(GPU_WHEELS_DIR)

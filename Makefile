# Two commands on a fresh machine with Python >= 3.10 and pip:
#   make demo   - runs the tour on built-in data and writes results/demo/
#   make test   - installs what it needs into .venv (with the optional Ray extra, whose
#                 tests start a small local Ray cluster) and runs the test suite
#
# torch is installed first, pinned so that pip resolves it quickly. On a machine without
# a local wheel this is PyPI's default build (CUDA on Linux); choose another with e.g.
#   make test TORCH_SPEC="torch==2.5.1"   or pre-install torch into .venv yourself.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
RAY_STAMP := $(VENV)/.installed-ray
PYTEST_ARGS ?=

.PHONY: demo test lint bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# the Ray extra (`reproduce --ray`, `sweep`): only the tests need it, not the demo
$(RAY_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,ray]"
	touch $(RAY_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m manifold_vae demo --out results/demo

test: $(RAY_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) -m manifold_vae.bench.distributions --out results/bench/distributions.json
	$(PY) -m manifold_vae.bench.vae_step --out results/bench/vae_step.json

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis .ruff_cache *.egg-info

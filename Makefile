# The README's two commands: `make demo` and `make test`. Each does all of its set-up
# first (system packages, .venv, an editable install), and a second run is quick.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: setup system demo test lint unit install conformance bench clean busybox

setup: system $(STAMP) bytecode install-if-root

system:
	@scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

# Compiled bytecode next to the sources, so that every `layerfs` start (containers-storage runs
# one per mount) reads it instead of compiling ~25 modules, also with PYTHONDONTWRITEBYTECODE=1.
# compileall rewrites only what changed.
.PHONY: bytecode
bytecode: $(STAMP)
	@$(PY) -m compileall -q unionfs imagegraph tutorials >/dev/null

# mount.fuse finds the `layerfs` program through PATH: link it into /usr/local/bin.
install: $(STAMP)
	@ln -sf "$(CURDIR)/$(VENV)/bin/layerfs" /usr/local/bin/layerfs
	@ln -sf "$(CURDIR)/$(VENV)/bin/imagegraph" /usr/local/bin/imagegraph

.PHONY: install-if-root
install-if-root: $(STAMP)
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) -s install; fi

demo: setup
	@$(PY) -m unionfs.demo

# Lint and type-check first: a new warning fails `make test`, and so CI.
test: setup lint
	@$(PY) -m pytest -q

# The same checks as .pre-commit-config.yaml, on the whole tree.
lint: $(STAMP)
	@$(VENV)/bin/ruff check --quiet .
	@$(VENV)/bin/ruff format --check --quiet .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/vulture

# The tests that need no mount, no kernel OverlayFS and no registry: quick, and fine without root.
unit: $(STAMP)
	@$(PY) -m pytest -q -m "not mount and not kernel_overlay and not registry" -p no:cacheprovider

# Long random runs: no per-test time limit.
conformance: setup
	@$(PY) -m pytest -q tests/conformance --hypothesis-profile=long --hypothesis-seed=$${SEED:-$$RANDOM} -p no:cacheprovider --timeout=0

bench: setup
	@$(PY) bench/union_bench.py

# The offline busybox image, into $$IMAGEGRAPH_ROOT (or imagegraph's default store).
busybox: setup
	@$(PY) -m tutorials.images busybox

clean:
	rm -rf $(VENV) *.egg-info

# The README's two commands: `make demo` and `make test`. Each does all of its set-up
# first (system packages, .venv, an editable install), and a second run is quick.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: setup system demo test install conformance bench clean busybox

setup: system $(STAMP) install-if-root

system:
	@scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

# mount.fuse finds the `layerfs` program through PATH: link it into /usr/local/bin.
install: $(STAMP)
	@ln -sf "$(CURDIR)/$(VENV)/bin/layerfs" /usr/local/bin/layerfs
	@ln -sf "$(CURDIR)/$(VENV)/bin/imagegraph" /usr/local/bin/imagegraph

.PHONY: install-if-root
install-if-root: $(STAMP)
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) -s install; fi

demo: setup
	@$(PY) -m unionfs.demo

test: setup
	@$(PY) -m pytest -q

conformance: setup
	@$(PY) -m pytest -q tests/conformance --hypothesis-profile=long --hypothesis-seed=$${SEED:-$$RANDOM} -p no:cacheprovider

bench: setup
	@$(PY) bench/union_bench.py

# The offline busybox image, into $$IMAGEGRAPH_ROOT (or imagegraph's default store).
busybox: setup
	@$(PY) -m tutorials.images busybox

clean:
	rm -rf $(VENV) *.egg-info

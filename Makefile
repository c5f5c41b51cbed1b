# The README's two commands: `make demo` and `make test`. Each does all of its set-up
# first (system packages, .venv, an editable install), and a second run is quick.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The shared install: Debian's own python3 (one every user can run; a pyenv or a venv in
# root's home is not), a venv in SHARED with the tools and the labs, on every user's PATH.
SHARED        ?= /opt/layerlab
SYSTEM_PYTHON ?= /usr/bin/python3
# .venv's interpreter: the system's python3 where it is 3.11 or newer and can make a venv,
# else the first python3 on PATH. Debian's and Ubuntu's are built with PGO and LTO and linked
# statically; a pyenv build (shared libpython, no PGO) takes ~15 % more CPU per request in
# the layerfs daemon and ~4 ms more at every start (bench/README.md, round 5).
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3)
PROFILE       ?= /etc/profile.d/layerlab.sh
BINDIR        ?= /usr/local/bin

.PHONY: setup system demo test lint unit install install-shared shared-venv conformance bench bench-quick clean busybox launcher

setup: system $(STAMP) bytecode launcher install-if-root

system:
	@scripts/setup-system.sh

# editable_mode=compat: the install is a path in a .pth file. setuptools' default editable
# install imports a finder (pathlib, urllib, re, …) at every Python start, `layerfs` mounts too.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $(STAMP)

# Compiled bytecode next to the sources, so that every `layerfs` start (containers-storage runs
# one per mount) reads it instead of compiling ~25 modules, also with PYTHONDONTWRITEBYTECODE=1.
# compileall rewrites only what changed.
.PHONY: bytecode
bytecode: $(STAMP)
	@$(PY) -m compileall -q unionfs imagegraph tutorials >/dev/null

# `layerfs` as a plain script run with `python -I -S`, not pip's console-script wrapper, which
# imports `re` at every start (containers-storage starts one per mount), nor `site`, which runs
# every .pth file: scripts/write-launcher.sh.
launcher: $(STAMP)
	@scripts/write-launcher.sh $(VENV)

# mount.fuse finds the `layerfs` program through PATH: link it into /usr/local/bin.
install: $(STAMP)
	@ln -sf "$(CURDIR)/$(VENV)/bin/layerfs" /usr/local/bin/layerfs
	@ln -sf "$(CURDIR)/$(VENV)/bin/imagegraph" /usr/local/bin/imagegraph

.PHONY: install-if-root
install-if-root: $(STAMP)
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) -s install; fi

# One command, as root, for a classroom server: `sudo make install-shared`. Every user then
# has layerfs, imagegraph and `python -m tutorials` on PATH (new logins read $(PROFILE)).
install-shared: system
	@test "$$(id -u)" -eq 0 || { echo "layerlab: install-shared writes $(SHARED) and $(PROFILE): run it as root (sudo make install-shared)" >&2; exit 1; }
	@$(MAKE) -s shared-venv SHARED=$(SHARED) SYSTEM_PYTHON=$(SYSTEM_PYTHON)
	@printf '%s\n' '# layerlab (make install-shared): its tools and labs on every user'"'"'s PATH' \
	  'case ":$$PATH:" in *":$(SHARED)/bin:"*) ;; *) PATH="$(SHARED)/bin:$$PATH" ;; esac' 'export PATH' > $(PROFILE)
	@chmod 644 $(PROFILE)
	@ln -sf "$(SHARED)/bin/layerfs" $(BINDIR)/layerfs
	@ln -sf "$(SHARED)/bin/imagegraph" $(BINDIR)/imagegraph
	@echo "layerlab: installed in $(SHARED) for every user; log in again, or run: . $(PROFILE)"

# The venv alone (also what the tests build in a scratch folder to run the labs as uid 1000).
# A copy of the project, not an editable link: it must not depend on this checkout's folder.
shared-venv:
	@test -x "$(SHARED)/bin/python" || $(SYSTEM_PYTHON) -m venv "$(SHARED)"
	@"$(SHARED)/bin/python" -m pip install -q --upgrade pip >/dev/null
	@"$(SHARED)/bin/python" -m pip install -q --force-reinstall --no-deps "$(CURDIR)" >/dev/null
	@"$(SHARED)/bin/python" -m pip install -q "$(CURDIR)" >/dev/null
	@scripts/write-launcher.sh "$(SHARED)"
	@rm -rf "$(CURDIR)/build"
	@chmod -R a+rX "$(SHARED)"

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

# Every bench script (bench/*_bench.py, then bench/mount_cycle.py), each running its peers in one
# run (bench/README.md). `make bench QUICK=1` (or `make bench-quick`) passes --quick to each:
# tiny sizes and few runs, a smoke run of under two minutes, not figures to quote.
BENCHES = $(sort $(wildcard bench/*_bench.py)) bench/mount_cycle.py
bench: setup
	@status=0; for script in $(BENCHES); do \
		echo "== $$script$(if $(QUICK), --quick)"; \
		$(PY) $$script $(if $(QUICK),--quick) || status=1; \
	done; exit $$status

bench-quick:
	@$(MAKE) -s bench QUICK=1

# The offline busybox image, into $$IMAGEGRAPH_ROOT (or imagegraph's default store).
busybox: setup
	@$(PY) -m tutorials.images busybox

clean:
	rm -rf $(VENV) *.egg-info

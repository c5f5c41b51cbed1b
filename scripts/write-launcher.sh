#!/bin/sh
# Write VENV/bin/layerfs as a plain Python script run with `python -I -S`, in place of pip's
# console-script wrapper. containers-storage starts `layerfs` for every mount, and a mount's
# cost is mostly that start-up: pip's wrapper imports `re` (with enum, functools, …) only to
# tidy argv[0], about 14 ms of CPU; -I (isolated: no PYTHON* variables, no user site, no
# script directory on sys.path) skips a few more; -S skips the `site` module, which reads
# every .pth file of site-packages at each start (setuptools' distutils-precedence.pth imports
# _distutils_hack: ~6 ms of CPU); and it ends with os._exit once its output is flushed (the
# teardown of a Python that loaded ctypes: ~5 ms). It sets the directories `site` would have added
# itself (site-packages, and the project's folder for an editable install), as this venv's
# Python finds them now. Rerun after any `pip install` into the venv (`make setup` does):
# pip writes its wrapper again, and a new .pth file would not be seen.
#
#   scripts/write-launcher.sh VENV
set -eu
venv=$(cd "${1:?usage: write-launcher.sh VENV}" && pwd)
test -x "$venv/bin/python3" || { echo "write-launcher.sh: $venv/bin/python3 is not a Python" >&2; exit 1; }
# What `site` adds to sys.path in this venv: the difference between a start with and without it.
paths=$("$venv/bin/python3" -I -c '
import subprocess, sys
bare = subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; print(repr(sys.path))"],
                      capture_output=True, text=True, check=True).stdout
print(repr([p for p in sys.path if p not in eval(bare)]))')
tmp="$venv/bin/.layerfs.$$"
cat > "$tmp" <<SCRIPT
#!$venv/bin/python3 -IS
# Written by scripts/write-launcher.sh (make setup): pip's wrapper imports re at every start,
# and \`site\` reads every .pth file; these are the folders it would add.
import os
import sys

sys.path += $paths

from unionfs.cli import main

code = main()
# Nothing is left to do once the output is out (a mount's daemon is a process of its own): skip
# the interpreter's teardown, which frees ctypes's classes and every module one by one.
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BaseException:
    sys.exit(code)
os._exit(code)
SCRIPT
chmod 755 "$tmp"
mv -f "$tmp" "$venv/bin/layerfs"

#!/bin/sh
# Write VENV/bin/layerfs as a plain Python script run with `python -I`, in place of pip's
# console-script wrapper. containers-storage starts `layerfs` for every mount, and a mount's
# cost is mostly that start-up: pip's wrapper imports `re` (with enum, functools, …) only to
# tidy argv[0], about 14 ms of CPU; -I (isolated: no PYTHON* variables, no user site, no
# script directory on sys.path) skips a few more. Rerun after any `pip install` of the
# project, which writes pip's wrapper again (`make setup` does).
#
#   scripts/write-launcher.sh VENV
set -eu
venv=$(cd "${1:?usage: write-launcher.sh VENV}" && pwd)
test -x "$venv/bin/python3" || { echo "write-launcher.sh: $venv/bin/python3 is not a Python" >&2; exit 1; }
tmp="$venv/bin/.layerfs.$$"
cat > "$tmp" <<SCRIPT
#!$venv/bin/python3 -I
# Written by scripts/write-launcher.sh (make setup): pip's wrapper imports re at every start.
import sys

from unionfs.cli import main

sys.exit(main())
SCRIPT
chmod 755 "$tmp"
mv -f "$tmp" "$venv/bin/layerfs"

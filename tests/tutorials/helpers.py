"""What the lab tests share: breaking a finished lab on purpose and asking its self-check."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from tutorials.checks import run_check


def check_after(number: str, folder: str, how: str, **env: str) -> list[str]:
    """Break a finished lab with the shell command `how`, run in its folder with IMAGEGRAPH_ROOT
    set to the lab's store (plus `env`), and return what lab `number`'s self-check then finds.
    This checkout's `imagegraph` and `layerfs` come first on PATH, as in the lab's own steps, so
    the test needs no `make install`."""
    bindir = shlex.quote(os.path.dirname(sys.executable))
    exports = " ".join(
        f"{k}={v}" for k, v in {"IMAGEGRAPH_ROOT": "$PWD/store", "PATH": f"{bindir}:$PATH", **env}.items()
    )
    subprocess.run(f"export {exports}; {how}", shell=True, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    return run_check(number, folder)

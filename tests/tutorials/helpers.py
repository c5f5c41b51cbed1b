"""What the lab tests share: breaking a finished lab on purpose and asking its self-check."""

from __future__ import annotations

import os
import subprocess
import sys

from tutorials.checks import run_check


def check_after(number: str, folder: str, how: str, **env: str) -> list[str]:
    """Break a finished lab with the shell command `how`, run in its folder with IMAGEGRAPH_ROOT
    set to the lab's store (plus `env`), and return what lab `number`'s self-check then finds.
    The project's commands come first on PATH, as in the runner: /usr/local/bin/imagegraph may
    be another checkout's, or missing."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
    exports = " ".join(f"{k}={v}" for k, v in {"IMAGEGRAPH_ROOT": "$PWD/store", **env}.items())
    subprocess.run(
        f"export {exports}; {how}",
        shell=True,
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PATH": path},
    )
    return run_check(number, folder)

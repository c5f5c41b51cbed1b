"""Every lab as an ordinary user (uid 1000), from a shared install, as a classroom server runs it.

The shared install is the Makefile's `install-shared` (the one root command of the README),
into scratch paths: the venv from Debian's python3 (the one every user can run), the profile
script that puts it on every user's PATH, the links. /dev/fuse is made usable for the test (0666, as stock
Debian and Ubuntu have it) and put back afterwards. Each lab runs with `python -m tutorials
run`: its steps (the `as=user` forms where the page has them, and the `text as=user` outputs),
its self-check, its worked answers and their checks.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support import require_root, require_tool, skip_or_fail
from tutorials.lab import all_labs

REPO = Path(__file__).parents[2]
USER = 1000
SYSTEM_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.mount


@pytest.fixture(scope="module")
def shared_install():
    """`make install-shared` into scratch paths every user can read; yields the venv."""
    require_root("to run the labs as uid 1000")
    require_tool("setpriv")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        skip_or_fail(f"{SYSTEM_PYTHON} (Debian's python3, which every user can run) is not installed")
    base = tempfile.mkdtemp(prefix="layerlab-shared-")
    os.chmod(base, 0o755)
    venv = os.path.join(base, "venv")
    os.mkdir(os.path.join(base, "bin"))
    try:
        proc = subprocess.run(
            [
                "make",
                "-s",
                "install-shared",
                f"SHARED={venv}",
                f"SYSTEM_PYTHON={SYSTEM_PYTHON}",
                f"PROFILE={base}/profile.sh",
                f"BINDIR={base}/bin",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield venv
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def dev_fuse_for_everyone():
    """/dev/fuse usable by every user for the test, as stock Debian/Ubuntu have it; put back."""
    before = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    if before & 0o006 != 0o006:
        os.chmod("/dev/fuse", before | 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", before)


def run_as_user(
    venv: str, *args: str, timeout: float = 1800, wrap: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` of the shared install as uid USER in a fresh home (`wrap`: a command
    that runs as root first and then execs the rest, e.g. to set up a mount namespace)."""
    home = tempfile.mkdtemp(prefix="layerlab-user-home-")
    os.chown(home, USER, USER)
    env = {
        "HOME": home,
        "USER": pwd.getpwuid(USER).pw_name if _has_user() else "student",
        "PATH": f"{venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }
    for key in ("LAYERLAB_REQUIRE_FUSE", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    try:
        return subprocess.run(
            [*wrap, "setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", f"{venv}/bin/python", *args],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _has_user() -> bool:
    try:
        pwd.getpwuid(USER)
        return True
    except KeyError:
        return False


def test_the_shared_install_is_debians_python_not_roots(shared_install):
    python = os.path.realpath(os.path.join(shared_install, "bin", "python"))
    assert python.startswith("/usr/bin/python3"), python
    proc = run_as_user(shared_install, "-c", "import tutorials, unionfs, imagegraph, mfusepy; print('ok')")
    assert proc.stdout == "ok\n", proc.stderr


def test_the_profile_puts_the_tools_and_the_labs_on_a_users_path(shared_install):
    """A login shell of any user reads /etc/profile.d/layerlab.sh (here: the scratch copy)."""
    base = os.path.dirname(shared_install)
    proc = subprocess.run(
        [
            "setpriv",
            f"--reuid={USER}",
            f"--regid={USER}",
            "--clear-groups",
            "env",
            "-i",
            "HOME=/tmp",
            "bash",
            "-c",
            f". {base}/profile.sh; . {base}/profile.sh; command -v python layerfs imagegraph; echo $PATH",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    assert lines[:3] == [
        f"{shared_install}/bin/python",
        f"{shared_install}/bin/layerfs",
        f"{shared_install}/bin/imagegraph",
    ]
    assert lines[3].count(f"{shared_install}/bin") == 1  # read twice, added once
    assert os.readlink(f"{base}/bin/layerfs") == f"{shared_install}/bin/layerfs"  # for root's mount.fuse


@pytest.mark.usefixtures("dev_fuse_for_everyone")
def test_list_says_what_an_ordinary_user_can_do(shared_install):
    proc = run_as_user(shared_install, "-m", "tutorials", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("You are ") and lines[0].endswith(f"(uid {USER}), not root. What you can do here:")
    assert "yes  FUSE mounts" in proc.stdout


@pytest.mark.usefixtures("dev_fuse_for_everyone")
@pytest.mark.parametrize("number", [lab.number for lab in all_labs() if "root" not in lab.needs])
def test_the_lab_runs_as_an_ordinary_user(number, shared_install):
    proc = run_as_user(shared_install, "-m", "tutorials", "run", number)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "not root; scratch folder" in report.splitlines()[0], report
    assert f"lab {number} ok:" in report and ", 0 failed;" in report, report


def test_list_opens_dev_fuse_and_says_no_where_it_is_roots_alone(shared_install, tmp_path):
    """/dev/fuse exists but is 0600 (some images and containers ship it so): `list` opens it,
    so it says FUSE is not usable, and why. The 0600 device is bound over /dev/fuse in a mount
    namespace of the test's own: the machine's /dev/fuse is not touched."""
    require_tool("unshare")
    device = str(tmp_path / "fuse")
    rdev = os.stat("/dev/fuse").st_rdev
    wrap = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mknod "$0" c {os.major(rdev)} {os.minor(rdev)} && chmod 600 "$0" && mount --bind "$0" /dev/fuse && exec "$@"',
        device,
    ]
    proc = run_as_user(shared_install, "-m", "tutorials", "list", wrap=wrap, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "FUSE mounts" in x)
    assert line.startswith("  no   FUSE mounts") and "/dev/fuse cannot be opened by" in line, line
    assert "(Permission denied; mode 0600)" in line, line
    lab03 = next(x for x in proc.stdout.splitlines() if x.startswith("03  "))
    assert "cannot run here: no FUSE (/dev/fuse cannot be opened" in lab03, lab03


def test_list_says_whether_this_user_may_make_a_user_namespace(shared_install):
    """What `list` says of the kernel's OverlayFS is what `unshare -Urm` does for this user."""
    probe = subprocess.run(
        ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "unshare", "-Urm", "true"],
        capture_output=True,
        timeout=60,
    )
    proc = run_as_user(shared_install, "-m", "tutorials", "list", timeout=120)
    line = next(x for x in proc.stdout.splitlines() if "the kernel's OverlayFS" in x)
    if probe.returncode == 0:
        assert line.startswith("  yes  the kernel's OverlayFS"), line
    else:
        assert line.startswith("  no   the kernel's OverlayFS") and "user namespaces are not allowed here" in line, line


@pytest.mark.parametrize("number", [lab.number for lab in all_labs() if "root" in lab.needs])
def test_a_lab_that_needs_root_says_so_to_an_ordinary_user(number, shared_install):
    """A lab whose page says `needs=root` (labs that run containers) is not tried as a user:
    one line says why. (No lab needs root yet: pytest reports the empty parameter set.)"""
    proc = run_as_user(shared_install, "-m", "tutorials", "run", number, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"lab {number} needs root: needs root", proc.stdout + proc.stderr

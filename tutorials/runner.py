"""Run a lab's steps in a scratch folder and compare what they print with the page.

All steps of a lab run in one `bash`, as a student's terminal would: `cd` and variables carry
from step to step. HOME is the scratch folder, so `~` in a lab means "the student's home" and
nothing outside the scratch folder is touched. Whatever happens, everything the lab mounted
under the scratch folder is unmounted and the shell (with anything it left running) is killed.
"""

from __future__ import annotations

import difflib
import functools
import os
import pwd
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import TextIO

from imagegraph.runtime.state import start_time
from unionfs.mountinfo import mounts

from .checks import CheckError, has_check, run_check
from .lab import Lab, Step
from .normalize import normalize

STEP_TIMEOUT = 120.0


# -- what this machine can do, for this user ---------------------------------------------
def is_root() -> bool:
    return os.geteuid() == 0


def user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def fuse_missing() -> str | None:
    """Why this user cannot make a FUSE mount here (None: they can). /dev/fuse is opened, not
    only looked at: a device that exists with mode 0600 is root's alone."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this machine or container)"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "fusermount3 is not installed (apt-get install fuse3)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        return (
            f"/dev/fuse cannot be opened by {user_name()} ({exc.strerror}; mode {mode:04o}): "
            "stock Debian and Ubuntu make it 0666, ask the administrator"
        )
    return None


@functools.cache
def userns_missing() -> str | None:
    """Why this user cannot make a user namespace with its own mounts (`unshare -Urm`)."""
    if not shutil.which("unshare"):
        return "unshare is not installed (util-linux)"
    try:
        proc = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -Urm failed: {exc}"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return "user namespaces are not allowed here: " + (lines[-1] if lines else f"exit status {proc.returncode}")
    return None


@functools.cache
def kernel_overlay_missing() -> str | None:
    """Why this user cannot mount the kernel's OverlayFS: root mounts it, an ordinary user in a
    user namespace of their own (`unshare -Urm`, with the `userxattr` option)."""
    try:
        with open("/proc/filesystems", encoding="ascii") as f:
            if "overlay" not in f.read():
                return "this kernel has no overlay filesystem"
    except OSError as exc:
        return str(exc)
    if is_root():
        return None
    reason = userns_missing()
    if reason:
        return f"the kernel's OverlayFS needs root, or a user namespace: {reason}"
    with tempfile.TemporaryDirectory(prefix="layerlab-probe-") as d:
        for name in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, name))
        opts = f"lowerdir={d}/l,upperdir={d}/u,workdir={d}/w,userxattr"
        proc = subprocess.run(
            ["unshare", "-Urm", "mount", "-t", "overlay", "overlay", "-o", opts, f"{d}/m"],
            capture_output=True,
            text=True,
        )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return "the kernel refuses OverlayFS in a user namespace: " + (lines[-1] if lines else "")
    return None


def registry_missing() -> str | None:
    if not shutil.which("docker-registry"):
        return "docker-registry is not installed"
    if not shutil.which("htpasswd"):
        return "htpasswd is not installed (apache2-utils)"
    return None


def missing(need: str) -> str | None:
    """Why requirement `need` (fuse, root, kernel-overlay, userns, registry, docker, tree) is not
    met for this user, or None."""
    if need == "fuse":
        return fuse_missing()
    if need == "root":
        return None if is_root() else "needs root"
    if need == "kernel-overlay":
        return kernel_overlay_missing()
    if need == "userns":
        return None if is_root() else userns_missing()
    if need == "registry":
        return registry_missing()
    if need == "docker":
        return None if shutil.which("docker") else "the docker CLI is not installed (make setup installs docker.io's)"
    if need == "tree":
        return None if shutil.which("tree") else "tree is not installed"
    return f"unknown requirement '{need}'"


# -- the shell ----------------------------------------------------------------------------
class StepTimeout(Exception):
    pass


class Shell:
    """One long-lived bash. Each step is sourced from a file (stdin from /dev/null, so a
    command that reads stdin cannot eat the next step), then a sentinel line with `$?`."""

    def __init__(self, cwd: str, env: dict[str, str], private: str):
        self.private = private
        self.token = "__layerlab_step_done_" + secrets.token_hex(8)
        self.count = 0
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, command: str, timeout: float = STEP_TIMEOUT) -> tuple[str, int]:
        self.count += 1
        script = os.path.join(self.private, f"step-{self.count}.sh")
        with open(script, "w", encoding="utf-8") as f:
            f.write(command)
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"source {script} </dev/null\nprintf '\\n{self.token} %d\\n' $?\n".encode())
        self.proc.stdin.flush()
        return self._read_until_token(timeout)

    def _read_until_token(self, timeout: float) -> tuple[str, int]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        data = b""
        marker = ("\n" + self.token + " ").encode()
        deadline = time.monotonic() + timeout
        while True:
            at = data.find(marker)
            if at >= 0 and data.endswith(b"\n") and data.count(b"\n", at + 1) == 1:
                status = int(data[at + len(marker) :].strip() or b"1")
                return data[:at].decode("utf-8", "replace"), status
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepTimeout(f"no end after {timeout:.0f}s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return data.decode("utf-8", "replace"), self.proc.wait()
                data += chunk

    def close(self) -> None:
        """Kill the shell and everything it started in the background."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


# -- mounts -------------------------------------------------------------------------------
def mounts_under(folder: str) -> list[str]:
    """Mount points at or below `folder`, deepest first (so nested mounts go first)."""
    folder = os.path.realpath(folder)
    try:
        found = [m.mountpoint for m in mounts() if m.mountpoint == folder or m.mountpoint.startswith(folder + "/")]
    except OSError:
        return []
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def stop_containers(folder: str) -> list[int]:
    """Kill the monitors of containers whose store is below `folder` (a lab that failed midway
    leaves them running): each takes its container with it. Returns the monitors' pids."""
    folder = os.path.realpath(folder)
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if "imagegraph.runtime.monitor" not in argv or "--root" not in argv:
            continue
        root = os.path.realpath(argv[argv.index("--root") + 1]) if argv.index("--root") + 1 < len(argv) else ""
        if root == folder or root.startswith(folder + "/"):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
            except ProcessLookupError:
                pass
    for pid in killed:
        for _ in range(100):
            if start_time(pid) is None:  # gone, or a zombie: its container went with it
                break
            time.sleep(0.05)
    return killed


def unmount_all(folder: str) -> list[str]:
    """Stop the containers, then unmount everything below `folder`; returns what could not be unmounted."""
    stop_containers(folder)
    stuck = []
    for point in mounts_under(folder):
        for command in (["fusermount3", "-u", point], ["umount", point], ["umount", "-l", point]):
            if shutil.which(command[0]) and subprocess.run(command, capture_output=True).returncode == 0:
                break
        for _ in range(50):
            if point not in mounts_under(folder):
                break
            time.sleep(0.1)
        else:
            stuck.append(point)
    return stuck


# -- running a lab ------------------------------------------------------------------------
@dataclass
class StepResult:
    step: Step
    status: str  # "ok", "FAIL", "skip"
    seconds: float = 0.0
    output: str = ""
    exit_status: int = 0
    diff: str = ""
    reason: str = ""


@dataclass
class CheckResult:
    """One self-check the runner ran: the lab's (exercise None) or an exercise's."""

    label: str
    exercise: int | None
    status: str  # "ok", "FAIL", "skip"
    problems: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class LabResult:
    lab: Lab
    results: list[StepResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    home: str = ""  # the scratch HOME (removed after the run unless kept)

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and all(r.status != "FAIL" for r in self.results)
            and all(c.status != "FAIL" for c in self.checks)
        )

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.status == "FAIL"]

    @property
    def folder(self) -> str:
        return self.lab.folder(self.home)


def lab_environment(home: str) -> dict[str, str]:
    """The student's environment: the project's commands first on PATH, UTF-8 tree drawing,
    HOME in the scratch folder (so ~/.docker and stores stay inside it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEGRAPH_", "LAYERFS_", "PYTEST_", "NO_COLOR"))}
    bindir = os.path.dirname(sys.executable)
    env.update(
        HOME=home,
        LC_ALL="C.UTF-8",
        LANG="C.UTF-8",
        TZ="UTC",
        TERM="dumb",
        COLUMNS="100",
        PATH=bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def compare(step: Step, output: str, status: int, scratch: str, where: str, root: bool | None = None) -> str:
    """A unified diff of the normalised texts (empty when they match). The expected text is
    the page's block for this kind of user (`text as=user` for an ordinary user, if given)."""
    root = is_root() if root is None else root
    want, got = normalize(step.expected_for(root), scratch), normalize(output, scratch)
    diff = "".join(
        difflib.unified_diff(
            want.splitlines(keepends=True),
            got.splitlines(keepends=True),
            fromfile=f"expected ({where})",
            tofile="actual",
            n=2,
        )
    )
    if diff and not diff.endswith("\n"):
        diff += "\n"
    if status != step.exit_status:
        diff += f"exit status {status}, expected {step.exit_status}\n"
    return diff


@dataclass
class _Session:
    """One run's shell, output and state while its steps and checks go by."""

    lab: Lab
    shell: Shell
    home: str
    out: TextIO
    result: LabResult
    keep_going: bool
    timeout: float
    failed: bool = False
    count: int = 0

    def steps(self, steps: tuple[Step, ...]) -> bool:
        """Run `steps` in order; False if one failed (or was not run because of that)."""
        root = is_root()
        ran_all = True
        for step in steps:
            if not step.runs_for(root):
                continue  # the page's form for the other kind of user
            self.count += 1
            first = step.command.strip().splitlines()[0]
            where = f"{step.source}:{step.line}"
            reason = next((r for r in (missing(n) for n in sorted(step.needs)) if r), None)
            if self.failed and not self.keep_going:
                reason = "an earlier step failed"
            if reason:
                self.result.results.append(StepResult(step, "skip", reason=reason))
                self.out.write(f"  skip  {self.count:2d}  {where:<22} {first}  ({reason})\n")
                ran_all = False
                continue
            t0 = time.monotonic()
            try:
                output, status = self.shell.run(step.command, self.timeout)
            except StepTimeout as exc:
                output, status = str(exc), -1
            seconds = time.monotonic() - t0
            diff = compare(step, output, status, self.home, where, root)
            state = "FAIL" if diff else "ok"
            self.result.results.append(StepResult(step, state, seconds, output, status, diff))
            self.out.write(f"  {state:<4}  {self.count:2d}  {where:<22} {first}  ({seconds:.2f}s)\n")
            if diff:
                self.failed = True
                ran_all = False
                self.out.write("".join("        " + line for line in diff.splitlines(keepends=True)))
            self.out.flush()
        return ran_all and not self.failed

    def check(self, label: str, exercise: int | None, folder: str, skip: str = "") -> bool:
        """Run the lab's (or an exercise's) self-check on `folder`, as a student would."""
        if self.failed and not skip:
            skip = "an earlier step failed"
        if skip:
            self.result.checks.append(CheckResult(label, exercise, "skip", reason=skip))
            self.out.write(f"  skip  check  {label}  ({skip})\n")
            return False
        if exercise is None and not has_check(self.lab.number):
            self.result.checks.append(CheckResult(label, exercise, "skip", reason="no self-check"))
            self.out.write(f"  skip  check  {label}  (no self-check)\n")
            return False
        try:
            problems = run_check(self.lab.number, folder, exercise)
        except CheckError as exc:
            problems = [str(exc)]
        state = "FAIL" if problems else "ok"
        self.result.checks.append(CheckResult(label, exercise, state, problems))
        self.out.write(f"  {state:<4}  check  {label}\n")
        for problem in problems:
            self.out.write(f"        {problem}\n")
        if problems:
            self.failed = True
        self.out.flush()
        return not problems


def run_lab(
    lab: Lab,
    out: TextIO = sys.stdout,
    keep: bool = False,
    keep_going: bool = False,
    timeout: float = STEP_TIMEOUT,
    exercises: bool = True,
    checks: bool = True,
) -> LabResult:
    """Run every step of `lab` in a fresh scratch folder, then its self-check; then each
    exercise's worked answer and the exercise's check; then the lab's check once more (doing the
    exercises must not break the lab). Progress and diffs go to `out`."""
    result = LabResult(lab)
    for need in sorted(lab.needs):
        reason = missing(need)
        if reason:
            result.error = f"lab {lab.number} needs {need}: {reason}"
            out.write(result.error + "\n")
            return result
    base = tempfile.mkdtemp(prefix=f"layerlab-lab{lab.number}-")
    home, private = os.path.join(base, "home"), os.path.join(base, "runner")
    os.mkdir(home)
    os.mkdir(private)
    result.home = home
    who = "root" if is_root() else f"{user_name()}, not root"
    out.write(f"lab {lab.number}: {lab.title}  (as {who}; scratch folder {home})\n")
    started = time.monotonic()
    shell = Shell(home, lab_environment(home), private)
    session = _Session(lab, shell, home, out, result, keep_going, timeout)
    try:
        session.steps(lab.steps)
        if checks:
            session.check(f"lab {lab.number}", None, lab.folder(home))
        answers = lab.exercises() if exercises else []
        for exercise in answers:
            done = session.steps(exercise.steps)
            if checks:
                skip = "" if done or session.failed else "its answer was not run here"
                session.check(f"exercise {exercise.number}", exercise.number, lab.folder(home, exercise.number), skip)
        if checks and answers:
            session.check(f"lab {lab.number} after the exercises", None, lab.folder(home))
    finally:
        shell.close()
        stuck = unmount_all(base)
        result.seconds = time.monotonic() - started
        if stuck:
            result.error = "could not unmount " + ", ".join(stuck)
            out.write(result.error + "\n")
        if keep or stuck:
            out.write(f"kept the scratch folder {home}\n")
        else:
            shutil.rmtree(base, ignore_errors=True)
    skipped = sum(r.status == "skip" for r in result.results)
    failed_checks = sum(c.status == "FAIL" for c in result.checks)
    verdict = "ok" if result.ok else "FAILED"
    out.write(
        f"lab {lab.number} {verdict}: {session.count} steps, {len(result.failed)} failed, "
        f"{skipped} skipped; {len(result.checks)} checks, {failed_checks} failed; {result.seconds:.1f}s\n"
    )
    return result

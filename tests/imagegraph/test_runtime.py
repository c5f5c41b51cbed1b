"""Containers that run, in real namespaces: isolation, exit codes, signals, logs, a pty, --rm, exec,
a killed monitor, and the top layer changed from inside (issue 13's Tests list)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imagegraph.container import ContainerNotFound
from imagegraph.runtime import state as st
from imagegraph.runtime.spec import MASKED_PATHS, READONLY_PATHS
from imagegraph.service import Services

from .runtime_helpers import pty_session, wait_until

pytestmark = [pytest.mark.mount, pytest.mark.namespaces, pytest.mark.usefixtures("this_layerfs")]

IMAGEGRAPH = [sys.executable, "-m", "imagegraph"]


def inspect(ig, ref: str) -> dict:
    r = ig("inspect", ref)
    assert r.rc == 0, r.err
    return json.loads(r.out)[0]


def by_name(svc: Services, name: str):
    try:
        return svc.containers.get(name)
    except ContainerNotFound:
        return None


def mountpoints(pid: str = "self") -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split()[4] for line in f]


# ---- isolation ----------------------------------------------------------------------------------------


def test_the_container_sees_its_hostname_itself_as_pid_1_its_own_mounts_and_only_lo(ig, busybox) -> None:
    script = "hostname; echo $$; cat /proc/1/cmdline; echo; cut -d' ' -f2 /proc/mounts; ls /sys/class/net; ip -o link"
    r = ig("run", "--rm", "--hostname", "box1", "busybox", "sh", "-c", script)
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "box1"
    assert lines[1] == "1"  # the shell is PID 1 of its own PID namespace
    assert lines[2] == "sh\0-c\0" + script + "\0"
    mounts = lines[3 : lines.index("lo")]
    assert mounts[0] == "/"
    expected = {"/", "/proc", "/dev", "/dev/pts", "/sys", "/dev/mqueue", "/dev/shm"}
    expected |= {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}
    expected |= {p for p in MASKED_PATHS + READONLY_PATHS if os.path.exists(p)}  # those this kernel has
    assert sorted(mounts) == sorted(expected)
    assert not any(m.startswith(("/tmp", "/work", "/home", "/var")) for m in mounts)  # nothing of the host's
    net = lines[lines.index("lo") :]
    assert net[0] == "lo" and len([n for n in net if ": " in n]) == 1  # `ip -o link`: one link
    assert "state UNKNOWN" in net[-1] or "UP" in net[-1]


DEV_SCRIPT = """
stat -c '%n %F %t:%T %a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/pts/ptmx
for l in fd stdin stdout stderr ptmx; do echo "$l -> $(readlink /dev/$l)"; done
grep -E '^[^ ]+ /(dev|dev/pts|dev/shm|dev/mqueue|sys) ' /proc/mounts | cut -d' ' -f1-4
touch /sys/x 2>&1; (echo x > /proc/sys/kernel/hostname) 2>&1
"""


def test_dev_is_a_small_tmpfs_sys_is_read_only_and_proc_paths_are_masked(ig, busybox) -> None:
    """oci/defaults.go's mounts, runc's default devices and links, Docker's masked and read-only paths."""
    masked_files = [p for p in MASKED_PATHS if os.path.isfile(p)]
    masked_dirs = [p for p in MASKED_PATHS if os.path.isdir(p)]
    ro_paths = [p for p in READONLY_PATHS if os.path.exists(p)]
    script = DEV_SCRIPT
    script += "".join(f"echo {p} $(wc -c < {p})\n" for p in masked_files)
    script += "".join(f"echo {p} $(ls -A {p} | wc -l)\n" for p in masked_dirs)
    script += "".join(f"grep -q ' {p} [^ ]* ro,' /proc/mounts && echo {p} ro\n" for p in ro_paths)
    r = ig("run", "--rm", "busybox", "sh", "-c", script)
    assert r.rc == 0, r.err
    out = r.out.splitlines()
    assert out[:7] == [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
        "/dev/pts/ptmx character special file 5:2 666",  # a new devpts instance, ptmxmode=666
    ]
    assert out[7:12] == [
        "fd -> /proc/self/fd",
        "stdin -> /proc/self/fd/0",
        "stdout -> /proc/self/fd/1",
        "stderr -> /proc/self/fd/2",
        "ptmx -> pts/ptmx",
    ]
    mounts = {line.split()[1]: line.split() for line in out[12:17]}
    assert mounts["/dev"][2] == "tmpfs" and "size=65536k" in mounts["/dev"][3]
    assert mounts["/dev/pts"][2] == "devpts" and "ptmxmode=666" in mounts["/dev/pts"][3]
    assert mounts["/dev/shm"][2] == "tmpfs" and "size=65536k" in mounts["/dev/shm"][3]
    assert mounts["/dev/mqueue"][2] == "mqueue"
    assert mounts["/sys"][2] == "sysfs" and mounts["/sys"][3].startswith("ro,")
    assert out[17:19] == [
        "touch: /sys/x: Read-only file system",
        "sh: can't create /proc/sys/kernel/hostname: Read-only file system",  # (UTS-private, were it writable)
    ]
    assert out[19:] == [f"{p} 0" for p in masked_files + masked_dirs] + [f"{p} ro" for p in ro_paths]


def test_hostname_defaults_to_the_short_id_and_etc_files_are_the_containers(ig, busybox, root) -> None:
    r = ig("run", "--name", "hn", "busybox", "sh", "-c", "hostname; cat /etc/hostname; cat /etc/hosts; id -u")
    assert r.rc == 0, r.err
    cid = inspect(ig, "hn")["Id"]
    out = r.out.splitlines()
    assert out[0] == out[1] == cid[:12]
    cdir = root / "containers" / cid
    assert "\n".join(out[2:-1]) + "\n" == (cdir / "hosts").read_text()
    assert out[-1] == "0"


def test_the_host_sees_none_of_the_containers_mounts(ig, busybox) -> None:
    r = ig("run", "-d", "--name", "iso", "busybox", "sleep", "1000")
    assert r.rc == 0, r.err
    try:
        info = inspect(ig, "iso")
        merged = info["GraphDriver"]["Data"]["MergedDir"]
        pid = info["State"]["Pid"]
        ours = mountpoints()
        assert merged in ours  # the union itself is mounted on the host, as Docker's overlay is
        assert not [m for m in ours if m.startswith(merged + "/")]  # but nothing inside it
        theirs = mountpoints(str(pid))
        assert "/proc" in theirs and "/dev/pts" in theirs and "/etc/hosts" in theirs
        for ns in ("mnt", "pid", "uts", "ipc", "net"):  # new namespaces, the host's left alone
            assert os.stat(f"/proc/{pid}/ns/{ns}").st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino, ns
        assert os.readlink(f"/proc/{pid}/root") == "/"  # pivot_root: its / is the union, not a chroot below ours
        assert os.stat(f"/proc/{pid}/root").st_ino == os.stat(merged).st_ino
    finally:
        ig("rm", "-f", "iso")
    assert merged not in mountpoints()  # unmounted when it ended


def test_network_host_shares_the_hosts_links(ig, busybox) -> None:
    r = ig("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
    assert r.rc == 0, r.err
    assert sorted(r.out.split()) == sorted(os.listdir("/sys/class/net"))


# ---- the process -----------------------------------------------------------------------------------------


def test_run_exits_with_the_containers_exit_code(ig, busybox) -> None:
    assert ig("run", "--rm", "busybox", "sh", "-c", "exit 3").rc == 3
    assert ig("run", "--rm", "busybox", "false").rc == 1
    r = ig("run", "--name", "nf", "busybox", "nonexistent")
    assert r.rc == 127
    assert r.err == (
        'Error response from daemon: unable to start container process: exec: "nonexistent": '
        "executable file not found in $PATH\n"
    )
    state = inspect(ig, "nf")["State"]
    assert state["Status"] == "created" and state["ExitCode"] == 127 and "not found" in state["Error"]
    r = ig("run", "--rm", "busybox", "/etc/passwd")
    assert r.rc == 126 and 'exec: "/etc/passwd": permission denied' in r.err
    r = ig("run", "--rm", "busybox", "/no/such")
    assert r.rc == 127 and "stat /no/such: no such file or directory" in r.err


def test_env_workdir_user_entrypoint(ig, busybox, tmp_path: Path) -> None:
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=1\n")
    r = ig(
        "run", "--rm", "-e", "A=b c", "--env-file", str(envfile), "-w", "/made/here", "-u", "65534:65534",
        "busybox", "sh", "-c", 'echo "$A|$FROM_FILE|$HOME|$HOSTNAME|$PATH"; pwd; id -u; id -g; stat -c %u /made/here',
    )  # fmt: skip
    assert r.rc == 0, r.err
    first, pwd, uid, gid, owner = r.out.splitlines()
    assert first.startswith("b c|1|/home|") and first.endswith(
        "|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    assert (pwd, uid, gid, owner) == ("/made/here", "65534", "65534", "65534")
    r = ig("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert r.out == "from entrypoint\n"
    r = ig("run", "--rm", "-u", "nosuchuser", "busybox", "true")
    assert r.rc == 126 and "unable to find user nosuchuser" in r.err


def test_capabilities_no_new_privileges_and_read_only(ig, busybox) -> None:
    status = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"
    r = ig("run", "--rm", "busybox", "sh", "-c", status)
    assert r.out.split() == ["CapEff:", "00000000a80425fb", "CapBnd:", "00000000a80425fb", "NoNewPrivs:", "0"]
    r = ig("run", "--rm", "--cap-drop", "ALL", "--cap-add", "chown", "--security-opt", "no-new-privileges",
           "busybox", "sh", "-c", status)  # fmt: skip
    assert r.out.split() == ["CapEff:", "0000000000000001", "CapBnd:", "0000000000000001", "NoNewPrivs:", "1"]
    r = ig("run", "--rm", "--cap-drop", "net_raw", "-u", "1000", "busybox", "sh", "-c", status)
    assert r.out.split()[:4] == ["CapEff:", "0000000000000000", "CapBnd:", "00000000a80405fb"]  # no NET_RAW (bit 13)
    r = ig("run", "--rm", "--cap-add", "NOPE", "busybox", "true")
    assert r.rc == 125 and r.err == 'Error response from daemon: unknown capability: "CAP_NOPE"\n'
    r = ig("run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x; echo $?; echo ok > /tmp/y; echo $?")
    assert r.out.split() == ["1", "1"] and "Read-only file system" in r.err


def test_limits_are_applied_where_the_machine_has_cgroups(ig, busybox, root) -> None:
    from imagegraph.runtime import cgroups

    found = cgroups.hierarchies()
    needed = {"memory", "pids", "cpu"}
    usable = any(h.version == 2 and needed <= h.controllers for h in found) or needed <= {
        c for h in found if h.version == 1 for c in h.controllers
    }
    r = ig(
        "run", "-d", "--name", "lim", "--memory", "64m", "--pids-limit", "20", "--cpus", "0.5",
        "busybox", "sleep", "1000",
    )  # fmt: skip
    if not usable:
        assert r.rc == 125 and r.err.startswith("Error response from daemon: cannot apply --memory: ")
        assert len(r.err.splitlines()) == 1
        return
    assert r.rc == 0, r.err
    try:
        cid = inspect(ig, "lim")["Id"]
        cg = cgroups.Cgroup.from_json(json.loads((root / "containers" / cid / "cgroup.json").read_text()))
        mem = Path(cg.dirs["memory"])
        pids = Path(cg.dirs["pids"])
        assert (mem / ("memory.max" if cg.version == 2 else "memory.limit_in_bytes")).read_text().strip() == str(
            64 << 20
        )
        assert (pids / "pids.max").read_text().strip() == "20"
        cpu = Path(cg.dirs["cpu"])
        if cg.version == 2:
            assert (cpu / "cpu.max").read_text().split() == ["50000", "100000"]
        else:
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        pid = inspect(ig, "lim")["State"]["Pid"]
        assert str(pid) in (pids / "cgroup.procs").read_text().split()
        r = ig("exec", "lim", "sh", "-c", "for i in $(seq 30); do sleep 2 & done; wait")
        assert "can't fork" in r.err  # the 21st process of the group was refused
    finally:
        ig("rm", "-f", "lim")
    assert not mem.exists()  # removed with the container's end
    r = ig("run", "--rm", "--memory", "1k", "busybox", "true")
    assert r.rc == 1 and r.err == "Error response from daemon: Minimum memory limit allowed is 6MB\n"


# ---- signals and stop --------------------------------------------------------------------------------------


def test_kill_sends_signals_and_stop_escalates_after_its_timeout(ig, busybox) -> None:
    trap = 'trap "exit 42" TERM; trap "exit 10" USR1; trap "exit 11" INT; while true; do sleep 0.1; done'
    assert ig("run", "-d", "--name", "t1", "busybox", "sh", "-c", trap).rc == 0
    assert ig("stop", "-t", "60", "t1").out == "t1\n"
    assert inspect(ig, "t1")["State"]["ExitCode"] == 42  # SIGTERM reached the shell's trap
    assert ig("run", "-d", "--name", "t2", "busybox", "sh", "-c", trap).rc == 0
    assert ig("kill", "-s", "USR1", "t2").rc == 0
    assert ig("wait", "t2").out == "10\n"
    assert ig("run", "-d", "--name", "t3", "--stop-signal", "INT", "busybox", "sh", "-c", trap).rc == 0
    ig("stop", "t3")
    assert inspect(ig, "t3")["State"]["ExitCode"] == 11  # the container's StopSignal
    # PID 1 without a handler ignores SIGTERM: stop waits -t seconds, then SIGKILL
    assert ig("run", "-d", "--name", "t4", "busybox", "sleep", "1000").rc == 0
    assert ig("stop", "-t", "1", "t4").rc == 0
    state = inspect(ig, "t4")["State"]
    assert state["ExitCode"] == 137 and state["Status"] == "exited" and state["Pid"] == 0
    assert ig("run", "-d", "--name", "t5", "busybox", "sleep", "1000").rc == 0
    assert ig("kill", "t5").out == "t5\n"
    assert ig("wait", "t5").out == "137\n"
    r = ig("kill", "t5")
    assert r.rc == 1 and "is not running" in r.err
    r = ig("kill", "-s", "NOPE", "t5")
    assert r.rc == 1 and "Invalid signal: NOPE" in r.err
    assert ig("stop", "t5").rc == 0  # stopping a stopped container is no error


def test_ps_and_inspect_show_docker_states(ig, busybox) -> None:
    ig("create", "--name", "made", "busybox")
    ig("run", "--name", "ended", "busybox", "sh", "-c", "exit 4")
    ig("run", "-d", "--name", "up", "busybox", "sleep", "1000")
    try:
        ps = {row["Names"]: row for row in map(json.loads, ig("ps", "-a", "--format", "json").out.splitlines())}
        assert ps["made"]["Status"] == "Created" and ps["made"]["State"] == "created"
        assert ps["ended"]["Status"].startswith("Exited (4) ") and ps["ended"]["Status"].endswith(" ago")
        assert ps["up"]["Status"].startswith("Up ") and ps["up"]["State"] == "running"
        assert [json.loads(x)["Names"] for x in ig("ps", "--format", "json").out.splitlines()] == ["up"]
        state = inspect(ig, "up")["State"]
        assert list(state) == [
            "Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
            "StartedAt", "FinishedAt",
        ]  # fmt: skip
        assert state["Running"] and state["Pid"] > 1 and state["FinishedAt"] == "0001-01-01T00:00:00Z"
        r = ig("rm", "up")
        assert r.rc == 1 and "container is running: stop the container before removing or force remove" in r.err
    finally:
        ig("rm", "-f", "up")
    assert ig("ps", "-a", "-q").out.count("\n") == 2


# ---- logs --------------------------------------------------------------------------------------------------


def test_output_goes_to_the_json_file_log(ig, busybox, root) -> None:
    r = ig("run", "--name", "lg", "busybox", "sh", "-c", "echo out1; echo err1 >&2; echo '<&>'; printf partial")
    assert r.rc == 0 and r.out == "out1\n<&>\npartial" and r.err == "err1\n"
    info = inspect(ig, "lg")
    path = Path(info["LogPath"])
    assert path == root / "containers" / info["Id"] / f"{info['Id']}-json.log"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["stream"], x["log"]) for x in records] == [
        ("stdout", "out1\n"),
        ("stderr", "err1\n"),
        ("stdout", "<&>\n"),
        ("stdout", "partial\n"),  # moby ends a last partial line with a newline
    ] or sorted(x["log"] for x in records) == ["<&>\n", "err1\n", "out1\n", "partial\n"]
    first = path.read_text().splitlines()[0]
    assert first.startswith('{"log":"out1\\n","stream":"stdout","time":"') and first.endswith('Z"}')
    assert '"log":"\\u003c\\u0026\\u003e\\n"' in path.read_text()  # Go's HTML-safe escaping
    r = ig("logs", "lg")
    assert r.out == "out1\n<&>\npartial\n" and r.err == "err1\n"
    assert ig("logs", "--tail", "1", "lg").out == "partial\n"
    stamped = ig("logs", "-t", "--tail", "1", "lg").out
    assert stamped.endswith("Z partial\n") and stamped[:4].isdigit()
    assert ig("logs", "--since", "2999-01-01T00:00:00Z", "lg").out == ""
    assert ig("logs", "--since", "1h", "lg").out == "out1\n<&>\npartial\n"
    r = ig("logs", "--since", "yesterday", "lg")
    assert r.rc == 1 and "failed to parse value as time or duration" in r.err


def test_logs_follow_ends_with_the_container(ig, busybox) -> None:
    ig("run", "-d", "--name", "fl", "busybox", "sh", "-c", "echo a; sleep 1; echo b")
    r = ig("logs", "-f", "fl")
    assert r.rc == 0 and r.out == "a\nb\n"


# ---- a terminal, stdin, --rm -----------------------------------------------------------------------------


def test_run_it_gives_a_pty(busybox, root) -> None:
    code, out = pty_session(
        [*IMAGEGRAPH, "run", "-it", "--rm", "busybox", "sh"],
        [
            (b"", b"# "),
            (b"tty; stty size; echo T=$TERM; ls -l /dev/console | cut -c1\r", b"T=xterm"),
            (b"exit 7\r", b""),
        ],
    )
    assert code == 7, out
    assert "/dev/pts/0" in out and "33 101" in out and "T=xterm" in out
    assert "\nc" in out.replace("\r", "")  # /dev/console is the terminal (a char device)
    assert not list((root / "containers").iterdir())  # --rm


def test_detach_keys_leave_the_container_running_and_resize_reaches_its_pty(ig, busybox, root) -> None:
    code, _ = pty_session(
        [*IMAGEGRAPH, "run", "-it", "--name", "det", "busybox", "sh"], [(b"", b"# "), (b"\x10\x11", b"")]
    )
    assert code == 0
    try:
        assert inspect(ig, "det")["State"]["Running"]
        assert ig("exec", "det", "stty", "-F", "/dev/console", "size").out == "33 101\n"  # the client's size
        Services.open(root).runtime.resize("det", 40, 120)
        wait_until(lambda: ig("exec", "det", "stty", "-F", "/dev/console", "size").out == "40 120\n", what="resize")
    finally:
        ig("rm", "-f", "det")


def test_run_i_passes_stdin_and_closes_it(busybox, root) -> None:
    res = subprocess.run(
        [*IMAGEGRAPH, "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"],
        input=b"hello\nworld\n",
        capture_output=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hello\nworld\ndone\n"
    res = subprocess.run([*IMAGEGRAPH, "run", "--rm", "busybox", "cat"], input=b"ignored", capture_output=True)
    assert res.returncode == 0 and res.stdout == b""  # without -i, stdin is /dev/null
    res = subprocess.run([*IMAGEGRAPH, "run", "-it", "busybox", "sh"], input=b"", capture_output=True)
    assert res.returncode == 1 and res.stderr == b"the input device is not a TTY\n"


def test_rm_removes_the_container_and_its_layers(ig, busybox, root) -> None:
    assert ig("run", "--rm", "busybox", "true").rc == 0
    assert ig("run", "--rm", "busybox", "nonexistent").rc == 127
    assert ig("run", "-d", "--rm", "busybox", "true").rc == 0
    wait_until(lambda: not list((root / "containers").iterdir()), what="the -d --rm container to go")
    assert ig("ps", "-a", "-q").out == ""
    svc = Services.open(root)
    assert svc.layers.mounts() == []  # no RW or init layer left
    image_layer = {layer.cache_id for layer in svc.layers.layers()}
    assert {p.name for p in (root / "layerfs").iterdir()} == image_layer


def test_start_attach_and_restart(ig, busybox) -> None:
    ig("create", "--name", "again", "busybox", "sh", "-c", "echo run; exit 2")
    r = ig("start", "-a", "again")
    assert r.rc == 2 and r.out == "run\n"
    assert ig("start", "again").out == "again\n"
    assert ig("wait", "again").out == "2\n"
    assert ig("logs", "again").out == "run\nrun\n"
    ig("run", "-d", "--name", "rs", "busybox", "sleep", "1000")
    first = inspect(ig, "rs")["State"]["Pid"]
    assert ig("restart", "-t", "0", "rs").out == "rs\n"
    second = inspect(ig, "rs")["State"]
    assert second["Running"] and second["Pid"] != first
    ig("rm", "-f", "rs")


def test_attach_and_start_ai_join_a_containers_stdio(ig, busybox, root) -> None:
    """attach: the running container's stdin, stdout and stderr, until it ends with its code."""
    script = "read line; echo got $line; echo to-err >&2; exit 5"
    assert ig("run", "-di", "--name", "at", "busybox", "sh", "-c", script).rc == 0
    res = subprocess.run([*IMAGEGRAPH, "attach", "at"], input=b"hello\n", capture_output=True, timeout=120)
    assert (res.returncode, res.stdout, res.stderr) == (5, b"got hello\n", b"to-err\n")
    r = ig("attach", "at")
    assert r.rc == 1 and r.err == "You cannot attach to a stopped container, start it first\n"
    res = subprocess.run([*IMAGEGRAPH, "start", "-ai", "at"], input=b"again\n", capture_output=True, timeout=120)
    assert (res.returncode, res.stdout, res.stderr) == (5, b"got again\n", b"to-err\n")
    assert ig("logs", "at").out == "got hello\ngot again\n"


# ---- exec and top ----------------------------------------------------------------------------------------------


def test_exec_joins_the_running_container(ig, busybox) -> None:
    ig("run", "-d", "--name", "ex", "-e", "FROM_RUN=1", "busybox", "sleep", "1000")
    try:
        cid = inspect(ig, "ex")["Id"]
        r = ig("exec", "-e", "X=y", "ex", "sh", "-c", "echo $$ $X $FROM_RUN; hostname; cat /proc/1/cmdline; echo")
        assert r.rc == 0, r.err
        pid, x, from_run, host, cmdline = r.out.split()
        assert pid != "1" and x == "y" and from_run == "1" and host == cid[:12] and cmdline == "sleep\x001000\x00"
        assert ig("exec", "ex", "sh", "-c", "exit 5").rc == 5
        assert ig("exec", "-u", "65534", "-w", "/tmp", "ex", "sh", "-c", "id -u; pwd").out == "65534\n/tmp\n"
        r = ig("exec", "ex", "nonexistent")
        assert r.rc == 127 and 'OCI runtime exec failed: exec failed: exec: "nonexistent"' in r.err
        assert ig("exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d").rc == 0
        wait_until(lambda: ig("exec", "ex", "cat", "/tmp/d").out == "detached\n", what="exec -d")
        top = ig("top", "ex")
        assert top.rc == 0
        assert top.out.splitlines()[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert any(line.endswith("sleep 1000") for line in top.out.splitlines())
        code, out = pty_session(
            [*IMAGEGRAPH, "exec", "-it", "ex", "sh"], [(b"", b"# "), (b"tty\r", b"/dev/pts/"), (b"exit 3\r", b"")]
        )
        assert code == 3, out
    finally:
        ig("rm", "-f", "ex")
    r = ig("exec", "ex", "true")
    assert r.rc == 1 and "No such container: ex" in r.err
    ig("create", "--name", "stopped", "busybox")
    r = ig("exec", "stopped", "true")
    assert r.rc == 1 and "is not running" in r.err


# ---- crashes ----------------------------------------------------------------------------------------------------


def test_kill_9_of_the_monitor_shows_exited_255(ig, busybox, root) -> None:
    assert ig("run", "-d", "--name", "victim", "busybox", "sleep", "1000").rc == 0
    info = inspect(ig, "victim")
    cdir = root / "containers" / info["Id"]
    monitor = st.read_pid_file(cdir / "monitor.pid")
    init = info["State"]["Pid"]
    assert monitor is not None and st.start_time(init) is not None
    os.kill(monitor[0], signal.SIGKILL)
    wait_until(lambda: st.start_time(init) is None, what="the container to die with its monitor")
    ps = [json.loads(x) for x in ig("ps", "-a", "--format", "json").out.splitlines()]
    assert ps[0]["Status"].startswith("Exited (255) ")
    state = inspect(ig, "victim")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 255 and not state["Running"] and state["Pid"] == 0
    assert info["GraphDriver"]["Data"]["MergedDir"] not in mountpoints()  # the store cleaned up after it
    assert not (cdir / "monitor.pid").exists()
    assert ig("start", "victim").rc == 0  # and it can run again
    assert inspect(ig, "victim")["State"]["Running"]
    assert ig("rm", "-f", "victim").rc == 0


def test_kill_9_of_the_starter_loses_nothing(busybox, root) -> None:
    """The command that started a container dies; its monitor records the exit anyway."""
    p = subprocess.Popen([*IMAGEGRAPH, "run", "--name", "orphan", "busybox", "sh", "-c", "sleep 1; echo done; exit 6"])
    svc = Services.open(root)
    wait_until(lambda: (c := by_name(svc, "orphan")) is not None and c.state.get("Running"), what="start")
    p.kill()
    p.wait()
    c = by_name(svc, "orphan")
    assert c is not None
    assert svc.runtime.wait(c.id) == (6, None)
    assert (root / "containers" / c.id / f"{c.id}-json.log").read_text().count('"done\\n"') == 1


def test_a_reused_pid_is_not_mistaken_for_the_monitor(tmp_path: Path) -> None:
    st.write_pid_file(tmp_path / "monitor.pid", os.getpid())
    assert st.monitor_alive(tmp_path) == os.getpid()
    rec = st.read_pid_file(tmp_path / "monitor.pid")
    assert rec is not None
    pid, started = rec
    (tmp_path / "monitor.pid").write_text(f"{pid} {started + 1}\n")  # same pid, another process
    assert st.monitor_alive(tmp_path) is None
    assert st.lost({"Running": True}, tmp_path)


# ---- the top layer, changed from inside ------------------------------------------------------------------------

CHANGES = (
    "echo new > /etc/new.conf; echo changed >> /etc/passwd; rm /etc/group; mv /bin/ls /bin/list; "
    "rm -r /var/spool; mkdir /var/spool; echo fresh > /var/spool/only; echo x > /root/f"
)


@pytest.mark.parametrize("encoding", ["overlay", "aufs"])
def test_the_top_layer_holds_what_the_process_changed(ig, busybox, root, encoding: str) -> None:
    r = ig("--whiteouts", encoding, "run", "--name", "wr", "busybox", "sh", "-c", CHANGES)
    assert r.rc == 0, r.err
    info = inspect(ig, "wr")
    upper = Path(info["GraphDriver"]["Data"]["UpperDir"])
    lower = Path(info["GraphDriver"]["Data"]["LowerDir"].split(":")[-1])
    # copy-ups: the changed file whole, the renamed link; new files; whiteouts and an opaque dir
    assert (upper / "etc/passwd").read_text() == (lower / "etc/passwd").read_text() + "changed\n"
    assert (upper / "etc/new.conf").read_text() == "new\n"
    assert os.readlink(upper / "bin/list") == "busybox"
    assert (upper / "var/spool/only").read_text() == "fresh\n"
    if encoding == "overlay":
        for gone in ("etc/group", "bin/ls"):
            st_ = os.lstat(upper / gone)
            assert stat.S_ISCHR(st_.st_mode) and st_.st_rdev == 0
        assert os.getxattr(upper / "var/spool", "trusted.overlay.opaque") == b"y"
    else:
        assert (upper / "etc/.wh.group").exists() and (upper / "bin/.wh.ls").exists()
        assert (upper / "var/spool/.wh..wh..opq").exists()
    assert (lower / "etc/group").exists() and (lower / "bin/ls").is_symlink()  # the image is untouched
    # moby's walk is in name order: the aufs whiteout `.wh.ls` comes before `list`, the 0/0 device `ls` after
    bin_changes = ["A /bin/list", "D /bin/ls"] if encoding == "overlay" else ["D /bin/ls", "A /bin/list"]
    assert ig("diff", "wr").out.splitlines() == [
        "C /bin",
        *bin_changes,
        "C /etc",
        "D /etc/group",
        "A /etc/new.conf",
        "C /etc/passwd",
        "C /root",
        "A /root/f",
        "C /var",
        "D /var/spool",
        "A /var/spool/only",
    ]
    trace = (root / "containers" / info["Id"] / "layerfs-trace.jsonl").read_text()
    assert '"copy_up"' in trace and '"/etc/passwd"' in trace and '"whiteout"' in trace
    # commit sees exactly that, and a container of the new image runs with it
    assert ig("commit", "wr", "changed:1").rc == 0
    r = ig(
        "run", "--rm", "changed:1", "sh", "-c", "cat /etc/new.conf; ls /etc/group /bin/ls 2>&1 | wc -l; ls /var/spool"
    )
    assert r.out == "new\n2\nonly\n"
    svc = Services.open(root)
    img = svc.get_image("changed:1")
    top = svc.layers.lower_dirs(img.top_chain_id)[0]
    names = sorted(str(p.relative_to(top)) for p in top.rglob("*"))
    assert "etc/hostname" not in names and ".dockerenv" not in names  # the init layer stays out
    assert "etc/passwd" in names and "root/f" in names


def test_a_container_that_changes_nothing_has_an_empty_diff(ig, busybox) -> None:
    assert ig("run", "--name", "idle", "busybox", "sh", "-c", "cat /etc/passwd >/dev/null; ls -R / >/dev/null").rc == 0
    assert ig("diff", "idle").out == ""

"""The runtime's pure parts: states as Docker words them, the json-file log, frames, signals,
users, capabilities, cgroup detection and its one-line refusals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from imagegraph.cli_run import ram_in_bytes
from imagegraph.imagestore import format_time
from imagegraph.runtime import cgroups, jsonlog, process, spec
from imagegraph.runtime import state as st
from imagegraph.runtime import stream as fr
from imagegraph.runtime.manager import ContainerRuntimeError, parse_signal
from imagegraph.runtime.terminal import parse_detach_keys

NOW = 1_700_000_000.0


def test_status_words_follow_moby_state_string() -> None:
    created = {"Running": False, "StartedAt": st.ZERO_TIME, "FinishedAt": st.ZERO_TIME}
    assert st.status(created) == "created" and st.status_text(created, NOW) == "Created"
    up = {"Running": True, "StartedAt": format_time(NOW - 3)}
    assert st.status(up) == "running" and st.status_text(up, NOW) == "Up 3 seconds"
    assert st.status_text({"Running": True, "StartedAt": format_time(NOW - 0.2)}, NOW) == "Up Less than a second"
    ended = {"Running": False, "StartedAt": format_time(NOW - 100), "FinishedAt": format_time(NOW - 2), "ExitCode": 137}
    assert st.status(ended) == "exited" and st.status_text(ended, NOW) == "Exited (137) 2 seconds ago"
    assert st.status_text({"Running": True, "Paused": True, "StartedAt": format_time(NOW - 120)}, NOW) == (
        "Up 2 minutes (Paused)"
    )
    assert st.status({"Dead": True, "StartedAt": format_time(NOW)}) == "dead"
    assert st.status({"RemovalInProgress": True}) == "removing"


def test_exit_codes_of_wait_statuses() -> None:
    assert st.exit_code_of(3 << 8) == 3
    assert st.exit_code_of(signal.SIGKILL) == 137
    assert st.exit_code_of(signal.SIGTERM) == 143


def test_crash_record_is_exited_255_and_removes_the_pid_files(tmp_path: Path) -> None:
    (tmp_path / "monitor.pid").write_text("999999999 1\n")  # no such process
    (tmp_path / "init.pid").write_text("999999999 1\n")
    state = {"Running": True, "Pid": 5, "StartedAt": format_time(NOW)}
    assert st.lost(state, tmp_path)
    st.record_crash(state, tmp_path, now=NOW + 1)
    assert state["Running"] is False and state["ExitCode"] == 255 and state["Pid"] == 0
    assert state["FinishedAt"] == format_time(NOW + 1)
    assert not (tmp_path / "monitor.pid").exists() and not (tmp_path / "init.pid").exists()
    assert not st.lost(state, tmp_path)


# ---- json-file ----------------------------------------------------------------------------------------


def test_log_writer_cuts_lines_and_stamps_them(tmp_path: Path) -> None:
    clock = iter(range(1_700_000_000_000_000_000, 1_800_000_000_000_000_000, 1_000)).__next__
    path = tmp_path / "x-json.log"
    w = jsonlog.LogWriter(str(path), clock)
    w.write("stdout", b"a\nb")
    w.write("stderr", b"e\n")
    w.write("stdout", b"c\n" + b"z" * (jsonlog.MAX_LINE + 5))
    w.close()
    lines = path.read_text().splitlines()
    assert lines[0] == '{"log":"a\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}'
    assert lines[1] == '{"log":"e\\n","stream":"stderr","time":"2023-11-14T22:13:20.000001Z"}'
    logs = [json.loads(x)["log"] for x in lines]
    assert logs[2] == "bc\n" and logs[3] == "z" * jsonlog.MAX_LINE and logs[4] == "zzzzz\n"
    entries, end = jsonlog.read_entries(str(path))
    assert [e.stream for e in entries] == ["stdout", "stderr", "stdout", "stdout", "stdout"]
    assert end == path.stat().st_size


def test_read_logs_tail_since_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "l"
    w = jsonlog.LogWriter(str(path), iter([10**18, 2 * 10**18, 3 * 10**18]).__next__)
    w.write("stdout", b"1\n2\n")
    w.write("stderr", b"3\n")
    w.close()
    with open(path, "a") as f:
        f.write('{"log":"half')  # a writer caught mid-line
    q = jsonlog.LogQuery(tail=2)
    assert [e.data for e in jsonlog.read_logs(str(path), q, lambda: False)] == [b"2\n", b"3\n"]
    q = jsonlog.LogQuery(since_ns=2 * 10**18, stderr=False)
    assert [e.data for e in jsonlog.read_logs(str(path), q, lambda: False)] == [b"2\n"]
    assert list(jsonlog.read_logs(str(path), jsonlog.LogQuery(tail=0), lambda: False)) == []


def test_time_arguments() -> None:
    assert jsonlog.parse_time_arg("10m", now=1000.0) == 400 * 10**9
    assert jsonlog.parse_time_arg("1h30m", now=10000.0) == (10000 - 5400) * 10**9
    assert jsonlog.parse_time_arg("1700000000.5") == 1_700_000_000_500_000_000
    assert jsonlog.parse_time_arg("2023-11-14T22:13:20.25Z") == 1_700_000_000_250_000_000
    with pytest.raises(ValueError, match='failed to parse value as time or duration: "soon"'):
        jsonlog.parse_time_arg("soon")
    assert jsonlog.format_ns(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"


# ---- frames, signals, keys, sizes ----------------------------------------------------------------------


def test_frames_have_dockers_stdcopy_header() -> None:
    assert fr.frame(fr.STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    reader = fr.FrameReader()
    data = fr.frame(fr.STDERR, b"oops") + fr.json_frame(fr.EXIT, {"ExitCode": 3})
    assert reader.feed(data[:5]) == []
    got = reader.feed(data[5:])
    assert got[0] == (fr.STDERR, b"oops") and json.loads(got[1][1]) == {"ExitCode": 3}


def test_signals_and_detach_keys_and_sizes() -> None:
    assert parse_signal("TERM") == parse_signal("sigterm") == parse_signal("15") == signal.SIGTERM
    assert parse_signal(9) == signal.SIGKILL
    with pytest.raises(ContainerRuntimeError, match="Invalid signal: SIGFOO"):
        parse_signal("SIGFOO")
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@") == b"a\x00"
    with pytest.raises(ValueError):
        parse_detach_keys("ctrl-pp")
    assert ram_in_bytes("64m") == 64 << 20 and ram_in_bytes("1g") == 1 << 30 and ram_in_bytes("100MB") == 100 << 20
    with pytest.raises(ValueError, match="invalid size: '1x'"):
        ram_in_bytes("1x")


# ---- users and capabilities ---------------------------------------------------------------------------


def test_users_are_looked_up_in_the_containers_files(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:1000:100:w:/home/web:/bin/sh\n")
    group.write_text("root:x:0:\nusers:x:100:\nwheel:x:10:root,web\nstaff:x:50:web\n")
    look = lambda u: process.lookup_user(u, str(passwd), str(group))  # noqa: E731
    assert look("") == process.ExecUser(0, 0, [0, 10], "/root")
    assert look("web") == process.ExecUser(1000, 100, [100, 10, 50], "/home/web")
    assert look("1000:staff") == process.ExecUser(1000, 50, [50], "/home/web")
    assert look("4242") == process.ExecUser(4242, 0, [0], "/")  # a uid without an entry is fine
    with pytest.raises(process.ProcessError, match="unable to find user nobody: no matching entries in passwd file"):
        look("nobody")
    with pytest.raises(process.ProcessError, match="unable to find group nope"):
        look("web:nope")


def test_capabilities_are_tweaked_as_moby_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec, "available_caps", lambda: set(spec.CAPABILITIES) - {"CAP_SYS_RESOURCE"})
    assert spec.tweak_caps(None, None) == list(spec.DEFAULT_CAPS)
    assert process.cap_mask(list(spec.DEFAULT_CAPS)) == 0xA80425FB  # Docker's CapEff
    assert spec.tweak_caps(["NET_ADMIN"], ["chown"]) == [c for c in spec.DEFAULT_CAPS if c != "CAP_CHOWN"] + [
        "CAP_NET_ADMIN"
    ]
    assert spec.tweak_caps(["kill"], ["ALL"]) == ["CAP_KILL"]
    assert "CAP_SYS_ADMIN" in spec.tweak_caps(["ALL"], ["net_raw"]) and "CAP_NET_RAW" not in spec.tweak_caps(
        ["ALL"], ["net_raw"]
    )
    with pytest.raises(spec.SpecError, match='unknown capability: "CAP_BOGUS"'):
        spec.tweak_caps(["bogus"], None)
    with pytest.raises(spec.SpecError, match="not available in the current environment"):
        spec.tweak_caps(["SYS_RESOURCE"], None)  # what this sandbox lacks
    assert spec.no_new_privileges(["no-new-privileges"]) and spec.no_new_privileges(["no-new-privileges:true"])
    assert not spec.no_new_privileges(["no-new-privileges=false"]) and not spec.no_new_privileges(None)


# ---- cgroups ----------------------------------------------------------------------------------------------


def _mountinfo(tmp_path: Path, lines: list[str]) -> str:
    p = tmp_path / "mountinfo"
    p.write_text("".join(line + "\n" for line in lines))
    return str(p)


def test_cgroup_hierarchies_are_read_from_mountinfo(tmp_path: Path) -> None:
    v2 = tmp_path / "unified"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("")
    info = _mountinfo(
        tmp_path,
        [
            f"31 23 0:28 / {tmp_path}/memory rw - cgroup cgroup rw,memory",
            f"32 23 0:29 / {tmp_path}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
            f"33 23 0:30 / {v2} rw - cgroup2 cgroup2 rw",
            "34 23 0:31 / /proc rw - proc proc rw",
        ],
    )
    hs = cgroups.hierarchies(info)
    assert [(h.version, h.controllers) for h in hs] == [(1, {"memory"}), (1, {"cpu", "cpuacct"}), (2, set())]


def test_v1_limits_nest_below_our_own_group(tmp_path: Path) -> None:
    mem, pids = tmp_path / "memory", tmp_path / "pids"
    found = [cgroups.Hierarchy(1, str(mem), {"memory"}), cgroups.Hierarchy(1, str(pids), {"pids"})]
    res = spec.Resources(memory=64 << 20, pids_limit=20)
    cg = cgroups.create("abc", res, found, {"memory": "/sandbox/1", "pids": "/"})
    assert cg is not None and cg.version == 1
    assert (mem / "sandbox/1/imagegraph/abc/memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (pids / "imagegraph/abc/pids.max").read_text() == "20"
    assert cgroups.Cgroup.from_json(json.loads(json.dumps(cg.to_json()))) == cg
    assert cgroups.create("abc", spec.Resources(), found, {}) is None  # no limits, no group


def test_v2_limits_enable_their_controllers(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.subtree_control").write_text("")
    found = [cgroups.Hierarchy(2, str(root), {"memory", "pids", "cpu"})]
    cg = cgroups.create("abc", spec.Resources(memory=1 << 30, nano_cpus=500_000_000), found, {})
    assert cg is not None and cg.version == 2
    group = root / "imagegraph" / "abc"
    assert (group / "memory.max").read_text() == str(1 << 30)
    assert (group / "cpu.max").read_text() == "50000 100000"
    assert "+memory" in (root / "imagegraph" / "cgroup.subtree_control").read_text()


def test_v2_parent_made_meanwhile_by_another_start_is_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `run --memory` at once: the one that loses the mkdir race of imagegraph/ goes on."""
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.subtree_control").write_text("")
    parent = root / "imagegraph"
    real_isdir = os.path.isdir

    def isdir(path: str) -> bool:
        if path == str(parent) and not parent.exists():
            parent.mkdir()  # the other start wins, after our check saw nothing
            (parent / "cgroup.subtree_control").write_text("")
            return False
        return real_isdir(path)

    monkeypatch.setattr(cgroups.os.path, "isdir", isdir)
    cg = cgroups.create("abc", spec.Resources(memory=1 << 30), [cgroups.Hierarchy(2, str(root), {"memory"})], {})
    assert cg is not None and (parent / "abc" / "memory.max").read_text() == str(1 << 30)


def test_limits_that_cannot_be_applied_fail_with_one_line(tmp_path: Path) -> None:
    empty_v2 = [cgroups.Hierarchy(2, str(tmp_path / "unified"), set())]
    with pytest.raises(cgroups.CgroupError) as exc:
        cgroups.create("abc", spec.Resources(memory=64 << 20), empty_v2, {})
    msg = str(exc.value)
    assert msg == (
        "cannot apply --memory: this machine has neither a cgroup v2 hierarchy with controllers "
        "nor a v1 memory hierarchy mounted"
    )
    v2_without_pids = [cgroups.Hierarchy(2, str(tmp_path), {"memory"})]
    with pytest.raises(cgroups.CgroupError, match="cannot apply --pids-limit: cgroup v2 at .* does not offer the pids"):
        cgroups.create("abc", spec.Resources(pids_limit=5), v2_without_pids, {})
    readonly = tmp_path / "ro"
    readonly.mkdir()
    (readonly / "imagegraph").write_text("a file where a directory must be")
    with pytest.raises(cgroups.CgroupError, match="^cannot apply --memory: the v1 memory cgroup is not writable here"):
        cgroups.create("abc", spec.Resources(memory=64 << 20), [cgroups.Hierarchy(1, str(readonly), {"memory"})], {})


def test_running_needs_root_and_says_so_in_one_line(svc, rootfs, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagegraph.runtime import manager

    svc.import_image(str(rootfs), "base", changes=['CMD ["/bin/sh"]'])
    c = svc.create_container("base", name="nonroot")
    monkeypatch.setattr(manager.os, "geteuid", lambda: 1000)
    with pytest.raises(ContainerRuntimeError) as exc:
        svc.runtime.start(c.id)
    assert str(exc.value).startswith("running a container needs root here (new namespaces, mounts, pivot_root)")
    assert not svc.layout.container_dir(c.id).joinpath("monitor.pid").exists()

"""The skip-or-fail rule itself: a missing component skips, unless every component is required."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from . import support


@pytest.fixture(params=["skip", "fail"])
def rule(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    """The exception a missing component raises: skip on a user's machine, fail in CI."""
    if request.param == "fail":
        monkeypatch.setenv(support.REQUIRE_ALL, "1")
        return pytest.fail.Exception
    monkeypatch.delenv(support.REQUIRE_ALL, raising=False)
    return pytest.skip.Exception


def test_missing_root_follows_the_rule(rule: type[BaseException], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(rule, match=r"needs root \(mknod\)"):
        support.require_root("mknod")
    with pytest.raises(rule, match="the kernel's OverlayFS needs root"):
        support.require_kernel_overlay()


def test_a_missing_tool_follows_the_rule(rule: type[BaseException], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(rule, match="tree is not installed"):
        support.require_tool("tree")


def test_a_missing_second_filesystem_follows_the_rule(
    rule: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stat = os.stat
    here = real_stat(tmp_path).st_dev

    def one_filesystem(path: str | os.PathLike[str], *args: object, **kwargs: object) -> os.stat_result:
        st = real_stat(path)
        return os.stat_result((st.st_mode, st.st_ino, here, *st[3:10]))

    monkeypatch.setattr(os, "stat", one_filesystem)
    with pytest.raises(rule, match="no writable directory on another filesystem"):
        support.require_second_filesystem(tmp_path)


def test_present_components_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(support.REQUIRE_ALL, "1")
    assert support.require_tool("sh").endswith("/sh")

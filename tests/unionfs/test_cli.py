"""The `layerfs` command without a mount: tree, explain, trace, and its one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from unionfs.cli import main

from ..support import require_tool

SEED_TREE = """./mnt
├── apple
├── carrots
└── tomato
"""


@pytest.fixture
def seed(tmp_path, monkeypatch):
    for d, files in {"fruits": ["apple", "tomato"], "vegetables": ["carrots", "tomato"]}.items():
        (tmp_path / d).mkdir()
        for f in files:
            (tmp_path / d / f).write_text(f"{f} from {d}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tree_prints_the_seed_listing(seed, capsys):
    code, out, _ = run(capsys, "tree", "-o", "dirs=./fruits:./vegetables", "--label", "./mnt")
    assert code == 0
    assert out.startswith(SEED_TREE.replace("./mnt", "./mnt"))
    assert out.endswith("\n1 directory, 3 files\n")


def test_tree_matches_real_tree_on_a_plain_copy(seed, capsys, tmp_path):
    tree = require_tool("tree")
    # Flatten the union by hand (fruits wins) and let tree(1) print it: same text.
    merged = tmp_path / "merged"
    shutil.copytree(seed / "vegetables", merged)
    shutil.copytree(seed / "fruits", merged, dirs_exist_ok=True)
    (merged / "sub").mkdir()
    (merged / "sub" / "x").write_text("")
    os.symlink("apple", merged / "link")
    (seed / "fruits" / "sub").mkdir()
    (seed / "fruits" / "sub" / "x").write_text("")
    os.symlink("apple", seed / "fruits" / "link")
    expected = subprocess.run(
        [tree, "merged"], cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"}
    ).stdout
    _, out, _ = run(capsys, "tree", "-o", "dirs=./fruits:./vegetables", "--label", "merged")
    assert out == expected


def test_tree_ascii_charset(seed, capsys):
    _, out, _ = run(capsys, "tree", "--charset", "ascii", "-o", "dirs=./fruits:./vegetables")
    assert out.splitlines()[:4] == [".", "|-- apple", "|-- carrots", "`-- tomato"]


def test_tree_of_a_union_subpath(seed, capsys):
    (seed / "vegetables" / "roots").mkdir()
    (seed / "vegetables" / "roots" / "beet").write_text("")
    _, out, _ = run(capsys, "tree", "-o", "dirs=./fruits:./vegetables", "/roots")
    assert out.splitlines()[:2] == ["/roots", "└── beet"]


def test_tree_origin(seed, capsys):
    _, out, _ = run(capsys, "tree", "--origin", "-o", "dirs=./fruits:./vegetables")
    assert "├── [./fruits]  apple" in out
    assert "├── [./vegetables]  carrots" in out
    assert "└── [./fruits]  tomato" in out


def test_explain(seed, capsys):
    code, out, _ = run(capsys, "explain", "-o", "dirs=./fruits:./vegetables", "/tomato")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "/tomato"
    assert "./fruits" in lines[1] and "serves" in lines[1]
    assert "./vegetables" in lines[2] and "hidden by the file in ./fruits" in lines[2]


def test_trace_prints_events(tmp_path, capsys):
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        json.dumps(
            {
                "event": "copy_up",
                "path": "/carrots",
                "trigger": "open for write",
                "bytes": 8,
                "from": "./vegetables",
                "to": "./fruits",
                "time": 0,
            }
        )
        + "\n"
    )
    code, out, _ = run(capsys, "trace", str(trace))
    assert code == 0 and "copy-up   /carrots" in out and "8 bytes" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tree", "-o", "dirs=./nope:./vegetables"], "./nope: no such directory"),
        (["tree", "-o", "dirs=./fruits:./vegetables,zap"], "unknown option 'zap'"),
        (["explain", "-o", "dirs=./fruits:./vegetables", "/nothing"], None),
        (["tree", "--bogus"], "unrecognized arguments"),
        (["trace", "missing.jsonl"], "No such file"),
    ],
)
def test_errors_are_one_line(seed, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    if message is None:  # explaining a missing path is not an error: it says where it is absent
        assert code == 0 and "absent" in out
        return
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("layerfs: ")
    assert message in err


def test_python_dash_m_works(seed):
    result = subprocess.run(
        [sys.executable, "-m", "unionfs", "tree", "-o", "dirs=./fruits:./vegetables"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "carrots" in result.stdout


# -- colour by layer -----------------------------------------------------------------------------
def test_tree_colours_each_name_by_its_layer_with_a_legend(seed, capsys):
    code, out, _ = run(capsys, "tree", "--origin", "--color=always", "-o", "dirs=./fruits:./vegetables")
    assert code == 0
    fruits, vegetables = "\x1b[1;33m", "\x1b[1;34m"  # the upper, then the first read-only layer
    assert f"{fruits}[./fruits]\x1b[0m  {fruits}apple\x1b[0m" in out
    assert f"{vegetables}[./vegetables]\x1b[0m  {vegetables}carrots\x1b[0m" in out
    assert f"{fruits}tomato" in out  # fruits serves tomato
    legend = out.split("\n\n")[-1].splitlines()
    assert legend == [
        "layers, top first:",
        f"  {fruits}██\x1b[0m  ./fruits (upper)",
        f"  {vegetables}██\x1b[0m  ./vegetables (lower)",
    ]


def test_tree_is_plain_in_a_pipe_with_no_color_or_when_told(seed, capsys, monkeypatch):
    plain = run(capsys, "tree", "--origin", "-o", "dirs=./fruits:./vegetables")[1]
    assert "\x1b[" not in plain and "layers, top first" not in plain  # capsys is no terminal
    assert run(capsys, "tree", "--origin", "--color=never", "-o", "dirs=./fruits:./vegetables")[1] == plain
    from unionfs.cli import use_colour

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_colour("auto", Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour("auto", Terminal())
    assert use_colour("always", Terminal())  # as ls: an explicit --color=always wins
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_colour("auto", Terminal())


def test_tree_colours_the_upper_init_and_lowers_apart(tmp_path, capsys, monkeypatch):
    for d in ("up", "init", "l0", "l1", "work"):
        (tmp_path / d).mkdir()
    for d in ("up", "init", "l0", "l1"):
        (tmp_path / d / f"from-{d}").write_text(d)
    monkeypatch.chdir(tmp_path)
    opts = "lowerdir=./l0:./l1,initdir=./init,upperdir=./up,workdir=./work"
    out = run(capsys, "tree", "--color=always", "-o", opts)[1]
    colours = dict(re.findall(r"\x1b\[([0-9;]+)m(from-\w+)", out)[i][::-1] for i in range(4))
    assert colours == {"from-up": "1;33", "from-init": "1;32", "from-l0": "1;34", "from-l1": "1;36"}

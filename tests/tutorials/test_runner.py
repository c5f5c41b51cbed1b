"""The lab format, the runner's normalisation and diff, and its clean-up, on small synthetic labs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest

from tutorials.__main__ import main
from tutorials.lab import LabError, all_labs, find_lab, parse_lab, parse_lab_file
from tutorials.normalize import normalize
from tutorials.runner import mounts_under, run_lab


def write_lab(tmp_path, text: str, name: str = "90-synthetic.md"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return parse_lab_file(str(path))


def run(lab, **kw):
    out = io.StringIO()
    result = run_lab(lab, out=out, **kw)
    return result, out.getvalue()


# -- the format ------------------------------------------------------------------------------
def test_parse_steps_outputs_and_options():
    lab = parse_lab(
        textwrap.dedent("""\
        # Lab 90: T
        <!-- lab: needs=fuse,root minutes=7 -->
        ```sh
        echo one
        ```
        ```text
        one
        ```
        Some prose.
        ```sh exit=3 needs=kernel-overlay
        false
        ```
        ```
        not a step (no info string)
        ```
        ```sh
        true
        ```
        """),
        "90",
        "t",
    )
    assert lab.title == "Lab 90: T"
    assert lab.needs == {"fuse", "root"} and lab.minutes == 7
    assert [s.command for s in lab.steps] == ["echo one\n", "false\n", "true\n"]
    assert [s.expected for s in lab.steps] == ["one\n", "", ""]
    assert lab.steps[1].exit_status == 3 and lab.steps[1].needs == {"kernel-overlay"}
    assert lab.steps[0].line == 3


def test_parse_rejects_unknown_step_option_and_unclosed_block():
    with pytest.raises(LabError, match="unknown step option 'sudo'"):
        parse_lab("```sh sudo\nls\n```\n", "90", "t")
    with pytest.raises(LabError, match="never closed"):
        parse_lab("```sh\nls\n", "90", "t")


def test_the_installed_labs_parse_and_are_numbered_in_order():
    labs = all_labs()
    assert labs, "no lab pages found in the tutorials package"
    assert [lab.number for lab in labs] == sorted(lab.number for lab in labs)
    for lab in labs:
        assert lab.steps and lab.minutes > 0, lab.name
        assert find_lab(str(int(lab.number))).path == lab.path


# -- normalisation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "a, b",
    [
        ("sha256:" + "a" * 64, "sha256:" + "0123456789" * 6 + "beef"),
        ("IMAGE ID  8f2a0c1d9e3b", "IMAGE ID  0123456789ab"),
        ("Created 2 seconds ago", "Created About a minute ago"),
        ("at 2024-05-01T10:11:12.123456789Z", "at 2026-11-27T17:13:01+02:00"),
        ("17:25:01  copy-up", "09:00:59  copy-up"),
        ("-rw-r--r-- 1 root root 5 Nov 27 17:25 kiwi", "-rw-r--r-- 1 root root 5 Jan  3  2025 kiwi"),
        ("x  5B    y", "x  5B  y"),  # a wider column shifts the next one: still equal
        ("│\u00a0\u00a0 ├── apple", "│   ├── apple"),  # tree(1)'s no-break spaces
        ("trailing   \n\n\n", "trailing\n"),
    ],
)
def test_normalize_makes_equal(a, b):
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("tomato, from fruits", "tomato, from vegetables"),
        ("sha256:" + "a" * 64, "sha256:" + "a" * 63),  # not an ID: one digit short
        ("├── apple", "└── apple"),
        ("1 directory, 3 files", "1 directory, 4 files"),
        ("5 bytes copied", "6 bytes copied"),
        ("945f285af416  12 seconds ago  15B  the base image", "945f285af416  12 seconds ago  20B  the base image"),
        ("size 5.24kB", "size 131MB"),
    ],
)
def test_normalize_keeps_real_differences(a, b):
    assert normalize(a) != normalize(b)


def test_normalize_scratch_folder_becomes_home():
    assert normalize("/tmp/x-123/home/layerlab/lab02/fruits", "/tmp/x-123/home") == "~/layerlab/lab02/fruits\n"


# -- running -------------------------------------------------------------------------------
GOOD = """\
    # Lab 90: carried state
    <!-- lab: minutes=1 -->
    ```sh
    mkdir -p ~/work && cd ~/work
    greeting=hello
    ```
    ```sh
    pwd; echo "$greeting"; echo oops >&2
    ```
    ```text
    ~/work
    hello
    oops
    ```
    ```sh
    cat            # stdin is /dev/null: it cannot swallow the next step
    echo "id $(printf a%.0s $(seq 64)) at $(date -u +%FT%TZ)"
    ```
    ```text
    id 0000000000000000000000000000000000000000000000000000000000000000 at 2020-01-01T00:00:00Z
    ```
    ```sh exit=2
    ls missing-file
    ```
    ```text
    ls: cannot access 'missing-file': No such file or directory
    ```
    """


def test_good_lab_passes_and_scratch_is_removed(tmp_path):
    result, report = run(write_lab(tmp_path, GOOD))
    assert result.ok, report
    assert [r.status for r in result.results] == ["ok"] * 4
    assert "lab 90 ok: 4 steps, 0 failed" in report
    assert not os.path.exists(os.path.dirname(result.home))


def test_mismatch_shows_a_unified_diff_and_stops(tmp_path):
    lab = write_lab(
        tmp_path,
        """\
        # Lab 90: wrong
        ```sh
        printf 'apple\\ncarrots\\ntomato\\n'
        ```
        ```text
        apple
        carrots
        potato
        ```
        ```sh
        echo never run
        ```
        ```text
        never run
        ```
        """,
    )
    result, report = run(lab)
    assert not result.ok
    assert [r.status for r in result.results] == ["FAIL", "skip"]
    assert "--- expected (90-synthetic.md:2)" in report and "+++ actual" in report
    assert "-potato" in report and "+tomato" in report and " carrots" in report
    result, report = run(lab, keep_going=True)
    assert [r.status for r in result.results] == ["FAIL", "ok"]


def test_missing_output_block_means_silence_and_exit_status_is_checked(tmp_path):
    result, report = run(write_lab(tmp_path, "```sh\necho surprise\n```\n```sh\nfalse\n```\n"), keep_going=True)
    assert [r.status for r in result.results] == ["FAIL", "FAIL"]
    assert "+surprise" in report
    assert "exit status 1, expected 0" in report


def test_step_needing_what_is_missing_is_skipped(tmp_path):
    result, report = run(write_lab(tmp_path, "```sh needs=no-such-thing\necho hi\n```\n```text\nhi\n```\n"))
    assert result.results[0].status == "skip"
    assert "unknown requirement 'no-such-thing'" in report


def test_lab_needing_what_is_missing_is_refused(tmp_path):
    lab = write_lab(tmp_path, "<!-- lab: needs=no-such-thing -->\n```sh\ntrue\n```\n")
    result, report = run(lab)
    assert not result.ok and result.error == "lab 90 needs no-such-thing: unknown requirement 'no-such-thing'"
    assert result.results == []


def test_a_hanging_step_times_out_and_fails(tmp_path):
    result, report = run(write_lab(tmp_path, "```sh\nsleep 30\n```\n"), timeout=0.5)
    assert not result.ok and "no end after" in report


def test_background_processes_are_killed(tmp_path):
    lab = write_lab(tmp_path, "```sh\nsleep 300 &\necho $! > ~/pid\ncp ~/pid " + str(tmp_path / "pid") + "\n```\n")
    result, report = run(lab)
    assert result.ok, report
    pid = int((tmp_path / "pid").read_text())
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@pytest.mark.mount
def test_mounts_are_unmounted_even_when_a_step_fails(tmp_path):
    lab = write_lab(
        tmp_path,
        """\
        ```sh
        mkdir a mnt && echo x > a/x
        layerfs mount -o lowerdir=./a mnt
        cat mnt/x
        ```
        ```text
        not x
        ```
        """,
    )
    result, report = run(lab, keep=True)
    try:
        assert not result.ok
        assert "+x" in report
        assert mounts_under(result.home) == []
    finally:
        import shutil

        shutil.rmtree(os.path.dirname(result.home), ignore_errors=True)


# -- the command -----------------------------------------------------------------------------
def test_cli_list_and_errors(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "02  Lab 02: The union mount" in out
    assert main(["run", "99"]) == 2
    assert capsys.readouterr().err == "python -m tutorials: there is no lab 99 (see 'python -m tutorials list')\n"
    assert main(["check", "02", "/no/such/folder"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_python_dash_m_tutorials_works_from_any_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tutorials", "list"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "The union mount" in proc.stdout


def test_readme_lists_every_lab_with_its_time_and_needs():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "tutorials" / "README.md").read_text(encoding="utf-8")
    for lab in all_labs():
        row = next((line for line in readme.splitlines() if f"]({lab.name}.md)" in line), None)
        assert row is not None, f"{lab.name} is not in tutorials/README.md"
        assert f"{lab.minutes} min" in row
        if "root" in lab.needs:
            assert "root" in row
        if "fuse" in lab.needs:
            assert "FUSE" in row
    makefile = (Path(__file__).parents[2] / "Makefile").read_text(encoding="utf-8")
    assert "make setup" in readme and "\nsetup:" in makefile


# -- root and user forms, worked answers, checks -----------------------------------------------
FORMS = """\
    # Lab 90: two kinds of user
    ```sh as=root
    echo I am root
    ```
    ```text
    I am root
    ```
    ```sh as=user
    echo I am a user
    ```
    ```text
    I am a user
    ```
    ```sh
    echo same for all; echo "$(id -u)" > ~/uid
    ```
    ```text
    same for all
    ```
    ```sh
    [ "$(id -u)" = 0 ] && echo 'trusted.overlay.opaque' || echo 'user.overlay.opaque'
    ```
    ```text
    trusted.overlay.opaque
    ```
    Without root the mark is in the user namespace:
    ```text as=user
    user.overlay.opaque
    ```
    """


def test_parse_root_and_user_forms():
    lab = parse_lab(textwrap.dedent(FORMS), "90", "t")
    assert [s.who for s in lab.steps] == ["root", "user", None, None]
    last = lab.steps[3]
    assert last.expected_for(root=True) == "trusted.overlay.opaque\n"
    assert last.expected_for(root=False) == "user.overlay.opaque\n"
    assert lab.steps[2].expected_for(root=False) == "same for all\n"
    assert [s.runs_for(True) for s in lab.steps] == [True, False, True, True]
    assert [s.runs_for(False) for s in lab.steps] == [False, True, True, True]


def test_the_runner_takes_the_form_for_its_user(tmp_path):
    """The page says both; the runner runs the step and compares the output of its own kind of
    user (root here, uid 1000 in test_as_user.py's runs of the real labs)."""
    as_root = os.geteuid() == 0
    result, report = run(write_lab(tmp_path, FORMS))
    assert result.ok, report
    assert [r.step.who for r in result.results] == ["root" if as_root else "user", None, None]


def test_parse_rejects_a_user_output_without_the_main_one():
    with pytest.raises(LabError, match="must follow the step's own output block"):
        parse_lab("```sh\necho x\n```\n```text as=user\nx\n```\n", "90", "t")
    with pytest.raises(LabError, match="unknown output block option 'as=root'"):
        parse_lab("```sh\necho x\n```\n```text\nx\n```\n```text as=root\nx\n```\n", "90", "t")
    with pytest.raises(LabError, match="unknown step option 'as=nobody'"):
        parse_lab("```sh as=nobody\nls\n```\n", "90", "t")


ANSWERS = """\
    # Lab 90: answers

    ## Exercise 1

    Prose.

    ```sh
    mkdir -p ~/layerlab/lab90-ex1 && echo one > ~/layerlab/lab90-ex1/file
    cat ~/layerlab/lab90-ex1/file
    ```
    ```text
    one
    ```

    ## Exercise 2

    ```sh
    mkdir -p ~/layerlab/lab90-ex2
    ```
    """


def test_answers_are_parsed_by_exercise_with_the_files_line_numbers(tmp_path):
    lab = write_lab(tmp_path, "# Lab 90: x\n```sh\nmkdir -p ~/layerlab/lab90\n```\n")
    (tmp_path / "answers").mkdir()
    (tmp_path / "answers" / "90.md").write_text(textwrap.dedent(ANSWERS))
    exercises = lab.exercises()
    assert [e.number for e in exercises] == [1, 2]
    assert exercises[0].text.startswith("## Exercise 1\n\nProse.")
    step = exercises[0].steps[0]
    assert (step.source, step.line, step.expected) == ("answers/90.md", 7, "one\n")
    with pytest.raises(LabError, match="exercise 1 is answered twice"):
        from tutorials.lab import parse_answers

        parse_answers("## Exercise 1\n## Exercise 1\n")


def test_the_runner_checks_the_lab_each_answer_and_the_lab_again(tmp_path, monkeypatch):
    """Steps, the lab's check, each answer and its exercise check, then the lab's check again:
    an exercise that breaks the lab's check fails the run."""
    import tutorials.runner as runner

    lab = write_lab(tmp_path, "# Lab 90: x\n```sh\nmkdir -p ~/layerlab/lab90 && touch ~/layerlab/lab90/done\n```\n")
    (tmp_path / "answers").mkdir()
    (tmp_path / "answers" / "90.md").write_text(textwrap.dedent(ANSWERS))
    calls = []

    def fake_check(number, folder, exercise=None):
        calls.append((os.path.basename(folder), exercise))
        if exercise == 1:
            return [] if os.path.exists(os.path.join(folder, "file")) else ["no file"]
        if exercise:
            return []
        return [] if os.listdir(folder) == ["done"] else ["the lab's folder changed"]

    monkeypatch.setattr(runner, "run_check", fake_check)
    monkeypatch.setattr(runner, "has_check", lambda number: True)
    result, report = run(lab)
    assert result.ok, report
    assert calls == [("lab90", None), ("lab90-ex1", 1), ("lab90-ex2", 2), ("lab90", None)]
    assert [c.label for c in result.checks] == ["lab 90", "exercise 1", "exercise 2", "lab 90 after the exercises"]
    assert "ok    check  exercise 1" in report

    # An answer that writes into the lab's own folder breaks the lab's check: the run fails.
    (tmp_path / "answers" / "90.md").write_text(
        textwrap.dedent(ANSWERS).replace("mkdir -p ~/layerlab/lab90-ex2", "touch ~/layerlab/lab90/extra")
    )
    calls.clear()
    result, report = run(lab)
    assert not result.ok
    assert result.checks[-1].status == "FAIL" and result.checks[-1].problems == ["the lab's folder changed"]


def test_cli_answer_and_exercise_check(capsys, tmp_path):
    assert main(["answer", "02", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Exercise 2") and "```sh" in out and "## Exercise 3" not in out
    assert main(["answer", "02", "9"]) == 2
    assert "lab 02 has no exercise 9 (its exercises: 1, 2, 3)" in capsys.readouterr().err
    assert main(["check", "02", str(tmp_path), "--exercise", "9"]) == 2
    assert "lab 02 has no exercise 9 (its exercises: 1, 2, 3)" in capsys.readouterr().err
    assert main(["check", "02", str(tmp_path), "--exercise", "1"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("lab 02, exercise 1: ")


def test_every_exercise_on_a_page_has_a_worked_answer_and_a_check():
    """The exercises a page numbers under `## Exercises` are the ones `answer` and `check
    --exercise` know: a lab that adds an exercise (or a whole lab) without them fails here."""
    import re
    from pathlib import Path

    from tutorials.checks import exercise_numbers

    for lab in all_labs():
        text = Path(lab.path).read_text(encoding="utf-8")
        section = text.split("\n## Exercises\n", 1)[1].split("\n## ", 1)[0] if "\n## Exercises\n" in text else ""
        asked = [int(n) for n in re.findall(r"^(\d+)\. ", section, re.M)]
        assert asked, f"{lab.name} has no numbered exercises"
        assert [e.number for e in lab.exercises()] == asked, f"{lab.name}: answers/{lab.number}.md"
        assert exercise_numbers(lab.number) == asked, f"{lab.name}: tutorials/checks/lab{lab.number}.py"
        assert f"python -m tutorials answer {lab.number} K" in section, lab.name


def test_list_says_what_this_user_can_do(capsys, monkeypatch):
    import tutorials.__main__ as cli

    monkeypatch.setattr(
        cli, "missing", lambda need: "user namespaces are not allowed here" if need == "kernel-overlay" else None
    )
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("You are ")
    assert "yes  FUSE mounts" in out
    assert (
        "no   the kernel's OverlayFS (as root; else in a user namespace: unshare -Urm, userxattr): user namespaces"
        in out
    )
    lab02 = next(line for line in out.splitlines() if line.startswith("02  "))
    assert lab02.endswith("ready; skips the steps that need kernel OverlayFS")


# -- pictures ----------------------------------------------------------------------------------
def test_every_picture_a_page_shows_is_there_and_is_svg():
    import re
    import xml.etree.ElementTree as ET
    from pathlib import Path

    shown = []
    for lab in all_labs():
        text = Path(lab.path).read_text(encoding="utf-8")
        for alt, target in re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", text):
            path = Path(lab.path).parent / target
            assert path.is_file(), f"{lab.name} shows {target}, which is missing (python -m tutorials.pictures)"
            assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"
            assert alt.strip(), f"{lab.name}: {target} needs a text for readers who cannot see it"
            shown.append(lab.number)
    assert {"01", "05", "06", "07"} <= set(shown)


def test_ansi_to_svg_keeps_the_colours_and_the_text():
    import xml.etree.ElementTree as ET

    from tutorials.pictures import PALETTE, ansi_to_svg

    svg = ansi_to_svg("├── \x1b[1;33m[./top]\x1b[0m  \x1b[1;33ma\x1b[0m\nplain <&>\n", "title")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    lines = ["".join(t.itertext()) for t in root.iter(ns + "text")]
    assert lines == ["├── [./top]  a", "plain <&>"]
    coloured = [s for s in root.iter(ns + "tspan") if s.get("fill") == PALETTE["33"]]
    assert [s.text for s in coloured] == ["[./top]", "a"] and all(s.get("font-weight") == "bold" for s in coloured)

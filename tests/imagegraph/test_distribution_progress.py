"""Docker's progress display: plain lines on a pipe, redrawn lines on a terminal."""

from __future__ import annotations

import io

import pytest

from imagegraph.distribution.progress import ProgressWriter, go_duration, human_size, progress_string


@pytest.mark.parametrize(
    "n,text",
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1024, "1.024kB"),
        (32768, "32.77kB"),
        (3642247, "3.642MB"),
        (5_000_000, "5MB"),
        (1_234_567_890, "1.235GB"),
    ],
)
def test_human_size_like_go_units(n, text):
    assert human_size(n) == text


def test_go_duration():
    assert [go_duration(s) for s in (0, 5, 60, 125, 3723)] == ["0s", "5s", "1m0s", "2m5s", "1h2m3s"]


def test_progress_string_bar_and_counts():
    wide = progress_string(1_200_000, 5_000_000, 120)
    assert wide == "[" + "=" * 12 + ">" + " " * 38 + "]    1.2MB/5MB"
    assert progress_string(1_200_000, 5_000_000, 80) == "   1.2MB/5MB"  # no bar on a narrow terminal
    assert progress_string(0, 0, 120) == ""
    assert progress_string(6, 5, 80) == "      6B"  # current beyond total: total hidden
    assert progress_string(2_500_000, 5_000_000, 120, start=100.0, now=110.0).endswith(" 10s")


def pull_sequence(w: ProgressWriter) -> None:
    w.message("Pulling from library/alpine", "latest")
    w.update("aaaaaaaaaaaa", "Pulling fs layer")
    w.update("bbbbbbbbbbbb", "Already exists")
    w.progress("aaaaaaaaaaaa", "Downloading", 1_200_000, 5_000_000)
    w.update("aaaaaaaaaaaa", "Verifying Checksum")
    w.update("aaaaaaaaaaaa", "Download complete")
    w.progress("aaaaaaaaaaaa", "Extracting", 5_000_000, 5_000_000)
    w.update("aaaaaaaaaaaa", "Pull complete")
    w.message("Digest: sha256:" + "c" * 64)
    w.message("Status: Downloaded newer image for alpine:latest")


def test_pipe_output_is_plain_lines_without_byte_counts():
    out = io.StringIO()
    pull_sequence(ProgressWriter(out, tty=False))
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/alpine",
        "aaaaaaaaaaaa: Pulling fs layer",
        "bbbbbbbbbbbb: Already exists",
        "aaaaaaaaaaaa: Verifying Checksum",
        "aaaaaaaaaaaa: Download complete",
        "aaaaaaaaaaaa: Pull complete",
        "Digest: sha256:" + "c" * 64,
        "Status: Downloaded newer image for alpine:latest",
    ]


def render_terminal(text: str, rows: int = 20) -> list[str]:
    """A tiny terminal: applies \\n, \\r, ESC[nA, ESC[nB and ESC[2K to a screen of lines."""
    import re

    screen = [""] * rows
    row = col = 0
    i = 0
    while i < len(text):
        m = re.match(r"\x1b\[(\d*)([ABK])", text[i:])
        if m:
            n = int(m.group(1) or 1)
            if m.group(2) == "A":
                row -= n
            elif m.group(2) == "B":
                row += n
            else:
                screen[row] = ""
            i += m.end()
            continue
        ch = text[i]
        if ch == "\n":
            row, col = row + 1, 0
        elif ch == "\r":
            col = 0
        else:
            line = screen[row].ljust(col)
            screen[row] = line[:col] + ch + line[col + 1 :]
            col += 1
        i += 1
    return [line.rstrip() for line in screen if line.strip()]


def test_terminal_redraws_each_layer_in_place():
    out = io.StringIO()
    w = ProgressWriter(out, tty=True, width=120)
    w.message("Pulling from library/alpine", "latest")
    w.update("aaaaaaaaaaaa", "Pulling fs layer")
    w.update("bbbbbbbbbbbb", "Pulling fs layer")
    w.progress("aaaaaaaaaaaa", "Downloading", 1_200_000, 5_000_000)
    assert "\x1b[2A" in out.getvalue()  # went up two lines to reach the first layer
    assert render_terminal(out.getvalue()) == [
        "latest: Pulling from library/alpine",
        "aaaaaaaaaaaa: Downloading [" + "=" * 12 + ">" + " " * 38 + "]    1.2MB/5MB",
        "bbbbbbbbbbbb: Pulling fs layer",
    ]
    w.update("bbbbbbbbbbbb", "Already exists")
    w.update("aaaaaaaaaaaa", "Pull complete")
    w.message("Digest: sha256:" + "c" * 64)
    assert render_terminal(out.getvalue()) == [
        "latest: Pulling from library/alpine",
        "aaaaaaaaaaaa: Pull complete",
        "bbbbbbbbbbbb: Already exists",
        "Digest: sha256:" + "c" * 64,
    ]


def test_full_sequence_on_a_terminal_ends_like_the_pipe():
    out = io.StringIO()
    pull_sequence(ProgressWriter(out, tty=True, width=120))
    assert render_terminal(out.getvalue()) == [
        "latest: Pulling from library/alpine",
        "aaaaaaaaaaaa: Pull complete",
        "bbbbbbbbbbbb: Already exists",
        "Digest: sha256:" + "c" * 64,
        "Status: Downloaded newer image for alpine:latest",
    ]

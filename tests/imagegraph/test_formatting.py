"""Docker's human formats, against go-units' and docker/cli's own test vectors and goldens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from imagegraph import formatting as fm

MB, GB, TB, PB = 1000**2, 1000**3, 1000**4, 1000**5
KiB, MiB, GiB, TiB, PiB = 1024, 1024**2, 1024**3, 1024**4, 1024**5


# --- sizes (go-units size_test.go) -------------------------------------------------------------


@pytest.mark.parametrize(
    "n, expected",
    [
        (1000, "1kB"),
        (1024, "1.024kB"),
        (1000000, "1MB"),
        (1048576, "1.049MB"),
        (2 * MB, "2MB"),
        (3.42 * GB, "3.42GB"),
        (5.372 * TB, "5.372TB"),
        (2.22 * PB, "2.22PB"),
        (10000000000000 * PB, "1e+04YB"),
    ],
)
def test_human_size_precision_4_is_go_units_human_size(n, expected):
    assert fm.human_size(n, precision=4) == expected


@pytest.mark.parametrize(
    "n, expected",
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (5580, "5.58kB"),
        (1048576, "1.05MB"),
        (77.9 * MB, "77.9MB"),
        (72.7 * MB, "72.7MB"),
        (999_999, "1e+03kB"),  # Go's %g, too
        (1_234_567_890, "1.23GB"),
    ],
)
def test_human_size_is_dockers_precision_3(n, expected):
    assert fm.human_size(n) == expected


@pytest.mark.parametrize(
    "n, expected",
    [
        (1024, "1KiB"),
        (1024 * 1024, "1MiB"),
        (2 * MiB, "2MiB"),
        (3.42 * GiB, "3.42GiB"),
        (5.372 * TiB, "5.372TiB"),
        (2.22 * PiB, "2.22PiB"),
        (KiB**5 * PiB, "1.049e+06YiB"),
        (1.05 * MiB, "1.05MiB"),
        (0, "0B"),
        (1023, "1023B"),
    ],
)
def test_bytes_size(n, expected):
    assert fm.bytes_size(n) == expected


# --- durations (go-units duration_test.go) ----------------------------------------------------

S, MIN, H = 1, 60, 3600
DAY, WEEK, MONTH, YEAR = 24 * H, 7 * 24 * H, 30 * 24 * H, 365 * 24 * H


@pytest.mark.parametrize(
    "d, expected",
    [
        (0.45, "Less than a second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (46, "46 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (3 * MIN, "3 minutes"),
        (35 * MIN, "35 minutes"),
        (35 * MIN + 40, "35 minutes"),
        (45 * MIN, "45 minutes"),
        (45 * MIN + 40, "45 minutes"),
        (46 * MIN, "46 minutes"),
        (59 * MIN, "59 minutes"),
        (1 * H, "About an hour"),
        (1 * H + 29 * MIN, "About an hour"),
        (1 * H + 31 * MIN, "2 hours"),
        (1 * H + 59 * MIN, "2 hours"),
        (3 * H, "3 hours"),
        (3 * H + 29 * MIN, "3 hours"),
        (3 * H + 31 * MIN, "4 hours"),
        (3 * H + 59 * MIN, "4 hours"),
        (3 * H + 60 * MIN, "4 hours"),
        (24 * H, "24 hours"),
        (1 * DAY + 12 * H, "36 hours"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * H, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK, "4 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (1 * MONTH, "4 weeks"),
        (1 * MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (2 * MONTH + 2 * WEEK, "2 months"),
        (3 * MONTH, "3 months"),
        (3 * MONTH + 1 * WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (23 * MONTH, "23 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
        (-5, "Less than a second"),  # a clock running behind
    ],
)
def test_human_duration(d, expected):
    assert fm.human_duration(d) == expected


def test_ago_with_numbers_and_datetimes():
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert fm.ago(now - timedelta(hours=2), now) == "2 hours ago"
    assert fm.ago(now.timestamp() - 24 * H, now.timestamp()) == "24 hours ago"
    assert fm.ago(now, now) == "Less than a second ago"


def test_ago_is_na_for_unset_times():
    now = datetime(2024, 5, 1, tzinfo=UTC)
    assert fm.ago(0, now) == "N/A"
    assert fm.ago(datetime(2000, 1, 1, tzinfo=UTC), now) == "N/A"
    assert fm.ago(datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC), now) != "N/A"


def test_ago_refuses_naive_datetimes():
    with pytest.raises(ValueError):
        fm.ago(datetime(2024, 1, 1), datetime(2024, 1, 2))


def test_created_at_is_go_rfc3339():
    assert fm.created_at(1714564800) == "2024-05-01T12:00:00Z"
    assert fm.created_at(1714564800.9) == "2024-05-01T12:00:00Z"
    assert fm.created_at(1714564800, timezone(timedelta(hours=2))) == "2024-05-01T14:00:00+02:00"


# --- IDs and truncation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "s, expected",
    [
        ("sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d", "9c7a54a9a43c"),
        ("9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d", "9c7a54a9a43c"),
        ("<missing>", "<missing>"),
        ("abc", "abc"),
        ("sha256:abc", "abc"),
    ],
)
def test_short_id(s, expected):
    assert fm.short_id(s) == expected


@pytest.mark.parametrize(
    "s, width, expected",
    [  # docker/cli displayutils_test.go
        ("t🐳ststring", 0, ""),
        ("t🐳ststring", 1, "t"),
        ("t🐳ststring", 2, "t…"),
        ("t🐳ststring", 6, "t🐳st…"),
        ("t🐳ststring", 20, "t🐳ststring"),
        ("你好世界teststring", 0, ""),
        ("你好世界teststring", 1, "你"),
        ("你好世界teststring", 3, "你…"),
        ("你好世界teststring", 6, "你好…"),
        ("你好世界teststring", 20, "你好世界teststring"),
        ("teststring", 10, "teststring"),
        ("teststring", 9, "teststri…"),
    ],
)
def test_ellipsis(s, width, expected):
    assert fm.ellipsis(s, width) == expected


def test_truncate_cmd_like_docker_history():
    created_by = "/bin/sh -c set -xe \t\t&& echo '#!/bin/sh' > /usr/sbin/policy-rc.d"
    out = fm.truncate_cmd(created_by)
    assert out == "/bin/sh -c set -xe   && echo '#!/bin/sh' > /…"
    assert len(out) == 45
    assert fm.truncate_cmd('/bin/sh -c #(nop)  CMD ["/hello"]') == '/bin/sh -c #(nop)  CMD ["/hello"]'
    assert fm.truncate_cmd("a\tb", width=100) == "a b"


# --- tables (docker/cli goldens) -------------------------------------------------------------


def test_table_matches_docker_history_golden():
    # docker/cli cli/command/image/testdata/history-command-success.*.golden
    out = fm.table(
        [["123456789012", "Less than a second ago", "", "0B", "none"]],
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
    )
    assert out == (
        "IMAGE          CREATED                  CREATED BY   SIZE      COMMENT\n"
        "123456789012   Less than a second ago                0B        none"
    )


def test_table_matches_docker_images_example():
    # docker/cli cli/command/formatter/image_test.go
    out = fm.table(
        [["image", "tag1", "imageID1", "24 hours ago", "0B"], ["<none>", "<none>", "imageID3", "24 hours ago", "0B"]],
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
    )
    assert out == (
        "REPOSITORY   TAG       IMAGE ID   CREATED        SIZE\n"
        "image        tag1      imageID1   24 hours ago   0B\n"
        "<none>       <none>    imageID3   24 hours ago   0B"
    )


def test_table_keeps_cells_as_strings_and_spaces():
    out = fm.table([["1", " x ", "007"], ["22", "y", "3.50"]], ["A", "B", "C"])
    assert out.split("\n") == [
        "A         B         C",
        "1          x        007",
        "22        y         3.50",
    ]


def test_table_width_counts_runes_like_go_tabwriter():
    out = fm.table([["日本語", "x"]], ["A", "B"])
    assert out == "A         B\n日本語       x"


def test_table_newlines_cannot_break_rows():
    out = fm.table([["a\nb", "c"]], ["A", "B"])
    assert out == "A         B\na b       c"


def test_table_edge_shapes():
    assert fm.table([], ["IMAGE ID", "SIZE"]) == "IMAGE ID   SIZE"
    assert fm.table([["abc"], ["de"]], ["ID"]) == "ID\nabc\nde"
    assert fm.table([[None, "x"]], ["A", "B"]) == "A         B\n          x"
    with pytest.raises(ValueError):
        fm.table([["a"]], ["A", "B"])


def test_table_long_cells_widen_the_column_by_three():
    out = fm.table([["a" * 20, "b"]], ["NAME", "X"])
    first, second = out.split("\n")
    assert first == "NAME" + " " * 19 + "X"
    assert second == "a" * 20 + "   b"


# --- --format json ---------------------------------------------------------------------------


def test_to_json_is_the_cli_json_template():
    obj = {"Tag": "latest", "Repository": "ubuntu", "ID": "7e0aa2d69a15", "CreatedBy": "a && b > c"}
    line = fm.to_json(obj)
    assert line == ('{"CreatedBy":"a && b > c","ID":"7e0aa2d69a15","Repository":"ubuntu","Tag":"latest"}')
    assert "\n" not in line
    assert json.loads(line) == obj


def test_json_lines_one_object_per_line():
    out = fm.json_lines([{"b": 1, "a": "é"}, {"x": None}])
    assert out == '{"a":"é","b":1}\n{"x":null}\n'
    assert fm.json_lines([]) == ""

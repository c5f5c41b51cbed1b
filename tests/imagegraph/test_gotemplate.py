"""imagegraph's Go templates (`--format`, `inspect -f`) on their own; test_daemon_parity runs the
same templates through the real docker CLI and compares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegraph import formatting
from imagegraph.gotemplate import (
    MAX_NESTING,
    Format,
    TemplateError,
    fmt_v,
    go_float,
    inspect_line,
    parse,
    render_rows,
    tabwrite,
)

IMAGE = {
    "Id": "sha256:abc",
    "RepoTags": ["web:1", "web:latest"],
    "Size": 1234567,
    "Config": {"Env": ["A=1", "B=2"], "Labels": {"team": "blue", "a": "<b>"}, "Entrypoint": None},
    "RootFS": {"Type": "layers", "Layers": ["sha256:1", "sha256:2"]},
    "GraphDriver": {"Data": {"UpperDir": "/x/diff", "LowerDir": "/y/diff"}, "Name": "layerfs"},
}


def run(text: str, dot: object = IMAGE) -> str:
    return parse(text).execute(dot)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.GraphDriver.Data.UpperDir}}", "/x/diff"),
        ("{{.Size}} {{.Nope}}", "1234567 <no value>"),
        ("{{range .RepoTags}}[{{.}}]{{end}}", "[web:1][web:latest]"),
        ("{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}", "0=web:1 1=web:latest "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}", "a:<b>;team:blue;"),
        ("{{range .Missing}}x{{else}}none{{end}}", "none"),
        ("{{if .Config.Entrypoint}}e{{else if .Config.Env}}env{{else}}-{{end}}", "env"),
        ("{{with .RootFS}}{{.Type}} {{len .Layers}}{{end}}", "layers 2"),
        ('{{join .RepoTags ", "}} {{upper "x"}} {{lower "Y"}} {{title "a b"}}', "web:1, web:latest X y A B"),
        ('{{index .Config.Labels "team"}} {{(index .RootFS.Layers 1)}} {{$.Id}}', "blue sha256:2 sha256:abc"),
        ('{{printf "%s=%d|%5s|%-4s|%q" "n" .Size "r" "l" "q"}}', 'n=1234567|    r|l   |"q"'),
        ('{{len .RepoTags | printf "%d tags"}}', "2 tags"),
        ('{{split "a:b" ":"}} {{pad "x" 1 2}}| {{truncate "abcdef" 3}}', "[a b]  x  | abc"),
        ('{{if and .Size (not .Nope) (eq .RootFS.Type "x" "layers")}}yes{{end}}', "yes"),
        ('{{if or 0 "" .Config.Env}}{{gt 2 1}} {{le 2 1}}{{end}}', "true false"),
        ("{{$t := .RootFS.Type}}{{$t}}", "layers"),
        ("  {{- .RootFS.Type -}}  \n x", "layersx"),
        ("{{/* a comment */}}c", "c"),
        ("{{.RepoTags}} {{.Config.Labels}}", "[web:1 web:latest] map[a:<b> team:blue]"),
        ("{{json .Config.Labels}}", '{"a":"<b>","team":"blue"}'),
        ('{{"a}}b"}}', "a}}b"),
        ("{{`raw\\n`}}", "raw\\n"),
    ],
)
def test_templates(template: str, expected: str) -> None:
    assert run(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Id", "template: :1: unclosed action"),
        ("{{.Id}", "template: :1: bad character U+007D '}'"),
        ("{{nope .Id}}", 'template: :1: function "nope" not defined'),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{if .Id}}x", "template: :1: unexpected EOF"),
        ("{{if}}x{{end}}", "template: :1: missing value for if"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ('{{template "x"}}', "template: :1: {{template}} is not supported by imagegraph's --format"),
        ('{{.Id | "x"}}', "template: :1: non executable command in pipeline stage 2"),
        ("{{.Id | len | .}}", "template: :1: non executable command in pipeline stage 3"),
        ("{{.Id @}}", "template: :1: bad character U+0040 '@'"),
    ],
)
def test_parse_errors_are_one_line(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        parse(template)
    assert str(exc.value) == message


def test_execution_errors_name_the_place() -> None:
    with pytest.raises(TemplateError) as exc:
        run("{{.Nope.Deeper}}")
    assert (
        str(exc.value) == 'template: :1:7: executing "" at <.Nope.Deeper>: nil pointer evaluating interface {}.Deeper'
    )
    with pytest.raises(TemplateError, match="can't give argument to non-function"):
        run('{{"a" "b"}}')
    with pytest.raises(TemplateError, match="can't give argument to non-function .Size"):
        run("{{.Id | .Size}}")
    with pytest.raises(TemplateError, match="error calling index: index out of range: 5"):
        run("{{index .RepoTags 5}}")


def test_nesting_is_capped_not_recursed() -> None:
    deep = "{{if .Id}}" * (MAX_NESTING + 1) + "x" + "{{end}}" * (MAX_NESTING + 1)
    with pytest.raises(TemplateError, match="nest deeper"):
        parse(deep)
    parens = "{{" + "(" * (MAX_NESTING + 2) + ".Id" + ")" * (MAX_NESTING + 2) + "}}"
    with pytest.raises(TemplateError, match="nest deeper"):
        parse(parens)
    ok = "{{if .Id}}" * MAX_NESTING + "x" + "{{end}}" * MAX_NESTING
    assert run(ok) == "x"


def test_a_value_nested_5000_deep_prints_without_recursion() -> None:
    value: object = "core"
    for _ in range(5000):
        value = [value]
    assert fmt_v(value) == "[" * 5000 + "core" + "]" * 5000
    assert run("{{.}}", {"Deep": value}).startswith("map[Deep:[[[")


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.5, "0.5"), (1e-05, "1e-05"), (-2.5, "-2.5")],
)
def test_floats_print_as_go_prints_them(value: float, text: str) -> None:
    assert go_float(value) == text


def test_inspect_runs_typed_then_raw_as_docker_inspect() -> None:
    """`.Id` is not a Go field name (ID is): that template runs on the raw JSON (maps, sorted)."""
    assert inspect_line(parse("{{.RootFS}}"), IMAGE, "image") == "{layers [sha256:1 sha256:2]}"
    assert inspect_line(parse("{{.Id}} {{.RootFS}}"), IMAGE, "image") == (
        "sha256:abc map[Layers:[sha256:1 sha256:2] Type:layers]"
    )
    assert (
        inspect_line(parse("{{json .RootFS}}"), IMAGE, "image") == '{"Type":"layers","Layers":["sha256:1","sha256:2"]}'
    )
    # fields the JSON leaves out: a typed nil slice prints [] and marshals as null
    assert (
        inspect_line(parse("{{.Config.Cmd}} {{json .Config.Entrypoint}} {{.Parent}}|"), IMAGE, "image") == "[] null |"
    )
    assert inspect_line(parse('{{.Config.Labels.zz}} {{index .Config.Labels "zz"}}|'), IMAGE, "image") == "<no value> |"
    with pytest.raises(TemplateError) as exc:
        inspect_line(parse("{{.State.Running}}"), IMAGE, "image")
    assert str(exc.value) == 'template: :1:8: executing "" at <.State.Running>: map has no entry for key "State"'


ROWS = [{"ID": "abc", "Names": "web", "Image": "alpine"}, {"ID": "defghijk", "Names": "a-long-name", "Image": "x"}]
HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE"}
ROW_TYPE = "*formatter.ContainerContext"


def test_table_templates_get_docker_headers_and_tabwriter_columns() -> None:
    out = render_rows(Format.of(r"table {{.ID}}\t{{.Names}}\t{{.Image}}"), ROWS, HEADERS, ROW_TYPE)
    assert out == (
        "CONTAINER ID   NAMES         IMAGE\n"
        "abc            web           alpine\n"
        "defghijk       a-long-name   x\n"
    )  # fmt: skip
    assert render_rows(Format.of("{{.Names}}: {{.Image}}"), ROWS, HEADERS, ROW_TYPE) == "web: alpine\na-long-name: x\n"


def test_a_row_lacks_what_its_type_lacks() -> None:
    with pytest.raises(TemplateError) as exc:
        render_rows(Format.of("{{.Nope}}"), ROWS, HEADERS, ROW_TYPE, ("p: ", "x: "))
    assert str(exc.value) == (
        'x: template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type *formatter.ContainerContext'
    )
    with pytest.raises(TemplateError, match='^p: template: :1: function "nope" not defined$'):
        render_rows(Format.of("{{nope}}"), ROWS, HEADERS, ROW_TYPE, ("p: ", "x: "))


def test_a_rows_json_escapes_html_and_sorts_keys() -> None:
    out = render_rows(Format.of("{{json .}}"), [{"Tag": "<none>", "ID": "1"}], {}, "*formatter.imageContext")
    assert out == '{"ID":"1","Tag":"\\u003cnone\\u003e"}\n'


def test_format_values() -> None:
    assert Format.of("json").json and Format.of("").default and Format.of("table").default
    assert Format.of(r"table {{.ID}}\t{{.Names}}") == Format(True, False, "{{.ID}}\t{{.Names}}")
    assert Format.of("{{.ID}}") == Format(False, False, "{{.ID}}")


def test_tabwriter_columns_are_runs_of_lines() -> None:
    """A line with fewer cells ends a column's run: the next run is measured on its own."""
    text = "a\tbb\tc\nlonger-cell\tx\ty\nbreak\nz\tw\n"
    assert tabwrite(text) == (
        "a".ljust(14) + "bb".ljust(10) + "c\n" + "longer-cell".ljust(14) + "x".ljust(10) + "y\nbreak\n"
        + "z".ljust(10) + "w\n"
    )  # fmt: skip


cells = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=14)


@given(
    st.integers(min_value=2, max_value=5).flatmap(
        lambda n: st.lists(st.lists(cells, min_size=n, max_size=n), min_size=1, max_size=6)
    )
)
def test_tabwriter_matches_the_default_tables(rows: list[list[str]]) -> None:
    """The tables `imagegraph` prints without --format, and the same rows through tabwrite."""
    head, *body = rows
    expected = formatting.table(body, head)
    assert tabwrite("\n".join("\t".join(r) for r in rows)) == expected


def test_a_rows_method_takes_arguments() -> None:
    """docker/cli's ContainerContext.Label: `{{.Label "team"}}`; a field is not a method."""
    from imagegraph.gotemplate import Row

    row = Row({"Names": "web"}, ROW_TYPE, {"Label": {"team": "blue"}.get})
    assert parse('{{.Label "team"}}|{{"team" | .Label}}').execute(row) == "blue|blue"
    with pytest.raises(TemplateError, match="can't give argument to non-function .Names"):
        parse('{{.Names "x"}}').execute(row)

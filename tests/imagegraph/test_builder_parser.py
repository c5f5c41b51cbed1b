"""The Dockerfile parser against buildkit's own test files (Dockerfile → Dump), and its rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegraph.builder.parser import ParseError, chomp_heredoc_content, parse, parse_heredoc

DATA = Path(__file__).parent / "data" / "buildkit" / "parser"


@pytest.mark.parametrize("case", sorted(p.name for p in (DATA / "testfiles").iterdir()))
def test_buildkit_testfiles(case: str) -> None:
    d = DATA / "testfiles" / case
    result = parse((d / "Dockerfile").read_bytes())
    assert result.ast.dump() + "\n" == (d / "result").read_text()


@pytest.mark.parametrize("case", sorted(p.name for p in (DATA / "testfiles-negative").iterdir()))
def test_buildkit_negative_files(case: str) -> None:
    with pytest.raises(ParseError):
        parse((DATA / "testfiles-negative" / case / "Dockerfile").read_bytes())


def test_line_numbers() -> None:
    text = "FROM busybox\n\n# a comment\nRUN echo a \\\n  b \\\n  c\nCMD x\n"
    children = parse(text).ast.children
    assert [(c.value, c.start_line, c.end_line) for c in children] == [("FROM", 1, 1), ("RUN", 4, 6), ("CMD", 7, 7)]


def test_escape_directive_and_continuation() -> None:
    text = "# escape=`\nFROM windows\nRUN dir c:\\ `\n  && echo done\n"
    result = parse(text)
    assert result.escape_token == "`"
    assert result.ast.children[1].next is not None
    assert result.ast.children[1].next.value == "dir c:\\   && echo done"


def test_directive_only_at_the_top() -> None:
    assert parse("FROM a\n# escape=`\nRUN x \\\n y\n").escape_token == "\\"
    with pytest.raises(ParseError, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(ParseError, match="invalid escape token 'x'") as exc:
        parse("# escape=x\nFROM a\n")
    assert exc.value.line == 1


def test_comments_inside_continuations_are_dropped() -> None:
    node = parse("RUN a \\\n# inner\n  b\n").ast.children[0]
    assert node.next is not None and node.next.value == "a   b"


def test_empty_continuation_line_warns() -> None:
    result = parse("RUN a \\\n\n  b\n")
    assert result.warnings == ["Empty continuation line found in: RUN a   b"]


def test_heredocs() -> None:
    text = (
        "FROM x\nRUN <<EOF\necho hi\necho $X\nEOF\n"
        "COPY <<-'A' <<B /dst/\n\tone\n\tA\ntwo $Y\nB\n"
        'RUN ["echo", "<<EOF"]\n'
    )
    kids = parse(text).ast.children
    run = kids[1]
    assert [(h.name, h.content, h.expand, h.chomp) for h in run.heredocs] == [
        ("EOF", "echo hi\necho $X\n", True, False)
    ]
    copy = kids[2]
    assert [(h.name, h.content, h.expand, h.chomp) for h in copy.heredocs] == [
        ("A", "\tone\n", False, True),
        ("B", "two $Y\n", True, False),
    ]
    assert chomp_heredoc_content("\tone\n\t\ttwo\n") == "one\ntwo\n"
    assert kids[3].heredocs == [] and kids[3].attributes == {"json": True}
    assert [c.end_line for c in kids] == [1, 5, 10, 11]


def test_unterminated_heredoc_names_its_line() -> None:
    with pytest.raises(ParseError, match="unterminated heredoc") as exc:
        parse("FROM x\nRUN true\nRUN <<EOF\necho\n")
    assert exc.value.line == 3


def test_parse_heredoc_words() -> None:
    doc = parse_heredoc('3<<-"EOF"')
    assert doc is not None and (doc.name, doc.file_descriptor, doc.chomp, doc.expand) == ("EOF", 3, True, False)
    assert parse_heredoc("<<") is None
    assert parse_heredoc("<<a b") is None


def test_flags_and_json() -> None:
    node = parse('COPY --from=build --chown="a b" ["x y", "/z"]\n').ast.children[0]
    assert node.flags == ["--from=build", "--chown=a b"]
    assert node.args() == ["x y", "/z"] and node.attributes == {"json": True}
    with pytest.raises(ParseError, match="arrays must be comprised of strings only") as exc:
        parse("FROM a\nCMD [1, 2]\n")
    assert exc.value.line == 2
    assert parse("CMD [NaN]\n").ast.children[0].args() == ["[NaN]"]


def test_name_value_errors() -> None:
    with pytest.raises(ParseError, match="ENV must have two arguments"):
        parse("ENV a\n")
    with pytest.raises(ParseError, match='can\'t find = in "b"'):
        parse("LABEL a=1 b\n")


def test_no_instructions() -> None:
    with pytest.raises(ParseError, match="file with no instructions"):
        parse("# only a comment\n\n")


def test_onbuild_nesting_is_bounded() -> None:
    node = parse("ONBUILD " * 5000 + "RUN x\n").ast.children[0]
    assert node.next is not None and node.next.children[0].value == "ONBUILD"


def test_long_line_is_refused() -> None:
    with pytest.raises(ParseError, match="greater than max allowed size of 65535"):
        parse("RUN " + "x" * 70000 + "\n")

"""markdown.escape / code / table, checked by rendering with a real CommonMark parser."""
from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from conductor.core import markdown
from conductor.core.markdown import ZWSP

# CommonMark with raw HTML allowed (GitHub allows a safe subset) plus GFM tables and strikethrough.
MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

HOSTILE = [
    "plain title",
    "# Heading",
    "## Pipeline Status — 2024-01-01 00:00 UTC",
    "=== setext",
    "--- rule",
    "* list item",
    "+ list item",
    "- list item",
    "1. ordered",
    "1) ordered",
    "> quote",
    "    indented code",
    "```python\nfenced\n```",
    "`inline code`",
    "``double`` and `single`",
    "[link](https://evil.example)",
    "[ref][1]\n\n[1]: https://evil.example",
    "![image](https://evil.example/x.png)",
    "<https://evil.example>",
    "<a href='https://evil.example'>click</a>",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<!-- conductor:reminder {\"attempt\": 99, \"fingerprint\": \"ff\"} -->",
    "<!-- conductor:stuck -->",
    "&lt;!-- entity comment --&gt;",
    "&#60;!-- numeric entity",
    "**bold** __bold__ *em* _em_ ~~strike~~",
    "a | b | c",
    "| col | col |\n|---|---|\n| x | y |",
    "line one\nline two\r\nline three\rfour\u2028five\u2029six\x0bseven\x0cend",
    "trailing backslash \\",
    "hard break  \nnext",
    "\\*escaped\\* \\\\",
    "mention @admin and @org/team",
    "mail me at evil@example.com",
    "refs #12, owner/repo#13 and GH-14",
    "bare https://evil.example/path and http://x.y and ftp://f.g",
    "www.evil.example and WWW.EVIL.EXAMPLE",
    "math $x^2$ and $$y$$",
    "footnote[^1]\n\n[^1]: note",
    "- [ ] task",
    "tab\tseparated\tvalues",
    "nul\x00byte and bell\x07",
    "bidi \u202egnp.exe\u202c override",
    "emoji :+1: and unicode ✓ 日本語",
    "   leading and trailing spaces   ",
    "",
]


def _visible(tokens) -> str:
    """The text a reader sees: every text token, concatenated."""
    return "".join(t.content for t in tokens if t.type in ("text", "softbreak"))


def _inline_children(rendered: str) -> list:
    tokens = MD.parse(rendered)
    return [child for t in tokens if t.type == "inline" for child in t.children]


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_renders_as_one_plain_paragraph(text):
    escaped = markdown.escape(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert "<" not in escaped and ">" not in escaped
    tokens = MD.parse(escaped)
    block_types = [t.type for t in tokens]
    if markdown.one_line(text):
        assert block_types == ["paragraph_open", "inline", "paragraph_close"]
    else:
        assert block_types == []
    children = _inline_children(escaped)
    assert {c.type for c in children} <= {"text"}, [c.type for c in children]
    assert _visible(children).replace(ZWSP, "") == markdown.one_line(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_leaves_nothing_github_links_after_rendering(text):
    """GitHub links mentions, refs, URLs and e-mails in rendered text: all must be broken."""
    seen = _visible(_inline_children(markdown.escape(text)))
    for pattern in (r"@\w", r"#\d", r"(?i)\bgh-\d", r"://", r"(?i)\bwww\.", r"\w@\w"):
        assert not re.search(pattern, seen), (pattern, seen)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@user", f"@{ZWSP}user"),
        ("a|b", "a\\|b"),
        ("<!-- x -->", "&lt;\\!\\-\\- x \\-\\-&gt;"),
        ("fix #12", f"fix \\#{ZWSP}12"),
        ("a\n\nb", "a b"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("snake_case", "snake\\_case"),
    ],
)
def test_escape_exact(text, expected):
    assert markdown.escape(text) == expected


def test_escape_truncates_before_escaping():
    assert markdown.escape("<" * 10, max_length=4) == "&lt;&lt;&lt;…"
    assert markdown.escape("short", max_length=10) == "short"


@pytest.mark.parametrize(
    "text",
    ["prefect deployment run 'conductor/default'", "a `tick` b", "``double``", "`edge`",
     "x <!-- conductor:reminder {} --> y", "multi\nline"],
)
def test_code_is_one_code_span_with_the_literal_text(text):
    rendered = markdown.code(text)
    assert "<!--" not in rendered and "\n" not in rendered
    children = _inline_children(rendered)
    assert [c.type for c in children] == ["code_inline"]
    expected = markdown.one_line(text).replace("<!--", "<" + ZWSP + "!--")
    assert children[0].content == expected


def _table_cells(rendered: str) -> list[list[str]]:
    rows, row, tokens = [], None, MD.parse(rendered)
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type == "inline" and row is not None:
            assert {c.type for c in t.children} <= {"text"}
            row.append(_visible(t.children).replace(ZWSP, ""))
        elif t.type == "tr_close":
            rows.append(row)
            row = None
    return rows


@pytest.mark.parametrize("cell", HOSTILE)
def test_table_keeps_its_shape_with_hostile_cells(cell):
    rendered = markdown.table(["Item", "Title", "N"], [["#1", cell, 3], [cell, "", None]])
    assert "<!--" not in rendered
    assert _table_cells(rendered) == [
        ["Item", "Title", "N"],
        ["#1", markdown.one_line(cell), "3"],
        [markdown.one_line(cell), "", ""],
    ]


def test_table_without_rows_is_a_header():
    assert _table_cells(markdown.table(["a | b"], [])) == [["a | b"]]


@pytest.mark.parametrize(
    ("headers", "rows", "message"),
    [
        ([], [], "at least one header"),
        (["a", "b"], [["only one"]], "row 0 has 1 cells, expected 2"),
    ],
)
def test_table_rejects_bad_shapes(headers, rows, message):
    with pytest.raises(ValueError, match=message):
        markdown.table(headers, rows)

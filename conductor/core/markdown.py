"""Safe markdown for untrusted text (titles, labels, agent output) in what we write to GitHub.

`escape` turns any string into one inert line: no HTML (so `<!--` can never appear and
nobody can forge the conductor's hidden markers), no links, images, headings, lists,
emphasis, code, math or table-breaking pipes. GitHub also links text *after* markdown
rendering (@mentions, #refs, GH-refs, bare URLs, e-mails), where backslash escapes are
already gone, so those are broken with a zero-width space instead.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

ZWSP = "\u200b"

# Line breaks, other control characters and bidi overrides: all become plain spaces.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
# Rendered by GitHub after markdown: break them so they stay text.
_REFERENCES = (
    (re.compile(r"@"), "@" + ZWSP),  # @user, @org/team, e-mail addresses
    (re.compile(r"#"), "#" + ZWSP),  # #12 issue references
    (re.compile(r"(?i)\bgh-(?=\d)"), lambda m: m.group(0) + ZWSP),  # GH-12
    (re.compile(r"://"), ":" + ZWSP + "//"),  # http://, https://, ftp://
    (re.compile(r"(?i)\bwww\."), lambda m: m.group(0)[:3] + ZWSP + "."),  # www.example.com
)
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# ASCII punctuation that can start or delimit a markdown construct (CommonMark allows
# escaping any ASCII punctuation; `$` is GitHub math).
_MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]()#+-.!|~=$")


def one_line(text: str) -> str:
    """Collapse `text` to a single line: control characters and runs of spaces -> one space."""
    return _SPACES.sub(" ", _BREAKS.sub(" ", text)).strip()


def escape(text: str, *, max_length: int | None = None) -> str:
    """Render untrusted `text` as one line of literal markdown text.

    `max_length` truncates the input (with "…") before escaping, so an escape sequence
    is never cut in half.
    """
    line = one_line(text)
    if max_length is not None and len(line) > max_length:
        line = line[: max(max_length - 1, 0)].rstrip() + "…"
    for pattern, replacement in _REFERENCES:
        line = pattern.sub(replacement, line)
    return "".join(
        _HTML.get(ch) or ("\\" + ch if ch in _MARKDOWN_PUNCTUATION else ch) for ch in line
    )


def code(text: str) -> str:
    """An inline code span holding `text` verbatim (one line; never contains `<!--`).

    For our own literals (commands, label names); do not use it inside a `table` cell.
    """
    line = one_line(text).replace("<!--", "<" + ZWSP + "!--")
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    if line.startswith("`") or line.endswith("`"):
        line = f" {line} "
    return f"{fence}{line}{fence}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; every header and cell is escaped."""
    if not headers:
        raise ValueError("table needs at least one header")
    lines = [_row(headers), "| " + " | ".join("---" for _ in headers) + " |"]
    for index, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(
                f"table row {index} has {len(row)} cells, expected {len(headers)}"
            )
        lines.append(_row(row))
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(escape("" if cell is None else str(cell)) for cell in cells) + " |"

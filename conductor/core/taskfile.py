"""The `.agent-task` file: KEY=value lines, read by the conductor and by coordinators.

`render_task_file` writes every task file; values are untrusted data, so it escapes
backslashes, every control or line-breaking character and every Unicode bidi control
(`\\n`, `\\r`, `\\t`, `\\\\`, `\\xHH`, `\\uHHHH`): a value can never start a new line,
hence never inject a key, and an agent reads a title as it is, not as a bidi override shows it.
`parse_key_values` reverses it exactly. Lines are split on `\\n` only (a trailing `\\r`
is dropped, so CRLF files read fine); `#` comment lines and blank lines are skipped.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conductor.core import constants
from conductor.core.errors import TaskFileError

__all__ = [
    "TaskFile",
    "TaskFileError",
    "parse_key_values",
    "parse_task_file",
    "read_task_file",
    "render_task_file",
]

KEY_RE = re.compile(r"[A-Z][A-Z0-9_]*")
REPO_SLUG_RE = r"^(?:[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100})?$"

_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SHORT_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


# What `escape_value` escapes: the backslash, every control or line-breaking character
# (Unicode categories Cc, Cs, Zl, Zp) and every bidi control; one `str.translate` table, so a
# long value costs one pass in C, not a Python step per character.
_ESCAPED = [*range(0x20), *range(0x7f, 0xa0), *range(0xd800, 0xe000), 0x2028, 0x2029,
            *map(ord, constants.BIDI_CONTROLS), ord("\\")]
_ESCAPES = {code: _SHORT_ESCAPES.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
            for code in _ESCAPED}
_HEX = re.compile(r"[0-9a-fA-F]+")


def escape_value(value: str) -> str:
    """One line of text that `unescape_value` turns back into `value`."""
    return value.translate(_ESCAPES)


def unescape_value(text: str) -> str:
    """Reverse `escape_value`; an unknown or truncated escape is a ValueError. Jumps from
    backslash to backslash: linear in `text`."""
    out: list[str] = []
    i = 0
    while (j := text.find("\\", i)) != -1:
        out.append(text[i:j])
        code = text[j + 1:j + 2]
        if code in _SHORT_UNESCAPES:
            out.append(_SHORT_UNESCAPES[code])
            i = j + 2
            continue
        width = {"x": 2, "u": 4}.get(code)
        digits = text[j + 2:j + 2 + width] if width else ""
        if not width or not _HEX.fullmatch(digits) or len(digits) != width:
            raise ValueError(f"invalid escape {text[j:j + 2]!r}; write \\\\ for a backslash")
        out.append(chr(int(digits, 16)))
        i = j + 2 + width
    out.append(text[i:])
    return "".join(out)


def render_task_file(values: Mapping[str, str | int]) -> str:
    """KEY=value lines, one per item, in the mapping's order. Keys must be UPPER_CASE."""
    lines = []
    for key, value in values.items():
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise ValueError(f"invalid task-file key {key!r}; keys match [A-Z][A-Z0-9_]*")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"task-file value for {key} must be str or int, not {type(value).__name__}")
        lines.append(f"{key}={escape_value(str(value))}\n")
    return "".join(lines)


def _entries(text: str) -> list[tuple[int, str, str]]:
    """(line number, key, value) of every KEY=value line; TaskFileError on a bad line."""
    entries: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise TaskFileError(f"task file line {n}: no '=' in {stripped[:40]!r}; write KEY=value")
        if not KEY_RE.fullmatch(key):
            raise TaskFileError(
                f"task file line {n}: invalid key {key[:40]!r}; keys are UPPER_CASE letters, digits, _"
            )
        if key in seen:
            raise TaskFileError(
                f"task file line {n}: duplicate key {key} (first on line {seen[key]}); keep one"
            )
        try:
            entries.append((n, key, unescape_value(value)))
        except ValueError as exc:
            raise TaskFileError(f"task file line {n}: {key}: {exc}") from None
        seen[key] = n
    return entries


def parse_key_values(text: str) -> dict[str, str]:
    """The KEY=value pairs of a task file, unescaped: the exact inverse of `render_task_file`."""
    return {key: value for _, key, value in _entries(text)}


class TaskFile(BaseModel):
    """The conductor's own task file (seed: "Setup"). Field names are the keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    GH_REPO: str = Field(
        "", pattern=REPO_SLUG_RE,
        description="OWNER/NAME; empty means the repository is given another way (--repo).")
    PHASE_FILTER: str = Field("", description="Dispatch only this phase; empty for all.")
    MAX_ISSUES_PER_DISPATCH: int = Field(constants.MAX_PER_DISPATCH, ge=1, description="Cap on issues dispatched per pass.")
    MAX_PRS_PER_DISPATCH: int = Field(constants.MAX_PER_DISPATCH, ge=1, description="Cap on PRs dispatched per pass.")
    ATTEMPT_N: int = Field(0, ge=0, description="Passes without progress; > 3 means stuck.")
    REQUIRED_OUTPUT: str = Field("pipeline_status_report", description="What the run must produce.")
    ON_BLOCK: str = Field("escalate", description="What to do when blocked.")
    WORKFLOW: str = Field(
        constants.WORKFLOW_CONDUCTOR, pattern="^conductor$", description="Always `conductor`.")

    def render(self) -> str:
        """This task file as text (round-trips through `parse_task_file`)."""
        return render_task_file(self.model_dump())


_KNOWN_KEYS = ", ".join(TaskFile.model_fields)
# pydantic error type -> (problem, fix); WORKFLOW and GH_REPO patterns get their own words.
_WORDING = {
    "extra_forbidden": ("is not a known key", "remove it; known keys: " + _KNOWN_KEYS),
    "int_parsing": ("is not a whole number", "write digits only, e.g. {key}=12"),
    "greater_than_equal": ("is too small", "use a number >= {ge}"),
}
_PATTERN_WORDING = {
    "GH_REPO": ("is not an OWNER/NAME repository", "write e.g. GH_REPO=octo-org/repo"),
    "WORKFLOW": ("is not the conductor's workflow", "set WORKFLOW=conductor (this file is for another agent)"),
}


def parse_task_file(text: str) -> TaskFile:
    """A validated `TaskFile`; any mistake is a one-line `TaskFileError` with its line number."""
    entries = _entries(text)
    line_of = {key: n for n, key, _ in entries}
    try:
        return TaskFile.model_validate({key: value for _, key, value in entries})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "string_pattern_mismatch" and key in _PATTERN_WORDING:
            problem, fix = _PATTERN_WORDING[key]
        else:
            problem, fix = _WORDING.get(err["type"], (str(err["msg"]).lower(), "fix the value"))
        fix = fix.format(key=key, **(err.get("ctx") or {}))
        shown = f"{key}={str(err['input'])[:60]!r}"
        raise TaskFileError(f"task file line {line_of.get(key, '?')}: {shown} {problem}; {fix}") from None


def read_task_file(path: Path) -> TaskFile:
    """Read and parse `path`; a missing or unreadable file is a `TaskFileError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskFileError(
            f"task file {path} does not exist; create it (see the README) or pass its path"
        ) from None
    except UnicodeDecodeError as exc:
        raise TaskFileError(f"task file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise TaskFileError(f"cannot read task file {path}: {exc.strerror}; check the path and permissions") from None
    return parse_task_file(text)

"""The agent-output door: one redactor for every secret the pass knows. Pure.

Everything that comes from an agent (its output streams, every field of its report,
claimed URLs, messages, usage) passes a `Redactor` before it goes anywhere: logs,
artifacts, the JSON report, GitHub, the ETag cache. Each secret is found however it is
written: as is, inside a URL (`https://x-access-token:TOKEN@host`), percent-encoded,
JSON- or backslash-escaped (`\\u0067`, `\\/`, `\\_`), or any mix of those character by
character, and as git's HTTP basic credential (`x-access-token:TOKEN` in base64). Every
form becomes `***`. A secret of several lines is also found line by line.

A `Redactor` holds the secrets: never log it, never pass it as a Prefect parameter.
"""
from __future__ import annotations

import base64
import re
import string
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

REDACTED = "***"
_MIN_LINE_PART = 4  # a line of a multi-line secret shorter than this is not looked for alone
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PUNCTUATION = frozenset(string.punctuation)
M = TypeVar("M", bound=BaseModel)


def basic_credential(token: str) -> str:
    """`x-access-token:TOKEN` in base64, as git sends it (redacted like the token itself)."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def _hex(value: int, width: int) -> str:
    """`value` as hex digits matched in either case: 0x6a -> 6[aA]."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}x}")


def _character(ch: str) -> tuple[str, int]:
    """The regex for one character in any of its written forms, and the longest form's length."""
    forms = [re.escape(ch), "".join("%" + _hex(b, 2) for b in ch.encode())]
    longest = 3 * len(ch.encode())
    if ord(ch) < 0x10000:
        forms.append(r"\\u" + _hex(ord(ch), 4))
        longest = max(longest, 6)
    if ch in _PUNCTUATION:
        forms.append(r"\\" + re.escape(ch))  # JSON's \/, markdown's \_
    if ch in _JSON_SHORT:
        forms.append(re.escape(_JSON_SHORT[ch]))
    if ch == " ":
        forms.append(r"\+")  # form encoding
    return "(?:" + "|".join(forms) + ")", longest


def _pattern(secret: str) -> tuple[str, int]:
    parts = [_character(ch) for ch in secret]
    return "".join(p for p, _ in parts), sum(n for _, n in parts)


def _first_characters(secrets: list[str], literals: list[str]) -> str:
    """A lookahead for how any form can begin, so most positions of the output are passed
    over at once; none when a secret begins with a character that is not ASCII (its bytes
    would not fit a class)."""
    first = {s[0] for s in secrets} | {"%", "\\"}
    if " " in first:
        first.add("+")
    if not all(ch.isascii() for ch in first):
        return ""
    starts = ["[" + "".join(re.escape(ch) for ch in sorted(first)) + "]"]
    starts += sorted({re.escape(c[:4]) for c in literals})
    return "(?=" + "|".join(starts) + ")"


class Redactor:
    """Replaces every known secret, in every form, with `***` (longest secret first)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        wanted: set[str] = set()
        for secret in secrets:
            if secret:
                wanted.add(secret)
                wanted.update(line for line in secret.splitlines() if len(line) >= _MIN_LINE_PART)
        ordered = sorted(wanted, key=len, reverse=True)
        patterns = [_pattern(s) for s in ordered]
        literals = sorted({basic_credential(s) for s in ordered}, key=len, reverse=True)
        alternatives = [re.escape(c) for c in literals] + [p for p, _ in patterns]
        self.longest = max([len(c) for c in literals] + [n for _, n in patterns], default=0)
        source = _first_characters(ordered, literals) + "(?:" + "|".join(alternatives) + ")" if ordered else ""
        self._text = re.compile(source) if source else None
        self._bytes = re.compile(source.encode("utf-8")) if source else None

    def __repr__(self) -> str:  # never the secrets themselves
        return f"Redactor({REDACTED})"

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, text: str) -> str:
        return self._text.sub(REDACTED, text) if self._text else text

    def bytes(self, data: bytes) -> bytes:
        return self._bytes.sub(REDACTED.encode(), data) if self._bytes else data

    def data(self, value: Any) -> Any:
        """`value` with every string in it redacted: dict keys and values, list items, nested."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value

    def model(self, model: M) -> M:
        """A copy of `model` with every string field redacted (validated again)."""
        if not self:
            return model
        return type(model).model_validate(self.data(model.model_dump()))

    def safe_cut(self, buffer: bytes, at: int) -> int:
        """A cut <= `at` that splits no secret in `buffer`: before any found across it, and
        before the last `longest` bytes, where one may begin whose rest is still on its way."""
        cut = min(at, len(buffer) - self.longest + 1)
        if self._bytes is not None:
            for found in self._bytes.finditer(buffer, 0, at + self.longest):
                if found.start() >= cut:
                    break
                if found.end() > cut:
                    cut = found.start()
                    break
        return cut if cut > 0 else at  # a secret longer than a whole piece cannot be held back

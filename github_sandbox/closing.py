"""GitHub's closing keywords: which issues a merged pull request closes. Pure."""
from __future__ import annotations

import re

_KEYWORD = re.compile(
    r"(?<![\w/-])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)(?:\s*:\s*|\s+)"
    r"(?:(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#|https?://[^/\s]+/(?P<url_repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/issues/|#)"
    r"(?P<num>\d+)(?![\w-])",
    re.IGNORECASE,
)


def closing_references(text: str | None, full_name: str) -> list[int]:
    """Issue numbers of `full_name` that `text` closes, in order, without repeats.

    A keyword (close, closes, closed, fix, fixes, fixed, resolve, resolves, resolved; any
    case; optional colon) then `#N`, `OWNER/REPO#N` or an issue URL `http(s)://HOST/OWNER/REPO/issues/N`;
    references to other repositories are ignored.
    """
    found: list[int] = []
    for match in _KEYWORD.finditer(text or ""):
        repo = match.group("repo") or match.group("url_repo")
        if repo is not None and repo.lower() != full_name.lower():
            continue
        number = int(match.group("num"))
        if number > 0 and number not in found:
            found.append(number)
    return found

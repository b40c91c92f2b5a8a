"""Which issues a pull request closes: GitHub's closing keywords, parsed from its body.

Recognised: `close|closes|closed|fix|fixes|fixed|resolve|resolves|resolved` (any case)
as a whole word, then an optional colon, whitespace, then `#N`, `OWNER/REPO#N` or
an issue URL `https://HOST/OWNER/REPO/issues/N` (github.com, an Enterprise host, the sandbox)
naming *this* repository (compared without case).
Every issue needs its own keyword, as on GitHub: in "Fixes #1, #2" only #1 is linked.
"""
from __future__ import annotations

import re

_CLOSING_REF = re.compile(
    r"(?<![\w-])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)"
    r"(?:\s*:\s*|\s+)"
    r"(?:https?://[\w.:-]+/(?P<url_owner>[\w.-]+)/(?P<url_name>[\w.-]+)/issues/"
    r"|(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)#|#)"
    r"(?P<number>[0-9]+)(?![\w-])",
    re.IGNORECASE,
)


def linked_issues(body: str, repo: str) -> list[int]:
    """Issue numbers of `repo` that `body` closes, in order of appearance, without repeats."""
    found: list[int] = []
    for m in _CLOSING_REF.finditer(body or ""):
        owner, name = (m["url_owner"], m["url_name"]) if m["url_owner"] else (m["owner"], m["name"])
        if owner is not None and f"{owner}/{name}".lower() != repo.lower():
            continue
        number = int(m["number"])
        if number > 0 and number not in found:
            found.append(number)
    return found

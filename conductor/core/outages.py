"""GitHub outages are not attempts: whether a failed leaf failed while GitHub was failing. Pure.

A leaf that did not prove its item is charged an attempt (`conductor/core/attempts.py`) only
when the failure may be the item's own. It failed while GitHub was failing when a line of its
agent's output or report shows GitHub answering 5xx or 429 (a line naming GitHub or the API's
host, with such a status or its phrase), or when the leaf's own GitHub calls met such answers
(the gateway counts them, retries included). Such an item is "GitHub unavailable": retried
next pass, with no attempt comment.

Agent output is untrusted and may be long: each line is scanned once, with fixed substrings
and one anchored pattern without nested quantifiers (linear time).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from conductor.core import markdown

LINE_LIMIT = 2000  # characters of one output line looked at
EVIDENCE_LIMIT = 200  # characters of the line quoted as evidence
_PHRASES = ("bad gateway", "service unavailable", "gateway timeout", "gateway time-out", "too many requests",
            "internal server error", "secondary rate limit", "rate limit exceeded")
_STATUS = re.compile(r"(?:http(?:/[0-9.]{1,3})?|status(?: code)?|error|answered|returned)[ :]{1,2}(?:429|50[0-4])(?![0-9])"
                     r"|[ :](?:429|50[0-4]) [{(\"']")


def github_markers(api_url: str) -> tuple[str, ...]:
    """What names GitHub in a line: the word itself and the API's host (GitHub Enterprise
    Server, the sandbox)."""
    host = (urlsplit(api_url).netloc or "").lower()
    return ("github",) + ((host,) if host else ())


def outage_line(lines: Iterable[str], api_url: str) -> str | None:
    """The first line that shows GitHub answering 5xx/429, shortened, or None."""
    markers = github_markers(api_url)
    for line in lines:
        text = line[:LINE_LIMIT].lower()
        if any(m in text for m in markers) and (any(p in text for p in _PHRASES) or _STATUS.search(text)):
            return markdown.one_line(line[:LINE_LIMIT])[:EVIDENCE_LIMIT]
    return None


def outage(lines: Iterable[str], api_url: str, faults_met: int = 0) -> str:
    """Why a failed leaf counts as "GitHub unavailable" (its agent's line first, else the
    faults its own GitHub calls met), or "" when nothing says GitHub was failing."""
    line = outage_line(lines, api_url)
    if line:
        return f"the agent met GitHub failing: {line}"
    if faults_met:
        return f"the leaf's own GitHub calls met {faults_met} 5xx/429 answer{'s' if faults_met > 1 else ''}"
    return ""

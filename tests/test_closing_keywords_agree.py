"""The conductor's closing-keyword parser and the sandbox's own (kept apart on purpose: the
sandbox emulates GitHub and must not share the conductor's bugs) agree on every case."""
from __future__ import annotations

import pytest

from conductor.core.linking import linked_issues
from github_sandbox.closing import closing_references

REPO = "octo/maestro"

CASES = [
    *[f"{kw} #7" for kw in ("close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves",
                             "resolved", "CLOSES", "Fixes", "rEsOlVeD")],
    "Fixes: #7", "fixes:#7", "Fixes :#7", "Fixes\t\n#7", "Fixes #1, fixes #2", "Fixes #1, #2",
    "Fixes #2\nCloses #1\nresolves #2", "fixes octo/maestro#9", "fixes OCTO/Maestro#9",
    "fixes https://github.com/octo/maestro/issues/9", "Closes http://127.0.0.1:8765/octo/maestro/issues/12",
    "resolves https://ghe.example.com/OCTO/maestro/issues/3.", "fixes https://github.com/other/maestro/issues/9",
    "(fixes #4).", "fixes #4!", "fixes #4?", "fixes #4;", "**Fixes #5**", "- [x] closes #6",
    "fixes other/repo#9", "fixes other/repo#9 and fixes #10", "see #3", "#3", "prefixes #3",
    "unfixed #3", "a-fixes #3", "fixesthing #3", "fixes#3", "fixes #3abc", "fixes #3-4", "fixes #0",
    "fixes issue 3", "", "fixes #12345678", "FIXES #1 FIXES #1",
]


@pytest.mark.parametrize("body", CASES)
def test_both_parsers_agree(body: str) -> None:
    assert linked_issues(body, REPO) == closing_references(body, REPO)


@pytest.mark.parametrize(("body", "expected"), [
    ("Closes http://127.0.0.1:8765/octo/maestro/issues/12", [12]),
    ("resolves https://ghe.example.com/OCTO/maestro/issues/3.", [3]),
    ("fixes https://github.com/other/maestro/issues/9", []),
    ("a-fixes #3", []),
    ("fixes #3-4", []),
])
def test_issue_urls_of_any_host_name_this_repository(body: str, expected: list[int]) -> None:
    assert linked_issues(body, REPO) == expected

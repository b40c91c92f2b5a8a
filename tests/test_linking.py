"""Closing keywords: exactly the issues GitHub would close, of this repository only."""
from __future__ import annotations

import pytest

from conductor.core.linking import linked_issues

REPO = "octo/maestro"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # every keyword, any case
        *[(f"{kw} #7", [7]) for kw in (
            "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved",
            "CLOSES", "Fixes", "rEsOlVeD",
        )],
        ("Fixes: #7", [7]),
        ("fixes:#7", [7]),
        ("Fixes\t\n#7", [7]),
        ("Fixes #1, fixes #2", [1, 2]),
        ("Fixes #1, #2", [1]),  # GitHub needs a keyword per issue
        ("Fixes #2\nCloses #1\nresolves #2", [2, 1]),  # ordered, de-duplicated
        ("fixes octo/maestro#9", [9]),
        ("fixes OCTO/Maestro#9", [9]),  # repo compared without case
        ("fixes https://github.com/octo/maestro/issues/9", [9]),
        ("(fixes #4).", [4]),
        # not links
        ("fixes other/repo#9", []),
        ("fixes https://github.com/other/maestro/issues/9", []),
        ("see #3", []),
        ("#3", []),
        ("prefixes #3", []),
        ("unfixed #3", []),
        ("fixesthing #3", []),
        ("fixes#3", []),
        ("fixes #3abc", []),
        ("fixes #0", []),
        ("fixes issue 3", []),
        ("", []),
        ("fixes other/repo#9 and fixes #10", [10]),
    ],
)
def test_linked_issues(body: str, expected: list[int]) -> None:
    assert linked_issues(body, REPO) == expected

"""Leaves: one agent per issue and per pull request (the canonical coordinators' fan-out).

Pure rules any kind's leaf uses: what it reads of its item, the prompt it follows and the
values its `.agent-task` is built from. Which keys a kind's task file has, and which prompt
it ships, is that kind's entry in `conductor.core.workflows`. The coordinator
(`conductor.actions.coordinator`) does the I/O; `flows.coordinators` runs one Prefect task per leaf.
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
from typing import Literal

from pydantic import BaseModel, Field


# "File ownership: a.py, b/c.py" (or "Files: ...") in an issue body.
_OWNERSHIP = re.compile(r"^\s*(?:[-*]\s*)?\**(?:file[ _-]?ownership|files)\**\s*:\s*(.+)$",
                        re.IGNORECASE | re.MULTILINE)


class IssueItem(BaseModel):
    """What an issue leaf needs to know about its issue (read from GitHub)."""

    number: int
    title: str = ""
    url: str = ""
    labels: list[str] = Field(default_factory=list)
    body: str = ""


class PullItem(BaseModel):
    """What a review leaf needs to know about its pull request (read from GitHub)."""

    number: int
    title: str = ""
    url: str = ""
    head_ref: str = ""
    closes: list[int] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)


class Prompt(BaseModel):
    """The prompt one leaf follows: where it came from and its git blob sha."""

    path: str = Field(description="Repository path, or `conductor/prompts/<name>` when shipped.")
    sha: str = Field(description="git blob sha of the text (as `git hash-object` prints it).")
    source: Literal["repository", "shipped"]
    text: str = Field(repr=False)


def blob_sha(data: bytes) -> str:
    """The sha git gives `data` as a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class PromptError(ValueError):
    """A configured prompt cannot be used; the message names the fix."""


def prompt_of(data: bytes, path: str, source: Literal["repository", "shipped"]) -> Prompt:
    """The prompt whose text is `data`, found at `path`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PromptError(f"prompt {path} is not UTF-8 text; fix the file") from None
    return Prompt(path=path, sha=blob_sha(data), source=source, text=text)


def numbers_or_none(numbers: list[int] | None) -> str:
    return ",".join(str(n) for n in sorted(set(numbers or []))) or "none"


def file_ownership(body: str) -> str:
    """The files an issue says it owns ("File ownership: a.py, b.py"), else `tbd`."""
    match = _OWNERSHIP.search(body or "")
    if not match:
        return "tbd"
    files = [f.strip(" `'\".;") for f in re.split(r"[,\s]+", match.group(1)) if f.strip(" `'\".;")]
    return ",".join(files) or "tbd"


def has_migration(files: list[str], patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether a changed path falls under a migration glob (`*` and `**` match across `/`)."""
    return any(fnmatch.fnmatchcase(f, p) or (p.endswith("/**") and f.startswith(p[:-2]))
               for f in files for p in patterns)


def review_order(items: list[int], merge_after: dict[int, int]) -> list[int]:
    """`items` with every PR after the one it must merge after (when both are here); a cycle
    or a missing target leaves the order as given for the PRs involved."""
    here = set(items)
    placed: list[int] = []
    seen: set[int] = set()

    def place(n: int, trail: frozenset[int]) -> None:
        if n in seen:
            return
        first = merge_after.get(n)
        if first in here and first not in trail:
            place(first, trail | {n})
        if n not in seen:
            seen.add(n)
            placed.append(n)

    for n in items:
        place(n, frozenset())
    return placed

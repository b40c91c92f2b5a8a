"""Leaves: one agent per issue and per pull request (the canonical coordinators' fan-out).

Pure rules: what a leaf is called, what its `.agent-task` says, which prompt it follows.
The coordinator (`conductor.actions.coordinator`) does the I/O; `flows.coordinators` runs one
Prefect task per leaf.

The leaf task files are the canonical leaf prompts' keys (issue #12):

* issue-to-pr: WORKFLOW=issue-to-pr, GH_REPO, ISSUE_NUMBER, ISSUE_TITLE, ISSUE_URL,
  PHASE_LABEL, BATCH_LABEL, ALL_ISSUE_LABELS, DEPENDS_ON (numbers or `none`),
  FILE_OWNERSHIP (`tbd` unless the issue says), ATTEMPT_N, REQUIRED_OUTPUT=pr_url,
  ON_BLOCK=stop, BASE, WORKTREE, CLOSES_ISSUES, REPORT_PATH, PROMPT;
* pr-review: WORKFLOW=pr-review, GH_REPO, PR_NUMBER, PR_TITLE, PR_URL, PR_BRANCH,
  CLOSES_ISSUES, FILES_CHANGED, MERGE_AFTER (number or `none`), HAS_MIGRATION,
  ATTEMPT_N, REQUIRED_OUTPUT=grade,merge_status,pr_url, ON_BLOCK=stop, BASE,
  REPORT_PATH, PROMPT.

Every value is untrusted data; `conductor.core.taskfile.render_task_file` escapes it, so no
title, label or path can start a line of its own.
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from conductor.core.config import DEFAULT_MIGRATION_PATHS, PromptPaths
from conductor.core.constants import PROMPT_ISSUE_TO_PR, PROMPT_PR_REVIEW
from conductor.core.models import DispatchKind

LEAF_WORKFLOW: dict[DispatchKind, str] = {"issue_to_pr": "issue-to-pr", "pr_review": "pr-review"}
SHIPPED_PROMPTS: dict[DispatchKind, str] = {"issue_to_pr": "issue_to_pr.md", "pr_review": "pr_review.md"}
DEFAULT_REPO_PROMPTS: dict[DispatchKind, str] = {"issue_to_pr": PROMPT_ISSUE_TO_PR,
                                                 "pr_review": PROMPT_PR_REVIEW}

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


def leaf_name(kind: DispatchKind, number: int, pass_id: str) -> str:
    """`issue-<N>-<pass>` / `pr-<N>-<pass>`: the leaf's worktree directory."""
    return f"{'issue' if kind == 'issue_to_pr' else 'pr'}-{number}-{pass_id}"


def blob_sha(data: bytes) -> str:
    """The sha git gives `data` as a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def shipped_prompt(kind: DispatchKind) -> Prompt:
    name = SHIPPED_PROMPTS[kind]
    data = resources.files("conductor").joinpath("prompts", name).read_bytes()
    return Prompt(path=f"conductor/prompts/{name}", sha=blob_sha(data), source="shipped",
                  text=data.decode("utf-8"))


class PromptError(ValueError):
    """A configured prompt cannot be used; the message names the fix."""


def choose_prompt(kind: DispatchKind, paths: PromptPaths,
                  read_at_tip: Callable[[str], bytes | None]) -> Prompt:
    """The repository's prompt (configured, else the seed's default path) when the integration
    tip has it, else the shipped one. `read_at_tip(path)` returns the file's bytes or None.
    A configured path the tip lacks is an error (a typo must not silently fall back)."""
    configured = paths.configured(kind)
    path = configured or DEFAULT_REPO_PROMPTS[kind]
    data = read_at_tip(path)
    if data is None:
        if configured:
            raise PromptError(f"prompts.{kind} = {configured!r} is not on the integration branch; "
                              "commit that file or remove the setting")
        return shipped_prompt(kind)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PromptError(f"prompt {path} is not UTF-8 text; fix the file") from None
    return Prompt(path=path, sha=blob_sha(data), source="repository", text=text)


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


def issue_task_values(*, repo: str, issue: IssueItem, phase: str, batch: str | None,
                      depends_on: list[int] | None, attempt: int, base: str, worktree: Path,
                      report_path: Path, prompt_path: Path) -> dict[str, str | int]:
    """The issue-to-pr leaf's `.agent-task`, key by key, in the canonical order."""
    return {
        "WORKFLOW": LEAF_WORKFLOW["issue_to_pr"],
        "GH_REPO": repo,
        "ISSUE_NUMBER": issue.number,
        "ISSUE_TITLE": issue.title,
        "ISSUE_URL": issue.url,
        "PHASE_LABEL": phase,
        "BATCH_LABEL": batch or "none",
        "ALL_ISSUE_LABELS": ",".join(issue.labels),
        "DEPENDS_ON": numbers_or_none(depends_on),
        "FILE_OWNERSHIP": file_ownership(issue.body),
        "ATTEMPT_N": attempt,
        "REQUIRED_OUTPUT": "pr_url",
        "ON_BLOCK": "stop",
        "BASE": base,
        "WORKTREE": str(worktree),
        "CLOSES_ISSUES": issue.number,
        "REPORT_PATH": str(report_path),
        "PROMPT": str(prompt_path),
    }


def review_task_values(*, repo: str, pull: PullItem, merge_after: int | None,
                       migration_paths: list[str] | tuple[str, ...], attempt: int, base: str,
                       report_path: Path, prompt_path: Path) -> dict[str, str | int]:
    """The pr-review leaf's `.agent-task`, key by key, in the canonical order."""
    return {
        "WORKFLOW": LEAF_WORKFLOW["pr_review"],
        "GH_REPO": repo,
        "PR_NUMBER": pull.number,
        "PR_TITLE": pull.title,
        "PR_URL": pull.url,
        "PR_BRANCH": pull.head_ref,
        "CLOSES_ISSUES": numbers_or_none(pull.closes),
        "FILES_CHANGED": ",".join(pull.files),
        "MERGE_AFTER": merge_after if merge_after else "none",
        "HAS_MIGRATION": "true" if has_migration(pull.files, migration_paths) else "false",
        "ATTEMPT_N": attempt,
        "REQUIRED_OUTPUT": "grade,merge_status,pr_url",
        "ON_BLOCK": "stop",
        "BASE": base,
        "REPORT_PATH": str(report_path),
        "PROMPT": str(prompt_path),
    }


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

"""Leaves: one agent per issue and per pull request (the canonical coordinators' fan-out).

Pure rules any kind's leaf uses: what it reads of its item, the prompt it follows and the
values its `.agent-task` is built from. Which keys a kind's task file has, and which prompt
it ships, is that kind's entry in `conductor.core.workflows`. The coordinator
(`conductor.actions.coordinator`) does the I/O; `flows.coordinators` runs one Prefect task per leaf.
"""
from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field


# "File ownership: a.py, b/c.py" (or "Files: ...") in an issue body: the words before the colon.
_OWNERSHIP_KEYS = frozenset({"files", "file ownership", "file_ownership", "file-ownership", "fileownership"})
_QUOTES = "`'\""


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


class Ownership(BaseModel):
    """The paths an issue says it owns, exactly as it names them, and those refused."""

    paths: list[str] = Field(default_factory=list, description="Relative paths inside the repository.")
    refused: list[str] = Field(
        default_factory=list, description="Absolute paths and paths with a `..` part: never passed on.")


def _ownership_text(line: str) -> str | None:
    """What follows `Files:` / `File ownership:` on `line` (a list bullet and bold allowed
    around the words), else None."""
    head, colon, rest = line.partition(":")
    if not colon:
        return None
    words = head.strip()
    if words[:1] in ("-", "*") and words[1:2] != "*":  # a list bullet
        words = words[1:].lstrip()
    if words.strip("*").lower() not in _OWNERSHIP_KEYS:
        return None
    rest = rest.strip()
    return rest[2:].lstrip() if rest.startswith("**") else rest  # "**Files:** a.py"


def _path_word(word: str) -> str:
    """A path as the issue names it: without quotes or backticks around it and without the
    full stop or semicolon that ends its sentence (a leading dot is part of the path)."""
    if len(word) > 1 and word[-1] in ".;:" and word[-2] != ".":
        word = word[:-1]
    return word.strip(_QUOTES)


def _leaves_repository(path: str) -> bool:
    """Absolute (`/x`, `\\x`, `C:x`) or with a `..` part."""
    drive = len(path) > 1 and path[1] == ":" and path[0].isascii() and path[0].isalpha()
    return drive or path.startswith(("/", "\\")) or ".." in path.replace("\\", "/").split("/")


def _lines_with_colons(text: str):
    """(line, end of line) of every line of `text` that holds a colon, in order. Jumps from
    colon to colon (`str.find`), so each character is looked at a bounded number of times:
    linear in `text`, however many blank lines it has."""
    start = 0
    while (colon := text.find(":", start)) != -1:
        begin = text.rfind("\n", start, colon) + 1
        end = text.find("\n", colon)
        end = len(text) if end == -1 else end
        yield text[begin:end], end
        start = end + 1


def _list_below(text: str, start: int) -> list[str]:
    """The words of the list items (`- x`, `* x`) on the lines from `start` on, until the
    first line that is not one."""
    words: list[str] = []
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end == -1 else end
        item = text[start:end].strip()
        if item[:2] not in ("- ", "* "):
            break
        words += item[2:].replace(",", " ").split()
        start = end + 1
    return words


def ownership(body: str | None) -> Ownership:
    """The files an issue says it owns: the first `File ownership:` / `Files:` line (any case,
    `file_ownership`, `**Files**:`, a list bullet before it), words split on commas and spaces;
    when that line names nothing, the list items right below it. Paths are kept exactly as
    written; absolute ones and ones with a `..` part are refused. No pattern, no backtracking:
    linear in the body."""
    text = body or ""
    for line, end in _lines_with_colons(text):
        rest = _ownership_text(line)
        if rest is None:
            continue
        words = rest.replace(",", " ").split() or _list_below(text, end + 1)
        out = Ownership()
        for path in dict.fromkeys(filter(None, map(_path_word, words))):
            (out.refused if _leaves_repository(path) else out.paths).append(path)
        return out
    return Ownership()


def file_ownership(body: str | None) -> str:
    """FILE_OWNERSHIP: the paths an issue owns (`ownership`), comma-separated, else `tbd`."""
    return ",".join(ownership(body).paths) or "tbd"


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


class LeafOwner(BaseModel):
    """Who made a leaf's worktree on a worker, recorded in it (its private git directory) in
    the same hold of the clone's lock as the add: the leaf's flow run, and its process."""

    run_id: str = Field(description="The leaf's flow run (Prefect API).")
    host: str = Field(description="The machine its process runs on (its host name).")
    pid: int
    started: str = Field(description="When that process started, as the kernel counts it: a reused pid has another.")


def leaf_orphaned(owner: LeafOwner | None, host: str, started: Callable[[int], str | None],
                  run_ended: Callable[[str], bool]) -> bool:
    """Whether a worker's leaf worktree is orphaned, from facts the worker has, never its age:
    nobody recorded making it (its maker died inside the clone's lock, between the add and the
    record), its process is dead on this machine (`started(pid)`: the start of the live process
    of that pid, None if none), or its leaf run is final or gone (`run_ended(run_id)`, the
    Prefect API; asked only when the process lives or is on another machine)."""
    if owner is None:
        return True
    if owner.host == host and started(owner.pid) != owner.started:
        return True
    return run_ended(owner.run_id)

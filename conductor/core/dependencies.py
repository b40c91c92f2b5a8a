"""Dependencies between items and the order PRs merge in. Pure: text and numbers in, numbers out.

Text forms, read from issue and PR bodies (any case, an optional colon after the keyword,
several references after one keyword separated by commas, `&`, `and` or spaces, and as
many keyword phrases as the body likes):

- an issue waits for: `Depends on #N`, `Blocked by #N`, `Requires #N`;
- a PR merges after: `Merge after #N`, `Depends on PR #N` (and the issue forms, when #N
  is an open PR).

A reference is `#N`, `OWNER/REPO#N` or a full URL `https://HOST/OWNER/REPO/issues/N`
(or `/pull/N`; any host, so GitHub Enterprise Server works too). References naming
another repository are returned apart, to be reported: the conductor never follows them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

__all__ = [
    "References",
    "find_cycles",
    "issue_dependencies",
    "merge_after_references",
]

_REF = (
    r"(?:https?://[^\s/]+/[\w.-]+/[\w.-]+/(?:issues|pull)/[0-9]+"
    r"|(?:[\w.-]+/[\w.-]+)?#[0-9]+)"
)
_REF_PARTS = re.compile(
    r"https?://[^\s/]+/(?P<uowner>[\w.-]+)/(?P<uname>[\w.-]+)/(?:issues|pull)/(?P<unumber>[0-9]+)"
    r"|(?:(?P<owner>[\w.-]+)/(?P<name>[\w.-]+))?#(?P<number>[0-9]+)"
)
_KIND = r"(?:(?:PRs?|pull\s+requests?|issues?)\s+)?"
_SEP = r"(?:\s*[,&]\s*|\s+and\s+|\s+)"


def _phrase(keywords: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![\w-])(?:{keywords})(?:\s*:\s*|\s+){_KIND}(?P<refs>{_REF}(?:{_SEP}{_REF})*)(?![\w/#-])",
        re.IGNORECASE,
    )


_ISSUE_PHRASE = _phrase(r"depends\s+on|blocked\s+by|requires")
_MERGE_PHRASE = _phrase(r"merge\s+after|depends\s+on|blocked\s+by|requires")


class References(BaseModel):
    """What a body names: numbers in this repository, and `OWNER/REPO#N` elsewhere."""

    numbers: list[int] = Field(default_factory=list)
    foreign: list[str] = Field(default_factory=list)


def _references(pattern: re.Pattern[str], body: str | None, repo: str) -> References:
    numbers: list[int] = []
    foreign: list[str] = []
    for phrase in pattern.finditer(body or ""):
        for ref in _REF_PARTS.finditer(phrase["refs"]):
            owner = ref["uowner"] or ref["owner"]
            name = ref["uname"] or ref["name"]
            number = int(ref["unumber"] or ref["number"])
            if number <= 0:
                continue
            if owner is not None and f"{owner}/{name}".lower() != repo.lower():
                shown = f"{owner}/{name}#{number}"
                if shown not in foreign:
                    foreign.append(shown)
            elif number not in numbers:
                numbers.append(number)
    return References(numbers=numbers, foreign=foreign)


def issue_dependencies(body: str | None, repo: str) -> References:
    """What an issue says it waits for (`Depends on`, `Blocked by`, `Requires`), in order."""
    return _references(_ISSUE_PHRASE, body, repo)


def merge_after_references(body: str | None, repo: str) -> References:
    """What a PR says it merges after (`Merge after`, `Depends on PR`, and the issue forms)."""
    return _references(_MERGE_PHRASE, body, repo)


def find_cycles(graph: Mapping[int, Iterable[int]]) -> list[list[int]]:
    """Every dependency cycle of `graph` (node -> the nodes it waits for), as the sorted
    members of each strongly connected component that has one, sorted. Edges to nodes
    that are not keys are ignored; a node waiting for itself is a cycle of one.
    Iterative (Tarjan), so a long chain never hits the recursion limit."""
    edges = {n: [d for d in deps if d in graph] for n, deps in graph.items()}
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    cycles: list[list[int]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            deps = edges[node]
            if i < len(deps):
                work.append((node, i + 1))
                dep = deps[i]
                if dep not in index:
                    work.append((dep, 0))
                elif dep in on_stack:
                    low[node] = min(low[node], index[dep])
                continue
            if low[node] == index[node]:
                members = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    members.append(top)
                    if top == node:
                        break
                if len(members) > 1 or node in edges[node]:
                    cycles.append(sorted(members))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(cycles)


class ChainedPR(BaseModel):
    """One PR the pass will review, for `merge_chains`."""

    number: int
    group: int = Field(description="Index of its dispatch group in dispatch order.")
    files: list[str] = Field(default_factory=list)
    after: list[int] = Field(default_factory=list, description="PRs its body says it merges after.")


class Chains(BaseModel):
    """The merge order of one pass."""

    merge_after: dict[int, int] = Field(default_factory=dict, description="PR -> the PR it waits for.")
    waiting: dict[int, int] = Field(
        default_factory=dict,
        description="PR -> an open PR it must merge after that is not reviewed beside it in this "
        "pass: it waits for a later pass.")
    cycles: list[list[int]] = Field(default_factory=list)


def merge_chains(prs: Sequence[ChainedPR], open_prs: Iterable[int] = ()) -> Chains:
    """Chain the PRs of one pass (given in dispatch order) so none merges beside one it
    must follow. `open_prs`: every open PR of the repository.

    - A PR that names (`after`) an open PR outside `prs` waits for a later pass; so does
      every PR of a stated-order cycle (reported in `cycles`), and, in turn, any PR that
      names a waiting one.
    - The others, linked by a stated order or by a changed file in common, form
      components; a component is put in one line (stated order first, then dispatch
      order) and each PR in it waits for the one before it (`merge_after`). Independent
      PRs stay parallel.
    - A chain lives inside one dispatch group: from the first PR of a line that is in
      another group than the line's first PR, the rest of the line waits for a later pass.
    """
    by_number = {p.number: p for p in prs}
    rank = {p.number: i for i, p in enumerate(prs)}
    open_set = set(open_prs) | set(by_number)
    after = {p.number: [a for a in dict.fromkeys(p.after) if a in open_set and a != p.number] for p in prs}
    cycles = find_cycles({n: [a for a in deps if a in by_number] for n, deps in after.items()})
    waiting: dict[int, int] = {}
    for members in cycles:
        for n in members:
            waiting[n] = next(a for a in after[n] if a in members)
    while True:
        chains = _chain(prs, after, rank, set(waiting))
        new = {n: a for n, a in chains.waiting.items() if n not in waiting}
        for p in prs:
            if p.number not in waiting and p.number not in new:
                blocker = next((a for a in after[p.number] if a not in by_number or a in waiting), None)
                if blocker is not None:
                    new[p.number] = blocker
        if not new:
            return Chains(merge_after=chains.merge_after, waiting={**waiting, **chains.waiting},
                          cycles=cycles)
        waiting.update(new)


def _chain(prs: Sequence[ChainedPR], after: Mapping[int, list[int]], rank: Mapping[int, int],
           out_of_pass: set[int]) -> Chains:
    """Chains among the PRs not in `out_of_pass` (see `merge_chains`)."""
    live = [p for p in prs if p.number not in out_of_pass]
    group = {p.number: p.group for p in live}
    parent = {p.number: p.number for p in live}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            first, second = sorted((ra, rb), key=rank.__getitem__)
            parent[second] = first

    owner: dict[str, int] = {}
    for p in live:
        for path in p.files:
            if path in owner:
                union(owner[path], p.number)
            else:
                owner[path] = p.number
        for a in after[p.number]:
            if a in parent:
                union(a, p.number)

    components: dict[int, list[int]] = {}
    for p in live:
        components.setdefault(find(p.number), []).append(p.number)

    out = Chains()
    for members in components.values():
        line = _stated_order(members, after, rank)
        home = group[line[0]]
        left_home = False
        for prev, number in zip(line, line[1:]):
            left_home = left_home or group[number] != home
            if left_home:
                out.waiting[number] = prev
            else:
                out.merge_after[number] = prev
    return out


def _stated_order(members: list[int], after: Mapping[int, list[int]], rank: Mapping[int, int]) -> list[int]:
    """`members` with every PR after the PRs it names (Kahn), ties in dispatch order."""
    inside = set(members)
    pending = {n: {a for a in after[n] if a in inside} for n in members}
    line: list[int] = []
    while pending:
        ready = min((n for n, deps in pending.items() if not deps), key=rank.__getitem__)
        line.append(ready)
        del pending[ready]
        for deps in pending.values():
            deps.discard(ready)
    return line

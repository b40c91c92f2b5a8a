"""Dependency text forms, cycles and merge chains (conductor/core/dependencies.py), as tables."""
from __future__ import annotations

import pytest

from conductor.core.dependencies import (
    ChainedPR,
    find_cycles,
    issue_dependencies,
    merge_after_references,
    merge_chains,
)

REPO = "octo/maestro"


@pytest.mark.parametrize(
    ("body", "numbers", "foreign"),
    [
        ("Depends on #3", [3], []),
        ("depends on #3", [3], []),
        ("DEPENDS ON #3", [3], []),
        ("Blocked by #4", [4], []),
        ("Requires #5", [5], []),
        ("Depends on: #3", [3], []),
        ("Blocked by:#3", [3], []),
        ("Depends on #3, #4 and #5", [3, 4, 5], []),
        ("Depends on #3 & #4", [3, 4], []),
        ("Depends on #3 #4", [3, 4], []),
        ("Depends on #3\nBlocked by #7\nRequires #3", [3, 7], []),
        ("Depends on issue #3", [3], []),
        ("Depends on PR #3", [3], []),
        ("Depends on octo/maestro#3", [3], []),
        ("Depends on OCTO/Maestro#3", [3], []),
        ("Depends on https://github.com/octo/maestro/issues/8", [8], []),
        ("Depends on https://ghe.example.com/octo/maestro/issues/8", [8], []),
        ("Depends on https://github.com/octo/maestro/pull/9", [9], []),
        ("Depends on other/repo#3", [], ["other/repo#3"]),
        ("Depends on https://github.com/other/repo/issues/3", [], ["other/repo#3"]),
        ("Depends on #2, other/repo#3 and #4", [2, 4], ["other/repo#3"]),
        ("see #3; this depends on nothing", [], []),
        ("Mentions #3", [], []),
        ("Depends on #0", [], []),
        ("Dependson #3", [], []),
        ("undepends on #3", [], []),
        ("Depends on #3abc", [], []),
        ("Closes #3", [], []),
        ("Merge after #3", [], []),  # a PR form, not an issue form
        ("", [], []),
    ],
)
def test_issue_dependency_text_forms(body: str, numbers: list[int], foreign: list[str]) -> None:
    refs = issue_dependencies(body, REPO)
    assert (refs.numbers, refs.foreign) == (numbers, foreign)


@pytest.mark.parametrize(
    ("body", "numbers"),
    [
        ("Merge after #3", [3]),
        ("merge after: #3, #4", [3, 4]),
        ("Merge after PR #3", [3]),
        ("Depends on PR #3", [3]),
        ("depends on pull request #3", [3]),
        ("Merge after https://github.com/octo/maestro/pull/3", [3]),
        ("Depends on #3", [3]),  # the issue forms too; the planner keeps open PRs only
        ("Merge after other/repo#3", []),
        ("Closes #3", []),
    ],
)
def test_merge_after_text_forms(body: str, numbers: list[int]) -> None:
    assert merge_after_references(body, REPO).numbers == numbers


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({}, []),
        ({1: [2], 2: [3], 3: []}, []),
        ({1: [2], 2: [1]}, [[1, 2]]),
        ({1: [2], 2: [3], 3: [1], 4: [1]}, [[1, 2, 3]]),
        ({1: [1]}, [[1]]),
        ({1: [2], 2: [1], 5: [6], 6: [5], 7: [5]}, [[1, 2], [5, 6]]),
        ({1: [99]}, []),  # an edge to a node outside the graph is no cycle
        ({n: [n + 1] for n in range(1, 5001)} | {5001: [1]}, [list(range(1, 5002))]),
    ],
    ids=["empty", "chain", "pair", "triangle-with-tail", "self", "two", "outside", "long"],
)
def test_find_cycles(graph: dict[int, list[int]], cycles: list[list[int]]) -> None:
    assert find_cycles(graph) == cycles


def pr(number: int, group: int = 0, files: tuple[str, ...] = (), after: tuple[int, ...] = ()) -> ChainedPR:
    return ChainedPR(number=number, group=group, files=list(files) or [f"own/{number}.py"],
                     after=list(after))


@pytest.mark.parametrize(
    ("prs", "open_prs", "merge_after", "waiting", "cycles"),
    [
        pytest.param([pr(1), pr(2), pr(3)], [], {}, {}, [], id="independent PRs stay parallel"),
        pytest.param([pr(1, files=("a.py",)), pr(2, files=("a.py", "b.py")), pr(3)], [],
                     {2: 1}, {}, [], id="file overlap chains the later one"),
        pytest.param([pr(1, files=("a.py",)), pr(2, files=("b.py",)), pr(3, files=("a.py", "b.py"))], [],
                     {2: 1, 3: 2}, {}, [], id="a PR overlapping two parallel PRs makes one line"),
        pytest.param([pr(1, files=("a.py",)), pr(2, files=("a.py",)), pr(3, files=("a.py",))], [],
                     {2: 1, 3: 2}, {}, [], id="three on one file"),
        pytest.param([pr(1, after=(2,)), pr(2)], [], {1: 2}, {}, [], id="stated order beats dispatch order"),
        pytest.param([pr(1), pr(2, after=(1,)), pr(3, after=(1,))], [], {2: 1, 3: 2}, {}, [],
                     id="two dependents of one PR are serialised"),
        pytest.param([pr(1, after=(7,)), pr(2)], [7], {}, {1: 7}, [],
                     id="names an open PR outside the pass: waits"),
        pytest.param([pr(1, after=(7,)), pr(2)], [], {}, {}, [], id="names a closed PR: satisfied"),
        pytest.param([pr(1, after=(2,)), pr(2, after=(1,)), pr(3, after=(1,)), pr(4)], [],
                     {}, {1: 2, 2: 1, 3: 1}, [[1, 2]], id="stated cycle: reported, both and dependents wait"),
        pytest.param([pr(1, after=(1,))], [], {}, {}, [], id="naming itself is ignored"),
        pytest.param([pr(1, 0, files=("a.py",)), pr(2, 1, files=("a.py",))], [],
                     {}, {2: 1}, [], id="overlap across groups: the later group waits"),
        pytest.param([pr(1, 0, files=("a.py",)), pr(3, 0, files=("a.py",)), pr(2, 1, files=("a.py",))], [],
                     {3: 1}, {2: 3}, [], id="chain in the first group, the other group waits"),
        pytest.param([pr(1, 0, after=(2,)), pr(2, 1)], [], {}, {1: 2}, [],
                     id="stated order across groups: the named one goes first"),
        pytest.param([pr(1, 0, files=("a.py",)), pr(2, 1, files=("a.py",)), pr(3, 1, after=(2,))], [],
                     {}, {2: 1, 3: 2}, [], id="naming a waiting PR waits too"),
    ],
)
def test_merge_chains(prs: list[ChainedPR], open_prs: list[int], merge_after: dict[int, int],
                      waiting: dict[int, int], cycles: list[list[int]]) -> None:
    chains = merge_chains(prs, open_prs)
    assert (chains.merge_after, chains.waiting, chains.cycles) == (merge_after, waiting, cycles)
    assert not set(chains.merge_after) & set(chains.waiting)
    for later, earlier in chains.merge_after.items():  # a chain never crosses a group
        assert {p.group for p in prs if p.number in (later, earlier)} == {
            next(p.group for p in prs if p.number == later)}

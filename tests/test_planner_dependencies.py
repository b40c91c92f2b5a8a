"""The planner's rules for dependencies, merge order, per-item attempts and unphased batch
issues, one table per rule (see the docstring of conductor/core/planner.py)."""
from __future__ import annotations

from typing import Any

import pytest

from conductor.core.config import PipelineConfig
from conductor.core.models import Issue, ItemAttempts, PipelineState, Plan, PullRequest
from conductor.core.settings import RunSettings, Settings
from conductor.core.planner import items_needing_attempts, prs_needing_files

import test_planner

REPO = "octo/maestro"
P1, P2, P4, P5, P6 = "phase-1/db-schema", "phase-2/core-api", "phase-4/new-ui-pages", \
    "phase-5/ui-enhancements", "phase-6/seed-data"
B1, B2 = "batch-1", "batch-2"


def issue(number: int, *labels: str, body: str = "", native: int = 0) -> Issue:
    return Issue(number=number, labels=list(labels), title=f"issue {number}", body=body,
                 native_blockers=native)


def pr(number: int, *labels: str, body: str = "", files: tuple[str, ...] | None = None,
       draft: bool = False) -> PullRequest:
    return PullRequest(number=number, labels=list(labels), body=body, title=f"pr {number}", draft=draft,
                       files=list(files) if files is not None else [f"src/pr{number}.py"])


def state(*items: Issue | PullRequest, attempts: dict[int, tuple[int, str]] | None = None) -> PipelineState:
    return PipelineState(
        repo=REPO,
        issues=[i for i in items if isinstance(i, Issue)],
        pull_requests=[i for i in items if isinstance(i, PullRequest)],
        attempts={n: ItemAttempts(count=c, last_reason=r, passes=[f"p{k}" for k in range(c)])
                  for n, (c, r) in (attempts or {}).items()},
    )


def run(st: PipelineState, config: PipelineConfig | None = None, **task: Any) -> Plan:
    return test_planner.run(st, config, **task)


def dispatched(p: Plan) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"issue_to_pr": [], "pr_review": []}
    for d in p.dispatches:
        out[d.kind] += d.items
    return {k: sorted(v) for k, v in out.items()}


def waiting(p: Plan) -> dict[int, list[int]]:
    return {w.number: w.blockers for w in p.waiting}


_no_conductor_env = test_planner._no_conductor_env  # the same isolation from CONDUCTOR_* settings


# -- dependencies between issues -----------------------------------------------------------

@pytest.mark.parametrize(
    ("st", "issues", "expected_waiting"),
    [
        pytest.param(state(issue(1, P4), issue(2, P4, body="Depends on #1")), [1], {2: [1]},
                     id="open blocker: waits"),
        pytest.param(state(issue(2, P4, body="Depends on #1")), [2], {}, id="closed blocker: ready"),
        pytest.param(state(issue(1, P4), issue(2, P4, body="Blocked by #1, #9 and #3"), issue(3, P6)),
                     [1, 3], {2: [1, 3]}, id="only the open ones are listed"),
        pytest.param(state(issue(1, "bug"), issue(2, P4, body="requires #1")), [], {2: [1]},
                     id="a blocker outside the pipeline still blocks"),
        pytest.param(state(pr(1, P4), issue(2, P4, body="Depends on PR #1")), [], {2: []},
                     id="a PR named holds an issue"),
        pytest.param(state(issue(1, P4), issue(2, P4, body="Depends on other/repo#1")), [1], {2: []},
                     id="another repository is not followed: held"),
        pytest.param(state(issue(1, P4), issue(2, P4, body="Depends on https://ghe.corp/octo/maestro/issues/1")),
                     [1], {2: [1]}, id="full URL of this repository"),
        pytest.param(state(issue(2, P4, native=1)), [], {2: []}, id="native summary blocks"),
        pytest.param(state(issue(2, P4, native=0, body="no deps")), [2], {}, id="native summary zero"),
        pytest.param(state(issue(1, P4), issue(2, P4, "status/in-progress", body="Depends on #1")), [1], {},
                     id="only otherwise ready issues are listed as waiting"),
        pytest.param(state(issue(1, P4), issue(2, P5, body="Depends on #1")), [1], {},
                     id="a waiting phase says it first"),
        pytest.param(state(issue(2, P4, body="Depends on #2")), [2], {}, id="naming itself is ignored"),
    ],
)
def test_issue_dependencies(st: PipelineState, issues: list[int], expected_waiting: dict[int, list[int]]) -> None:
    p = run(st)
    assert dispatched(p)["issue_to_pr"] == issues
    assert waiting(p) == expected_waiting


def test_waiting_reasons_name_blockers_and_native_counts() -> None:
    p = run(state(issue(1, P4), issue(2, P4, body="Depends on #1", native=2), issue(3, P4, native=1)))
    assert {w.number: (w.reason, w.native_blockers) for w in p.waiting} == {
        2: ("depends on #1 (open); blocked by 2 open issues (GitHub issue dependencies)", 2),
        3: ("blocked by 1 open issue (GitHub issue dependencies)", 1),
    }
    assert p.gated == [] and 2 not in p.deferred


def test_a_waiting_item_is_not_listed_as_gated() -> None:
    p = run(state(issue(1, P4), issue(2, P4, "security", body="Depends on #1")))
    assert waiting(p) == {2: [1]} and p.gated == []


def test_cross_repository_reference_is_reported_not_followed_and_holds() -> None:
    p = run(state(issue(2, P4, body="Depends on other/repo#1 and #7")))
    assert dispatched(p)["issue_to_pr"] == []
    assert [(m.number, m.message) for m in p.problems] == [(2, (
        "issue #2 depends on other/repo#1 in another repository; not followed (the conductor "
        "reads only this repository): it is held until that reference is removed"))]
    assert [(w.number, w.not_issues, w.reason) for w in p.waiting] == [(2, ["other/repo#1 (another repository)"], (
        "depends on other/repo#1 in another repository, which the conductor cannot check"))]


def named(st: PipelineState, **kinds: str) -> PipelineState:
    return st.model_copy(update={"named": {int(k[1:]): v for k, v in kinds.items()}})


@pytest.mark.parametrize(
    ("st", "issues", "not_issues", "reason"),
    [
        pytest.param(named(state(issue(2, P4, body="Depends on #9999")), n9999="missing"), [],
                     ["#9999 (does not exist)"], "depends on #9999, which does not exist", id="nothing under it"),
        pytest.param(named(state(issue(2, P4, body="Depends on #8, #9")), n8="missing", n9="missing"), [],
                     ["#8 (does not exist)", "#9 (does not exist)"], "depends on #8, #9, which do not exist",
                     id="two missing"),
        pytest.param(named(state(issue(2, P4, body="Depends on #7")), n7="pull_request"), [],
                     ["#7 (a pull request)"], "depends on #7, which is a pull request, not an issue",
                     id="a closed PR"),
        pytest.param(named(state(issue(2, P4, body="Depends on #7")), n7="closed_issue"), [2], [], None,
                     id="a closed issue is a met dependency"),
        pytest.param(state(issue(2, P4, body="Depends on #7")), [2], [], None,
                     id="a number not looked up counts as a closed issue"),
        pytest.param(named(state(issue(2, P4, body="Depends on #7")), n7="open_issue"), [], [],
                     "depends on #7 (open)", id="an issue opened since the listing waits"),
        pytest.param(named(state(issue(1, P4), issue(2, P4, body="Depends on #1, #9999 and x/y#3", native=1)),
                           n9999="missing"), [1],
                     ["#9999 (does not exist)", "x/y#3 (another repository)"],
                     "depends on #1 (open); depends on #9999, which does not exist; depends on x/y#3 in another "
                     "repository, which the conductor cannot check; blocked by 1 open issue (GitHub issue "
                     "dependencies)", id="every reason at once"),
    ],
)
def test_a_dependency_that_is_no_issue_holds_with_its_reason(st: PipelineState, issues: list[int],
                                                              not_issues: list[str], reason: str | None) -> None:
    p = run(st)
    assert dispatched(p)["issue_to_pr"] == issues
    held = {w.number: (w.not_issues, w.reason) for w in p.waiting}
    assert held.get(2) == ((not_issues, reason) if reason else None)


def test_dependencies_needing_lookup_are_those_of_dispatched_issues_only() -> None:
    from conductor.core.planner import dependencies_needing_lookup

    rules = test_planner.rules(None, MAX_ISSUES_PER_DISPATCH=1)
    st = state(issue(1, P4, body="Depends on #50 and #3"), issue(2, P4, body="Depends on #60"),
               issue(3, P6, "status/in-progress"), issue(4, P5, body="Depends on #70"))
    assert dependencies_needing_lookup(st, rules) == [60]  # #1 waits for open #3; #4's phase waits
    st = state(issue(1, P4, body="Depends on #50"), issue(2, P4, body="Depends on #60"))
    assert dependencies_needing_lookup(st, rules) == [50]  # #2 is capped out
    assert dependencies_needing_lookup(named(st, n50="missing"), rules) == [60]  # #1 held: #2 takes its place
    assert dependencies_needing_lookup(named(st, n50="missing", n60="closed_issue"), rules) == []


def test_owned_paths_outside_the_repository_are_problems_on_their_issue() -> None:
    long = "../" * 40 + "etc/passwd"
    p = run(state(issue(2, P4, body="Files: .github/workflows/ci.yml, ../../../../etc/passwd, /etc/shadow"),
                  issue(3, P4, body=f"Files: {long}"),
                  issue(4, body="Files: /outside/the/pipeline"),  # no phase: not the pipeline's
                  issue(5, P4, body="Files: .github/dependabot.yml")))
    assert dispatched(p)["issue_to_pr"] == [2, 3, 5]  # the issue still goes, with the paths inside
    outside = ("a path outside the repository (absolute or with '..'); left out of FILE_OWNERSHIP: "
               "name paths inside the repository")
    assert [(m.number, m.message) for m in p.problems] == [
        (2, f"issue #2 names ../../../../etc/passwd under Files:, {outside}"),
        (2, f"issue #2 names /etc/shadow under Files:, {outside}"),
        (3, f"issue #3 names {long[:79]}… under Files:, {outside}"),
    ]


def test_dependency_cycle_is_a_problem_with_its_members_and_never_dispatches() -> None:
    st = state(issue(1, P4, body="Depends on #3"), issue(2, P4, body="Depends on #1"),
               issue(3, P4, body="Blocked by #2"), issue(4, P4, body="Depends on #1"), issue(5, P4))
    p = run(st)
    assert dispatched(p)["issue_to_pr"] == [5]
    assert waiting(p) == {1: [3], 2: [1], 3: [2], 4: [1]}
    assert [(m.number, m.message) for m in p.problems] == [(1, (
        "dependency cycle between issues #1, #2, #3: none of them can start; "
        "remove one of their 'Depends on' lines"))]


def test_blocked_issue_dispatches_once_its_blocker_is_closed_with_depends_on() -> None:
    before = run(state(issue(1, P4, B1), issue(2, P4, B1, body="Depends on #1, #8")))
    assert dispatched(before)["issue_to_pr"] == [1]
    after = run(state(issue(2, P4, B1, body="Depends on #1, #8")))
    assert [(d.items, d.depends_on) for d in after.dispatches] == [([2], {2: [1, 8]})]


def test_every_dispatched_issue_has_its_depends_on() -> None:
    p = run(state(issue(1, P4), issue(2, P4, body="Depends on #9")))
    assert p.dispatches[0].depends_on == {1: [], 2: [9]}


# -- merge order -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("st", "prs", "chains", "expected_waiting"),
    [
        pytest.param(state(pr(1, P4), pr(2, P4), pr(3, P4)), [1, 2, 3], {}, {},
                     id="independent PRs stay parallel"),
        pytest.param(state(pr(1, P4, files=("a.py",)), pr(2, P4, files=("a.py",)), pr(3, P4)),
                     [1, 2, 3], {2: 1}, {}, id="file overlap: the later one is chained"),
        pytest.param(state(pr(1, P4, body="Merge after #2"), pr(2, P4)), [1, 2], {1: 2}, {},
                     id="explicit merge after"),
        pytest.param(state(pr(1, P4), pr(2, P4, body="Depends on PR #1")), [1, 2], {2: 1}, {},
                     id="explicit depends on PR"),
        pytest.param(state(pr(1, P4, body="Merge after #7")), [1], {}, {}, id="closed PR named: nothing"),
        pytest.param(state(issue(7, P6), pr(1, P4, body="Merge after #7")), [1], {}, {},
                     id="an issue named in merge after is no PR"),
        pytest.param(state(pr(1, P4, body="Merge after #7"), pr(7, P4, draft=True)), [], {}, {1: [7]},
                     id="named PR open but not reviewed: waits"),
        pytest.param(state(pr(1, P4, B1, files=("a.py",)), pr(2, P4, B2, files=("a.py",))), [1], {},
                     {2: [1]}, id="two batches touching one file: the later batch waits"),
        pytest.param(state(pr(1, P4, body="Merge after #2"), pr(2, P4, body="merge after #1"), pr(3, P4)),
                     [3], {}, {1: [2], 2: [1]}, id="stated cycle: both wait"),
    ],
)
def test_merge_order(st: PipelineState, prs: list[int], chains: dict[int, int],
                     expected_waiting: dict[int, list[int]]) -> None:
    p = run(st, PipelineConfig(protected_paths=[]))
    assert dispatched(p)["pr_review"] == prs
    assert {k: v for d in p.dispatches for k, v in d.merge_after.items()} == chains
    assert waiting(p) == expected_waiting


def test_merge_cycle_is_a_problem() -> None:
    p = run(state(pr(1, P4, body="Merge after #2"), pr(2, P4, body="merge after #1")))
    assert [(m.number, m.message) for m in p.problems] == [(1, (
        "merge-order cycle between PRs #1, #2: none of them is reviewed; "
        "remove one of their 'Merge after' lines"))]


def test_a_waiting_pr_frees_its_cap_slot() -> None:
    st = state(pr(1, P4, B1, files=("a.py",)), pr(2, P4, B2, files=("a.py",)), pr(3, P4, B2))
    p = run(st, MAX_PRS_PER_DISPATCH=2)
    assert dispatched(p)["pr_review"] == [1, 3]
    assert waiting(p) == {2: [1]}
    assert p.deferred == []
    assert "reviewed in another batch or phase this pass" in p.waiting[0].reason


def test_gates_apply_before_the_merge_order() -> None:
    st = state(pr(1, P4, "security", files=("a.py",)), pr(2, P4, files=("a.py",)))
    p = run(st)
    assert [g.number for g in p.gated] == [1]
    assert dispatched(p)["pr_review"] == [2]  # #1 is not reviewed, so #2 has nothing to wait for
    assert p.waiting == []


def test_chains_stay_in_their_dispatch() -> None:
    st = state(pr(1, P4, B1, files=("a.py",)), pr(2, P4, B1, files=("a.py",)),
               pr(3, P6, files=("b.py",)), pr(4, P6, files=("b.py",)))
    p = run(st)
    assert [(d.phase, d.items, d.merge_after) for d in p.dispatches] == [
        (P4, [1, 2], {2: 1}), (P6, [3, 4], {4: 3})]


# -- per-item attempts -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("count", "held"),
    [(0, False), (1, False), (2, False), (3, True), (5, True)],
)
def test_hold_back_at_three_failed_attempts(count: int, held: bool) -> None:
    st = state(issue(1, P4), issue(2, P4), pr(3, P4), attempts={1: (count, "agent exited with status 1")})
    p = run(st)
    assert (1 not in dispatched(p)["issue_to_pr"]) is held
    assert [(h.number, h.attempts, h.last_reason) for h in p.held_back] == (
        [(1, count, "agent exited with status 1")] if held else [])
    if not held:
        assert p.dispatches[0].attempts == {1: count, 2: 0}
    assert dispatched(p)["pr_review"] == [3]


def test_attempt_limit_is_configurable_and_held_prs_too() -> None:
    st = state(pr(3, P4), attempts={3: (1, "no report")})
    assert run(st, PipelineConfig(item_attempt_limit=1)).held_back[0].number == 3
    assert dispatched(run(st))["pr_review"] == [3]


def test_held_item_frees_its_cap_slot() -> None:
    st = state(issue(1, P4), issue(2, P4), issue(3, P4), attempts={1: (3, "x")})
    p = run(st, MAX_ISSUES_PER_DISPATCH=2)
    assert dispatched(p)["issue_to_pr"] == [2, 3] and p.deferred == []


def test_items_needing_attempts_follows_the_line() -> None:
    st = state(issue(1, P4), issue(2, P4), issue(3, P4), issue(4, P5))
    rules = Settings(run=RunSettings(max_issues_per_dispatch=2))
    assert items_needing_attempts(st, rules) == [1, 2]
    st.attempts = {1: ItemAttempts(count=3, last_reason="x"), 2: ItemAttempts()}
    assert items_needing_attempts(st, rules) == [3]
    st.attempts[3] = ItemAttempts()
    assert items_needing_attempts(st, rules) == []


# -- issues with a batch label and no phase label ----------------------------------------------

@pytest.mark.parametrize(
    ("mode", "issues", "prs", "placed"),
    [
        ("report", [1], [], None),
        ("lowest-active-phase", [1, 7], [8], P4),
    ],
)
def test_unphased_batch_issues_both_modes(mode: str, issues: list[int], prs: list[int],
                                          placed: str | None) -> None:
    st = state(issue(1, P4), issue(2, P5), issue(3, P6, "security"), issue(7, "bug", B1), issue(9, "bug"),
               issue(6, "bug", B2), pr(8, body="Fixes #6"))
    p = run(st, PipelineConfig(unphased_batch_issues=mode))
    assert [(o.number, o.batch, o.placed_in) for o in p.outside_pipeline] == [(6, B2, placed), (7, B1, placed)]
    assert dispatched(p) == {"issue_to_pr": issues, "pr_review": prs}
    row = {s.name: s.open_issues for s in p.phases}[P4]
    assert row == (1 if mode == "report" else 3)
    assert p.open_issues == (3 if mode == "report" else 5)


def test_unphased_mode_with_no_active_phase_only_reports() -> None:
    p = run(state(issue(7, "bug", B1)), PipelineConfig(unphased_batch_issues="lowest-active-phase"))
    assert [(o.number, o.placed_in) for o in p.outside_pipeline] == [(7, None)]
    assert p.dispatches == [] and p.idle


def test_unphased_mode_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="unphased_batch_issues"):
        PipelineConfig(unphased_batch_issues="sometimes")


def test_files_are_read_for_overlap_even_without_protected_paths() -> None:
    st = state(pr(1, P4), pr(2, P4))
    assert prs_needing_files(st, Settings(pipeline=PipelineConfig(protected_paths=[]))) == [1, 2]

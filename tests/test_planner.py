"""The planner's rules, one table per rule (see the docstring of conductor/core/planner.py)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conductor.core.config import PipelineConfig
from conductor.core.settings import RunSettings, Settings, load_settings
from conductor.core.models import Issue, PipelineState, Plan, PullRequest
from conductor.core.planner import plan, prs_needing_files

REPO = "octo/maestro"
P1, P2, P3 = "phase-1/db-schema", "phase-2/core-api", "phase-3/api-extensions"
P4, P5 = "phase-4/new-ui-pages", "phase-5/ui-enhancements"
P6, P7 = "phase-6/seed-data", "phase-7/machine-access"
IN_PROGRESS, PR_OPEN, SECURITY = "status/in-progress", "status/pr-open", "security"
EVENTS = "maestro/protocol/events.py"


# -- builder ------------------------------------------------------------------------------

def b(n: int) -> str:
    return f"batch-{n}"


def issue(number: int, *labels: str, title: str = "") -> Issue:
    return Issue(number=number, labels=list(labels), title=title or f"issue {number}")


def pr(number: int, *labels: str, closes: tuple[int, ...] = (), body: str = "", draft: bool = False,
       fork: bool = False, files: tuple[str, ...] | None = None) -> PullRequest:
    """A PR; by default it changes a file of its own (no overlap with other PRs)."""
    text = body + "".join(f"\nCloses #{n}" for n in closes)
    return PullRequest(number=number, labels=list(labels), body=text, draft=draft, fork=fork,
                       files=list(files) if files is not None else [f"src/pr{number}.py"],
                       title=f"pr {number}")


def state(*items: Issue | PullRequest, approved: tuple[int, ...] = (), api_requests: int = 0) -> PipelineState:
    return PipelineState(
        repo=REPO,
        issues=[i for i in items if isinstance(i, Issue)],
        pull_requests=[i for i in items if isinstance(i, PullRequest)],
        approved=list(approved),
        api_requests=api_requests,
    )


# The task file's names, as the cases write them, and the planner's own.
_RULE_NAMES = {"PHASE_FILTER": "phase_filter", "MAX_ISSUES_PER_DISPATCH": "max_issues_per_dispatch",
               "MAX_PRS_PER_DISPATCH": "max_prs_per_dispatch", "ATTEMPT_N": "attempt"}


def rules(config: PipelineConfig | None = None, **task_values: Any) -> Settings:
    return Settings(pipeline=config or PipelineConfig(),
                    run=RunSettings(**{_RULE_NAMES.get(k, k): v for k, v in task_values.items()}))


def run(st: PipelineState, config: PipelineConfig | None = None, **task_values: Any) -> Plan:
    settings = rules(config, **task_values)
    return plan(st, settings, settings.given_attempt())


def dispatched(p: Plan) -> dict[str, list[int]]:
    """Every dispatched item, by kind."""
    out: dict[str, list[int]] = {"issue_to_pr": [], "pr_review": []}
    for d in p.dispatches:
        out[d.kind] += d.items
    return {k: sorted(v) for k, v in out.items()}


def groups(p: Plan) -> list[tuple[str, str, str | None, list[int]]]:
    return [(d.kind, d.phase, d.batch, d.items) for d in p.dispatches]


@pytest.fixture(autouse=True)
def _no_conductor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("CONDUCTOR_"):
            monkeypatch.delenv(key)


# -- readiness ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("st", "issues", "prs"),
    [
        pytest.param(state(issue(1, P4), issue(2, P4, IN_PROGRESS)), [1], [], id="in-progress skipped"),
        pytest.param(state(issue(1, P4), issue(2, P4), pr(3, P4, closes=(2,))), [1], [3],
                     id="issue with an open PR skipped, PR reviewed"),
        pytest.param(state(issue(1, P4), pr(3, P4, closes=(1,), draft=True)), [], [],
                     id="draft not reviewed, its issue still not ready"),
        pytest.param(state(issue(1, P4), pr(3, closes=(1,), draft=True)), [], [],
                     id="unlabelled draft still links its issue"),
        pytest.param(state(pr(3, P4, PR_OPEN), pr(4, P4)), [], [4], id="pr-open skipped"),
        pytest.param(state(issue(1, P4), pr(3, P4, body="Fixes other/repo#1")), [1], [3],
                     id="link to another repo does not count"),
        pytest.param(state(issue(1, P4), pr(3, P4, body="see #1")), [1], [3], id="mention is not a link"),
        pytest.param(state(issue(1, P4), issue(2, P5)), [1], [], id="waiting phase not dispatched"),
        pytest.param(state(issue(1, P4), pr(2, body="bump deps")), [1], [], id="PR in no phase ignored"),
        pytest.param(state(issue(1, P5), pr(2, P4, PR_OPEN)), [], [],
                     id="an open PR keeps its phase incomplete"),
        pytest.param(state(issue(1, P4), issue(2, P6), issue(3, P7)), [1, 2], [],
                     id="independent chains advance together"),
        pytest.param(state(issue(5, P4), pr(5, P4)), [], [5], id="an issue number that is a PR is not an issue"),
    ],
)
def test_ready_items(st: PipelineState, issues: list[int], prs: list[int]) -> None:
    assert dispatched(run(st)) == {"issue_to_pr": issues, "pr_review": prs}


def test_45_open_issues_all_counted_then_capped() -> None:
    st = state(*[issue(n, P4, b(n % 5 + 1)) for n in range(1, 46)])
    p = run(st)
    row = next(s for s in p.phases if s.name == P4)
    assert (row.open_issues, p.open_issues) == (45, 45)
    order = sorted(range(1, 46), key=lambda n: (n % 5 + 1, n))
    assert dispatched(p)["issue_to_pr"] == sorted(order[:12])
    assert p.deferred == order[12:]
    assert len(p.deferred) == 33


def test_caps_take_lowest_batch_number_then_item_number_no_batch_last() -> None:
    st = state(issue(5, P4, b(10)), issue(9, P4, b(2)), issue(3, P4, b(2)), issue(1, P4),
               issue(7, P4, b(10)), issue(2, P4, "batch-02"),
               pr(20, P4), pr(21, P4, b(10)), pr(22, P4, b(2)))
    p = run(st, MAX_ISSUES_PER_DISPATCH=4, MAX_PRS_PER_DISPATCH=2)
    assert dispatched(p) == {"issue_to_pr": [2, 3, 5, 9], "pr_review": [21, 22]}
    assert p.deferred == [7, 1, 20]


def test_dispatch_groups_are_deterministic() -> None:
    st = state(issue(30, P6), issue(11, P4, b(10)), issue(10, P4, b(2)), issue(12, P4, b(2)),
               issue(13, P6, b(1)), pr(40, P4, b(2)), pr(41, P6), pr(42, closes=(10,), body="x"))
    assert groups(run(st)) == [  # #10 has a PR (#42, which inherits batch-2)
        ("issue_to_pr", P4, b(2), [12]),
        ("issue_to_pr", P4, b(10), [11]),
        ("issue_to_pr", P6, b(1), [13]),
        ("issue_to_pr", P6, None, [30]),
        ("pr_review", P4, b(2), [40, 42]),
        ("pr_review", P6, None, [41]),
    ]


# -- phases of PRs ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("st", "expected", "problem"),
    [
        pytest.param(state(issue(1, P4, b(3)), pr(2, closes=(1,))),
                     [("pr_review", P4, b(3), [2])], None, id="inherits phase and batch"),
        pytest.param(state(issue(1, P4, b(3)), issue(4, P4, b(3)), pr(2, closes=(1, 4))),
                     [("pr_review", P4, b(3), [2])], None, id="linked issues agree"),
        pytest.param(state(issue(1, P4, b(3)), issue(4, P4, b(5)), pr(2, closes=(1, 4))),
                     [("pr_review", P4, None, [2])], None, id="batches disagree: no batch"),
        pytest.param(state(issue(1, P4, b(3)), pr(2, b(7), closes=(1,))),
                     [("pr_review", P4, b(7), [2])], None, id="own batch wins"),
        pytest.param(state(issue(1, P4, b(3)), pr(2, P6, closes=(1,))),
                     [("pr_review", P6, None, [2])], None, id="own phase wins"),
        pytest.param(state(issue(1, P4), issue(4, P6), pr(2, closes=(1, 4))),
                     [], "closes issues in several phases", id="phases disagree: problem"),
    ],
)
def test_unlabelled_pr_inherits_from_linked_issues(
    st: PipelineState, expected: list[tuple[str, str, str | None, list[int]]], problem: str | None,
) -> None:
    p = run(st)
    assert [g for g in groups(p) if g[0] == "pr_review"] == expected
    messages = [m.message for m in p.problems if m.number == 2]
    assert [problem in m for m in messages] == ([True] if problem else [])


# -- phase states ------------------------------------------------------------------------

def test_transitive_dependencies_phase_3_waits_for_phase_1_pr() -> None:
    p = run(state(pr(1, P1), issue(2, P3), issue(3, P5)))
    rows = {s.name: (s.state, s.open_issues, s.open_prs, s.waiting_on) for s in p.phases}
    assert rows == {
        P1: ("active", 0, 1, []),
        P2: ("complete", 0, 0, []),
        P3: ("waiting", 1, 0, [P1]),
        P4: ("complete", 0, 0, []),
        P5: ("active", 1, 0, []),
        P6: ("complete", 0, 0, []),
        P7: ("complete", 0, 0, []),
    }
    assert p.active_phases == [P1, P5]
    assert dispatched(p) == {"issue_to_pr": [3], "pr_review": []}  # #1 is gated (phase-1)
    assert [g.number for g in p.gated] == [1]


def test_waiting_on_lists_every_incomplete_ancestor() -> None:
    p = run(state(issue(1, P1), issue(2, P2), issue(3, P3)))
    assert [(s.name, s.state, s.waiting_on) for s in p.phases[:3]] == [
        (P1, "active", []), (P2, "waiting", [P1]), (P3, "waiting", [P1, P2])]


def test_custom_dag_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "conductor.toml"
    path.write_text('[[phases]]\nname="api"\n[[phases]]\nname="ui"\ndepends_on=["api"]\n'
                    '[[phases]]\nname="docs"\n[[phases]]\nname="release"\ndepends_on=["ui","docs"]\n')
    config = load_settings({"config_file": str(path)}, env={}).pipeline
    p = run(state(issue(1, "ui"), issue(2, "docs"), issue(3, "release"), issue(4, P1)), config)
    assert p.active_phases == ["ui", "docs"]
    assert [(s.name, s.state, s.waiting_on) for s in p.phases] == [
        ("api", "complete", []), ("ui", "active", []), ("docs", "active", []),
        ("release", "waiting", ["ui", "docs"])]
    assert dispatched(p)["issue_to_pr"] == [1, 2]
    assert p.gated == []  # no gated phase in this DAG
    assert any(m.number == 4 and "phase-1/db-schema" in m.message for m in p.problems)


# -- PHASE_FILTER -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("phase_filter", "issues", "problem"),
    [
        ("", [1, 3], False),
        (P4, [1], False),
        (P5, [], False),  # never overrides dependencies: phase-4 is still open
        (P6, [3], False),
        (P7, [], False),
        ("phase-9/nope", [], True),
    ],
)
def test_phase_filter(phase_filter: str, issues: list[int], problem: bool) -> None:
    p = run(state(issue(1, P4), issue(2, P5), issue(3, P6)), PHASE_FILTER=phase_filter)
    assert dispatched(p)["issue_to_pr"] == issues
    assert p.active_phases == [P4, P6]
    assert any("PHASE_FILTER=phase-9/nope is not a configured phase" in m.message
               for m in p.problems) == problem


# -- gates --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("item", "config", "reason"),
    [
        (issue(1, P4, SECURITY), {}, "label security"),
        (issue(1, P1), {}, f"phase {P1} is gated"),
        (pr(1, P4, files=(EVENTS, "src/a.py")), {}, f"changes protected path {EVENTS}"),
        (pr(1, P4, files=("api/a.proto", "api/b.proto")), {"protected_paths": ["api/*.proto"]},
         "changes protected paths api/a.proto, api/b.proto"),
        (pr(1, P4, fork=True), {}, "head is in a fork"),
        (pr(1, P1, SECURITY, fork=True, files=(EVENTS,)), {},
         f"label security; phase {P1} is gated; changes protected path {EVENTS}; head is in a fork"),
        (issue(1, P4, "needs-audit"), {"gate_labels": ["needs-audit"]}, "label needs-audit"),
        (issue(1, P6), {"gated_phases": [P6]}, f"phase {P6} is gated"),
    ],
)
def test_each_gate(item: Issue | PullRequest, config: dict[str, Any], reason: str) -> None:
    cfg = PipelineConfig(**config)
    p = run(state(item), cfg)
    assert [(g.number, g.kind, g.reason, g.approved) for g in p.gated] == [
        (1, "issue" if isinstance(item, Issue) else "pr", reason, False)]
    assert p.dispatches == []
    approved = run(state(item, approved=(1,)), cfg)
    assert [(g.reason, g.approved) for g in approved.gated] == [(reason, True)]
    assert [d.items for d in approved.dispatches] == [[1]]


@pytest.mark.parametrize(
    ("item", "config"),
    [
        (pr(1, P4, fork=True), {"gate_forks": False}),
        (pr(1, P4, files=(EVENTS,)), {"protected_paths": []}),
        (issue(1, P4, SECURITY), {"gate_labels": []}),
        (issue(1, P1), {"gated_phases": []}),
    ],
)
def test_gates_can_be_switched_off(item: Issue | PullRequest, config: dict[str, Any]) -> None:
    assert [g.number for g in run(state(item)).gated] == [1]
    p = run(state(item), PipelineConfig(**config))
    assert p.gated == []
    assert [d.items for d in p.dispatches] == [[1]]


def test_pr_carries_gate_labels_of_linked_issues_and_others_still_dispatch() -> None:
    p = run(state(issue(1, P4, SECURITY), pr(2, P4, closes=(1,)), pr(3, P4), issue(4, P4)))
    assert [(g.number, g.reason) for g in p.gated] == [(2, "label security (from issue #1)")]
    assert dispatched(p) == {"issue_to_pr": [4], "pr_review": [3]}


def test_only_otherwise_ready_items_are_listed_as_gated() -> None:
    st = state(issue(1, P4, SECURITY, IN_PROGRESS), issue(2, P5, SECURITY),
               pr(3, P4, SECURITY, draft=True), pr(4, P4, SECURITY, PR_OPEN), issue(5, P4, SECURITY))
    assert [g.number for g in run(st).gated] == [5]


def test_approved_items_count_against_the_caps() -> None:
    st = state(issue(1, P1), issue(2, P1), issue(3, P1), approved=(2, 3))
    p = run(st, MAX_ISSUES_PER_DISPATCH=1)
    assert [(g.number, g.approved) for g in p.gated] == [(1, False), (2, True), (3, True)]
    assert dispatched(p)["issue_to_pr"] == [2]
    assert p.deferred == [3]


def test_prs_needing_files() -> None:
    st = state(issue(1, P4), pr(2, P4), pr(3, P4, draft=True), pr(4, P4, PR_OPEN), pr(5, P5),
               pr(6), pr(7, closes=(1,)), pr(8, P4, fork=True), pr(9, P4, P6))
    assert prs_needing_files(st, rules()) == [2, 7]  # 8 is gated as a fork already
    assert prs_needing_files(st, rules(PipelineConfig(gate_forks=False))) == [2, 7, 8]
    assert prs_needing_files(st, rules(PHASE_FILTER=P6)) == []
    # without protected paths, files still decide the merge order once two PRs could overlap
    assert prs_needing_files(st, rules(PipelineConfig(protected_paths=[]))) == [2, 7]  # 8: a gated fork
    assert prs_needing_files(state(issue(1, P4), pr(2, P4), pr(3, P4, draft=True)),
                             rules(PipelineConfig(protected_paths=[]))) == []


def test_no_files_for_prs_already_gated_by_a_label_a_phase_or_a_fork() -> None:
    st = state(issue(1, P4, SECURITY), pr(2, P4, SECURITY), pr(3, closes=(1,)), pr(4, P4, fork=True),
               pr(5, P4), issue(6, P1), pr(7, P1))
    config = PipelineConfig(phases=[{"name": P1}, {"name": P4}], gated_phases=[P1])
    assert prs_needing_files(st, rules(config)) == [5]
    # one that carries the approval label may be approved and dispatched: its files are read
    approved = state(issue(1, P4, SECURITY), pr(2, P4, SECURITY, "conductor/approved"), pr(5, P4))
    assert prs_needing_files(approved, rules(config)) == [2, 5]
    # the plan without their files gates them all the same
    gated = {g.number for g in plan(st, rules(config)).gated}
    assert {2, 3, 4, 7} <= gated


def test_no_files_for_prs_in_a_waiting_phase_at_scale() -> None:
    issues = [issue(n, P2) for n in range(1, 2001)]
    prs = [pr(n, P2, closes=(n - 2000,)) for n in range(2001, 2301)]
    st = state(issue(3000, P1), *issues, *prs)  # phase-2 waits on phase-1
    assert prs_needing_files(st, rules()) == []


# -- idle, stuck, problems ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("st", "idle"),
    [
        (state(), True),
        (state(pr(1, body="bump"), pr(2, "dependencies"), issue(3, "bug")), True),
        (state(issue(1, P7)), False),
        (state(issue(1, P2, IN_PROGRESS)), False),
        (state(pr(1, closes=(2,)), issue(2, P4)), False),
        (state(issue(1, "phase-8/typo")), False),  # an unknown phase label needs a human
    ],
)
def test_idle(st: PipelineState, idle: bool) -> None:
    p = run(st)
    assert p.idle is idle
    if idle:
        assert (p.open_issues, p.open_prs, p.dispatches, p.active_phases) == (0, 0, [], [])


@pytest.mark.parametrize(("attempt", "stuck"), [(0, False), (3, False), (4, True), (9, True)])
def test_anti_loop_guard(attempt: int, stuck: bool) -> None:
    st = state(issue(1, P4), issue(2, P4, SECURITY), pr(3, P4), issue(4, P4, b(1)))
    p = run(st, ATTEMPT_N=attempt, MAX_ISSUES_PER_DISPATCH=1)
    assert (p.stuck, p.attempt) == (stuck, attempt)
    assert dispatched(p) == ({"issue_to_pr": [], "pr_review": []} if stuck
                             else {"issue_to_pr": [4], "pr_review": [3]})
    assert p.deferred == ([] if stuck else [1])
    assert [g.number for g in p.gated] == [2]  # still computed for the report
    assert p.active_phases == [P4]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (issue(1, P4, P6), f"issue #1 has several phase labels ({P4}, {P6}); keep exactly one"),
        (pr(1, P4, P6), f"PR #1 has several phase labels ({P4}, {P6}); keep exactly one"),
        (issue(1, P4, "phase-9/typo"), "issue #1 has label(s) phase-9/typo that are not configured phases"),
        (pr(1, "phase-9/typo"), "PR #1 has label(s) phase-9/typo that are not configured phases"),
        (pr(1, P4, "phase-9/typo"), "PR #1 has label(s) phase-9/typo that are not configured phases"),
    ],
)
def test_label_problems_are_reported_and_not_dispatched(item: Issue | PullRequest, message: str) -> None:
    p = run(state(item, issue(2, P4)))
    messages = [m.message for m in p.problems if m.number == 1]
    assert len(messages) == 1 and messages[0].startswith(message)
    assert 1 not in dispatched(p)["issue_to_pr"] + dispatched(p)["pr_review"]
    assert dispatched(p)["issue_to_pr"] == [2]  # the rest is still dispatched


def test_two_phase_labels_keep_both_phases_open() -> None:
    p = run(state(issue(1, P4, P6), issue(2, P5), issue(3, P7)))
    assert {s.name: s.open_issues for s in p.phases if s.open_issues} == {P4: 1, P5: 1, P6: 1, P7: 1}
    assert p.open_issues == 3  # counted once each
    assert dispatched(p)["issue_to_pr"] == []  # P5 and P7 wait on the doubly-labelled issue


def test_several_batch_labels_grouped_under_lowest() -> None:
    p = run(state(issue(1, P4, b(10), b(3))))
    assert groups(p) == [("issue_to_pr", P4, b(3), [1])]
    assert [m.message for m in p.problems] == [
        "issue #1 has several batch labels (batch-3, batch-10); grouped under batch-3, keep exactly one"]


def test_plan_record_fields() -> None:
    st = state(issue(1, P4), issue(2, P5), pr(3, P4), pr(4, body="bump"), api_requests=17)
    p = run(st, ATTEMPT_N=2)
    assert (p.repo, p.attempt, p.api_requests, p.open_issues, p.open_prs) == (REPO, 2, 17, 2, 1)
    assert [s.name for s in p.phases] == [P1, P2, P3, P4, P5, P6, P7]
    assert p.problems == [] and p.idle is False and p.stuck is False


def test_plan_is_pure() -> None:
    st = state(issue(1, P4, b(2)), issue(2, P1), pr(3, closes=(1,)), approved=(2,))
    before = st.model_dump()
    assert run(st) == run(st)
    assert st.model_dump() == before

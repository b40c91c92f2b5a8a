"""The line under the pass table says what the pass did, then what remains."""
from __future__ import annotations

from conductor.core.facts import ReminderResult
from conductor.core.models import Dispatch, GatedItem, Plan
from conductor.core.passes import PassReport
from conductor.core.verify import CoordinatorOutcome, ItemResult


def dispatch(phase: str, batch: str, *items: int) -> Dispatch:
    return Dispatch(kind="issue_to_pr", phase=phase, batch=batch, items=list(items))


DISPATCHES = [dispatch("p1", "batch-01", 1, 2, 3), dispatch("p1", "batch-02", 4, 5),
              dispatch("p2", "batch-01", 6, 7), dispatch("p3", "batch-01", 8, 9)]
GATED = [GatedItem(number=20, kind="issue", reason="security"), GatedItem(number=21, kind="issue", reason="gated"),
         GatedItem(number=22, kind="issue", reason="gated", approved=True)]


def outcome(d: Dispatch, failed: set[int] = frozenset()) -> CoordinatorOutcome:
    results = [ItemResult(number=n, kind="issue", ok=n not in failed) for n in d.items]
    return CoordinatorOutcome(kind=d.kind, phase=d.phase, batch=d.batch, items=d.items,
                              ok=not failed, results=results, failures=["no PR"] if failed else [])


def report(**kw) -> PassReport:
    plan = Plan(repo="o/r", dispatches=DISPATCHES, gated=GATED, open_issues=9, open_prs=0)
    after = Plan(repo="o/r", gated=GATED, open_issues=5, open_prs=3)
    return PassReport(**{"repo": "o/r", "dry_run": False, "attempt": 0, "plan": plan, "plan_after": after, **kw})


def test_four_dispatched_groups_say_four_with_proved_failed_gated_and_the_reminder():
    outcomes = [outcome(DISPATCHES[0]), outcome(DISPATCHES[1], {4, 5}), outcome(DISPATCHES[2]), outcome(DISPATCHES[3])]
    line = report(outcomes=outcomes, reminder=ReminderResult(action="updated", number=13)).summary()
    assert line == ("dispatched 4 groups (9 items): 7 proved, 2 failed; 2 gated; reminder #13 updated"
                    " — 5 open issues, 3 open PRs remain")


def test_dry_run_says_would_and_nothing_written():
    line = report(dry_run=True, plan_after=None, reminder=ReminderResult(action="would-create")).summary()
    assert line.startswith("DRY RUN: would dispatch 4 groups (9 items); 2 gated; reminder would create")


def test_idle_and_stuck():
    idle = PassReport(repo="o/r", dry_run=False, attempt=0, plan=Plan(repo="o/r", idle=True)).summary()
    assert idle == "dispatched nothing; 0 gated — pipeline idle"
    stuck = PassReport(repo="o/r", dry_run=False, attempt=4, plan=Plan(repo="o/r", stuck=True, attempt=4),
                       reminder=ReminderResult(action="created", number=3, stuck_issue=9)).summary()
    assert stuck.startswith("STUCK: attempt 4 > 3, nothing dispatched") and "stuck issue #9" in stuck

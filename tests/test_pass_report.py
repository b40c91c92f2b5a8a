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


def test_why_failed_names_each_failed_groups_items_and_first_reason_in_one_line():
    broken = CoordinatorOutcome(kind="pr_review", phase="p2", items=[6, 7], ok=False,
                                failures=["agent exited with status 3\n[red]x[/red] \x1b[2J" + "y" * 300, "second"])
    outcomes = [outcome(DISPATCHES[0]), outcome(DISPATCHES[1], {5}), broken]
    line = report(outcomes=outcomes).why_failed()
    assert line.startswith("#5 failed (issue_to_pr p1 batch-02): no PR; "
                           "#6, #7 failed (pr_review p2 (no batch)): agent exited with status 3 [red]x[/red] [2Jy")
    assert line.endswith("y… (and 1 more)") and "\n" not in line and "\x1b" not in line
    assert report(outcomes=[outcome(DISPATCHES[0])]).why_failed() == ""
    stuck = PassReport(repo="o/r", dry_run=False, attempt=4, plan=Plan(repo="o/r", stuck=True, attempt=4),
                       reminder=ReminderResult(action="created", number=3, stuck_issue=9))
    assert stuck.why_failed() == "the pipeline is stuck: attempt 4 > 3, nothing dispatched, see issue #9"


def test_a_pass_asks_for_the_next_one_only_when_work_became_ready_during_it():
    ready = Plan(repo="o/r", dispatches=[dispatch("p1", "batch-01", 7)], open_issues=1, open_prs=1)
    assert report(plan_after=ready).more_work  # e.g. its review graded a PR down: a rework is ready
    assert not report().more_work  # nothing ready after it: the next GitHub event starts the next pass
    assert not report(plan_after=None).more_work  # it dispatched nothing: no re-plan
    assert not report(plan_after=ready, dry_run=True).more_work

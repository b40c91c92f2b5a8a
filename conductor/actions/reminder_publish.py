"""Seed step 7 on GitHub: one reminder while work remains, and the stuck issue.

No window without a reminder: the new reminder is created (or the kept one updated) first,
and only then are the conductor's older reminders closed. A failed write is retried, then
reported in the result (`action="failed"`, `error`); it never raises, so a pass whose
coordinators all proved is not turned into a failed pass by it, and when the new reminder
could not be written the old ones are left open.

A retried creation first looks whether the failed attempt landed after all (a POST whose
answer was lost), so a retry never makes a second reminder.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Literal, TypeVar

from conductor.core import constants, reminder
from conductor.core.attempts import unavailable_items
from conductor.core.config import PipelineConfig
from conductor.core.errors import ConductorError
from conductor.core.facts import PreviousRun, ReminderAction, ReminderResult
from conductor.core.models import Plan
from conductor.core.ports import GitHub
from conductor.core.verify import CoordinatorFailure, CoordinatorOutcome, FailedPR

log = logging.getLogger(__name__)
T = TypeVar("T")

Action = ReminderAction


def failures_of(outcomes: Iterable[CoordinatorOutcome]) -> tuple[list[CoordinatorFailure], list[FailedPR]]:
    """What the reminder lists: failed coordinators, and PRs graded D or F."""
    records: list[CoordinatorFailure] = []
    failed_prs: list[FailedPR] = []
    for outcome in outcomes:
        records.extend(outcome.failure_records())
        failed_prs.extend(outcome.failed_prs)
    return records, failed_prs


def _retrying(what: str, fn: Callable[[], T], *, attempts: int, pause: float,
              before_retry: Callable[[], T | None] | None = None) -> T:
    """`fn()`, tried `attempts` times; `before_retry` may find that a failed try landed."""
    for attempt in range(attempts):
        if attempt and before_retry is not None:
            found = before_retry()
            if found is not None:
                return found
        try:
            return fn()
        except ConductorError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("could not %s (%s); retrying", what, exc)
            time.sleep(pause * 2**attempt)
    raise AssertionError("unreachable")


def _ours_with(gh: GitHub, config: PipelineConfig, previous: PreviousRun, fp: str) -> int | None:
    """A reminder of ours, not known before, carrying this pass's fingerprint: a creation
    whose answer was lost."""
    login = gh.login().lower()
    for ref in gh.list_issues_labelled(config.reminder_label):
        state = reminder.parse_reminder(ref.body)
        if (ref.number not in previous.reminders and ref.author.lower() == login
                and state is not None and state.fingerprint == fp):
            return ref.number
    return None


def close_superseded(gh: GitHub, previous: PreviousRun, keep: int | None, comment: str,
                     dry_run: bool) -> list[int]:
    """Close the conductor's own reminders but `keep`; one that fails is left for the next pass."""
    closed = []
    for number in previous.reminders:
        if number == keep:
            continue
        if not dry_run:
            try:
                gh.close_with_comment(number, comment)
            except ConductorError as exc:
                log.warning("could not close reminder #%d (%s); the next pass will", number, exc)
                continue
        closed.append(number)
    return closed


def publish_reminder(gh: GitHub, plan: Plan, *, attempt: int, fingerprint: str,
                     outcomes: list[CoordinatorOutcome], previous: PreviousRun,
                     mode: Literal["recreate", "update"], config: PipelineConfig,
                     rerun_hint: str, now: datetime, dry_run: bool,
                     approvals: Mapping[int, str] | None = None, attempts: int = 3,
                     pause: float = 0.5) -> ReminderResult:
    """One reminder while work remains, written before older ones are closed; when idle,
    every reminder of the conductor's is closed with the idle message. Never raises."""
    try:
        return _publish(gh, plan, attempt=attempt, fingerprint=fingerprint, outcomes=outcomes,
                        previous=previous, mode=mode, config=config, rerun_hint=rerun_hint, now=now,
                        dry_run=dry_run, approvals=approvals, attempts=attempts, pause=pause)
    except ConductorError as exc:
        log.error("the reminder could not be written: %s", exc)
        return ReminderResult(action="failed", number=previous.newest, error=str(exc))


def _publish(gh: GitHub, plan: Plan, *, attempt: int, fingerprint: str,
             outcomes: list[CoordinatorOutcome], previous: PreviousRun, mode: str,
             config: PipelineConfig, rerun_hint: str, now: datetime, dry_run: bool,
             approvals: Mapping[int, str] | None, attempts: int, pause: float) -> ReminderResult:
    if plan.idle:
        newest = previous.newest
        if newest is not None and not dry_run:
            _retrying(f"close reminder #{newest}",
                      lambda: gh.close_with_comment(newest, constants.IDLE_MESSAGE, state_reason="completed"),
                      attempts=attempts, pause=pause)
        closed = close_superseded(gh, previous, newest, constants.STALE_REMINDER_COMMENT, dry_run)
        return ReminderResult(action="closed" if newest else "none", number=newest,
                              closed=closed + ([newest] if newest else []))
    failures, failed_prs = failures_of(outcomes)
    unavailable = unavailable_items(outcomes)
    body = reminder.render_reminder(plan, attempt=attempt, fingerprint=fingerprint, now=now,
                                    failures=failures, failed_prs=failed_prs, rerun_hint=rerun_hint,
                                    unavailable=unavailable,
                                    unavailable_passes=reminder.unavailable_streak(previous.state, bool(unavailable)),
                                    approval_label=config.approval_label, approvals=approvals)
    kept = previous.newest if mode == "update" else None
    if kept is not None:
        if not reminder.body_changed(previous.newest_body, body):
            action: Action = "unchanged"
        elif dry_run:
            action = "would-update"
        else:
            _retrying(f"update reminder #{kept}",
                      lambda: gh.edit_issue_body(kept, body, title=reminder.reminder_title(now)),
                      attempts=attempts, pause=pause)
            action = "updated"
        number: int | None = kept
    elif dry_run:
        action, number = "would-create", None
    else:
        number = _retrying(
            "create the reminder",
            lambda: gh.create_issue(reminder.reminder_title(now), body, [config.reminder_label]),
            attempts=attempts, pause=pause,
            before_retry=lambda: _ours_with(gh, config, previous, fingerprint))
        action = "created"
    closed = close_superseded(gh, previous, number, constants.STALE_REMINDER_COMMENT, dry_run)
    return ReminderResult(action=action, number=number, body=body, closed=closed)


def open_stuck_issue(gh: GitHub, plan: Plan, *, attempt: int, repo: str,
                     config: PipelineConfig, dry_run: bool,
                     previous: PreviousRun | None = None) -> int | None:
    """The seed's "Conductor stuck" issue: opened once, never a duplicate. Only a stuck
    issue the conductor itself wrote counts as already open (`PreviousRun.stuck_issues`)."""
    if previous is not None:
        if previous.stuck_issues:
            return previous.stuck_issues[0]
    else:
        login = gh.login().lower()
        for ref in gh.list_issues_labelled(constants.STUCK_LABEL):
            if ref.author.lower() == login and reminder.is_stuck_issue(ref.body):
                return ref.number
    if dry_run:
        return None
    body = reminder.render_stuck(attempt, repo, plan, reminder_label=config.reminder_label,
                                 approval_label=config.approval_label)
    return gh.create_issue(reminder.stuck_title(attempt), body, [constants.STUCK_LABEL])

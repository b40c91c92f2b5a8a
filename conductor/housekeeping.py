"""The conductor's own bookkeeping on GitHub: labels, stale state, approvals, reminders.

Each function does one seed step over the gateway and the pure core, and is safe to
repeat: it looks before it writes, so a pass killed anywhere can simply run again.
`dry_run` makes every function report what it would write and write nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal


from conductor.facts import PreviousRun, ReminderResult  # noqa: F401 (re-exported)
from conductor import constants, reminder
from conductor.config import PipelineConfig
from conductor.github_gateway import GitHubGateway
from conductor.models import PipelineState, Plan
from conductor.verify import CoordinatorFailure, CoordinatorOutcome, FailedPR

STUCK_LABEL_COLOR = "b60205"


def wanted_labels(config: PipelineConfig) -> dict[str, tuple[str, str]]:
    """Labels the conductor writes (seed: label pre-flight), name -> (color, description)."""
    return {
        config.reminder_label: (constants.REMINDER_LABEL_COLOR, constants.REMINDER_LABEL_DESCRIPTION),
        constants.STUCK_LABEL: (STUCK_LABEL_COLOR, "The conductor stopped: needs human intervention"),
        config.status_in_progress: ("fbca04", "An ISSUE_TO_PR agent is working on this"),
        config.status_pr_open: ("0e8a16", "A PR_REVIEW agent was dispatched for this PR"),
        config.approval_label: ("5319e7", "Approved for dispatch by a maintainer"),
    }


def label_preflight(gh: GitHubGateway, config: PipelineConfig, dry_run: bool) -> list[str]:
    """Create the conductor's labels that are missing; returns their names."""
    if dry_run:
        return []
    return gh.ensure_labels(wanted_labels(config))


def read_previous_run(gh: GitHubGateway, config: PipelineConfig) -> PreviousRun:
    refs = sorted(gh.list_issues_labelled(config.reminder_label), key=lambda r: r.number)
    if not refs:
        return PreviousRun()
    newest = refs[-1]
    return PreviousRun(reminders=[r.number for r in refs], newest=newest.number,
                       newest_body=newest.body, state=reminder.parse_reminder(newest.body))


def close_stale_reminders(gh: GitHubGateway, previous: PreviousRun, *, keep: int | None,
                          dry_run: bool) -> list[int]:
    """Close every open reminder but `keep`, with the seed's comment."""
    stale = [n for n in previous.reminders if n != keep]
    if not dry_run:
        for number in stale:
            gh.close_with_comment(number, constants.STALE_REMINDER_COMMENT)
    return stale


def release_stale_claims(gh: GitHubGateway, state: PipelineState, config: PipelineConfig,
                         dry_run: bool) -> dict[int, list[str]]:
    """Status labels the conductor's own user added are left by a pass that died:
    no coordinator of ours runs between passes, so take them off (the items become
    ready again). Labels added by anyone else (a person running an agent) are kept.

    Returns number -> the labels taken off; `Snapshot.without_claims` folds them in.
    The state given is not changed."""
    login = gh.login()
    released: dict[int, list[str]] = {}
    for item in [*state.issues, *state.pull_requests]:
        for label in (config.status_in_progress, config.status_pr_open):
            if label in item.labels and gh.last_labeler(item.number, label) == login:
                if not dry_run:
                    gh.set_labels(item.number, remove=[label], current=item.labels)
                released.setdefault(item.number, []).append(label)
    return released


def verified_approvals(gh: GitHubGateway, state: PipelineState, config: PipelineConfig) -> dict[int, str]:
    """Items carrying the approval label that a user with write access or more added.

    Returns number -> approver. A label added by anyone else approves nothing. Read for
    every open item carrying the label (whether the planner will gate it is decided after)."""
    approved: dict[int, str] = {}
    for item in [*state.issues, *state.pull_requests]:
        if config.approval_label not in item.labels:
            continue
        login = gh.last_labeler(item.number, config.approval_label)
        if login and gh.has_write_access(login):
            approved[item.number] = login
    return approved


def failures_of(outcomes: Iterable[CoordinatorOutcome]) -> tuple[list[CoordinatorFailure], list[FailedPR]]:
    """What the reminder lists: failed coordinators, and PRs graded D or F."""
    records: list[CoordinatorFailure] = []
    failed_prs: list[FailedPR] = []
    for outcome in outcomes:
        records.extend(outcome.failure_records())
        failed_prs.extend(outcome.failed_prs)
    return records, failed_prs


def publish_reminder(gh: GitHubGateway, plan: Plan, *, attempt: int, fingerprint: str,
                     outcomes: list[CoordinatorOutcome], previous: PreviousRun,
                     mode: Literal["recreate", "update"], config: PipelineConfig,
                     rerun_hint: str, now: datetime, dry_run: bool) -> ReminderResult:
    """Seed step 7: one reminder while work remains; none (and the idle message) when idle."""
    kept = previous.newest if mode == "update" else None
    if plan.idle:
        if kept is not None and not dry_run:
            gh.close_with_comment(kept, constants.IDLE_MESSAGE, state_reason="completed")
        return ReminderResult(action="closed" if kept else "none", number=kept)
    failures, failed_prs = failures_of(outcomes)
    body = reminder.render_reminder(plan, attempt=attempt, fingerprint=fingerprint, now=now,
                                    failures=failures, failed_prs=failed_prs, rerun_hint=rerun_hint,
                                    approval_label=config.approval_label)
    if kept is not None:
        if not reminder.body_changed(previous.newest_body, body):
            return ReminderResult(action="unchanged", number=kept, body=body)
        if dry_run:
            return ReminderResult(action="would-update", number=kept, body=body)
        gh.edit_issue_body(kept, body, title=reminder.reminder_title(now))
        return ReminderResult(action="updated", number=kept, body=body)
    if dry_run:
        return ReminderResult(action="would-create", body=body)
    number = gh.create_issue(reminder.reminder_title(now), body, [config.reminder_label])
    return ReminderResult(action="created", number=number, body=body)


def open_stuck_issue(gh: GitHubGateway, plan: Plan, *, attempt: int, repo: str,
                     config: PipelineConfig, dry_run: bool) -> int | None:
    """The seed's "Conductor stuck" issue: opened once, never a duplicate."""
    for ref in gh.list_issues_labelled(constants.STUCK_LABEL):
        if reminder.is_stuck_issue(ref.body):
            return ref.number
    if dry_run:
        return None
    body = reminder.render_stuck(attempt, repo, plan, reminder_label=config.reminder_label,
                                 approval_label=config.approval_label)
    return gh.create_issue(reminder.stuck_title(attempt), body, [constants.STUCK_LABEL])

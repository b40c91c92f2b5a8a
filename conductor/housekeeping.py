"""Transitional: the names `tasks/steps.py` still imports, until the flow is rewired.

The conductor's bookkeeping on GitHub now lives in one module per concern:
`label_preflight`, `previous_run` (reminders and stuck issues it owns, closing stale ones),
`claims`, `approvals`, `reminder_publish`, `finished_issues`. Delete this module when
`tasks/steps.py` imports those directly.
"""
from __future__ import annotations

from conductor.approvals import check_approvals
from conductor.config import PipelineConfig
from conductor.github_gateway import GitHubGateway
from conductor.label_preflight import STUCK_LABEL_COLOR, label_preflight, wanted_labels
from conductor.models import PipelineState, Plan
from conductor.previous_run import NotOurs, PreviousRun, close_stale_reminders, read_previous_run
from conductor.reminder_publish import ReminderResult, failures_of, open_stuck_issue, publish_reminder
from conductor.settings import RunSettings
from conductor.claims import release_stale_claims as _release, released_numbers, without_claims

__all__ = ["STUCK_LABEL_COLOR", "NotOurs", "PreviousRun", "ReminderResult", "close_stale_reminders",
           "failures_of", "label_preflight", "open_stuck_issue", "publish_reminder", "read_previous_run",
           "release_stale_claims", "verified_approvals", "wanted_labels"]


def release_stale_claims(gh: GitHubGateway, state: PipelineState, config: PipelineConfig,
                         dry_run: bool) -> list[int]:
    """The old flow plans from the snapshot it passed in: fold the facts into it."""
    released = _release(gh, state, config, dry_run)
    folded = without_claims(state, released)
    state.issues, state.pull_requests = folded.issues, folded.pull_requests
    return released_numbers(released)


def verified_approvals(gh: GitHubGateway, plan: Plan, state: PipelineState,
                       config: PipelineConfig) -> dict[int, str]:
    agent = gh.token_login(RunSettings().agent_token)
    gated = {g.number for g in plan.gated if not g.approved}
    approved = check_approvals(gh, state, config, not_people={gh.login(), agent or ""}).approved
    return {number: login for number, login in approved.items() if number in gated}

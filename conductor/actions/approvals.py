"""Approvals of gated items, only from people.

An approval label counts when the user who added it last (the issue's events) has write,
maintain or admin permission, is neither the conductor's own login nor the agent token's
login (an agent must not approve its own work; the conductor never approves for a
person), and, when `PipelineConfig.approvers` lists logins, is one of them. Everything
else approves nothing and is reported with its reason.
"""
from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from conductor.core.config import PipelineConfig
from conductor.core.facts import RefusedApproval
from conductor.core.ports import GitHub
from conductor.core.models import PipelineState


class ApprovalCheck(BaseModel):
    """Which gated items people approved (number -> approver) and which approvals did not count."""

    model_config = ConfigDict(frozen=True)

    approved: dict[int, str] = Field(default_factory=dict)
    refused: list[RefusedApproval] = Field(default_factory=list)


def refusal(login: str | None, *, not_people: set[str], approvers: list[str],
            has_write: bool | None) -> str | None:
    """Why an approval by `login` does not count, or None when it does. Pure.
    `has_write` None: not asked yet (the cheaper rules come first)."""
    if not login:
        return "nobody is recorded as having added the label"
    if login.lower() in not_people:
        return "added by the conductor's or the agent's own login, not by a person"
    if approvers and login.lower() not in {a.lower() for a in approvers}:
        return "not one of the configured approvers"
    if has_write is False:
        return "the user has no write, maintain or admin permission"
    return None


def check_approvals(gh: GitHub, state: PipelineState, config: PipelineConfig,
                    *, not_people: Iterable[str]) -> ApprovalCheck:
    """Approvals of every open item carrying the approval label (whether the planner gates
    it is decided after). `not_people`: the conductor's and the agent's logins."""
    excluded = {login.lower() for login in not_people if login}
    approved: dict[int, str] = {}
    refused: list[RefusedApproval] = []
    for item in [*state.issues, *state.pull_requests]:
        if config.approval_label not in item.labels:
            continue
        number = item.number
        login = gh.last_labeler(number, config.approval_label)
        reason = refusal(login, not_people=excluded, approvers=config.approvers, has_write=None)
        if reason is None:
            reason = refusal(login, not_people=excluded, approvers=config.approvers,
                             has_write=gh.has_write_access(login))
        if reason is None:
            approved[number] = login
        else:
            refused.append(RefusedApproval(number=number, login=login, reason=reason))
    return ApprovalCheck(approved=approved, refused=refused)


def with_approvals(state: PipelineState, check: ApprovalCheck) -> PipelineState:
    """A new snapshot whose `approved` holds exactly the verified approvals."""
    return state.model_copy(update={"approved": sorted(check.approved)})

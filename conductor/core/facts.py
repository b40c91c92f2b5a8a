"""Facts the pass's actions return (what they found and did), as plain models.

The actions live at the edges (`previous_run`, `claims`, `approvals`, `reminder_publish`, `finished_issues`, `worktrees`); what they return is data the
core and the report read, so it lives here, below both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from conductor.core import reminder
from conductor.core.models import PipelineState


class NotOurs(BaseModel):
    """An issue with one of the conductor's labels that the conductor did not write."""

    model_config = ConfigDict(frozen=True)

    number: int
    label: str
    author: str
    reason: str

    def line(self) -> str:
        return f"issue #{self.number} carries {self.label} but {self.reason}"


class PreviousRun(BaseModel):
    """What the last pass left behind: its own open reminders (and their anti-loop state)
    and stuck issues; and what carries those labels without being the conductor's."""

    model_config = ConfigDict(frozen=True)

    reminders: list[int] = Field(default_factory=list, description="The conductor's own open reminders.")
    newest: int | None = None
    newest_body: str | None = None
    state: reminder.ReminderState | None = None
    stuck_issues: list[int] = Field(default_factory=list, description="The conductor's own open stuck issues.")
    not_ours: list[NotOurs] = Field(default_factory=list)


class RefusedApproval(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    login: str | None
    reason: str

    def line(self) -> str:
        who = f"by {self.login}" if self.login else "(no labeler found)"
        return f"the approval of #{self.number} {who} does not count: {self.reason}"


class FinishedIssue(BaseModel):
    """An open pipeline issue a PR merged into the integration branch closes."""

    model_config = ConfigDict(frozen=True)

    issue: int
    pr: int

    @property
    def comment(self) -> str:
        return f"Fixed by PR #{self.pr}."


ReminderAction = Literal["created", "updated", "unchanged", "closed", "none", "would-create", "would-update",
                         "failed"]


class ReminderResult(BaseModel):
    action: ReminderAction
    number: int | None = None
    stuck_issue: int | None = None
    body: str | None = None
    closed: list[int] = Field(default_factory=list, description="Older reminders closed after it was written.")
    error: str | None = Field(None, description="Why the reminder could not be written (action failed).")


class OrphanCleanup(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    salvaged_to: Path | None = None
    removed: bool = False
    error: str | None = None  # set when the orphan was left in place


class Snapshot(BaseModel):
    """Everything one pass decides from, read once (`conductor.actions.snapshot.read_snapshot`):
    the open issues and PRs (with the verified approvals folded in as `state.approved`),
    the previous pass's reminders and marker, and who approved what."""

    model_config = ConfigDict(frozen=True)

    state: PipelineState
    previous: PreviousRun = Field(default_factory=lambda: PreviousRun())
    approvals: dict[int, str] = Field(default_factory=dict, description="Gated item -> the login that approved it.")
    refused_approvals: list[RefusedApproval] = Field(
        default_factory=list, description="Approval labels that approve nothing, and why.")
    finished: list[FinishedIssue] = Field(
        default_factory=list, description="Open issues a PR merged into the integration branch closes: "
        "left out of `state` (done for planning), closed as part of proof.")

    def without_claims(self, released: dict[int, list[str]]) -> "Snapshot":
        """The same snapshot after `release_stale_claims` took those labels off (a new object)."""
        return self.model_copy(update={"state": self.state.without_labels(released)})

"""Facts the pass's actions return (what they found and did), as plain models.

The actions live at the edges (`housekeeping`, `worktrees`); what they return is data the
core and the report read, so it lives here, below both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from conductor import reminder
from conductor.models import PipelineState


class PreviousRun(BaseModel):
    """What the last pass left behind: its open reminders and anti-loop state."""

    reminders: list[int] = Field(default_factory=list)
    newest: int | None = None
    newest_body: str | None = None
    state: reminder.ReminderState | None = None


class ReminderResult(BaseModel):
    action: Literal["created", "updated", "unchanged", "closed", "none", "would-create", "would-update"]
    number: int | None = None
    stuck_issue: int | None = None
    body: str | None = None


class OrphanCleanup(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    salvaged_to: Path | None = None
    removed: bool = False
    error: str | None = None  # set when the orphan was left in place


class Snapshot(BaseModel):
    """Everything one pass decides from, read once (`conductor.snapshot.read_snapshot`):
    the open issues and PRs (with the verified approvals folded in as `state.approved`),
    the previous pass's reminders and marker, and who approved what."""

    model_config = ConfigDict(frozen=True)

    state: PipelineState
    previous: PreviousRun = Field(default_factory=lambda: PreviousRun())
    approvals: dict[int, str] = Field(default_factory=dict, description="Gated item -> the login that approved it.")

    def without_claims(self, released: dict[int, list[str]]) -> "Snapshot":
        """The same snapshot after `release_stale_claims` took those labels off (a new object)."""
        return self.model_copy(update={"state": self.state.without_labels(released)})

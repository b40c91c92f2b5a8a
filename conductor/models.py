"""The data the conductor reasons about: a snapshot of GitHub, and the decision it makes.

Everything here is a plain pydantic model with no I/O. `PipelineState` is also the
`--state-file` format (`conductor snapshot` writes it, `conductor plan --state-file`
reads it), so every plan can be reproduced offline.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DispatchKind = Literal["issue_to_pr", "pr_review"]
ItemKind = Literal["issue", "pr"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


class Issue(_Model):
    """An open issue (never a pull request)."""

    number: int = Field(gt=0)
    title: str = ""
    labels: list[str] = Field(default_factory=list)
    body: str = ""


class PullRequest(_Model):
    """An open pull request."""

    number: int = Field(gt=0)
    title: str = ""
    labels: list[str] = Field(default_factory=list)
    body: str = ""
    draft: bool = False
    fork: bool = Field(False, description="The head branch lives in another repository.")
    head_ref: str = ""
    base_ref: str = ""
    files: list[str] = Field(
        default_factory=list,
        description="Changed paths. Only read for PRs that could be dispatched.",
    )


class PipelineState(_Model):
    """A snapshot of every *open* issue and PR of one repository."""

    repo: str = Field(description="OWNER/NAME")
    issues: list[Issue] = Field(default_factory=list)
    pull_requests: list[PullRequest] = Field(default_factory=list)
    approved: list[int] = Field(
        default_factory=list,
        description="Gated items whose approval label was verified (added by a user with "
        "write, maintain or admin permission). Filled by the approval check.",
    )
    api_requests: int = Field(0, description="GitHub requests made to read this snapshot.")


class Dispatch(_Model):
    """One coordinator to start: a (kind, phase, batch) group of items."""

    kind: DispatchKind
    phase: str
    batch: str | None = None
    items: list[int]
    merge_after: dict[int, int] = Field(
        default_factory=dict,
        description="PR number -> the PR whose review must end before this one starts (MERGE_AFTER).")
    depends_on: dict[int, list[int]] = Field(
        default_factory=dict, description="Issue number -> the issues it depends on (DEPENDS_ON).")
    attempts: dict[int, int] = Field(
        default_factory=dict, description="Item number -> passes that dispatched it without a "
        "proved result (ATTEMPT_N; 0 when absent).")


class GatedItem(_Model):
    number: int
    kind: ItemKind
    title: str = ""
    reason: str
    approved: bool = False


class Problem(_Model):
    number: int | None = None
    message: str


class PhaseStatus(_Model):
    """One row of the pipeline state table."""

    name: str
    open_issues: int = 0
    open_prs: int = 0
    state: Literal["complete", "active", "waiting"]
    waiting_on: list[str] = Field(default_factory=list)


class Plan(_Model):
    """The decision record of one pass: pure output of `planner.plan`."""

    repo: str
    active_phases: list[str] = Field(default_factory=list)
    dispatches: list[Dispatch] = Field(default_factory=list)
    gated: list[GatedItem] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    phases: list[PhaseStatus] = Field(default_factory=list)
    idle: bool = False
    stuck: bool = False
    attempt: int = 0
    open_issues: int = Field(0, description="Open issues that belong to a phase.")
    open_prs: int = Field(0, description="Open PRs that belong to a phase.")
    deferred: list[int] = Field(
        default_factory=list, description="Ready items left for a later pass by the caps."
    )
    api_requests: int = 0

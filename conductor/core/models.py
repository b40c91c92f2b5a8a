"""The data the conductor reasons about: a snapshot of GitHub, and the decision it makes.

Everything here is a plain pydantic model with no I/O. `PipelineState` is also the
`--state-file` format (`conductor snapshot` writes it, `conductor plan --state-file`
reads it), so every plan can be reproduced offline.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


DispatchKind = str  # a kind of the workflow registry (conductor.core.workflows)
ItemKind = Literal["issue", "pr"]
NumberKind = Literal["closed_issue", "open_issue", "pull_request", "missing"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


class Issue(_Model):
    """An open issue (never a pull request)."""

    number: int = Field(gt=0)
    title: str = ""
    labels: list[str] = Field(default_factory=list)
    body: str = ""
    created_at: datetime | None = Field(
        None, description="When it was opened; bounds the listing of merged PRs that finish issues.")
    native_blockers: int = Field(
        0, ge=0,
        description="GitHub's native issue dependencies: open issues blocking this one "
        "(`issue_dependencies_summary.blocked_by` of the issues listing).",
    )


class LoopReview(_Model):
    """The last review a pass proved on a PR that left it open graded C (unfixed), D or F: read
    back from the conductor's own `conductor:loop` marker on the PR (`conductor/core/loops.py`)."""

    grade: str = Field(description="C, D or F.")
    head: str = Field(description="The PR's head commit the review graded.")
    round: int = Field(1, ge=1, description="How many reviews graded this PR down so far.")
    pass_id: str = ""
    url: str = Field("", description="The conductor's comment carrying the review.")
    text: str = Field("", description="The reviewer's message, one line (untrusted).")


class LoopConflict(_Model):
    """A rebase leaf that could not resolve the PR's conflicts with its base, at `head`."""

    head: str
    paths: list[str] = Field(default_factory=list, description="The conflicting paths (untrusted).")
    pass_id: str = ""


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
    head_sha: str = Field("", description="The head commit (from the listing).")
    mergeable_state: str | None = Field(
        None, description="GitHub's `mergeable_state` (`dirty`: conflicts with its base); None until "
        "read, one request, for the PRs the plan would review.")
    review: LoopReview | None = Field(
        None, description="The last pass review that graded it down; read with its attempts.")
    conflict: LoopConflict | None = Field(
        None, description="The last rebase that could not resolve its conflicts; read with its attempts.")


class ItemAttempts(_Model):
    """The passes that dispatched one item without a proved result."""

    count: int = Field(0, ge=0)
    last_reason: str = ""
    passes: list[str] = Field(default_factory=list, description="Their pass ids, oldest first.")


class LeafSpend(_Model):
    """What one leaf's agent spent, as recorded on its item by the conductor (`conductor/core/spend.py`)."""

    pass_id: str
    number: int = Field(gt=0, description="The issue or PR the leaf worked on.")
    kind: DispatchKind = ""
    phase: str = ""
    batch: str | None = None
    cli: str = Field("", description="The agent CLI (its command's name).")
    model: str = ""
    cost_usd: float | None = Field(None, ge=0, description="None: the CLI reports no cost.")
    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    turns: int | None = Field(None, ge=0)
    seconds: float | None = Field(None, ge=0)
    at: datetime = Field(description="When the leaf ended (UTC): the day it counts for.")
    stopped: str = Field("", description="Why the conductor stopped the agent (its cap), if it did.")
    share_of: int = Field(1, ge=1, description="1: the leaf's own agent spent it; N: an even share of what one "
                          "batch agent (fan_out = \"coordinator-agent\") spent on N items.")

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ItemCap(_Model):
    """The most one leaf may spend: over the budgets that apply to its item, the least of its
    estimate plus an even share of what the budget has left after the pass's reservations."""

    usd: float | None = None
    tokens: int | None = None


class BudgetLine(_Model):
    """One budget (or one scope's spend with no budget) as a pass sees it."""

    scope: str = Field(description="`pipeline`, `phase phase-3`, `day 2026-12-03`.")
    unit: Literal["usd", "tokens"]
    spent: float = 0
    limit: float | None = None
    key: str = Field("", description="Its key under [budget] in conductor.toml (how to raise it).")

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.spent >= self.limit


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
    attempts: dict[int, ItemAttempts] = Field(
        default_factory=dict,
        description="Failed attempts per item, read back from the conductor's own attempt "
        "markers on GitHub; only for items the plan would dispatch.",
    )
    named: dict[int, NumberKind] = Field(
        default_factory=dict,
        description="What GitHub has under each number that an issue the plan would dispatch says it "
        "depends on and that is not an open item here: a closed issue (a met dependency), an issue "
        "opened since the listing, a pull request, or nothing (`missing`). Filled by the snapshot, "
        "one request per number; a number not here counts as a closed issue.",
    )
    spend: list[LeafSpend] = Field(
        default_factory=list, description="Every leaf's recorded spend: the spend markers of the "
        "conductor's own comments in the repository (one listing).")
    read_at: datetime | None = Field(
        None, description="When the snapshot was read (UTC): the day the per-day budget counts.")
    api_requests: int = Field(0, description="GitHub requests made to read this snapshot.")

    def without_labels(self, removed: dict[int, list[str]]) -> PipelineState:
        """A copy with `removed[number]` labels taken off those items; this state is unchanged."""
        def strip(item):
            gone = removed.get(item.number)
            if not gone:
                return item
            return item.model_copy(update={"labels": [lb for lb in item.labels if lb not in gone]})

        return self.model_copy(update={"issues": [strip(i) for i in self.issues],
                                       "pull_requests": [strip(p) for p in self.pull_requests]})


class Dispatch(_Model):
    """One coordinator to start: a (kind, phase, batch) group of items."""

    kind: DispatchKind
    phase: str
    batch: str | None = None
    items: list[int]
    merge_after: dict[int, int] = Field(
        default_factory=dict,
        description="PR -> the PR of this dispatch it waits for (its review starts when that "
        "one's ended; MERGE_AFTER).",
    )
    depends_on: dict[int, list[int]] = Field(
        default_factory=dict,
        description="Issue -> the issue/PR numbers its body says it depends on, all closed "
        "now (DEPENDS_ON); only issues that name some.",
    )
    attempts: dict[int, int] = Field(
        default_factory=dict,
        description="Item -> earlier passes that dispatched it without a proved result (ATTEMPT_N).",
    )
    caps: dict[int, ItemCap] = Field(
        default_factory=dict, description="Item -> the most its leaf may spend (only under a budget).")
    heads: dict[int, str] = Field(
        default_factory=dict,
        description="PR -> its head commit when planned (a rework or rebase must move it).")
    reviews: dict[int, LoopReview] = Field(
        default_factory=dict, description="PR -> the review a rework leaf addresses.")


class GatedItem(_Model):
    number: int
    kind: ItemKind
    title: str = ""
    reason: str
    approved: bool = False


class WaitingItem(_Model):
    """An item that would be ready but waits for others (its dependencies, a merge order)."""

    number: int
    kind: ItemKind
    title: str = ""
    blockers: list[int] = Field(default_factory=list, description="Open items it waits for.")
    native_blockers: int = Field(0, description="Open blockers in GitHub's native dependencies.")
    not_issues: list[str] = Field(
        default_factory=list,
        description="What its `Depends on` names that is no issue of this repository (`#9999 (does not "
        "exist)`, `#12 (a pull request)`, `other/repo#3 (another repository)`): held until that text "
        "is fixed.")
    reason: str
    budget: bool = Field(False, description="Held by a budget ([budget]), not by other items.")


class HeldItem(_Model):
    """An item held back after failing too often: needs a human."""

    number: int
    kind: ItemKind
    title: str = ""
    attempts: int
    last_reason: str = ""
    why: Literal["attempts", "review", "conflict"] = Field(
        "attempts", description="Failed attempts, review rounds used up (`conductor/core/loops.py`), or a "
        "rebase that could not resolve its conflicts.")
    grade: str | None = Field(None, description="A PR held after its review rounds: its last grade.")
    round: int | None = Field(None, description="A PR held after its review rounds: how many.")
    conflicts: list[str] = Field(
        default_factory=list, description="A PR held because its rebase failed: the conflicting paths.")


class OutsideItem(_Model):
    """An open issue with a batch label and no phase label (e.g. a regression issue)."""

    number: int
    title: str = ""
    batch: str
    placed_in: str | None = Field(
        None, description="The phase it was dispatched in (unphased_batch_issues = "
        "'lowest-active-phase'), else None: only reported.")


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
    waiting: list[WaitingItem] = Field(
        default_factory=list,
        description="Items not dispatched while others they depend on or merge after are open.")
    held_back: list[HeldItem] = Field(
        default_factory=list, description="Items that failed too often; they need a human.")
    outside_pipeline: list[OutsideItem] = Field(
        default_factory=list, description="Issues with a batch label and no phase label.")
    budgets: list[BudgetLine] = Field(
        default_factory=list, description="Spend so far per scope, against its budget if one is set.")
    api_requests: int = 0

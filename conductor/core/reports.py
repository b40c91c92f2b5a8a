"""The JSON report an agent writes at the end of a coordinator run (its artifact claims).

The agent finds the path in `REPORT_PATH` (task file) and `CONDUCTOR_REPORT_FILE`
(environment). Nothing in a report is trusted: `verify` checks every claim against GitHub.

The batch form names its kind and lists its claims, e.g. for the issue kind
`{"workflow": KIND, "status": "done", "issues": [{"issue": 12, "pr_url": "https://github.com/OWNER/REPO/pull/40"}]}`,
for the review kind `{"workflow": KIND, "status": "done", "reviews": [{"pr": 40, "grade": "A", "merged": true}]}`.
A leaf (one agent per item) writes the single-item form instead, with the leaf task file's
workflow name and its one claim's keys at the top: `{"workflow": NAME, "status": "done",
"issue": 12, "pr_url": ...}`; `conductor.core.workflows.read_report` reads either form, by kind.

`status` is "done" (work finished, claims listed), "blocked" (the agent could not
proceed; `message` says why, e.g. waiting for MERGE_AFTER) or "failed". A blocked
single-item report may leave out the claim (`pr_url`, or `grade`/`merged`).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Grade = Literal["A", "B", "C", "D", "F"]
FAILING_GRADES: frozenset[str] = frozenset({"D", "F"})
MERGING_GRADES: frozenset[str] = frozenset({"A", "B"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueClaim(_Strict):
    issue: int = Field(gt=0, description="The issue the agent implemented.")
    pr_url: str = Field(description="HTML URL of the pull request it opened for that issue.")


class ReviewClaim(_Strict):
    pr: int = Field(gt=0, description="The pull request the agent reviewed.")
    grade: Grade = Field(description="A-F; D and F mean rejected: the PR must stay open.")
    merged: bool = Field(description="Whether the agent merged the PR.")
    pr_url: str | None = Field(None, description="The PR's HTML URL (informative; `pr` is checked).")


class ReworkClaim(_Strict):
    pr: int = Field(gt=0, description="The pull request the agent reworked (pushed to its own branch).")


class RebaseClaim(_Strict):
    pr: int = Field(gt=0, description="The pull request the agent rebased (brought its base in).")
    conflicts: list[str] = Field(default_factory=list, max_length=100,
                                 description="Paths it could not resolve (with status failed).")


class AgentReport(_Strict):
    workflow: str = Field(description="The kind (conductor.core.workflows) the report is for.")
    status: Literal["done", "blocked", "failed"] = "done"
    message: str = Field("", max_length=4000)
    issues: list[IssueClaim] = Field(default_factory=list)
    reviews: list[ReviewClaim] = Field(default_factory=list)


class ReworkReport(AgentReport):
    reworks: list[ReworkClaim] = Field(default_factory=list)


class RebaseReport(AgentReport):
    rebases: list[RebaseClaim] = Field(default_factory=list)

"""The JSON report an agent writes at the end of a coordinator run (its artifact claims).

The agent finds the path in `REPORT_PATH` (task file) and `CONDUCTOR_REPORT_FILE`
(environment). Nothing in a report is trusted: `verify` checks every claim against GitHub.

issue_to_pr:
    {"workflow": "issue_to_pr", "status": "done",
     "issues": [{"issue": 12, "pr_url": "https://github.com/OWNER/REPO/pull/40"}]}

pr_review:
    {"workflow": "pr_review", "status": "done",
     "reviews": [{"pr": 40, "grade": "A", "merged": true}]}

`status` is "done" (work finished, claims listed), "blocked" (the agent could not
proceed; `message` says why) or "failed".
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Grade = Literal["A", "B", "C", "D", "F"]
FAILING_GRADES: frozenset[str] = frozenset({"D", "F"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueClaim(_Strict):
    issue: int = Field(gt=0, description="The issue the agent implemented.")
    pr_url: str = Field(description="HTML URL of the pull request it opened for that issue.")


class ReviewClaim(_Strict):
    pr: int = Field(gt=0, description="The pull request the agent reviewed.")
    grade: Grade = Field(description="A-F; D and F mean rejected: the PR must stay open.")
    merged: bool = Field(description="Whether the agent merged the PR.")


class AgentReport(_Strict):
    workflow: Literal["issue_to_pr", "pr_review"]
    status: Literal["done", "blocked", "failed"] = "done"
    message: str = Field("", max_length=4000)
    issues: list[IssueClaim] = Field(default_factory=list)
    reviews: list[ReviewClaim] = Field(default_factory=list)

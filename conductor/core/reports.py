"""The JSON report an agent writes at the end of a coordinator run (its artifact claims).

The agent finds the path in `REPORT_PATH` (task file) and `CONDUCTOR_REPORT_FILE`
(environment). Nothing in a report is trusted: `verify` checks every claim against GitHub.

issue_to_pr:
    {"workflow": "issue_to_pr", "status": "done",
     "issues": [{"issue": 12, "pr_url": "https://github.com/OWNER/REPO/pull/40"}]}

pr_review:
    {"workflow": "pr_review", "status": "done",
     "reviews": [{"pr": 40, "grade": "A", "merged": true}]}

A leaf (one agent per item) writes the single-item form instead, with the leaf
task file's workflow names; it is read as the batch form with one claim:

    {"workflow": "issue-to-pr", "status": "done", "issue": 12,
     "pr_url": "https://github.com/OWNER/REPO/pull/40"}
    {"workflow": "pr-review", "status": "done", "pr": 40, "grade": "A", "merged": true}

`status` is "done" (work finished, claims listed), "blocked" (the agent could not
proceed; `message` says why, e.g. waiting for MERGE_AFTER) or "failed". A blocked
single-item report may leave out the claim (`pr_url`, or `grade`/`merged`).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Grade = Literal["A", "B", "C", "D", "F"]
FAILING_GRADES: frozenset[str] = frozenset({"D", "F"})
MERGING_GRADES: frozenset[str] = frozenset({"A", "B"})
LEAF_WORKFLOWS = {"issue-to-pr": "issue_to_pr", "pr-review": "pr_review"}
_ITEM_KEYS = {"issue-to-pr": ("issue", "pr_url"), "pr-review": ("pr", "grade", "merged")}
_OPTIONAL_ITEM_KEYS = {"issue-to-pr": (), "pr-review": ("pr_url",)}


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


class AgentReport(_Strict):
    workflow: Literal["issue_to_pr", "pr_review"]
    status: Literal["done", "blocked", "failed"] = "done"
    message: str = Field("", max_length=4000)
    issues: list[IssueClaim] = Field(default_factory=list)
    reviews: list[ReviewClaim] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _single_item_form(cls, data: Any) -> Any:
        """{"workflow": "issue-to-pr", "issue": N, "pr_url": ...} -> the batch form, one claim."""
        if not isinstance(data, dict) or data.get("workflow") not in LEAF_WORKFLOWS:
            return data
        workflow = data["workflow"]
        keys = _ITEM_KEYS[workflow]
        if {"issues", "reviews"} & data.keys():
            raise ValueError(f"a {workflow} report names its one item with {', '.join(keys)}, "
                             "not issues/reviews lists")
        claim = {k: data[k] for k in keys if k in data}
        rest = {k: v for k, v in data.items() if k not in keys + _OPTIONAL_ITEM_KEYS[workflow]}
        out: dict[str, Any] = {**rest, "workflow": LEAF_WORKFLOWS[workflow]}
        blocked = data.get("status") in ("blocked", "failed")
        complete = all(k in claim for k in keys)
        if complete or (claim and not blocked):  # an incomplete claim is a schema error
            claim.update({k: data[k] for k in _OPTIONAL_ITEM_KEYS[workflow] if k in data})
            out["issues" if workflow == "issue-to-pr" else "reviews"] = [claim]
        return out


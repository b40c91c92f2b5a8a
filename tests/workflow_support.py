"""A test-only workflow kind, registered by the tests that use it and by no product module:
`triage-issue` takes the ready issues labelled `needs-triage`; its leaf's task file names the
label to add (TRIAGE_LABEL); its proof is that label on the issue, read back from GitHub.

Run as a script, this module is that kind's scripted agent: it reads its `.agent-task`, adds
the label through the GitHub API with its own token, comments the task-file keys it was given
on the issue (so a test can see them), and writes the single-item report.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from conductor.core import workflows
from conductor.core.models import Dispatch, Issue, PullRequest
from conductor.core.ports import GitHub
from conductor.core.reports import AgentReport
from conductor.core.taskfile import parse_key_values
from conductor.core.verify import CoordinatorOutcome, ItemResult, RunFacts, blocked_reason, check_run_and_report, \
    finish, new_outcome

NEEDS_TRIAGE, TRIAGED = "needs-triage", "triaged"
TASK_KEYS = ["WORKFLOW", "GH_REPO", "GITHUB_API_URL", "GH_HOST", "ISSUE_NUMBER", "ISSUE_TITLE", "TRIAGE_LABEL",
             "ATTEMPT_N", "REPORT_PATH", "PROMPT"]


class TriageClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issue: int = Field(gt=0)
    label: str


class TriageReport(AgentReport):
    triaged: list[TriageClaim] = Field(default_factory=list)


def task_values(t: workflows.LeafTask) -> dict[str, str | int]:
    return {"WORKFLOW": TRIAGE.name, "GH_REPO": t.repo, "ISSUE_NUMBER": t.number, "ISSUE_TITLE": t.item.title,
            "TRIAGE_LABEL": TRIAGED, "ATTEMPT_N": t.dispatch.attempts.get(t.number, 0),
            "REPORT_PATH": str(t.report_path), "PROMPT": str(t.prompt_path)}


def facts(gh: GitHub, dispatch: Dispatch, report: AgentReport | None, where: workflows.Proof) -> dict[int, list[str]]:
    return {n: gh.labels_of(n) for n in dispatch.items}


def verify(dispatch: Dispatch, report: AgentReport | None, run: RunFacts, labels: Mapping[int, Any],
           where: workflows.Proof) -> CoordinatorOutcome:
    """Each dispatched issue carries the label its agent claims to have added."""
    outcome = new_outcome(dispatch)
    report = check_run_and_report(outcome, dispatch, report, run, claims="triaged")
    claimed = {c.issue: c.label for c in report.triaged} if isinstance(report, TriageReport) else {}
    for number in dispatch.items:
        label = claimed.get(number)
        if label is not None and label == TRIAGED and label in labels.get(number, []):
            outcome.results.append(ItemResult(number=number, kind="issue", ok=True))
            continue
        reason = blocked_reason(report) or (f"issue #{number} does not carry {label!r}" if label
                                            else f"issue #{number}: no label claimed")
        outcome.results.append(ItemResult(number=number, kind="issue", ok=False, reason=reason))
        outcome.failures.append(reason)
    return finish(outcome)


def takes(item: Issue | PullRequest) -> bool:
    return NEEDS_TRIAGE in item.labels


TRIAGE = workflows.Workflow(
    kind="triage_issue", name="triage-issue", item="issue", label="triage", status="status_in_progress",
    prompt=Path(__file__).with_name("data") / "triage_issue.md", prompt_path="tests/data/triage_issue.md",
    repo_prompt=".cursor/TRIAGE_ISSUE.md", required_output="triage_labels", task_values=task_values,
    claims="triaged", item_keys=("issue", "label"),
    report_hint='{"workflow": "triage-issue", "status": "done", "issue": <ISSUE_NUMBER>, "label": "<label>"}',
    facts=facts, verify=verify, report_model=TriageReport, takes=takes)


def agent_command() -> list[str]:
    return [sys.executable, str(Path(__file__).resolve())]


def main() -> int:
    task = parse_key_values(Path(os.environ["CONDUCTOR_TASK_FILE"]).read_text(encoding="utf-8"))
    number = int(task["ISSUE_NUMBER"])
    with httpx.Client(base_url=os.environ["GITHUB_API_URL"], timeout=30,
                      headers={"Authorization": f"token {os.environ['GH_TOKEN']}"}) as gh:
        issue = f"/repos/{task['GH_REPO']}/issues/{number}"
        gh.post(f"{issue}/labels", json={"labels": [task["TRIAGE_LABEL"]]}).raise_for_status()
        gh.post(f"{issue}/comments", json={"body": "task keys: " + ",".join(task)}).raise_for_status()
    report = {"workflow": task["WORKFLOW"], "status": "done", "issue": number, "label": task["TRIAGE_LABEL"]}
    Path(os.environ["CONDUCTOR_REPORT_FILE"]).write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

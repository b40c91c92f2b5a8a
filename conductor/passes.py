"""What one conductor pass takes in (`PassInputs`) and gives back (`PassReport`).

`resolve_inputs` merges, in order of precedence, the flow's parameters, the seed's
`.agent-task` file, `conductor.toml` and the CONDUCTOR_* environment. It reads files
but talks to no service, and holds no secret: tokens stay in `GitHubSettings`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from conductor import constants, markdown
from conductor.config import PipelineConfig, load_pipeline_config
from conductor.errors import ConductorError
from conductor.housekeeping import ReminderResult
from conductor.models import Plan
from conductor.presets import get_preset
from conductor.render import HEADERS, plan_rows, summary_line
from conductor.settings import RunSettings
from conductor.taskfile import TaskFile, read_task_file
from conductor.verify import CoordinatorOutcome
from conductor.worktrees import OrphanCleanup


class PassInputs(BaseModel):
    repo: str
    api_url: str
    config: PipelineConfig
    task: TaskFile
    attempt_override: int | None = None
    dry_run: bool = False
    reminder_mode: Literal["recreate", "update"] = "recreate"
    rerun_hint: str = "conductor run"
    repo_path: Path
    worktree_root: Path
    salvage_dir: Path
    agent_command: list[str] = Field(default_factory=list)
    agent_timeout: float = 3600.0
    conductor_worktree: Path | None = None
    guard_wait: float = 120.0
    coordinator_deployments: dict[str, str] | None = Field(
        None, description="Set when coordinators run as deployments on a work pool.")

    @property
    def ignore_labels(self) -> list[str]:
        return [self.config.reminder_label, constants.STUCK_LABEL]

    @property
    def status_labels(self) -> list[str]:
        return [self.config.status_in_progress, self.config.status_pr_open]


def resolve_inputs(*, api_url: str, repo: str | None = None, task_file: str | None = None,
                   config_file: str | None = None, phase_filter: str | None = None,
                   max_issues_per_dispatch: int | None = None, max_prs_per_dispatch: int | None = None,
                   attempt: int | None = None, dry_run: bool = False, reminder_mode: str | None = None,
                   repo_path: str | None = None, agent_command: list[str] | None = None,
                   agent_timeout: float | None = None, settings: RunSettings | None = None) -> PassInputs:
    settings = settings or RunSettings()
    if repo_path:
        settings = settings.model_copy(update={"repo_path": Path(repo_path)})
    task = read_task_file(Path(task_file)) if task_file else TaskFile()
    updates: dict[str, object] = {}
    if phase_filter is not None:
        updates["PHASE_FILTER"] = phase_filter
    if max_issues_per_dispatch is not None:
        updates["MAX_ISSUES_PER_DISPATCH"] = max_issues_per_dispatch
    if max_prs_per_dispatch is not None:
        updates["MAX_PRS_PER_DISPATCH"] = max_prs_per_dispatch
    if repo or (not task.GH_REPO and settings.repo):
        updates["GH_REPO"] = repo or settings.repo
    if updates:
        task = TaskFile.model_validate({**task.model_dump(), **updates})
    if not task.GH_REPO:
        raise ConductorError("no repository given: pass --repo OWNER/NAME, set GH_REPO in the task file or CONDUCTOR_REPO")
    if attempt is None and task_file and task.ATTEMPT_N:
        attempt = task.ATTEMPT_N
    config = load_pipeline_config(Path(config_file) if config_file else None)
    command = list(agent_command or settings.agent_command)
    if not command and settings.agent_preset:
        command = get_preset(settings.agent_preset)
    root = settings.resolved_worktree_root()
    conductor_wt = None
    if task_file and Path(task_file).resolve().parent == root / "conductor":
        conductor_wt = root / "conductor"
    return PassInputs(
        repo=task.GH_REPO, api_url=api_url, config=config, task=task, attempt_override=attempt,
        dry_run=dry_run, reminder_mode=reminder_mode or settings.reminder_mode,
        rerun_hint=settings.rerun_hint, repo_path=settings.repo_path.resolve(), worktree_root=root,
        salvage_dir=settings.resolved_salvage_dir(), agent_command=command,
        agent_timeout=agent_timeout or settings.agent_timeout, conductor_worktree=conductor_wt,
        guard_wait=settings.guard_wait,
        coordinator_deployments=settings.coordinator_deployments if settings.dispatch == "deployment" else None,
    )


ITEM_HEADERS = ["Item", "Result", "PR", "Grade", "Merged", "Attempt", "Merge after", "Prompt", "Seconds"]


def item_rows(outcomes: list[CoordinatorOutcome]) -> list[list[str]]:
    """One row per dispatched issue or PR: its proved (or not) result, the prompt its leaf
    followed (path @ blob sha) and how long its leaf took."""
    rows = []
    for outcome in outcomes:
        for r in outcome.results:
            label = f"issue #{r.number}" if r.kind == "issue" else f"PR #{r.number}"
            result = "proved" if r.ok else ("blocked: " if r.blocked and not r.reason.startswith("blocked")
                                            else "") + (r.reason or "not proved")
            prompt = f"{r.prompt_path} @ {r.prompt_sha[:12]}" if r.prompt_path and r.prompt_sha else "-"
            took = f"{r.ended_at - r.started_at:.1f}" if r.started_at and r.ended_at else "-"
            rows.append([label, result, f"#{r.pr}" if r.pr else "-", r.grade or "-",
                         "yes" if r.merged else "no", str(r.attempt),
                         f"#{r.merge_after}" if r.merge_after else "-", prompt, took])
    return rows


class PassReport(BaseModel):
    """The flow's result: the pipeline state table and everything the pass did."""

    repo: str
    dry_run: bool
    attempt: int
    plan: Plan = Field(description="The plan this pass dispatched.")
    plan_after: Plan | None = Field(None, description="The pipeline after the coordinators ran.")
    approvals: dict[int, str] = Field(default_factory=dict)
    closed_reminders: list[int] = Field(default_factory=list)
    released_claims: list[int] = Field(default_factory=list)
    orphans: list[OrphanCleanup] = Field(default_factory=list)
    outcomes: list[CoordinatorOutcome] = Field(default_factory=list)
    reminder: ReminderResult | None = None
    api_requests: int = 0
    self_destructed: str | None = None

    @property
    def failures(self) -> list[str]:
        return [f"{o.kind} {o.phase} {o.batch or '(no batch)'}: {reason}"
                for o in self.outcomes for reason in o.failures]

    @property
    def final_plan(self) -> Plan:
        return self.plan_after or self.plan

    def table_rows(self) -> list[list[str]]:
        """The pipeline state table: the state after the pass, with what it dispatched."""
        return plan_rows(self.final_plan, self.plan.dispatches)

    def markdown(self) -> str:
        plan = self.final_plan
        lines = [f"# Conductor pass — {markdown.escape(self.repo)}",
                 "", markdown.escape(summary_line(plan)), "",
                 markdown.table(HEADERS, self.table_rows()), ""]
        if self.outcomes:
            lines += ["## Coordinators", "", markdown.table(
                ["Kind", "Phase", "Batch", "Items", "Result"],
                [[o.kind, o.phase, o.batch or "-", ", ".join(f"#{n}" for n in o.items),
                  "ok" if o.ok else "; ".join(o.failures)] for o in self.outcomes]), ""]
        items = [r for o in self.outcomes for r in o.results]
        if items:
            lines += ["## Items", "", markdown.table(ITEM_HEADERS, item_rows(self.outcomes)), ""]
        if self.reminder and self.reminder.number:
            lines.append(f"Reminder: #{self.reminder.number} ({self.reminder.action})")
        if self.reminder and self.reminder.stuck_issue:
            lines.append(f"Stuck issue: #{self.reminder.stuck_issue}")
        if plan.idle:
            lines.append(markdown.escape(constants.IDLE_MESSAGE.splitlines()[0]))
        return "\n".join(lines) + "\n"

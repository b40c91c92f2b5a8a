"""One coordinator run, step by step: claim → worktree → task file → agent → proof → labels → cleanup.

Each step is a plain function over the gateways (GitHub, git, agent process) so the
Prefect layer only wraps them. A coordinator never raises for its agent's failures:
a crash, a timeout or an unreadable report all become a verified `CoordinatorOutcome`
with reasons, so one coordinator never stops the others.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from conductor import worktrees
from conductor.agent_process import (
    AgentRun,
    agent_environment,
    agent_github_env,
    expand_command,
    run_agent,
    stop_orphan,
    write_askpass,
)
from conductor.constants import (
    PROMPT_ISSUE_TO_PR,
    PROMPT_PR_REVIEW,
    REPORT_FILE_NAME,
    TASK_FILE_NAME,
)
from conductor.github_gateway import GitHubGateway
from conductor.models import Dispatch
from conductor.reports import AgentReport
from conductor.settings import RunSettings
from conductor.taskfile import render_task_file
from conductor.usage import Usage, UsageMeter
from conductor.verify import CoordinatorOutcome, PullFacts, RunFacts, pr_numbers_to_check, verify

AGENT_PID_FILE = "conductor-agent.pid"
REQUIRED_OUTPUT = {"issue_to_pr": "pr_urls", "pr_review": "merge_status_and_grades"}
PROMPTS = {"issue_to_pr": PROMPT_ISSUE_TO_PR, "pr_review": PROMPT_PR_REVIEW}


class CoordinatorSpec(BaseModel):
    """Everything a coordinator needs besides its dispatch. Holds no secret."""

    repo: str
    api_url: str
    repo_path: Path | None = Field(
        None, description="Local clone; None on another machine: its own CONDUCTOR_REPO_PATH.")
    worktree_root: Path | None = Field(
        None, description="Worktree root; None on another machine: its own setting.")
    integration_branch: str
    default_branch: str
    agent_command: list[str]
    agent_timeout: float = Field(gt=0)
    agent_idle_timeout: float | None = Field(
        None, gt=0, description="Seconds without output before the agent is stopped; None: "
        "this machine's CONDUCTOR_AGENT_IDLE_TIMEOUT (RunSettings.agent_idle_timeout).")
    status_in_progress: str
    status_pr_open: str
    pass_id: str = Field(description="Short id of the conductor pass, to name worktrees uniquely.")


class Workspace(BaseModel):
    path: Path
    task_file: Path
    report_file: Path


class AgentResult(BaseModel):
    run: RunFacts
    report: AgentReport | None = None
    output_tail: list[str] = Field(default_factory=list)
    usage: Usage | None = Field(None, description="What the agent's CLI reported (conductor.usage).")


class CoordinatorResult(BaseModel):
    """What a coordinator flow returns: its verified outcome and the agent's raw result
    (so a pass that ran it on another machine can prove the claims again itself)."""

    outcome: CoordinatorOutcome
    agent: AgentResult | None = None


def localize(spec: CoordinatorSpec, settings: RunSettings) -> CoordinatorSpec:
    """Fill what the pass left to this machine (a coordinator deployment on another
    worker) from its own settings, and fetch its clone."""
    if spec.repo_path is not None and spec.worktree_root is not None:
        return spec
    local = spec.model_copy(update={"repo_path": settings.repo_path.resolve(),
                                    "worktree_root": settings.resolved_worktree_root()})
    worktrees.fetch(local.repo_path)
    return local


def status_label(dispatch: Dispatch, spec: CoordinatorSpec) -> str:
    return spec.status_in_progress if dispatch.kind == "issue_to_pr" else spec.status_pr_open


def worktree_name(dispatch: Dispatch, spec: CoordinatorSpec) -> str:
    return worktrees.worktree_dir_name(
        f"{dispatch.kind}-{dispatch.phase}-{dispatch.batch or 'nobatch'}-{spec.pass_id}")


def claim(gh: GitHubGateway, dispatch: Dispatch, spec: CoordinatorSpec) -> None:
    """Label every item first, so no other run dispatches it twice."""
    label = status_label(dispatch, spec)
    for number in dispatch.items:
        gh.set_labels(number, add=[label])


def task_values(dispatch: Dispatch, spec: CoordinatorSpec, report_file: Path) -> dict[str, str]:
    items = ",".join(str(n) for n in dispatch.items)
    return {
        "WORKFLOW": dispatch.kind,
        "GH_REPO": spec.repo,
        "GITHUB_API_URL": spec.api_url,
        "PHASE": dispatch.phase,
        "BATCH": dispatch.batch or "",
        ("ISSUES" if dispatch.kind == "issue_to_pr" else "PRS"): items,
        "PROMPT": PROMPTS[dispatch.kind],
        "INTEGRATION_BRANCH": spec.integration_branch,
        "REQUIRED_OUTPUT": REQUIRED_OUTPUT[dispatch.kind],
        "ON_BLOCK": "report",
        "REPORT_PATH": str(report_file),
    }


def prepare(dispatch: Dispatch, spec: CoordinatorSpec) -> Workspace:
    """A fresh worktree at the integration tip (fetched by the pass), with its `.agent-task`."""
    sha = worktrees.integration_tip(spec.repo_path, spec.integration_branch)
    path = worktrees.create_worktree(spec.repo_path, spec.worktree_root, worktree_name(dispatch, spec), sha)
    task_file = path / TASK_FILE_NAME
    report_file = path / REPORT_FILE_NAME
    task_file.write_text(render_task_file(task_values(dispatch, spec, report_file)), encoding="utf-8")
    return Workspace(path=path, task_file=task_file, report_file=report_file)


def run(dispatch: Dispatch, spec: CoordinatorSpec, workspace: Workspace, *,
        on_line: Callable[[str], None], agent_token: str | None, secrets: list[str]) -> AgentResult:
    """Run the agent (never through a shell) and read its report."""
    git_dir, git_common_dir = worktrees.git_dirs(workspace.path)
    argv = expand_command(spec.agent_command, {
        "task_file": str(workspace.task_file),
        "report_file": str(workspace.report_file),
        "worktree": str(workspace.path),
        "prompt_file": str(workspace.path / PROMPTS[dispatch.kind]),
        "workflow": dispatch.kind,
        "git_dir": str(git_dir),
        "git_common_dir": str(git_common_dir),
    })
    extra = {
        "CONDUCTOR_TASK_FILE": str(workspace.task_file),
        "CONDUCTOR_REPORT_FILE": str(workspace.report_file),
        "GH_REPO": spec.repo,
        "GITHUB_API_URL": spec.api_url,
        **agent_github_env(spec.api_url, agent_token,
                           askpass=write_askpass(git_dir) if agent_token else None),
    }
    idle = spec.agent_idle_timeout or RunSettings().agent_idle_timeout
    pid_file = git_dir / AGENT_PID_FILE
    meter = UsageMeter()

    def each_line(line: str) -> None:
        meter.feed(line)
        on_line(line)

    outcome: AgentRun = run_agent(argv, cwd=workspace.path, env=agent_environment(os.environ, extra),
                                  timeout=spec.agent_timeout, idle_timeout=idle, on_line=each_line,
                                  secrets=secrets, on_start=lambda pid: pid_file.write_text(str(pid)))
    report, error = read_report(workspace.report_file)
    facts = RunFacts(returncode=outcome.returncode, timed_out=outcome.timed_out,
                     timeout_s=spec.agent_timeout, idle_timed_out=outcome.idle_timed_out,
                     idle_timeout_s=idle, report_error=error)
    usage = meter.usage
    if usage is not None and usage.duration_ms is None:  # Codex reports no duration: ours
        usage = usage.model_copy(update={"duration_ms": int(outcome.duration_s * 1000)})
    return AgentResult(run=facts, report=report, output_tail=outcome.output_tail, usage=usage)


def read_report(path: Path) -> tuple[AgentReport | None, str | None]:
    """The agent's report, or why there is none (missing, not JSON, wrong shape)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "the agent wrote no report"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"the report could not be read ({type(exc).__name__})"
    try:
        return AgentReport.model_validate(json.loads(text)), None
    except json.JSONDecodeError as exc:
        return None, f"the report is not valid JSON (line {exc.lineno}: {exc.msg})"
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "report"
        return None, f"the report does not match the schema ({where}: {err.get('msg')})"


def prove(gh: GitHubGateway, dispatch: Dispatch, spec: CoordinatorSpec,
          result: AgentResult, html_base: str | None = None) -> CoordinatorOutcome:
    """Check every claim against GitHub (seed step 6)."""
    numbers = pr_numbers_to_check(dispatch, result.report, repo=spec.repo, html_base=html_base)
    if dispatch.kind == "pr_review":
        numbers = sorted(set(numbers) | set(dispatch.items))
    prs: dict[int, PullFacts] = {n: gh.pull_facts(n) for n in numbers}
    outcome = verify(dispatch, result.report, result.run, prs, repo=spec.repo,
                     default_branch=spec.default_branch, html_base=html_base)
    outcome.usage = result.usage
    return outcome


def prove_again(gh: GitHubGateway, dispatch: Dispatch, spec: CoordinatorSpec, result: CoordinatorResult,
                html_base: str | None = None) -> CoordinatorOutcome:
    """The pass's own proof of a coordinator's result: its agent's claims checked again against
    GitHub; a coordinator that broke before its agent could be judged keeps its failure."""
    if result.agent is None:
        return result.outcome
    return prove(gh, dispatch, spec, result.agent, html_base=html_base)


def release(gh: GitHubGateway, dispatch: Dispatch, spec: CoordinatorSpec) -> None:
    """Take the status label off every item: done items are now linked or merged,
    failed ones become ready again for the next pass (never stuck in progress)."""
    label = status_label(dispatch, spec)
    for number in dispatch.items:
        gh.set_labels(number, remove=[label])


def cleanup(spec: CoordinatorSpec, workspace: Workspace | None) -> None:
    if workspace is not None:
        worktrees.remove_worktree(spec.repo_path, workspace.path)


def stop_orphaned_agent(worktree: Path) -> bool:
    """Stop the agent a dead pass left running in `worktree` (seed: orphaned subagent)."""
    try:
        pid = int((worktrees.private_dir(worktree) / AGENT_PID_FILE).read_text().strip())
    except (OSError, ValueError, worktrees.WorktreeError):
        return False
    return stop_orphan(pid, worktree)


def failed_outcome(dispatch: Dispatch, reason: str) -> CoordinatorOutcome:
    """The outcome of a coordinator that broke before its agent could be judged."""
    return CoordinatorOutcome(kind=dispatch.kind, phase=dispatch.phase, batch=dispatch.batch,
                              items=list(dispatch.items), ok=False, failures=[reason])

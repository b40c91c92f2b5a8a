"""One coordinator run, step by step: claim → worktree → task file → agent → proof → labels → cleanup.

Each step is a plain function over the gateways (GitHub, git, agent process) so the
Prefect layer only wraps them. A coordinator never raises for its agent's failures:
a crash, a timeout or an unreadable report all become a verified `CoordinatorOutcome`
with reasons, so one coordinator never stops the others.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, ValidationError

from conductor.core import leaf as leaves
from conductor.core import loops, presets, spend, workflows
from conductor.edges import worktrees
from conductor.edges.agent_process import (
    AgentRun,
    agent_environment,
    agent_github_env,
    expand_command,
    run_agent,
    stop_orphan,
    write_askpass,
)
from conductor.core.constants import AGENT_REPORT_FILE_ENV, AGENT_TASK_FILE_ENV, REPORT_FILE_NAME, TASK_FILE_NAME
from conductor.core.github_urls import gh_host, gh_repo
from conductor.core.ports import GitHub
from conductor.core.models import Dispatch
from conductor.core.redaction import Redactor
from conductor.core.outages import outage
from conductor.core.reports import AgentReport
from conductor.core.settings import Settings, process_environment
from conductor.core.taskfile import render_task_file
from conductor.core.usage import Usage, UsageMeter
from conductor.core.usage import total as usage_total
from conductor.core.verify import CoordinatorOutcome, ItemResult, RunFacts

AGENT_PID_FILE = "conductor-agent.pid"
LEAF_OWNER_FILE = "conductor-leaf-owner.json"  # who made a leaf's worktree on a worker (`leaves.LeafOwner`)
LEAF_PROMPT_FILE = "conductor-prompt.md"
# What a leaf records on its item result besides the proof (kept when proved again elsewhere).
LEAF_RECORD_FIELDS = {"worktree", "prompt_path", "prompt_sha", "prompt_source", "attempt", "merge_after", "stage", "started_at",
                      "ended_at", "agent_started_at", "agent_ended_at", "github_unavailable"}


class PassContext(BaseModel):
    """What a coordinator needs besides its dispatch: the pass's settings (their secrets are
    excluded from every dump, so none travels with them) and three facts of the pass."""

    settings: Settings
    pass_id: str = Field(description="Short id of the conductor pass, to name worktrees uniquely.")
    default_branch: str = Field(description="The repository's default branch (no PR may come from it).")
    lock_url: str | None = Field(
        None, description="The repository's git URL when the pass holds its lock on GitHub: a "
        "coordinator on another worker reads the pass's lease there before each write (None: no lock).")


class Workspace(BaseModel):
    path: Path
    task_file: Path
    report_file: Path
    prompt_file: Path | None = None
    workflow: str | None = None


class AgentResult(BaseModel):
    run: RunFacts
    report: AgentReport | None = None
    output_tail: list[str] = Field(default_factory=list)
    usage: Usage | None = Field(None, description="What the agent's CLI reported (conductor.core.usage).")


class LeafResult(BaseModel):
    """What one leaf returns: its verified one-item outcome (whose result names the prompt,
    attempt and times) and its agent's raw result, to be proved again elsewhere if need be."""

    number: int
    outcome: CoordinatorOutcome
    agent: AgentResult | None = None
    problems: list[str] = Field(default_factory=list, description="Failures besides the claim "
                                "(its clean-up), kept when the claim is proved again.")


class CoordinatorResult(BaseModel):
    """What a coordinator flow returns: its verified outcome and the agent's raw result
    (so a pass that ran it on another machine can prove the claims again itself); in leaf
    mode, one `LeafResult` per item instead of one agent."""

    outcome: CoordinatorOutcome
    agent: AgentResult | None = None
    leaves: list[LeafResult] = Field(default_factory=list)


def on_worker(ctx: PassContext, local: Settings, clone_url: str, token: SecretStr | None) -> PassContext:
    """A leaf's context on a worker: this machine's own settings for where it works
    (`Settings.on_this_machine`) and its own clone of the repository (`RunSettings.clone_of`,
    made or fetched now with the worker's token)."""
    clone = worktrees.synced_clone(clone_url, local.run.clone_of(ctx.settings.run.repo),
                                   token.get_secret_value() if token else None)
    return ctx.model_copy(update={"settings": ctx.settings.on_this_machine(local.with_run(repo_path=clone))})


def status_label(dispatch: Dispatch, ctx: PassContext) -> str:
    return getattr(ctx.settings.pipeline, workflows.get(dispatch.kind).status)


def worktree_name(dispatch: Dispatch, ctx: PassContext) -> str:
    return worktrees.worktree_dir_name(
        f"{dispatch.kind}-{dispatch.phase}-{dispatch.batch or 'nobatch'}-{ctx.pass_id}")


def claim(gh: GitHub, dispatch: Dispatch, ctx: PassContext) -> None:
    """Label every item first, so no other run dispatches it twice."""
    label = status_label(dispatch, ctx)
    for number in dispatch.items:
        gh.set_labels(number, add=[label])


def task_values(dispatch: Dispatch, ctx: PassContext, report_file: Path) -> dict[str, str]:
    items = ",".join(str(n) for n in dispatch.items)
    workflow = workflows.get(dispatch.kind)
    return {
        "WORKFLOW": dispatch.kind,
        "GH_REPO": ctx.settings.run.repo,
        "GITHUB_API_URL": ctx.settings.github.api_url,
        "GH_HOST": gh_host(ctx.settings.github.api_url),
        "PHASE": dispatch.phase,
        "BATCH": dispatch.batch or "",
        ("ISSUES" if workflow.item == "issue" else "PRS"): items,
        "PROMPT": workflow.repo_prompt,
        "INTEGRATION_BRANCH": ctx.settings.pipeline.integration_branch,
        "REQUIRED_OUTPUT": workflow.required_output,
        "ON_BLOCK": "report",
        "REPORT_PATH": str(report_file),
    }


def prepare(dispatch: Dispatch, ctx: PassContext) -> Workspace:
    """A fresh worktree at the integration tip (fetched by the pass), with its `.agent-task`."""
    sha = worktrees.integration_tip(ctx.settings.run.repo_path, ctx.settings.pipeline.integration_branch)
    path = worktrees.create_worktree(ctx.settings.run.repo_path, ctx.settings.run.resolved_worktree_root(), worktree_name(dispatch, ctx), sha)
    task_file = path / TASK_FILE_NAME
    report_file = path / REPORT_FILE_NAME
    task_file.write_text(render_task_file(task_values(dispatch, ctx, report_file)), encoding="utf-8")
    return Workspace(path=path, task_file=task_file, report_file=report_file)


def run(dispatch: Dispatch, ctx: PassContext, workspace: Workspace, *,
        on_line: Callable[[str], None], agent_token: str | None, redactor: Redactor) -> AgentResult:
    """Run the agent (never through a shell) and read its report. Everything the agent says
    passes `redactor` (the agent-output door): its output lines, hence its usage, and its report.
    `ca_bundle` (CONDUCTOR_CA_BUNDLE): the CA the agent's clients trust. A leaf with a spend cap
    (`Dispatch.caps`; a batch agent: the sum of its items') gets it as a flag where its CLI takes
    one (`presets.cap_flags`), and is stopped once its streamed usage passes it either way."""
    git_dir, git_common_dir = worktrees.git_dirs(workspace.path)
    argv = expand_command(ctx.settings.run.agent_command, {
        "task_file": str(workspace.task_file),
        "report_file": str(workspace.report_file),
        "worktree": str(workspace.path),
        "prompt_file": str(workspace.prompt_file or workspace.path / workflows.get(dispatch.kind).repo_prompt),
        "workflow": workspace.workflow or dispatch.kind,
        "git_dir": str(git_dir),
        "git_common_dir": str(git_common_dir),
    })
    extra = {
        AGENT_TASK_FILE_ENV: str(workspace.task_file),
        AGENT_REPORT_FILE_ENV: str(workspace.report_file),
        "GH_REPO": gh_repo(ctx.settings.github.api_url, ctx.settings.run.repo),
        "GITHUB_API_URL": ctx.settings.github.api_url,
        **agent_github_env(ctx.settings.github.api_url, agent_token,
                           askpass=write_askpass(git_dir) if agent_token else None,
                           ca_bundle=ctx.settings.github.ca_bundle),
    }
    idle = ctx.settings.run.agent_idle_timeout
    pid_file = git_dir / AGENT_PID_FILE
    meter = UsageMeter()
    cap = spend.joint_cap([dispatch.caps.get(n) for n in dispatch.items])
    argv += presets.cap_flags(argv, cap)

    def each_line(line: str) -> None:
        meter.feed(line)
        on_line(line)

    def over_cap() -> str:
        usage = meter.usage
        return spend.over_cap(cap, usage.cost_usd, usage.input_tokens + usage.output_tokens,
                              len(dispatch.items)) if usage else ""

    outcome: AgentRun = run_agent(argv, cwd=workspace.path, env=agent_environment(process_environment(), extra),
                                  timeout=ctx.settings.run.agent_timeout, idle_timeout=idle, on_line=each_line,
                                  redactor=redactor, on_start=lambda pid: pid_file.write_text(str(pid)),
                                  stop_when=over_cap if cap is not None else None)
    report, error = read_report(workspace.report_file, redactor)
    facts = RunFacts(returncode=outcome.returncode, timed_out=outcome.timed_out,
                     timeout_s=ctx.settings.run.agent_timeout, idle_timed_out=outcome.idle_timed_out,
                     idle_timeout_s=idle, stopped=outcome.stopped, report_error=error)
    usage = meter.usage
    if usage is not None and usage.duration_ms is None:  # Codex reports no duration: ours
        usage = usage.model_copy(update={"duration_ms": int(outcome.duration_s * 1000)})
    if usage is not None and outcome.stopped:
        usage = usage.model_copy(update={"stopped": outcome.stopped})
    return AgentResult(run=facts, report=report, output_tail=outcome.output_tail, usage=usage)


def read_report(path: Path, redactor: Redactor) -> tuple[AgentReport | None, str | None]:
    """The agent's report, or why there is none (missing, not JSON, wrong shape), redacted:
    every string in it (keys too, so no schema error quotes a secret) is redacted once
    decoded, before it is validated or goes anywhere."""
    report, error = _parse_report(path, redactor)
    return report, redactor.text(error) if error else None


def _parse_report(path: Path, redactor: Redactor) -> tuple[AgentReport | None, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "the agent wrote no report"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"the report could not be read ({type(exc).__name__})"
    try:
        return workflows.read_report(redactor.data(json.loads(text))), None
    except json.JSONDecodeError as exc:
        return None, f"the report is not valid JSON (line {exc.lineno}: {exc.msg})"
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "report"
        return None, f"the report does not match the schema ({where}: {err.get('msg')})"
    except ValueError as exc:
        return None, f"the report does not match the schema ({exc})"


def prove(gh: GitHub, dispatch: Dispatch, ctx: PassContext,
          result: AgentResult, html_base: str | None = None) -> CoordinatorOutcome:
    """Check every claim against GitHub (seed step 6)."""
    outcome = workflows.prove(gh, dispatch, result.report, result.run,
                              workflows.Proof(ctx.settings.run.repo, ctx.default_branch, html_base))
    outcome.usage = result.usage
    return outcome


def prove_again(gh: GitHub, dispatch: Dispatch, ctx: PassContext, result: CoordinatorResult,
                html_base: str | None = None) -> CoordinatorOutcome:
    """The pass's own proof of a coordinator's result: its agent's claims checked again against
    GitHub; a coordinator that broke before its agent could be judged keeps its failure."""
    if result.leaves:
        return prove_leaves_again(gh, dispatch, ctx, result.leaves, html_base=html_base)
    if result.agent is None:
        return result.outcome
    return prove(gh, dispatch, ctx, result.agent, html_base=html_base)


def prove_leaves_again(gh: GitHub, dispatch: Dispatch, ctx: PassContext,
                       leaf_results: list[LeafResult], html_base: str | None = None) -> CoordinatorOutcome:
    """Every leaf's claim proved again, item by item, keeping what the leaf recorded (prompt,
    attempt, times) and any failure it met besides its claim (its clean-up, say)."""
    proved: list[LeafResult] = []
    for leaf in leaf_results:
        if leaf.number not in dispatch.items:
            continue  # a result for an item this coordinator was not given
        if leaf.agent is None:  # broke before its agent could be judged: keeps its failure
            proved.append(leaf)
            continue
        one = leaf_dispatch(dispatch, leaf.number)
        outcome = prove(gh, one, ctx, leaf.agent, html_base=html_base)
        recorded = leaf.outcome.results[0] if leaf.outcome.results else None
        keep = recorded.model_dump(include=LEAF_RECORD_FIELDS) if recorded else {}
        outcome = annotate_leaf(outcome, one, leaf.number, None, started=keep.get("started_at") or 0.0,
                                ended=keep.get("ended_at") or 0.0)
        outcome.results = [r.model_copy(update=keep) for r in outcome.results]
        noun = workflows.get(dispatch.kind).noun(leaf.number)
        outcome.failures += [f"{noun}: {p}" for p in leaf.problems]
        outcome.ok = outcome.ok and not leaf.problems
        proved.append(LeafResult(number=leaf.number, outcome=outcome, agent=leaf.agent, problems=leaf.problems))
    return combine(dispatch, proved)


def release(gh: GitHub, dispatch: Dispatch, ctx: PassContext) -> None:
    """Take the status label off every item: done items are now linked or merged,
    failed ones become ready again for the next pass (never stuck in progress)."""
    label = status_label(dispatch, ctx)
    for number in dispatch.items:
        gh.set_labels(number, remove=[label])


def cleanup(ctx: PassContext, workspace: Workspace | None, *, on_worker: bool = False) -> None:
    """Remove the worktree; on a worker, holding its clone's lock (`worktrees.clone_lock`)."""
    if workspace is not None:
        with worktrees.clone_lock(ctx.settings.run.repo_path) if on_worker else nullcontext():
            worktrees.remove_worktree(ctx.settings.run.repo_path, workspace.path)


def leaf_owner(worktree: Path) -> leaves.LeafOwner | None:
    """Who made a leaf's worktree on a worker (`prepare_leaf`), or None when nobody recorded it."""
    try:
        return leaves.LeafOwner.model_validate_json((worktrees.private_dir(worktree) / LEAF_OWNER_FILE).read_bytes())
    except (OSError, ValueError, worktrees.WorktreeError):
        return None


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


# ── leaves: one agent per item ─────────────────────────────────────────────────


class LeafWorkspace(Workspace):
    prompt: leaves.Prompt


def leaf_dispatch(dispatch: Dispatch, number: int) -> Dispatch:
    """The one-item dispatch a leaf is proved against."""
    return dispatch.model_copy(update={
        "items": [number],
        "merge_after": {k: v for k, v in dispatch.merge_after.items() if k == number},
        "depends_on": {k: v for k, v in dispatch.depends_on.items() if k == number},
        "attempts": {k: v for k, v in dispatch.attempts.items() if k == number},
        "caps": {k: v for k, v in dispatch.caps.items() if k == number},
        "heads": {k: v for k, v in dispatch.heads.items() if k == number},
        "reviews": {k: v for k, v in dispatch.reviews.items() if k == number},
    })


def claim_item(gh: GitHub, dispatch: Dispatch, ctx: PassContext, number: int) -> None:
    gh.set_labels(number, add=[status_label(dispatch, ctx)])


def release_item(gh: GitHub, dispatch: Dispatch, ctx: PassContext, number: int) -> None:
    gh.set_labels(number, remove=[status_label(dispatch, ctx)])


def prepare_leaf(gh: GitHub, dispatch: Dispatch, ctx: PassContext, number: int,
                 files: list[str] | None = None, owner: leaves.LeafOwner | None = None) -> LeafWorkspace:
    """The leaf's worktree at the integration tip, its prompt (read afresh from that tip)
    and its `.agent-task`. The item is read from GitHub now, not from the pass's snapshot.
    `owner`: a leaf on a worker, which makes its worktree and records itself in it in one
    hold of the clone's lock, so another leaf's salvage never finds it without its owner."""
    workflow = workflows.get(dispatch.kind)
    sha = worktrees.integration_tip(ctx.settings.run.repo_path, ctx.settings.pipeline.integration_branch)
    prompt = workflow.choose_prompt(ctx.settings.pipeline.prompts, lambda path: worktrees.read_blob(ctx.settings.run.repo_path, sha, path))
    item = gh.issue_item(number) if workflow.item == "issue" else gh.pull_item(number, files)
    with worktrees.clone_lock(ctx.settings.run.repo_path) if owner else nullcontext():
        path = worktrees.create_worktree(ctx.settings.run.repo_path, ctx.settings.run.resolved_worktree_root(),
                                         workflow.leaf_name(number, ctx.pass_id), sha)
        if owner:
            (worktrees.private_dir(path) / LEAF_OWNER_FILE).write_text(owner.model_dump_json(), encoding="utf-8")
    if prompt.source == "repository":
        prompt_file = path / prompt.path  # the same commit: the very file the tip holds
    else:
        prompt_file = worktrees.private_dir(path) / LEAF_PROMPT_FILE
        prompt_file.write_text(prompt.text, encoding="utf-8")
    task_file, report_file = path / TASK_FILE_NAME, path / REPORT_FILE_NAME
    values = workflow.leaf_task(workflows.LeafTask(
        repo=ctx.settings.run.repo, item=item, dispatch=leaf_dispatch(dispatch, number),
        base=ctx.settings.pipeline.integration_branch, worktree=path, report_path=report_file,
        prompt_path=prompt_file, migration_paths=ctx.settings.pipeline.migration_paths), ctx.settings.github.api_url)
    task_file.write_text(render_task_file(values), encoding="utf-8")
    return LeafWorkspace(path=path, task_file=task_file, report_file=report_file,
                         prompt_file=prompt_file, workflow=workflow.name, prompt=prompt)


def github_outage(agent: AgentResult | None, api_url: str, faults_met: int) -> str:
    """Why a failed leaf counts as "GitHub unavailable" (`conductor/core/outages.py`): its
    agent's output and report, and the 5xx/429 answers its own GitHub calls met."""
    lines = [*agent.output_tail, *([agent.report.message] if agent.report else [])] if agent else []
    return outage(lines, api_url, faults_met)


def annotate_leaf(outcome: CoordinatorOutcome, dispatch: Dispatch, number: int,
                  workspace: LeafWorkspace | None, *, started: float, ended: float,
                  agent_started: float | None = None, agent_ended: float | None = None,
                  github_unavailable: str = "") -> CoordinatorOutcome:
    """Name the leaf's prompt, attempt, merge order and times on its item result, and, when
    it was not proved, whether GitHub was failing (`github_unavailable`)."""
    workflow = workflows.get(dispatch.kind)
    noun = workflow.noun(number)
    outcome.failures = [r if r.startswith(noun) else f"{noun}: {r}" for r in outcome.failures]
    extra = {"attempt": dispatch.attempts.get(number, 0), "merge_after": dispatch.merge_after.get(number),
             "stage": loops.stage(dispatch.kind, dispatch.reviews.get(number)),
             "started_at": started, "ended_at": ended,
             "agent_started_at": agent_started, "agent_ended_at": agent_ended, "usage": outcome.usage}
    if workspace is not None:
        extra.update(prompt_path=workspace.prompt.path, prompt_sha=workspace.prompt.sha,
                     prompt_source=workspace.prompt.source, worktree=workspace.path.name)
    outcome.results = [r.model_copy(update=extra) for r in outcome.results]
    if not outcome.results:
        outcome.results = [ItemResult(number=number, kind=workflow.item, ok=False,
                                      reason="; ".join(outcome.failures), **extra)]
    if github_unavailable:
        outcome.results = [r if r.ok else r.model_copy(update={"github_unavailable": github_unavailable})
                           for r in outcome.results]
    return outcome


def combine(dispatch: Dispatch, leaf_results: list[LeafResult]) -> CoordinatorOutcome:
    """The coordinator's outcome: its leaves' outcomes side by side, in dispatch order."""
    by_number = {leaf.number: leaf.outcome for leaf in leaf_results}
    total = CoordinatorOutcome(kind=dispatch.kind, phase=dispatch.phase, batch=dispatch.batch,
                               items=list(dispatch.items))
    for number in dispatch.items:
        one = by_number.get(number)
        if one is None:
            one = failed_outcome(leaf_dispatch(dispatch, number), "leaf did not run")
        if not one.results:
            one.results = [ItemResult(number=number, kind=workflows.get(dispatch.kind).item, ok=False,
                                      reason="; ".join(one.failures) or "not proved")]
        total.failures += one.failures
        total.notes += one.notes
        total.verified_prs += one.verified_prs
        total.merged_prs += one.merged_prs
        total.failed_prs += one.failed_prs
        total.results += one.results
    total.usage = usage_total(leaf.outcome.usage for leaf in leaf_results if leaf.number in dispatch.items)
    total.verified_prs = sorted(set(total.verified_prs))
    total.merged_prs = sorted(set(total.merged_prs))
    total.ok = not total.failures and not total.blocked and len(total.results) == len(dispatch.items)
    return total


def now() -> float:
    return time.time()

"""The conductor's steps as Prefect tasks: thin wrappers around the core.

No task caches (NO_CACHE): every pass must see GitHub as it is now, and a task's
inputs (the gateway holds the token) are never hashed or stored.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from conductor import coordinator, housekeeping, markdown, planner, reminder, worktrees
from conductor.config import PipelineConfig
from conductor.github_gateway import GitHubGateway
from conductor.models import PipelineState, Plan
from conductor.passes import PassInputs, PassReport
from conductor.render import HEADERS, summary_line
from conductor.verify import CoordinatorOutcome

step = task(cache_policy=NO_CACHE, persist_result=False)


@step(name="label pre-flight")
def label_preflight(gh: GitHubGateway, config: PipelineConfig, dry_run: bool) -> list[str]:
    created = housekeeping.label_preflight(gh, config, dry_run)
    if created:
        get_run_logger().info("created labels: %s", ", ".join(created))
    return created


@step(name="anti-loop guard")
def anti_loop_guard(gh: GitHubGateway, config: PipelineConfig) -> housekeeping.PreviousRun:
    """Read what the last pass left: its reminders and the attempt counter in their marker."""
    previous = housekeeping.read_previous_run(gh, config)
    if previous.state:
        get_run_logger().info("previous pass: attempt %d, fingerprint %s",
                              previous.state.attempt, previous.state.fingerprint)
    return previous


@step(name="close stale reminders")
def close_stale_reminders(gh: GitHubGateway, previous: housekeeping.PreviousRun, mode: str,
                          dry_run: bool) -> list[int]:
    keep = previous.newest if mode == "update" else None
    return housekeeping.close_stale_reminders(gh, previous, keep=keep, dry_run=dry_run)


@step(name="clean orphaned worktrees")
def clean_orphaned_worktrees(inputs: PassInputs) -> list[worktrees.OrphanCleanup]:
    logger = get_run_logger()
    root = inputs.worktree_root
    if not root.exists():
        return []
    if inputs.dry_run:
        orphans = worktrees.find_orphans(inputs.repo_path, root, keep=set())
        return [worktrees.OrphanCleanup(path=p) for p in orphans]
    for orphan in worktrees.find_orphans(inputs.repo_path, root, keep=set()):
        if coordinator.stop_orphaned_agent(orphan):
            logger.warning("stopped the agent a dead pass left running in %s", orphan)
    results = worktrees.clean_orphans(inputs.repo_path, root, keep=set(), salvage_dir=inputs.salvage_dir)
    for r in results:
        if r.salvaged_to:
            logger.warning("orphaned worktree %s had unsaved work: saved to %s", r.path, r.salvaged_to)
        if r.error:
            logger.error("orphaned worktree %s: %s", r.path, r.error)
    return results


@step(name="read state")
def read_state(gh: GitHubGateway, inputs: PassInputs) -> PipelineState:
    state = gh.read_state(lambda s: planner.prs_needing_files(s, inputs.config, inputs.task))
    get_run_logger().info("%d open issues, %d open PRs, %d requests",
                          len(state.issues), len(state.pull_requests), state.api_requests)
    return state


@step(name="release stale claims")
def release_stale_claims(gh: GitHubGateway, state: PipelineState, config: PipelineConfig,
                         dry_run: bool) -> list[int]:
    return housekeeping.release_stale_claims(gh, state, config, dry_run)


@step(name="count attempts")
def count_attempts(state: PipelineState, inputs: PassInputs,
                   previous: housekeeping.PreviousRun) -> reminder.Progress:
    """ATTEMPT_N, read back from GitHub: +1 when the pipeline is where the last pass found it."""
    fp = reminder.fingerprint(state, ignore_labels=inputs.ignore_labels, status_labels=inputs.status_labels)
    attempt = reminder.next_attempt(previous.state, fp, inputs.attempt_override)
    if attempt:
        get_run_logger().warning("no progress since the last pass: ATTEMPT_N=%d", attempt)
    return reminder.Progress(fingerprint=fp, attempt=attempt)


@step(name="plan")
def make_plan(state: PipelineState, inputs: PassInputs, attempt: int) -> Plan:
    return planner.plan(state, inputs.config, inputs.task.model_copy(update={"ATTEMPT_N": attempt}))


@step(name="gates and approvals")
def gates_and_approvals(gh: GitHubGateway, plan: Plan, state: PipelineState,
                        inputs: PassInputs) -> tuple[Plan, dict[int, str]]:
    approved = housekeeping.verified_approvals(gh, plan, state, inputs.config)
    if not approved:
        return plan, {}
    get_run_logger().info("approved by a maintainer: %s",
                          ", ".join(f"#{n} ({who})" for n, who in sorted(approved.items())))
    state = state.model_copy(update={"approved": sorted(set(state.approved) | approved.keys())})
    return planner.plan(state, inputs.config, inputs.task.model_copy(update={"ATTEMPT_N": plan.attempt})), approved


@step(name="fetch the local clone")
def fetch_clone(inputs: PassInputs) -> None:
    worktrees.fetch(inputs.repo_path)


@step(name="reminder gate")
def reminder_gate(gh: GitHubGateway, inputs: PassInputs, plan_end: Plan, progress: reminder.Progress,
                  outcomes: list[CoordinatorOutcome],
                  previous: housekeeping.PreviousRun) -> housekeeping.ReminderResult:
    result = housekeeping.publish_reminder(
        gh, plan_end, attempt=progress.attempt, fingerprint=progress.fingerprint,
        outcomes=outcomes, previous=previous, mode=inputs.reminder_mode, config=inputs.config,
        rerun_hint=inputs.rerun_hint, now=datetime.now(UTC), dry_run=inputs.dry_run)
    if plan_end.stuck:
        result.stuck_issue = housekeeping.open_stuck_issue(
            gh, plan_end, attempt=progress.attempt, repo=inputs.repo, config=inputs.config,
            dry_run=inputs.dry_run)
    return result


@step(name="self-destruct")
def self_destruct(inputs: PassInputs) -> Path | None:
    """Seed step 8: remove the conductor's own worktree when the pass ran from it."""
    if inputs.conductor_worktree is None or inputs.dry_run:
        return None
    worktrees.remove_worktree(inputs.repo_path, inputs.conductor_worktree)
    return inputs.conductor_worktree


@step(name="report")
def report(pass_report: PassReport) -> PassReport:
    """The pipeline state table as artifacts (keyed, so the UI keeps their history)."""
    plan = pass_report.final_plan
    slug = _artifact_slug(plan.repo)
    rows = [dict(zip(HEADERS, row, strict=True)) for row in pass_report.table_rows()]
    create_table_artifact(key=f"pipeline-state-{slug}", table=rows,
                          description=markdown.escape(f"Pipeline state of {plan.repo}: {summary_line(plan)}"))
    create_markdown_artifact(key=f"conductor-summary-{slug}", markdown=pass_report.markdown(),
                             description=markdown.escape(f"Conductor pass over {plan.repo}"))
    return pass_report


def _artifact_slug(repo: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in repo.lower())
    return "-".join(part for part in cleaned.split("-") if part) or "repo"

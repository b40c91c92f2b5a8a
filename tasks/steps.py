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
from pydantic import SecretStr

from conductor.core import attempts, markdown, planner, presets, reminder, spend, webhooks
from conductor.actions import (claims, coordinator, finished_issues, item_attempts, label_preflight as preflight_labels,
                               loop_records, orphans, previous_run, reminder_publish)
from conductor.edges import worktrees
from conductor.core.config import PipelineConfig
from conductor.actions.coordinator import CoordinatorResult, PassContext
from conductor.core.errors import ConductorError
from conductor.core.facts import FinishedIssue, OrphanCleanup, ReminderResult, Snapshot
from conductor.core.errors import GitHubError
from conductor.core.ports import GitHub
from conductor.core.models import Dispatch, PipelineState, Plan
from conductor.core.passes import PassReport
from conductor.core.settings import Settings
from conductor.core.render import HEADERS
from conductor.actions.snapshot import read_snapshot
from conductor.core.verify import CoordinatorOutcome
from tasks.secrets import agent_token

step = task(cache_policy=NO_CACHE, persist_result=False)


@step(name="label pre-flight")
def label_preflight(gh: GitHub, config: PipelineConfig, dry_run: bool) -> list[str]:
    created = preflight_labels.label_preflight(gh, config, dry_run)
    if created:
        get_run_logger().info("created labels: %s", ", ".join(created))
    return created


@step(name="read state")
def read_state(gh: GitHub, settings: Settings, not_people: list[str]) -> Snapshot:
    """One snapshot: open issues and PRs, the last pass's reminders and marker, verified approvals."""
    snap = read_snapshot(gh, settings, not_people=not_people)
    logger = get_run_logger()
    logger.info("%d open issues, %d open PRs, %d requests", len(snap.state.issues),
                len(snap.state.pull_requests), snap.state.api_requests)
    if snap.previous.state:
        logger.info("previous pass: attempt %d, fingerprint %s", snap.previous.state.attempt,
                    snap.previous.state.fingerprint)
    if snap.approvals:
        logger.info("approved by a maintainer: %s",
                    ", ".join(f"#{n} ({who})" for n, who in sorted(snap.approvals.items())))
    for refused in snap.refused_approvals:
        logger.warning("%s", refused.line())
    for foreign in snap.previous.not_ours:
        logger.warning("%s", foreign.line())
    for done in snap.finished:
        logger.info("issue #%d is done: PR #%d merged into %s", done.issue, done.pr,
                    settings.pipeline.integration_branch)
    return snap


@step(name="who is not a person")
def not_people(gh: GitHub, settings: Settings) -> list[str]:
    """The conductor's own login and the agent token's: their approvals never count."""
    token = agent_token(settings.run)
    agent = gh.token_login(SecretStr(token)) if token else None
    return sorted({gh.login(), *([agent] if agent else [])})


@step(name="skip items claimed since the snapshot")
def skip_claimed(gh: GitHub, plan: Plan, config: PipelineConfig) -> tuple[Plan, list[int]]:
    """Re-read, then claim: an item another pass claimed after the snapshot is left out."""
    skipped = claims.claimed_since(gh, plan, config)
    if skipped:
        get_run_logger().warning("claimed by another pass since the snapshot, skipped: %s",
                                 ", ".join(f"#{n}" for n in skipped))
    return claims.without_items(plan, skipped), skipped


@step(name="close finished issues")
def close_finished(gh: GitHub, snap: Snapshot, dry_run: bool) -> list[FinishedIssue]:
    """Part of proof: issues a PR merged into the integration branch closes, closed with
    the canonical reviewer's comment "Fixed by PR #N."."""
    return finished_issues.close_finished(gh, snap.finished, dry_run)


@step(name="clean orphaned worktrees")
def clean_orphaned_worktrees(settings: Settings) -> list[OrphanCleanup]:
    run = settings.run
    return orphans.clean(run.repo_path, run.resolved_worktree_root(), salvage_dir=run.resolved_salvage_dir(),
                         dry_run=run.dry_run, log=get_run_logger())


@step(name="release stale claims")
def release_stale_claims(gh: GitHub, snap: Snapshot, config: PipelineConfig, dry_run: bool,
                         keep: list[int]) -> tuple[Snapshot, list[int]]:
    """Take off the status labels a killed pass left, but not those of items in `keep`
    (leaf runs on workers not ended yet); the snapshot returned has them off."""
    if keep:
        get_run_logger().warning("leaf runs on workers not ended yet, their claims stay: %s",
                                 ", ".join(f"#{n}" for n in keep))
    released = claims.release_stale_claims(gh, snap.state, config, dry_run, keep)
    return snap.without_claims(released), sorted(released)


@step(name="anti-loop guard")
def count_attempts(snap: Snapshot, settings: Settings) -> reminder.Progress:
    """ATTEMPT_N, read back from GitHub: +1 when the pipeline is where the last pass found it,
    unless nothing is dispatchable (the plan at ATTEMPT_N 0 has no dispatch): then it holds."""
    waiting = not planner.plan(snap.state, settings, 0).dispatches
    progress = reminder.progress(snap.state, snap.previous.state, ignore_labels=settings.pipeline.ignore_labels,
                                 status_labels=settings.pipeline.status_labels, override=settings.run.attempt,
                                 waiting=waiting)
    if progress.attempt:
        get_run_logger().warning("no progress since the last pass: ATTEMPT_N=%d", progress.attempt)
    return progress


@step(name="plan")
def make_plan(snap: Snapshot, settings: Settings, attempt: int) -> Plan:
    """The one planner entry, for the first plan and the re-plan after dispatch alike."""
    return planner.plan(snap.state, settings, attempt)


@step(name="fetch the local clone")
def fetch_clone(settings: Settings) -> None:
    worktrees.fetch(settings.run.repo_path, ca_bundle=settings.github.ca_bundle)


@step(name="verify artifact proof")
def verify_artifact_proof(gh: GitHub, dispatches: list[Dispatch], results: list[CoordinatorResult],
                          ctx: PassContext, html_base: str) -> list[CoordinatorOutcome]:
    """Seed step 6, by the pass itself: every claim of every coordinator checked against GitHub,
    whether the coordinator ran here or on another machine (its own verdict is not trusted)."""
    outcomes = [coordinator.prove_again(gh, d, ctx, r, html_base=html_base)
                for d, r in zip(dispatches, results, strict=True)]
    logger = get_run_logger()
    for o in outcomes:
        if o.ok:
            logger.info("proved: %s %s %s: %s", o.kind, o.phase, o.batch or "(no batch)",
                        ", ".join(f"#{n}" for n in o.items))
        else:
            logger.warning("not proved: %s %s %s: %s", o.kind, o.phase, o.batch or "(no batch)",
                           "; ".join(o.failures))
        for r in o.results:  # per item (one line per leaf)
            if r.blocked:
                logger.warning("  #%d blocked: %s", r.number, r.reason)
            elif not r.ok:
                logger.warning("  #%d not proved: %s", r.number, r.reason)
    return outcomes


@step(name="record failed attempts")
def record_failed_attempts(gh: GitHub, outcomes: list[CoordinatorOutcome], pass_id: str,
                           config: PipelineConfig) -> list[int]:
    """Per-item attempts, kept on GitHub: one comment from this pass on every dispatched item
    without a proved result (`conductor/core/attempts.py`), except those that failed while
    GitHub was failing (`conductor/core/outages.py`): those are retried, never charged. A comment that cannot be written is
    logged and skipped: the pass goes on to its reminder."""
    logger = get_run_logger()
    recorded = []
    for number, reason in attempts.failed_items(outcomes):
        try:
            if item_attempts.record_attempt(gh, number, pass_id, reason, limit=config.item_attempt_limit):
                recorded.append(number)
        except GitHubError as exc:
            logger.warning("could not record the failed attempt on #%d: %s", number, exc)
    if recorded:
        logger.warning("failed attempts recorded on %s", ", ".join(f"#{n}" for n in recorded))
    for number, why in attempts.unavailable_items(outcomes):
        logger.warning("#%d: GitHub unavailable (%s); retried next pass, no attempt charged", number, why)
    return recorded


@step(name="record spend")
def record_spend(gh: GitHub, outcomes: list[CoordinatorOutcome], pass_id: str, settings: Settings) -> list[int]:
    """Each leaf's spend, kept on GitHub: one comment from this pass on every dispatched item
    whose agent reported usage (`conductor/core/spend.py`). A comment that cannot be written
    is logged and skipped: the pass goes on to its reminder."""
    logger = get_run_logger()
    recorded = []
    cli = presets.cli_name(settings.run.agent_command)
    for leaf in spend.leaf_spends(outcomes, pass_id, cli, datetime.now(UTC)):
        try:
            if item_attempts.record_spend(gh, leaf):
                recorded.append(leaf.number)
        except GitHubError as exc:
            logger.warning("could not record the spend on #%d: %s", leaf.number, exc)
    if recorded:
        logger.info("spend recorded on %s", ", ".join(f"#{n}" for n in recorded))
    return recorded


@step(name="record review loops")
def record_loops(gh: GitHub, outcomes: list[CoordinatorOutcome], pass_id: str, config: PipelineConfig) -> list[int]:
    """The review loops, kept on GitHub (`conductor/core/loops.py`): one comment from this pass on
    every PR a review left open graded C, D or F (it goes to a rework leaf next), and on every PR
    whose rebase could not resolve its conflicts (held). Not written: logged, the pass goes on."""
    try:
        recorded = loop_records.record_loops(gh, outcomes, pass_id, config)
    except GitHubError as exc:
        get_run_logger().warning("could not record the review loops: %s", exc)
        return []
    if recorded:
        get_run_logger().info("review loops recorded on %s", ", ".join(f"PR #{n}" for n in recorded))
    return recorded


@step(name="label held PRs")
def label_held(gh: GitHub, plan: Plan, state: PipelineState, config: PipelineConfig, dry_run: bool) -> list[int]:
    """Put the needs-human label on the PRs the review loops hold."""
    if dry_run:
        return []
    try:
        return loop_records.label_held(gh, plan, state, config)
    except GitHubError as exc:
        get_run_logger().warning("could not label the held PRs: %s", exc)
        return []


@step(name="reminder gate")
def reminder_gate(gh: GitHub, settings: Settings, plan_end: Plan, progress: reminder.Progress,
                  outcomes: list[CoordinatorOutcome], approvals: dict[int, str]) -> ReminderResult:
    """Seed step 7. The reminders are read again just before writing (Renovate's rule): a
    person's edit or close during a long pass is seen, not overwritten from a stale copy.
    The new reminder is written first, then the older ones closed; a failed write is
    retried, then reported in the result: this step never fails the pass."""
    logger = get_run_logger()
    try:
        previous = previous_run.read_previous_run(gh, settings.pipeline)
    except ConductorError as exc:
        logger.error("could not read the reminders before writing (%s); none written", exc)
        return ReminderResult(action="failed", error=str(exc))
    result = reminder_publish.publish_reminder(
        gh, plan_end, attempt=progress.attempt, fingerprint=progress.fingerprint,
        outcomes=outcomes, previous=previous, mode=settings.run.reminder_mode, config=settings.pipeline,
        rerun_hint=settings.run.rerun_hint or "conductor run", now=datetime.now(UTC), dry_run=settings.run.dry_run,
        approvals=approvals)
    if result.error:
        logger.error("the reminder could not be written: %s", result.error)
    if plan_end.stuck:
        try:
            result.stuck_issue = reminder_publish.open_stuck_issue(
                gh, plan_end, attempt=progress.attempt, repo=settings.run.repo, config=settings.pipeline,
                dry_run=settings.run.dry_run, previous=previous)
        except ConductorError as exc:
            logger.error("could not open the stuck issue: %s", exc)
    return result


@step(name="self-destruct")
def self_destruct(settings: Settings) -> Path | None:
    """Seed step 8: remove the conductor's own worktree when the pass ran from it."""
    own = settings.run.conductor_worktree()
    if own is None or settings.run.dry_run:
        return None
    worktrees.remove_worktree(settings.run.repo_path, own)
    return own


@step(name="ask for the next pass")
def ask_for_next_pass(repo: str) -> None:
    """Work became ready during this pass (a review graded a PR down, a merge left one
    conflicting) and nothing GitHub reports will start a pass for it (the receiver ignores
    the conductor's own writes): one Prefect event on the repository, which the on-change
    deployment's triggers take like a GitHub event."""
    from prefect.events import emit_event

    emit_event(event=webhooks.MORE_WORK_EVENT, resource={"prefect.resource.id": webhooks.resource_id(repo),
                                                          "prefect.resource.name": repo})
    get_run_logger().info("work became ready during the pass: the next pass is asked for")


@step(name="report")
def report(pass_report: PassReport) -> PassReport:
    """The pipeline state table as artifacts (keyed, so the UI keeps their history)."""
    plan = pass_report.final_plan
    slug = _artifact_slug(plan.repo)
    rows = [dict(zip(HEADERS, row, strict=True)) for row in pass_report.table_rows()]
    create_table_artifact(key=f"pipeline-state-{slug}", table=rows,
                          description=markdown.escape(f"Pipeline state of {plan.repo}: {pass_report.summary()}; "
                                                      f"{pass_report.rate_points} rate-limit points spent"))
    create_markdown_artifact(key=f"conductor-summary-{slug}", markdown=pass_report.markdown(),
                             description=markdown.escape(f"Conductor pass over {plan.repo}"))
    return pass_report


def _artifact_slug(repo: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in repo.lower())
    return "-".join(part for part in cleaned.split("-") if part) or "repo"

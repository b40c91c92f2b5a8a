"""The conductor: one full pass over the pipeline, as the seed's steps in order."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Cancelled, Completed, Failed, State

from conductor.actions.coordinator import PassContext
from conductor.actions.orphans import stop_agents_of_pass
from conductor.edges.git_lock import LockError, holder_name
from conductor.core.ports import GitHub
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.github_urls import web_url_of
from conductor.core.models import Plan
from conductor.core.passlock import Lease, LockLost
from conductor.core.passes import PassReport, approved_gates
from conductor.core.settings import PassParameters, Settings, load_settings
from conductor.core.verify import CoordinatorOutcome
from flows.coordinators import dispatch_all, live_leaf_items
from tasks import steps
from tasks.guard import PassSlot, fence_of, one_pass_on_github, pass_slot
from tasks.secrets import with_token


def _pass_run_name() -> str:
    """`OWNER/NAME 2026-12-02 16:00Z`: the pass's repository and start, in the UI's run lists."""
    from prefect.runtime import flow_run

    return f"{_repo_of(dict(flow_run.parameters or {})) or 'conductor'} {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}"


def _repo_of(parameters: dict[str, Any]) -> str | None:
    """The repository a pass will run on, decided as the pass decides it (None if unknown yet)."""
    try:
        params = PassParameters(**{k: v for k, v in parameters.items() if k in PassParameters.model_fields})
        return params.repo or load_settings(params).run.repo or None
    except Exception:  # noqa: BLE001 - a bad input fails the pass itself, with its own message
        return None


def _rerun_hint(params: PassParameters, repo: str) -> str:
    """What the reminder asks a person to run next: how this pass was started."""
    if params.rerun_hint:
        return params.rerun_hint
    from prefect.runtime import deployment, flow_run

    if deployment.name:
        return f"prefect deployment run '{flow_run.flow_name}/{deployment.name}' --param repo={repo}"
    return f"conductor run --repo {repo}"


@flow(name="conductor", flow_run_name=_pass_run_name, log_prints=True, persist_result=False)
def conductor(
    repo: str | None = None,
    phase_filter: str | None = None,
    max_issues_per_dispatch: int | None = None,
    max_prs_per_dispatch: int | None = None,
    attempt: int | None = None,
    dry_run: bool = False,
    reminder_mode: str | None = None,
    task_file: str | None = None,
    config_file: str | None = None,
    agent_command: list[str] | None = None,
    agent_preset: str | None = None,
    agent_timeout: float | None = None,
    rerun_hint: str | None = None,
    event_id: str | None = None,
    repo_path: str | None = None,
    github_url: str | None = None,
) -> State:
    """One pass. The parameters are `conductor.core.settings.PassParameters`, field for field
    (a test holds them equal); the GitHub token is never one: it comes from the environment
    or a Prefect block."""
    params = PassParameters(
        repo=repo, phase_filter=phase_filter, max_issues_per_dispatch=max_issues_per_dispatch,
        max_prs_per_dispatch=max_prs_per_dispatch, attempt=attempt, dry_run=dry_run,
        reminder_mode=reminder_mode, task_file=task_file, config_file=config_file, repo_path=repo_path,
        github_url=github_url, agent_command=agent_command, agent_preset=agent_preset,
        agent_timeout=agent_timeout, rerun_hint=rerun_hint, event_id=event_id)
    settings = load_settings(params).require_repo()  # once, at the top of the pass
    settings = settings.with_run(rerun_hint=_rerun_hint(params, settings.run.repo))
    settings = settings.model_copy(update={"github": with_token(settings.github)})
    logger = get_run_logger()
    with pass_slot(settings.run.repo, wait_seconds=settings.run.guard_wait, chain=settings.run.chain_passes) as slot:
        if slot.why_not:
            logger.warning(slot.why_not)
            return Cancelled(message=slot.why_not)
        state = _one_pass(settings, slot)
        while state.is_completed() and slot.again(_more_work(state)):
            state = _one_pass(settings, slot)
    if _more_work(state):  # no next pass in this run: the event asks for one
        steps.ask_for_next_pass(settings.run.repo)
    if slot.made > 1:
        state.message = f"pass {slot.made} of this run: {state.message}"
    return state


def _more_work(state: State) -> bool:
    report = state.data if isinstance(state.data, PassReport) else None
    return bool(report and report.more_work)


def _log_plan(logger: Any, plan: Plan, dry_run: bool) -> None:
    """Each decision of the plan, one log line each (the pass's logs in the Prefect UI)."""
    verb = "would dispatch" if dry_run else "dispatch"
    for d in plan.dispatches:
        logger.info("%s %s %s %s: %s", verb, d.kind, d.phase, d.batch or "(no batch)",
                    ", ".join(f"#{n}" for n in d.items))
    for g in plan.gated:
        logger.info("gated #%d: %s%s", g.number, g.reason, " (approved)" if g.approved else "")
    for p in plan.problems:
        logger.warning("problem #%d: %s", p.number, p.message)
    if plan.stuck:
        logger.error("stuck: attempt %d, nothing dispatched", plan.attempt)
    elif not plan.dispatches:
        logger.info("nothing to dispatch")


def _one_pass(settings: Settings, slot: PassSlot) -> State:
    """The pass lock on GitHub first (no dry run writes it), then the pass itself, every write
    of it fenced by the lock: once another pass took it over, the pass stops its agents,
    writes nothing more and ends Cancelled."""
    pass_id = uuid.uuid4().hex[:8]
    run = settings.run
    with GitHubGateway(settings.github, run.repo, fence=fence_of(pass_id)) as gh:
        if run.dry_run or not run.lock:
            return _steps(gh, settings, pass_id, slot)
        url, login = gh.clone_url(), gh.login()
        try:
            with one_pass_on_github(url, settings.github.token, pass_id=pass_id, holder=holder_name(login),
                                    lease_seconds=run.lock_lease_seconds(), margin=run.lock_margin_seconds(),
                                    on_lost=lambda: stop_agents_of_pass(run.resolved_worktree_root(), pass_id),
                                    ca_bundle=settings.github.ca_bundle) as lock:
                if not lock.held:
                    other = lock.other
                    who = (f"{other.holder}, pass {other.pass_id}, until {other.expires_at:%H:%M:%S} UTC"
                           if other else "unknown")
                    message = (f"another conductor pass over {settings.run.repo} holds the lock on GitHub "
                               f"({who}); this one dispatched nothing")
                    get_run_logger().warning(message)
                    return Cancelled(message=message)
                try:
                    state = _steps(gh, settings, pass_id, slot, lock_url=url)
                except LockLost as exc:
                    return _taken_over(settings.run.repo, exc.other)
                return _taken_over(settings.run.repo, lock.other) if lock.lost else state
        except LockError as exc:  # raised only while acquiring: nothing was dispatched
            return Failed(message=f"cannot take the conductor lock on GitHub ({exc}); nothing dispatched")


def _taken_over(repo: str, other: Lease | None) -> State:
    """The end of a pass whose lock another pass took over (it was paused past its lease)."""
    who = f"{other.holder}, pass {other.pass_id}" if other else "nobody now"
    message = (f"the conductor lock on GitHub over {repo} was taken over ({who}); this pass "
               "stopped its agents and wrote nothing more")
    get_run_logger().error(message)
    return Cancelled(message=message)


def _steps(gh: GitHub, settings: Settings, pass_id: str, slot: PassSlot, lock_url: str | None = None) -> State:
    """Snapshot → decide → act → record, in the seed's order of steps."""
    logger = get_run_logger()
    steps.label_preflight(gh, settings.pipeline, settings.run.dry_run)
    not_people = steps.not_people(gh, settings)
    snapshot = steps.read_state(gh, settings, not_people)
    orphans = steps.clean_orphaned_worktrees(settings)
    live = live_leaf_items(settings.run.repo) if settings.run.dispatch == "deployment" else []
    snapshot, released = steps.release_stale_claims(gh, snapshot, settings.pipeline, settings.run.dry_run, live)
    progress = steps.count_attempts(snapshot, settings)
    plan = steps.make_plan(snapshot, settings, progress.attempt)
    _log_plan(logger, plan, settings.run.dry_run)

    outcomes: list[CoordinatorOutcome] = []
    skipped: list[int] = []
    if plan.dispatches and not settings.run.dry_run:
        plan, skipped = steps.skip_claimed(gh, plan, settings.pipeline)
    if plan.dispatches and not settings.run.dry_run:
        steps.fetch_clone(settings)
        ctx = PassContext(settings=settings, pass_id=pass_id, default_branch=gh.default_branch(), lock_url=lock_url)
        results = dispatch_all(plan.dispatches, ctx)
        outcomes = steps.verify_artifact_proof(gh, plan.dispatches, results, ctx,
                                               html_base=web_url_of(settings.github.api_url))
        steps.record_failed_attempts(gh, outcomes, pass_id, settings.pipeline)
        steps.record_spend(gh, outcomes, pass_id, settings)
        steps.record_loops(gh, outcomes, pass_id, settings.pipeline)
    finished = steps.close_finished(gh, snapshot, settings.run.dry_run) if snapshot.finished else []

    # The pipeline after the coordinators: a new snapshot, planned the same way; it covers
    # every event received before it (the runs queued for them are coalesced into this pass).
    if outcomes:
        slot.reading()
    after_snapshot = steps.read_state(gh, settings, not_people) if outcomes else snapshot
    after = steps.make_plan(after_snapshot, settings, progress.attempt) if outcomes else plan
    steps.label_held(gh, after, after_snapshot.state, settings.pipeline, settings.run.dry_run)
    approvals = approved_gates(plan, snapshot)
    result = steps.reminder_gate(gh, settings, after, progress, outcomes,
                                 approved_gates(after, after_snapshot) if outcomes else approvals)
    destroyed = steps.self_destruct(settings)
    report = steps.report(PassReport(
        repo=settings.run.repo, dry_run=settings.run.dry_run, attempt=plan.attempt, plan=plan,
        plan_after=after if outcomes else None, approvals=approvals,
        closed_reminders=result.closed, released_claims=released, orphans=orphans, outcomes=outcomes,
        reminder=result, api_requests=gh.requests_made, rate_points=gh.rate_points, self_destructed=str(destroyed) if destroyed else None,
        not_ours=[n.line() for n in snapshot.previous.not_ours],
        refused_approvals=[r.line() for r in snapshot.refused_approvals],
        finished=finished, skipped_claimed=skipped))

    if plan.stuck:
        return Failed(message=f"Conductor stuck: ATTEMPT_N={plan.attempt} — needs human intervention "
                              f"(issue #{result.stuck_issue})", data=report)
    if result.number:
        logger.info("reminder #%d %s", result.number, result.action)
    if plan.idle:
        logger.info("Pipeline is fully idle. No open issues or PRs with phase labels.")
    note = f"; reminder not written: {result.error}" if result.error else ""
    summary = report.summary() + note
    logger.info("%s", summary)
    if report.failures:  # the pass itself worked; its run says what went wrong in its state's name
        return Completed(name="Completed with failures", message=summary, data=report)
    return Completed(message=summary, data=report)

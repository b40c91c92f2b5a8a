"""The conductor: one full pass over the pipeline, as the seed's steps in order."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Cancelled, Completed, Failed, State

from conductor.actions.coordinator import CoordinatorSpec
from conductor.actions.orphans import stop_agents_of_pass
from conductor.edges.git_lock import LockError, holder_name
from conductor.core.ports import GitHub
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.github_urls import web_url_of
from conductor.core.models import Plan
from conductor.core.parameters import PassParameters
from conductor.core.passlock import Lease, LockLost
from conductor.core.passes import PassInputs, PassReport, approved_gates, pass_inputs
from conductor.core.settings import GitHubSettings, load_settings
from conductor.core.verify import CoordinatorOutcome
from flows.coordinators import dispatch_all
from tasks import steps
from tasks.guard import fence_of, one_pass_on_github, pass_slot
from tasks.secrets import with_token


def _pass_run_name() -> str:
    """`OWNER/NAME 2026-12-02 16:00Z`: the pass's repository and start, in the UI's run lists."""
    from prefect.runtime import flow_run

    return f"{_repo_of(dict(flow_run.parameters or {})) or 'conductor'} {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}"


def _repo_of(parameters: dict[str, Any]) -> str | None:
    """The repository a pass will run on, decided as the pass decides it (None if unknown yet)."""
    try:
        params = PassParameters(**{k: v for k, v in parameters.items() if k in PassParameters.model_fields})
        return params.repo or load_settings(params).pass_.repo or None
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
    repo_path: str | None = None,
    github_url: str | None = None,
    agent_command: list[str] | None = None,
    agent_preset: str | None = None,
    agent_timeout: float | None = None,
    rerun_hint: str | None = None,
    event_id: str | None = None,
) -> State:
    """One pass. The parameters are `conductor.core.parameters.PassParameters`, field for field
    (a test holds them equal); the GitHub token is never one: it comes from the environment
    or a Prefect block."""
    params = PassParameters(
        repo=repo, phase_filter=phase_filter, max_issues_per_dispatch=max_issues_per_dispatch,
        max_prs_per_dispatch=max_prs_per_dispatch, attempt=attempt, dry_run=dry_run,
        reminder_mode=reminder_mode, task_file=task_file, config_file=config_file, repo_path=repo_path,
        github_url=github_url, agent_command=agent_command, agent_preset=agent_preset,
        agent_timeout=agent_timeout, rerun_hint=rerun_hint, event_id=event_id)
    settings = load_settings(params)  # once, at the top of the pass
    inputs = pass_inputs(settings)
    inputs = inputs.model_copy(update={"rerun_hint": _rerun_hint(params, inputs.repo)})
    logger = get_run_logger()
    with pass_slot(inputs.repo, wait_seconds=inputs.guard_wait) as why_not:
        if why_not:
            logger.warning(why_not)
            return Cancelled(message=why_not)
        return _one_pass(with_token(settings.github), inputs)


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


def _one_pass(settings: GitHubSettings, inputs: PassInputs) -> State:
    """The pass lock on GitHub first (no dry run writes it), then the pass itself, every write
    of it fenced by the lock: once another pass took it over, the pass stops its agents,
    writes nothing more and ends Cancelled."""
    pass_id = uuid.uuid4().hex[:8]
    with GitHubGateway(settings, inputs.repo, fence=fence_of(pass_id)) as gh:
        if inputs.dry_run or not inputs.lock:
            return _steps(gh, inputs, pass_id)
        url, login = gh.clone_url(), gh.login()
        try:
            with one_pass_on_github(url, settings.token, pass_id=pass_id, holder=holder_name(login),
                                    lease_seconds=inputs.lock_lease, margin=inputs.lock_margin,
                                    on_lost=lambda: stop_agents_of_pass(inputs.worktree_root, pass_id)) as lock:
                if not lock.held:
                    other = lock.other
                    who = (f"{other.holder}, pass {other.pass_id}, until {other.expires_at:%H:%M:%S} UTC"
                           if other else "unknown")
                    message = (f"another conductor pass over {inputs.repo} holds the lock on GitHub "
                               f"({who}); this one dispatched nothing")
                    get_run_logger().warning(message)
                    return Cancelled(message=message)
                try:
                    state = _steps(gh, inputs, pass_id, lock_url=url)
                except LockLost as exc:
                    return _taken_over(inputs.repo, exc.other)
                return _taken_over(inputs.repo, lock.other) if lock.lost else state
        except LockError as exc:  # raised only while acquiring: nothing was dispatched
            return Failed(message=f"cannot take the conductor lock on GitHub ({exc}); nothing dispatched")


def _taken_over(repo: str, other: Lease | None) -> State:
    """The end of a pass whose lock another pass took over (it was paused past its lease)."""
    who = f"{other.holder}, pass {other.pass_id}" if other else "nobody now"
    message = (f"the conductor lock on GitHub over {repo} was taken over ({who}); this pass "
               "stopped its agents and wrote nothing more")
    get_run_logger().error(message)
    return Cancelled(message=message)


def _steps(gh: GitHub, inputs: PassInputs, pass_id: str, lock_url: str | None = None) -> State:
    """Snapshot → decide → act → record, in the seed's order of steps."""
    logger = get_run_logger()
    steps.label_preflight(gh, inputs.config, inputs.dry_run)
    not_people = steps.not_people(gh)
    snapshot = steps.read_state(gh, inputs, not_people)
    orphans = steps.clean_orphaned_worktrees(inputs)
    snapshot, released = steps.release_stale_claims(gh, snapshot, inputs.config, inputs.dry_run)
    progress = steps.count_attempts(snapshot, inputs)
    plan = steps.make_plan(snapshot, inputs, progress.attempt)
    _log_plan(logger, plan, inputs.dry_run)

    outcomes: list[CoordinatorOutcome] = []
    skipped: list[int] = []
    if plan.dispatches and not inputs.dry_run:
        plan, skipped = steps.skip_claimed(gh, plan, inputs.config)
    if plan.dispatches and not inputs.dry_run:
        steps.fetch_clone(inputs)
        spec = CoordinatorSpec(
            repo=inputs.repo, api_url=inputs.api_url, repo_path=inputs.repo_path,
            worktree_root=inputs.worktree_root, integration_branch=inputs.config.integration_branch,
            default_branch=gh.default_branch(), agent_command=inputs.agent_command,
            agent_timeout=inputs.agent_timeout, status_in_progress=inputs.config.status_in_progress,
            status_pr_open=inputs.config.status_pr_open, pass_id=pass_id,
            fan_out=inputs.config.fan_out, prompts=inputs.config.prompts,
            migration_paths=inputs.config.migration_paths, lock_url=lock_url, lock_margin=inputs.lock_margin)
        results = dispatch_all(plan.dispatches, spec, inputs.coordinator_deployments)
        outcomes = steps.verify_artifact_proof(gh, plan.dispatches, results, spec,
                                               html_base=web_url_of(inputs.api_url))
        steps.record_failed_attempts(gh, outcomes, spec.pass_id, inputs.config)
    finished = steps.close_finished(gh, snapshot, inputs.dry_run) if snapshot.finished else []

    # The pipeline after the coordinators: a new snapshot, planned the same way.
    after_snapshot = steps.read_state(gh, inputs, not_people) if outcomes else snapshot
    after = steps.make_plan(after_snapshot, inputs, progress.attempt) if outcomes else plan
    approvals = approved_gates(plan, snapshot)
    result = steps.reminder_gate(gh, inputs, after, progress, outcomes,
                                 approved_gates(after, after_snapshot) if outcomes else approvals)
    destroyed = steps.self_destruct(inputs)
    report = steps.report(PassReport(
        repo=inputs.repo, dry_run=inputs.dry_run, attempt=plan.attempt, plan=plan,
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

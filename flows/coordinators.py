"""Coordinator subflows: `issue-to-pr` and `pr-review`, one per dispatch group.

Each reads like its steps: claim the items, make a worktree and task file, run the
agent, prove its claims against GitHub, release the labels, remove the worktree.
Parameters hold no secret: the subflow builds its own GitHub client from the
environment, and only passes the agent a token of its own when one is configured.
"""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from prefect import flow, get_run_logger, task
from prefect.deployments import run_deployment
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed, Failed, State

from conductor import coordinator as core
from conductor.coordinator import AgentResult, CoordinatorResult, CoordinatorSpec, Workspace
from conductor.github_gateway import GitHubGateway
from conductor.models import Dispatch
from conductor.settings import RunSettings
from conductor.verify import CoordinatorOutcome
from tasks.secrets import agent_token, github_settings

step = task(cache_policy=NO_CACHE, persist_result=False)


@step(name="claim and prepare")
def prepare(gh: GitHubGateway, dispatch: Dispatch, spec: CoordinatorSpec) -> Workspace:
    """Label the items first (no other run dispatches them twice), then the worktree and task file."""
    core.claim(gh, dispatch, spec)
    return core.prepare(dispatch, spec)


@step(name="run agent")
def run_agent(dispatch: Dispatch, spec: CoordinatorSpec, workspace: Workspace) -> State:
    """The task run fails when the agent exits non-zero or times out (its result rides along)."""
    logger = get_run_logger()
    conductor_token = github_settings(spec.api_url).token
    token = agent_token()
    secrets = [s for s in (conductor_token.get_secret_value() if conductor_token else None, token) if s]
    result = core.run(dispatch, spec, workspace, on_line=lambda line: logger.info("agent: %s", line),
                      agent_token=token, secrets=secrets)
    logger.info("agent ended: exit %s, timed out %s, report %s", result.run.returncode,
                result.run.timed_out, result.run.report_error or "read")
    run = result.run
    if run.timed_out or run.idle_timed_out or run.returncode != 0:
        why = "timed out" if run.timed_out or run.idle_timed_out else f"exited with status {run.returncode}"
        return Failed(message=f"the agent {why}", data=result)
    return Completed(message="the agent exited 0", data=result)


@step(name="verify artifact proof")
def prove(gh: GitHubGateway, dispatch: Dispatch, spec: CoordinatorSpec, result: AgentResult,
          html_base: str) -> CoordinatorOutcome:
    return core.prove(gh, dispatch, spec, result, html_base=html_base)


@step(name="clean up")
def clean_up(gh: GitHubGateway, dispatch: Dispatch, spec: CoordinatorSpec, workspace: Workspace | None) -> None:
    """Remove the worktree, then take the status labels off (always, even after a failure)."""
    try:
        core.cleanup(spec, workspace)
    finally:
        core.release(gh, dispatch, spec)


def coordinate(dispatch: Dispatch, spec: CoordinatorSpec) -> CoordinatorResult:
    """The body both coordinator flows share."""
    spec = core.localize(spec, RunSettings())
    workspace = None
    agent = None
    with GitHubGateway(github_settings(spec.api_url), spec.repo) as gh:
        try:
            workspace = prepare(gh, dispatch, spec)
            agent = run_agent(dispatch, spec, workspace, return_state=True).result(raise_on_failure=False)
            if isinstance(agent, BaseException):
                raise agent
            outcome = prove(gh, dispatch, spec, agent, html_base=html_base_of(spec.api_url))
        except Exception as exc:  # a broken coordinator is a failure, never a crashed pass
            get_run_logger().error("coordinator failed: %s", exc)
            outcome = core.failed_outcome(dispatch, f"coordinator failed: {exc}")
        finally:
            clean_up(gh, dispatch, spec, workspace)
    return CoordinatorResult(outcome=outcome, agent=agent)


def as_state(result: CoordinatorResult) -> State:
    """Completed when every claim was proved, else Failed with the reasons: the flow-run
    history shows failed coordinators, and automations can alert on them. The result rides
    along either way; the pass reads it and goes on with the other coordinators."""
    outcome = result.outcome
    if outcome.ok:
        return Completed(message=f"{len(outcome.items)} items proved", data=result)
    return Failed(message="; ".join(outcome.failures)[:1000] or "not proved", data=result)


@flow(name="issue-to-pr", flow_run_name="issue-to-pr {dispatch.phase} {dispatch.batch}",
      log_prints=True, persist_result=False)
def issue_to_pr(dispatch: Dispatch, spec: CoordinatorSpec) -> State:
    return as_state(coordinate(dispatch, spec))


@flow(name="pr-review", flow_run_name="pr-review {dispatch.phase} {dispatch.batch}",
      log_prints=True, persist_result=False)
def pr_review(dispatch: Dispatch, spec: CoordinatorSpec) -> State:
    return as_state(coordinate(dispatch, spec))


# The same flows deployed onto a work pool (CONDUCTOR_DISPATCH=deployment): their result
# travels back to the pass through result storage both sides can reach (JSON, no secret).
remote_issue_to_pr = issue_to_pr.with_options(persist_result=True, result_serializer="json")
remote_pr_review = pr_review.with_options(persist_result=True, result_serializer="json")

COORDINATORS = {"issue_to_pr": issue_to_pr, "pr_review": pr_review}


def _run_here(dispatch: Dispatch, spec: CoordinatorSpec) -> CoordinatorResult:
    # Subflow heartbeats only detect crashed runs, which the parent's heartbeat already does;
    # in a thread their shutdown costs up to 1 s per subflow, so they are off here.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        try:
            state = COORDINATORS[dispatch.kind](dispatch, spec, return_state=True)
            result = state.result(raise_on_failure=False)
        except Exception as exc:  # the subflow itself crashed
            return _broken(dispatch, f"coordinator subflow crashed: {exc}")
    if isinstance(result, CoordinatorResult):
        return result
    return _broken(dispatch, f"coordinator subflow crashed: {state.message or result}")


def _broken(dispatch: Dispatch, reason: str) -> CoordinatorResult:
    return CoordinatorResult(outcome=core.failed_outcome(dispatch, reason))


def _run_remote(dispatch: Dispatch, spec: CoordinatorSpec, deployment: str) -> CoordinatorResult:
    """Run the coordinator as a deployment on a work pool and wait: its agent's claims come
    back with it, and the pass proves them itself (flows.conductor, "verify artifact proof")."""
    remote_spec = spec.model_copy(update={"repo_path": None, "worktree_root": None})
    try:
        run = run_deployment(deployment, parameters={"dispatch": dispatch, "spec": remote_spec},
                             timeout=None, as_subflow=True)
        result = run.state.result(raise_on_failure=False) if run.state else None
        if not isinstance(result, CoordinatorResult):
            message = run.state.message if run.state else "no state"
            return _broken(dispatch, f"coordinator run {run.name} ended {run.state_name}: {message}")
    except Exception as exc:
        return _broken(dispatch, f"coordinator deployment {deployment} failed: {exc}")
    return result


def dispatch_all(dispatches: list[Dispatch], spec: CoordinatorSpec,
                 deployments: dict[str, str] | None = None) -> list[CoordinatorResult]:
    """Start every coordinator at once and wait for all: in-process subflows (threads sharing
    the parent's run context), or, given `deployments` (kind -> "flow/deployment"), flow runs
    of those deployments on their work pool's workers."""
    if not dispatches:
        return []

    def one(d: Dispatch) -> CoordinatorResult:
        return _run_remote(d, spec, deployments[d.kind]) if deployments else _run_here(d, spec)

    with ThreadPoolExecutor(max_workers=len(dispatches), thread_name_prefix="coordinator") as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, d) for d in dispatches]
        return [f.result() for f in futures]


def html_base_of(api_url: str) -> str:
    """https://api.github.com -> https://github.com; https://HOST/api/v3 -> https://HOST."""
    if api_url.rstrip("/") == "https://api.github.com":
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")

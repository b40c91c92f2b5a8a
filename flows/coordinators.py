"""Coordinator subflows: one flow per workflow kind (`conductor.core.workflows`), named as the kind
is in leaf task files (the issue and the review kind), one run per dispatch group.

Leaf mode (the default): the subflow runs one `leaf` task per item, all at once (a review
chained by `merge_after` waits for the leaf it follows, an edge in the UI's graph). Each
leaf claims its item, makes its own worktree (`issue-<N>-<pass>` / `pr-<N>-<pass>`) and
`.agent-task`, runs its own agent while holding a slot of the global concurrency limit
`agent-slots`, proves its claim against GitHub, removes its worktree and takes its status
label off. The subflow's result is the list of leaf results.

Coordinator-agent mode: one agent for the whole group, in one worktree, which fans out by
itself. It reads like its steps: claim the items, make a worktree and task file, run the
agent, prove its claims against GitHub, release the labels, remove the worktree.
Parameters hold no secret: the subflow builds its own GitHub client from the
environment, and only passes the agent a token of its own when one is configured.
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from prefect import Flow, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from conductor.actions import coordinator as core
from conductor.core import leaf as leaves
from conductor.core import workflows
from conductor.actions.coordinator import (
    AgentResult,
    CoordinatorResult,
    PassContext,
    LeafResult,
    LeafWorkspace,
    Workspace,
)
from conductor.core.ports import GitHub
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.github_urls import web_url_of
from conductor.core.models import Dispatch
from conductor.core.settings import load_settings
from conductor.core.verify import CoordinatorOutcome
from tasks.guard import coordinator_fence, ensure_limit
from tasks.secrets import agent_token, redactor, with_token

step = task(cache_policy=NO_CACHE, persist_result=False)
AGENT_SLOTS = "agent-slots"
LEAF_THREADS = 128  # leaves of one coordinator started at once (agents are capped by AGENT_SLOTS)


@contextmanager
def fenced_gateway(ctx: PassContext) -> Iterator[GitHubGateway]:
    """A coordinator's own GitHub client, its writes fenced by the pass's lock (`coordinator_fence`)."""
    github = with_token(ctx.settings.github)
    with coordinator_fence(ctx.pass_id, ctx.lock_url, ctx.settings.run.lock_margin_seconds(), github.token,
                           github.ca_bundle) as fence, \
            GitHubGateway(github, ctx.settings.run.repo, fence=fence) as gh:
        yield gh


@step(name="claim and prepare")
def prepare(gh: GitHub, dispatch: Dispatch, ctx: PassContext) -> Workspace:
    """Label the items first (no other run dispatches them twice), then the worktree and task file."""
    core.claim(gh, dispatch, ctx)
    return core.prepare(dispatch, ctx)


def _agent(dispatch: Dispatch, ctx: PassContext, workspace: Workspace) -> AgentResult:
    logger = get_run_logger()
    result = core.run(dispatch, ctx, workspace, on_line=lambda line: logger.info("agent: %s", line),
                      agent_token=agent_token(ctx.settings.run), redactor=redactor(ctx.settings))
    logger.info("agent ended: exit %s, timed out %s, report %s", result.run.returncode,
                result.run.timed_out, result.run.report_error or "read")
    return result


@step(name="run agent")
def run_agent(dispatch: Dispatch, ctx: PassContext, workspace: Workspace) -> State:
    """The task run fails when the agent exits non-zero or times out (its result rides along)."""
    result = _agent(dispatch, ctx, workspace)
    run = result.run
    if run.timed_out or run.idle_timed_out or run.returncode != 0:
        why = "timed out" if run.timed_out or run.idle_timed_out else f"exited with status {run.returncode}"
        return Failed(message=f"the agent {why}", data=result)
    return Completed(message="the agent exited 0", data=result)


@step(name="verify artifact proof")
def prove(gh: GitHub, dispatch: Dispatch, ctx: PassContext, result: AgentResult,
          html_base: str) -> CoordinatorOutcome:
    return core.prove(gh, dispatch, ctx, result, html_base=html_base)


@step(name="clean up")
def clean_up(gh: GitHub, dispatch: Dispatch, ctx: PassContext, workspace: Workspace | None) -> None:
    """Remove the worktree, then take the status labels off (always, even after a failure)."""
    try:
        core.cleanup(ctx, workspace)
    finally:
        core.release(gh, dispatch, ctx)


@task(cache_policy=NO_CACHE, persist_result=False, name="leaf",
      task_run_name="{dispatch.kind} #{number}")
def leaf(number: int, dispatch: Dispatch, ctx: PassContext, html_base: str) -> LeafResult:
    """One item, start to finish: claim, worktree, task file, agent (holding an agent slot),
    proof, clean-up. Never raises: whatever breaks is the leaf's failure, not its siblings'."""
    logger = get_run_logger()
    one = core.leaf_dispatch(dispatch, number)
    started = core.now()
    workspace: LeafWorkspace | None = None
    agent: AgentResult | None = None
    agent_times: dict[str, float] = {}
    problems: list[str] = []
    with fenced_gateway(ctx) as gh:
        try:
            core.claim_item(gh, dispatch, ctx, number)
            workspace = core.prepare_leaf(gh, dispatch, ctx, number)
            logger.info("worktree %s; prompt %s (%s, blob %s)", workspace.path.name,
                        workspace.prompt.path, workspace.prompt.source, workspace.prompt.sha[:12])
            # the pass sets the limit up (`ensure_agent_slots`); a coordinator run on its own
            # without one runs its agents unlimited
            with concurrency(AGENT_SLOTS, occupy=1, lease_duration=60, strict=False,
                             raise_on_lease_renewal_failure=False):
                agent_times["agent_started"] = core.now()
                agent = _agent(one, ctx, workspace)
                agent_times["agent_ended"] = core.now()
            outcome = core.prove(gh, one, ctx, agent, html_base=html_base)
        except Exception as exc:  # a broken leaf is a failure, never a crashed coordinator
            logger.error("leaf failed: %s", exc)
            outcome = core.failed_outcome(one, f"leaf failed: {exc}")
        finally:
            for what, action in (("remove the worktree", lambda: core.cleanup(ctx, workspace)),
                                 ("release the status label",
                                  lambda: core.release_item(gh, dispatch, ctx, number))):
                try:
                    action()
                except Exception as exc:
                    logger.error("could not %s: %s", what, exc)
                    problems.append(f"could not {what}: {exc}")
    outcome.failures += problems
    outcome.ok = outcome.ok and not problems
    outcome = core.annotate_leaf(outcome, one, number, workspace, started=started, ended=core.now(),
                                 github_unavailable=core.github_outage(agent, ctx.settings.github.api_url, gh.faults_met),
                                 **agent_times)
    return LeafResult(number=number, outcome=outcome, agent=agent, problems=problems)


def coordinate_leaves(dispatch: Dispatch, ctx: PassContext) -> CoordinatorResult:
    """One leaf per item, all submitted at once; a review waits for the one it merges after."""
    ctx = core.localize(ctx, load_settings())
    html_base = web_url_of(ctx.settings.github.api_url)
    order = leaves.review_order(dispatch.items, dispatch.merge_after)
    futures = {}
    for number in order:
        first = dispatch.merge_after.get(number)
        wait = [futures[first]] if first in futures else []
        futures[number] = leaf.submit(number, dispatch, ctx, html_base, wait_for=wait)
    results: list[LeafResult] = []
    for number in dispatch.items:
        try:
            results.append(futures[number].result())
        except Exception as exc:  # the task itself crashed (cancelled, killed)
            one = core.leaf_dispatch(dispatch, number)
            outcome = core.annotate_leaf(core.failed_outcome(one, f"leaf crashed: {exc}"), one, number,
                                         None, started=core.now(), ended=core.now())
            results.append(LeafResult(number=number, outcome=outcome))
    return CoordinatorResult(outcome=core.combine(dispatch, results), leaves=results)


def coordinate(dispatch: Dispatch, ctx: PassContext) -> CoordinatorResult:
    """The body both coordinator flows share."""
    if ctx.settings.pipeline.fan_out == "leaf":
        return coordinate_leaves(dispatch, ctx)
    ctx = core.localize(ctx, load_settings())
    workspace = None
    agent = None
    with fenced_gateway(ctx) as gh:
        try:
            workspace = prepare(gh, dispatch, ctx)
            agent = run_agent(dispatch, ctx, workspace, return_state=True).result(raise_on_failure=False)
            if isinstance(agent, BaseException):
                raise agent
            outcome = prove(gh, dispatch, ctx, agent, html_base=web_url_of(ctx.settings.github.api_url))
        except Exception as exc:  # a broken coordinator is a failure, never a crashed pass
            get_run_logger().error("coordinator failed: %s", exc)
            outcome = core.failed_outcome(dispatch, f"coordinator failed: {exc}")
        finally:
            clean_up(gh, dispatch, ctx, workspace)
    return CoordinatorResult(outcome=outcome, agent=agent)


def as_state(result: CoordinatorResult) -> State:
    """Completed when every claim was proved, else Failed with the reasons: the flow-run
    history shows failed coordinators, and automations can alert on them. The result rides
    along either way; the pass reads it and goes on with the other coordinators."""
    outcome = result.outcome
    if outcome.ok:
        return Completed(message=f"{len(outcome.items)} items proved", data=result)
    reasons = outcome.failures + [f"#{r.number} {r.reason}" for r in outcome.blocked]
    return Failed(message="; ".join(reasons)[:1000] or "not proved", data=result)


def _coordinator(dispatch: Dispatch, ctx: PassContext) -> State:
    return as_state(coordinate(dispatch, ctx))


def coordinator_flow(workflow: workflows.Workflow) -> Flow:
    """The coordinator flow of one kind, named as its leaf task files name it."""
    made = _FLOWS.get(workflow.kind)
    if made is None:
        made = _FLOWS[workflow.kind] = flow(
            _coordinator, name=workflow.name, flow_run_name=workflow.name + " {dispatch.phase} {dispatch.batch}",
            log_prints=True, persist_result=False, task_runner=ThreadPoolTaskRunner(max_workers=LEAF_THREADS))
    return made


def remote_flow(workflow: workflows.Workflow) -> Flow:
    """The same flow deployed onto a work pool (CONDUCTOR_DISPATCH=deployment): its result
    travels back to the pass through result storage both sides can reach (JSON, no secret)."""
    return coordinator_flow(workflow).with_options(persist_result=True, result_serializer="json")


_FLOWS: dict[str, Flow] = {}
# prefect.yaml's entrypoints for the coordinator deployments
remote_issue_to_pr = remote_flow(workflows.ISSUE_TO_PR)
remote_pr_review = remote_flow(workflows.PR_REVIEW)


def _run_here(dispatch: Dispatch, ctx: PassContext) -> CoordinatorResult:
    # Subflow heartbeats only detect crashed runs, which the parent's heartbeat already does;
    # in a thread their shutdown costs up to 1 s per subflow, so they are off here.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        try:
            state = coordinator_flow(workflows.get(dispatch.kind))(dispatch, ctx, return_state=True)
            result = state.result(raise_on_failure=False)
        except Exception as exc:  # the subflow itself crashed
            return _broken(dispatch, f"coordinator subflow crashed: {exc}")
    if isinstance(result, CoordinatorResult):
        return result
    return _broken(dispatch, f"coordinator subflow crashed: {state.message or result}")


def _broken(dispatch: Dispatch, reason: str) -> CoordinatorResult:
    return CoordinatorResult(outcome=core.failed_outcome(dispatch, reason))


def _run_remote(dispatch: Dispatch, ctx: PassContext, deployment: str) -> CoordinatorResult:
    """Run the coordinator as a deployment on a work pool and wait: its agent's claims come
    back with it, and the pass proves them itself (flows.pipeline_pass, "verify artifact proof")."""
    remote = ctx.model_copy(update={"on_worker": True})
    try:
        run = run_deployment(deployment, parameters={"dispatch": dispatch, "ctx": remote},
                             timeout=None, as_subflow=True)
        result = run.state.result(raise_on_failure=False) if run.state else None
        if not isinstance(result, CoordinatorResult):
            message = run.state.message if run.state else "no state"
            return _broken(dispatch, f"coordinator run {run.name} ended {run.state_name}: {message}")
    except Exception as exc:
        return _broken(dispatch, f"coordinator deployment {deployment} failed: {exc}")
    return redactor(ctx.settings).model(result)  # the door again, with this machine's secrets


def dispatch_all(dispatches: list[Dispatch], ctx: PassContext) -> list[CoordinatorResult]:
    """Start every coordinator at once and wait for all: in-process subflows (threads sharing
    the parent's run context), or, with dispatch=deployment, flow runs of the coordinator
    deployments (kind -> "flow/deployment") on their work pool's workers."""
    if not dispatches:
        return []
    run = ctx.settings.run
    deployments = run.coordinator_deployments if run.dispatch == "deployment" else None
    if ctx.settings.pipeline.fan_out == "leaf":
        ensure_agent_slots(run.agent_slots)

    def one(d: Dispatch) -> CoordinatorResult:
        return _run_remote(d, ctx, deployments[d.kind]) if deployments else _run_here(d, ctx)

    with ThreadPoolExecutor(max_workers=len(dispatches), thread_name_prefix="coordinator") as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, d) for d in dispatches]
        return [f.result() for f in futures]


def ensure_agent_slots(limit: int) -> None:
    """The global concurrency limit `agent-slots` exists and caps agents at `limit`."""
    ensure_limit(AGENT_SLOTS, limit)

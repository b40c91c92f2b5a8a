"""Coordinator subflows: one flow per workflow kind (`conductor.core.workflows`), named as the kind
is in leaf task files (the issue and the review kind), one run per dispatch group.

Leaf mode (the default): the subflow runs one `leaf` task per item, all at once (a review
chained by `merge_after` waits for the leaf it follows, an edge in the UI's graph). Each
leaf claims its item, makes its own worktree (`issue-<N>-<pass>` / `pr-<N>-<pass>`) and
`.agent-task`, runs its own agent while holding a slot of the global concurrency limit
`agent-slots`, proves its claim against GitHub, removes its worktree and takes its status
label off. The subflow's result is the list of leaf results.

Leaves on workers (CONDUCTOR_DISPATCH=deployment): each leaf task claims its item and starts
a flow run of `leaf/<kind>` (`remote_leaf`) on the `conductor-agents` pool, with an
idempotency key of pass and item; the worker clones, salvages the worktrees killed leaves
left in its clone (`salvage_orphans`), runs the agent and hands its report back as an
artifact; the task reads it, proves it and takes the claim off.

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
from contextlib import contextmanager, nullcontext
from uuid import UUID

from prefect import Flow, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelling, Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from conductor.actions import coordinator as core
from conductor.actions import orphans
from conductor.core import leaf as leaves
from conductor.core import workflows
from conductor.core.redaction import Redactor
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
LEAF_FLOW = "leaf"  # the flow of leaves on workers; its deployments are `leaf/<kind>`


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


_LEAF_SECRETS: dict[tuple[str, str], tuple[str | None, Redactor]] = {}


def leaf_secrets(ctx: PassContext) -> tuple[str | None, Redactor]:
    """The agent's own token and the redactor for the leaves of pass `ctx.pass_id` that run in
    this process with this clone: resolved once a pass (a Secret block lookup is an API call,
    and most are for blocks that do not exist)."""
    key = (ctx.pass_id, str(ctx.settings.run.repo_path))
    if key not in _LEAF_SECRETS:
        _LEAF_SECRETS[key] = (agent_token(ctx.settings.run), redactor(ctx.settings))
    return _LEAF_SECRETS[key]


def _agent(dispatch: Dispatch, ctx: PassContext, workspace: Workspace) -> AgentResult:
    logger = get_run_logger()
    token, redact = leaf_secrets(ctx)
    result = core.run(dispatch, ctx, workspace, on_line=lambda line: logger.info("agent: %s", line),
                      agent_token=token, redactor=redact)
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


def work_leaf(gh: GitHub, number: int, dispatch: Dispatch, ctx: PassContext, html_base: str, *,
              owner: leaves.LeafOwner | None = None) -> LeafResult:
    """One item, start to finish: claim, worktree, task file, agent (holding an agent slot),
    proof, clean-up. Never raises: whatever breaks is the leaf's failure, not its siblings'.
    With an `owner`: a leaf on a worker (`remote_leaf`), which records itself in its worktree
    and neither claims, proves nor releases its item: the pass that started it does."""
    logger = get_run_logger()
    here = owner is None
    one = core.leaf_dispatch(dispatch, number)
    started = core.now()
    workspace: LeafWorkspace | None = None
    agent: AgentResult | None = None
    agent_times: dict[str, float] = {}
    problems: list[str] = []
    try:
        if here:
            core.claim_item(gh, dispatch, ctx, number)
        workspace = core.prepare_leaf(gh, dispatch, ctx, number, owner=owner)
        logger.info("worktree %s; prompt %s (%s, blob %s)", workspace.path.name,
                    workspace.prompt.path, workspace.prompt.source, workspace.prompt.sha[:12])
        # the pass sets the limit up (`ensure_agent_slots`); a coordinator run on its own
        # without one runs its agents unlimited
        with concurrency(AGENT_SLOTS, occupy=1, lease_duration=60, strict=False,
                         raise_on_lease_renewal_failure=False):
            agent_times["agent_started"] = core.now()
            agent = _agent(one, ctx, workspace)
            agent_times["agent_ended"] = core.now()
        outcome = (core.prove(gh, one, ctx, agent, html_base=html_base) if here
                   else core.failed_outcome(one, "not proved on the worker: the pass proves it"))
    except Exception as exc:  # a broken leaf is a failure, never a crashed coordinator
        logger.error("leaf failed: %s", exc)
        outcome = core.failed_outcome(one, f"leaf failed: {exc}")
    finally:
        actions = [("remove the worktree", lambda: core.cleanup(ctx, workspace, on_worker=not here))]
        if here:
            actions.append(("release the status label", lambda: core.release_item(gh, dispatch, ctx, number)))
        for what, action in actions:
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


@task(cache_policy=NO_CACHE, persist_result=False, name="leaf",
      task_run_name="{dispatch.kind} #{number}")
def leaf(number: int, dispatch: Dispatch, ctx: PassContext, html_base: str) -> LeafResult:
    """One item: here (`work_leaf`), or, with CONDUCTOR_DISPATCH=deployment, on a worker (`leaf_on_worker`)."""
    if ctx.settings.run.dispatch == "deployment":
        return leaf_on_worker(number, dispatch, ctx)
    with fenced_gateway(ctx) as gh:
        return work_leaf(gh, number, dispatch, ctx, html_base)


# ── leaves on workers (CONDUCTOR_DISPATCH=deployment) ──────────────────────────────
LEAF_SILENCE_S = 90  # a leaf run silent this long is marked Crashed (deployments.pools: the automation)
LEAF_START_S = 300.0  # what a leaf run may take besides its agent: a worker to take it, the clone
LEAF_POLL_S = 1.0
LEAF_REPORT = "conductor-leaf-report"  # the artifact type of a leaf's report


def leaf_key(pass_id: str, dispatch: Dispatch, number: int) -> str:
    """`leaf-<pass>-<kind name>-<N>`: the leaf's idempotency key and its report's artifact key
    (lowercase letters, digits and dashes, as Prefect wants artifact keys)."""
    return f"leaf-{pass_id}-{workflows.get(dispatch.kind).name}-{number}".lower()


def leaf_wait(ctx: PassContext) -> float:
    """How long the pass waits for a leaf run: its agent's timeout, a start, and the silence
    after which a run whose worker was lost is marked Crashed."""
    return ctx.settings.run.agent_timeout + LEAF_START_S + LEAF_SILENCE_S


def leaf_on_worker(number: int, dispatch: Dispatch, ctx: PassContext) -> LeafResult:
    """Claim the item, start the leaf as a flow run of `leaf/<kind>` on the `conductor-agents`
    pool (`run_deployment`, idempotency key `leaf_key`: a retried start makes no second run),
    wait for it, read its report back (an artifact), prove its claim and take the claim off
    (the pass proves it once more in `verify artifact proof`, as every leaf). A run still
    going after `leaf_wait` keeps its claim: the item is not dispatched again while the run
    might be alive."""
    one = core.leaf_dispatch(dispatch, number)
    workflow = workflows.get(dispatch.kind)
    started = core.now()
    alive = False
    with fenced_gateway(ctx) as gh:
        core.claim_item(gh, dispatch, ctx, number)
        try:
            run = run_deployment(
                workflow.leaf_deployment, timeout=leaf_wait(ctx), poll_interval=LEAF_POLL_S,
                parameters={"number": number, "dispatch": one, "ctx": ctx},
                idempotency_key=leaf_key(ctx.pass_id, dispatch, number), tags=["conductor-leaf"])
            result, alive = _leaf_report(run, one, number, ctx, started)
            if result.agent is not None:  # proved here, by the pass, like a leaf run in its process
                result = result.model_copy(update={"outcome": core.prove_leaves_again(
                    gh, one, ctx, [result], html_base=web_url_of(ctx.settings.github.api_url))})
        except Exception as exc:
            result = _failed_leaf(one, number, started, f"leaf deployment {workflow.leaf_deployment} failed: {exc}")
        finally:
            if not alive:
                core.release_item(gh, dispatch, ctx, number)
    return result


def _failed_leaf(one: Dispatch, number: int, started: float, reason: str) -> LeafResult:
    get_run_logger().error("%s", reason)
    outcome = core.annotate_leaf(core.failed_outcome(one, reason), one, number, None, started=started,
                                 ended=core.now())
    return LeafResult(number=number, outcome=outcome)


def _leaf_report(run: FlowRun, one: Dispatch, number: int, ctx: PassContext,
                 started: float) -> tuple[LeafResult, bool]:
    """The leaf's report (redacted again, with this machine's secrets), and whether its run
    might still be alive."""
    state = run.state
    if state is None or not state.is_final():
        _stop(run)
        return _failed_leaf(one, number, started, f"leaf run {run.name} still {run.state_name} after "
                            f"{leaf_wait(ctx):g} s: asked to cancel; its claim stays until it ends"), True
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[leaf_key(ctx.pass_id, one, number)]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    if not found:
        return _failed_leaf(one, number, started, f"leaf run {run.name} ended {run.state_name} without a "
                            f"report: {state.message or 'no message'}"), False
    result = LeafResult.model_validate(found[0].data)
    if result.number != number:
        return _failed_leaf(one, number, started, f"leaf run {run.name} reported on #{result.number}"), False
    return leaf_secrets(ctx)[1].model(result), False


def _stop(run: FlowRun) -> None:
    """Ask the run's worker to cancel it (a lost worker never will: the run is marked Crashed
    once its heartbeats stop, deployments.pools)."""
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelling(message="the conductor pass stopped waiting"))
    except Exception as exc:  # noqa: BLE001 - the claim stays either way
        get_run_logger().warning("could not cancel leaf run %s: %s", run.name, exc)


def live_leaf_items(repo: str) -> list[int]:
    """Items of `repo` whose leaf runs (on workers) are not final yet: their claims stay."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[LEAF_FLOW])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                not_any_=[StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED]))))
    return sorted({run.parameters["number"] for run in runs if "number" in run.parameters
                   and (((run.parameters.get("ctx") or {}).get("settings") or {}).get("run") or {}).get("repo") == repo})


@flow(name=LEAF_FLOW, flow_run_name="{dispatch.kind} #{number}", log_prints=True, persist_result=False)
def remote_leaf(number: int, dispatch: Dispatch, ctx: PassContext) -> State:
    """A leaf on a worker of the `conductor-agents` pool (the deployments `leaf/<kind>`): this
    machine's own settings and clone of the repository (a cache per repository, fetched with
    this worker's token), its own worktree and agent; it proves nothing and writes nothing to
    GitHub. Its report (redacted) goes back to the pass through the Prefect API, as an artifact
    keyed by pass and item (`leaf_key`): no storage is shared between machines."""
    local = load_settings()
    github = with_token(ctx.settings.on_this_machine(local).github)  # the pass's GitHub, this worker's token
    run_id = str(FlowRunContext.get().flow_run.id)
    try:
        with GitHubGateway(github, ctx.settings.run.repo) as gh:
            here = core.on_worker(ctx, local, gh.clone_url(), github.token)
            salvage_orphans(here)
            result = work_leaf(gh, number, dispatch, here, web_url_of(ctx.settings.github.api_url),
                               owner=orphans.owner_here(run_id))
    except Exception as exc:  # no client or no clone: the leaf's failure, reported like any other
        result = _failed_leaf(dispatch, number, core.now(), f"leaf failed: {exc}")
    result = redactor(ctx.settings.on_this_machine(local)).model(result)
    with get_client(sync_client=True) as client:
        client.create_artifact(ArtifactCreate(
            key=leaf_key(ctx.pass_id, dispatch, number), type=LEAF_REPORT, data=result.model_dump(mode="json"),
            description=f"The report of leaf {dispatch.kind} #{number}; the pass proves its claim.",
            flow_run_id=UUID(run_id)))
    if result.agent is None:
        return Failed(message="; ".join(result.outcome.failures)[:1000] or "leaf failed", data=result)
    return Completed(message=f"agent exited {result.agent.run.returncode}; report handed to the pass",
                     data=result)


def salvage_orphans(ctx: PassContext) -> None:
    """On a worker, before a leaf makes its worktree: the worktrees of this clone that killed
    leaves left (their process dead here, or their run final or gone) are salvaged (patch and
    bundle under this machine's salvage directory) and removed, under the clone's lock; a
    live leaf's is kept. What fails is logged: the leaf goes on, and nothing unsaved is removed."""
    logger = get_run_logger()
    run = ctx.settings.run
    try:
        orphans.clean_on_worker(run.repo_path, run.resolved_worktree_root(), salvage_dir=run.resolved_salvage_dir(),
                                run_ended=leaf_run_ended, log=logger)
    except Exception as exc:  # noqa: BLE001 - a salvage that fails removes nothing
        logger.error("could not salvage the orphaned worktrees of %s: %s", run.repo_path, exc)


def leaf_run_ended(run_id: str) -> bool:
    """Whether a leaf run is final (Completed, Failed, Cancelled, Crashed) or gone, per the Prefect API."""
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
    except (ObjectNotFound, ValueError):  # deleted, or not a run id at all
        return True
    except Exception as exc:  # noqa: BLE001 - the API unreachable: the run may be live, its worktree stays
        get_run_logger().warning("could not read leaf run %s: %s", run_id, exc)
        return False
    return state is not None and state.is_final()


def coordinate_leaves(dispatch: Dispatch, ctx: PassContext) -> CoordinatorResult:
    """One leaf per item, all submitted at once; a review waits for the one it merges after."""
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


_FLOWS: dict[str, Flow] = {}


def _run_here(dispatch: Dispatch, ctx: PassContext) -> CoordinatorResult:
    # Subflow heartbeats only detect crashed runs, which the parent's heartbeat already does;
    # in a thread their shutdown costs up to 1 s per subflow, so they are off here (changing a
    # setting validates all of Prefect's settings again: a third of a second, so only when on).
    beating = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is not None
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}) if beating else nullcontext():
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


def dispatch_all(dispatches: list[Dispatch], ctx: PassContext) -> list[CoordinatorResult]:
    """Start every coordinator at once, as in-process subflows (threads sharing the parent's
    run context), and wait for all; their leaves run here or, with dispatch=deployment, as
    flow runs on the workers of the `conductor-agents` pool."""
    if not dispatches:
        return []
    if ctx.settings.pipeline.fan_out == "leaf":
        ensure_agent_slots(ctx.settings.run.agent_slots)
    with ThreadPoolExecutor(max_workers=len(dispatches), thread_name_prefix="coordinator") as pool:
        futures = [pool.submit(contextvars.copy_context().run, _run_here, d, ctx) for d in dispatches]
        return [f.result() for f in futures]


def ensure_agent_slots(limit: int) -> None:
    """The global concurrency limit `agent-slots` exists and caps agents at `limit`."""
    ensure_limit(AGENT_SLOTS, limit)

"""One pass per repository at a time, whatever started it (schedule, `prefect deployment run`,
`conductor run`): a Prefect global concurrency limit of 1 named after the repository (the fast
path on one server), then the pass lock on GitHub itself (`one_pass_on_github`), which holds
across Prefect servers and machines.

Deployment limits (`concurrency_limit: 1` in prefect.yaml) do not see manual `conductor run`
passes or runs of another deployment, so the flow takes this slot itself. The slot is a lease:
a pass killed without releasing it frees it after `lease_seconds` (Prefect's minimum, 60 s).
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import partial

import httpx
from pydantic import SecretStr
from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.concurrency.sync import concurrency

from conductor.edges.git_lock import GitRefLock, pass_lock
from conductor.core.passlock import LeaseReader, PassLock


POLL_SECONDS = 2.0  # one acquisition try: a round trip, then the wait the server asks, cut short


def ensure_limit(name: str, limit: int) -> None:
    """The global concurrency limit `name` exists, is active and caps at `limit`; two passes
    starting together may race to create it."""
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
                return
            except (ObjectAlreadyExists, httpx.HTTPStatusError):
                current = client.read_global_concurrency_limit_by_name(name)  # the other pass made it
        if current.limit != limit or not current.active:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))


def limit_name(repo: str) -> str:
    return "conductor-" + re.sub(r"[^a-z0-9]+", "-", repo.lower()).strip("-")


@contextmanager
def one_pass_per_repo(repo: str, wait_seconds: float, lease_seconds: float = 60.0) -> Iterator[bool]:
    """Yield True holding the repository's slot, or False if another pass kept it `wait_seconds`.

    Asked again every `POLL_SECONDS`: the server's Retry-After for a busy slot is about a
    pass's length (up to 30 s), and a run waiting beside a pass (`pass_slot`) starts its own
    pass within a poll of the slot's release."""
    name = limit_name(repo)
    ensure_limit(name, 1)
    deadline = time.monotonic() + wait_seconds
    with ExitStack() as held:
        while True:
            try:
                # A zero timeout fails even when the slot is free (acquiring takes a round trip).
                held.enter_context(concurrency(name, occupy=1, timeout_seconds=POLL_SECONDS,
                                               lease_duration=lease_seconds, strict=True))
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    yield False
                    return
        # Only acquiring may time out into False: a TimeoutError raised by the pass itself
        # (a socket, a future) goes through here unchanged.
        yield True


@contextmanager
def pass_slot(repo: str, wait_seconds: float) -> Iterator[bool]:
    """The repository's slot (`one_pass_per_repo`); once held, the runs of this flow run's
    deployment for the same repository that have not begun their pass are cancelled
    (`coalesce_queued_runs`): this pass reads GitHub after every event that queued them."""
    with one_pass_per_repo(repo, wait_seconds) as mine:
        if mine:
            coalesce_queued_runs()
        yield mine


def coalesce_queued_runs() -> list[str]:
    """Cancel the other runs of this flow run's deployment, with the same `repo` parameter,
    that exist now and have not begun a pass: scheduled and due, waiting for the deployment's
    concurrency slot (`AwaitingConcurrencySlot`), pending, or running but still waiting for
    the repository's slot (this run holds it). Their events happened before this pass reads
    GitHub, so it covers them; runs made from now on stay queued. A run scheduled for later
    (a cron tick) is kept. Outside a deployment: nothing. Returns the cancelled runs' names."""
    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowRunFilter,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import deployment, flow_run
    from prefect.states import Cancelled, Cancelling

    if not deployment.id:
        return []
    me, repo = str(flow_run.id), (flow_run.parameters or {}).get("repo")
    cancelled = []
    with get_client(sync_client=True) as client:
        now = datetime.now(UTC)
        waiting = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
        for run in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=waiting)))):
            state = run.state
            if str(run.id) == me or state is None or (run.parameters or {}).get("repo") != repo:
                continue
            if run.created is not None and run.created > now:
                continue
            later = state.is_scheduled() and state.name != "AwaitingConcurrencySlot" and (
                run.expected_start_time is not None and run.expected_start_time > now)
            if later:
                continue
            why = f"coalesced into flow run {flow_run.name}: it reads GitHub after this run's event"
            client.set_flow_run_state(run.id, Cancelling(message=why) if state.is_running() else Cancelled(message=why),
                                      force=True)
            cancelled.append(run.name)
    if cancelled:
        get_run_logger().info("coalesced %d queued run(s) into this pass: %s", len(cancelled), ", ".join(cancelled))
    return cancelled


# pass id -> its lock's `assure`, while a pass of this process holds its lock on GitHub
_FENCES: dict[str, Callable[[], None]] = {}


@contextmanager
def one_pass_on_github(url: str, token: SecretStr | None, *, pass_id: str, holder: str,
                       lease_seconds: float, margin: float,
                       on_lost: Callable[[], None] | None = None) -> Iterator[PassLock]:
    """The repository's pass lock on GitHub (`refs/conductor/lock`, a compare-and-swap on the
    git server): `lock.held` says whether this pass got it, else `lock.other` holds it.
    Renewed every third of the lease while the block runs, released after it. While held,
    `fence_of(pass_id)` asks it before each write (`PassLock.assure` with `margin`)."""
    with pass_lock(url, token, pass_id=pass_id, holder=holder, lease_seconds=lease_seconds,
                   on_lost=on_lost) as lock:
        if lock.held:
            _FENCES[pass_id] = partial(lock.assure, margin)
        try:
            yield lock
        finally:
            _FENCES.pop(pass_id, None)


def fence_of(pass_id: str) -> Callable[[], None]:
    """The check a gateway of pass `pass_id` makes before each write (`GitHubGateway(fence=)`):
    while the pass holds its lock in this process, raise `passlock.LockLost` once another
    pass took it over; a pass without the lock (`lock = false`, a dry run) is not fenced."""
    def check() -> None:
        assure = _FENCES.get(pass_id)
        if assure is not None:
            assure()

    return check


@contextmanager
def coordinator_fence(pass_id: str, lock_url: str | None, margin: float,
                      token: SecretStr | None) -> Iterator[Callable[[], None]]:
    """The write check of a coordinator of pass `pass_id`: the pass's own lock when it runs in
    this process (`fence_of`); on another worker, the pass's lease read from the ref at
    `lock_url` (`passlock.LeaseReader`); none when the pass holds no lock (`lock_url` None)."""
    if lock_url is None or pass_id in _FENCES:
        yield fence_of(pass_id)
        return
    with GitRefLock(lock_url, token) as store:
        yield LeaseReader(store, pass_id=pass_id, margin=margin).assure

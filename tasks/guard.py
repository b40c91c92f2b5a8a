"""One pass per repository at a time, whatever started it (schedule, `prefect deployment run`,
`conductor run`): a Prefect global concurrency limit of 1 named after the repository (the fast
path on one server), then the pass lock on GitHub itself (`one_pass_on_github`), which holds
across Prefect servers and machines.

Deployment limits (`concurrency_limit: 1` in prefect.yaml) do not see manual `conductor run`
passes or runs of another deployment, so the flow takes this slot itself. The slot is a lease:
a pass killed without releasing it frees it after `lease_seconds` (Prefect's minimum, 60 s).
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any
from pathlib import Path

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
WATCH_SECONDS = 0.5  # a run waiting for the slot reads the limit this often


def _slot_free(name: str) -> bool:
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    return limit.active_slots < limit.limit


_ENSURED: set[tuple[str | None, str, int]] = set()  # (flow run, limit, value): set up already


def ensure_limit(name: str, limit: int) -> None:
    """The global concurrency limit `name` exists, is active and caps at `limit`; two passes
    starting together may race to create it. Once a flow run (the passes it chains)."""
    from prefect.runtime import flow_run

    key = (flow_run.id, name, limit)
    if flow_run.id is not None and key in _ENSURED:
        return
    _ensure_limit(name, limit)
    _ENSURED.add(key)


def _ensure_limit(name: str, limit: int) -> None:
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

    A run waiting beside a pass (`pass_slot`) reads the limit every `WATCH_SECONDS` and tries
    to acquire only when a slot is free (each failed try costs the server's Retry-After, about
    a pass's length, cut short at `POLL_SECONDS`, and an error line in Prefect's log), so it
    starts its own pass within a read of the slot's release."""
    name = limit_name(repo)
    ensure_limit(name, 1)
    deadline = time.monotonic() + wait_seconds
    with ExitStack() as held:
        while True:
            if _slot_free(name):
                try:
                    # A zero timeout fails even when the slot is free (acquiring takes a round trip).
                    held.enter_context(concurrency(name, occupy=1, timeout_seconds=POLL_SECONDS,
                                                   lease_duration=lease_seconds, strict=True))
                    break
                except TimeoutError:
                    pass  # another run took it first
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(WATCH_SECONDS)
        # Only acquiring may time out into False: a TimeoutError raised by the pass itself
        # (a socket, a future) goes through here unchanged.
        yield True


class PassSlot:
    """A run's hold on its repository's slot (`pass_slot`): `why_not` says why the run makes no
    pass (None: it makes one); `reading` records that its pass reads GitHub now; `again` says
    whether it makes the next pass at once."""

    def __init__(self, why_not: str | None, chain: int) -> None:
        self.why_not, self.chain, self.made = why_not, chain, 1
        self._coalescing: threading.Thread | None = None

    def reading(self) -> None:
        """The pass is about to read GitHub again (the re-read after its leaves): every event
        Prefect received until now is in what it reads, so this is recorded as the last read
        (`record_read`), and the runs queued for those events are coalesced into this pass
        beside the read (`settle` waits for that)."""
        self.settle()
        if record_read(coalesce=False):
            self._coalescing = threading.Thread(target=contextvars.copy_context().run,
                                                args=(coalesce_queued_runs,), name="coalesce", daemon=True)
            self._coalescing.start()

    def settle(self) -> None:
        """Wait for the coalescing `reading` started, if any."""
        if self._coalescing is not None:
            self._coalescing.join()
            self._coalescing = None

    def again(self, more_work: bool) -> bool:
        """After a pass: whether this run makes the next pass now, in the same process and still
        holding the slot (no trigger, no queue, no process start between them). Only in a
        deployment and for at most `chain` passes a run: when the pass just made left work
        ready (`more_work`), or a run of the deployment was made for an event that reached
        Prefect after the pass's last read of GitHub began (`arrived_since`). The next pass's
        read is then recorded and the runs queued for it coalesced."""
        from prefect.runtime import deployment

        self.settle()
        if not deployment.id or self.made >= self.chain:
            return False
        if not more_work:
            with get_client(sync_client=True) as client:
                last = client.read_variable_by_name(_record_name(client))
                if last is None or last.updated is None or not arrived_since(client, last.updated):
                    return False
        record_read()
        self.made += 1
        get_run_logger().info("pass %d of this run starts at once: %s", self.made,
                              "the last one left work ready" if more_work else "an event arrived during it")
        return True


@contextmanager
def pass_slot(repo: str, wait_seconds: float, chain: int = 1) -> Iterator[PassSlot]:
    """The repository's slot (`one_pass_per_repo`), then, in a deployment, the coalescing of
    its runs (`begin_pass`). The slot's `why_not` is None when this run makes the pass, else why
    it does not; `chain` is the most passes it makes back to back (`PassSlot.again`)."""
    with one_pass_per_repo(repo, wait_seconds) as mine:
        if not mine:
            yield PassSlot(f"another conductor pass over {repo} is running; this one dispatched nothing", chain)
            return
        slot = PassSlot(begin_pass(), chain)
        try:
            yield slot
        finally:
            slot.settle()


def begin_pass() -> str | None:
    """Coalesce the runs of this flow run's deployment with the same parameters, this run holding
    the repository's slot: a pass of theirs that read GitHub after this run was made covers its
    event, so it makes none (returns why), unless a run made for a later event waits for it
    (this run, started already, makes that pass); else this run records its read
    (`record_read`). A run the server revives after a cancel (a runner that had it in hand)
    meets the record and ends. Outside a deployment: None, nothing recorded."""
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        name = _record_name(client)
        if name is None:
            return None
        made = _received(client, (flow_run.parameters or {}).get("event_id")) or _this_run(client).created
        last = client.read_variable_by_name(name)
        if last is not None and last.updated is not None and made is not None and last.updated > made \
                and not arrived_since(client, last.updated):
            return (f"coalesced: pass {last.value} read GitHub after this run's event reached Prefect; "
                    "this one dispatched nothing")
    record_read()
    return None


def record_read(coalesce: bool = True) -> bool:
    """In a deployment: record that this run's pass reads GitHub now (a Prefect variable per
    deployment and parameters, stamped by the server's clock, as run creation is), then (with
    `coalesce`) cancel the runs queued behind it now (`coalesce_queued_runs`): each was made
    for an event the server received before, so what the pass reads covers it. Returns
    whether it recorded (False outside a deployment)."""
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        name = _record_name(client)
        if name is None:
            return False
        try:
            client.update_variable(VariableUpdate(name=name, value=flow_run.name))
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
            try:  # the first pass of these runs
                client.create_variable(VariableCreate(name=name, value=flow_run.name))
            except ObjectAlreadyExists:  # made by another server's pass since: ours is newer
                client.update_variable(VariableUpdate(name=name, value=flow_run.name))
    if coalesce:
        coalesce_queued_runs()
    return True


def _record_name(client: Any) -> str | None:
    """The Prefect variable recording when a pass of this deployment's runs with this run's
    parameters last began to read GitHub; None outside a deployment."""
    from prefect.runtime import deployment, flow_run

    if not deployment.id:
        return None
    parameters = json.dumps(_same_pass(_this_run(client).parameters), sort_keys=True, default=str)
    return "conductor-pass-" + hashlib.sha256(f"{deployment.id}\0{parameters}".encode()).hexdigest()[:24]


_RUNS: dict[str, Any] = {}  # flow run id -> the run as the server stored it (read once)


def _this_run(client: Any) -> Any:
    """This flow run as the server stores it: its creation and its parameters as its siblings'
    are read (the runtime's are validated: every default filled in). Neither ever changes."""
    from prefect.runtime import flow_run

    if flow_run.id not in _RUNS:
        _RUNS[flow_run.id] = client.read_flow_run(flow_run.id)
    return _RUNS[flow_run.id]


def _siblings(client: Any, states: list[Any]) -> list[Any]:
    """The other runs of this flow run's deployment with the same parameters, in `states`."""
    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowRunFilter,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.runtime import deployment, flow_run

    me, parameters = str(flow_run.id), _same_pass(_this_run(client).parameters)
    return [run for run in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states))))
            if str(run.id) != me and run.state is not None and _same_pass(run.parameters) == parameters]


def arrived_since(client: Any, began: datetime) -> bool:
    """Whether a run of this deployment with this run's parameters, not finished, was made for
    an event that reached Prefect after `began` (when a pass began to read GitHub): that read
    came before it. A run is made after its event is received, so only runs made since count."""
    from prefect.client.schemas.objects import StateType

    for run in _siblings(client, [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]):
        if run.created is not None and run.created > began:
            made = _received(client, (run.parameters or {}).get("event_id")) or run.created
            if made > began:
                return True
    return False


def _same_pass(parameters: dict | None) -> dict:
    """The parameters that make two runs the same pass (all but the event that started them)."""
    return {k: v for k, v in (parameters or {}).items() if k != "event_id"}


def _received(client: Any, event_id: str | None) -> datetime | None:
    """When the server received event `event_id` (its own clock), or None (no such event
    stored yet: the caller falls back to the run's creation, which came after it)."""
    if not event_id:
        return None
    answer = client._client.post("/events/filter", json={"filter": {"id": {"id": [event_id]}}, "limit": 1})
    found = [e for e in (answer.json().get("events") or []) if e.get("id") == event_id] \
        if answer.status_code == 200 else []
    return datetime.fromisoformat(found[0]["received"]) if found else None


def coalesce_queued_runs() -> list[str]:
    """Cancel the other runs of this flow run's deployment, with the same parameters, that
    exist now and have not started: scheduled and due, waiting for the deployment's
    concurrency slot (`AwaitingConcurrencySlot`), or pending; one already running beside this
    pass ends itself when it gets the slot (`begin_pass`). Each was made for an event before
    the read just recorded (`record_read`), so what the pass reads covers it. Runs made later stay
    queued. A run scheduled for later (a cron tick) is kept. Returns the cancelled runs' names."""
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.states import Cancelled

    cancelled = []
    with get_client(sync_client=True) as client:
        now = datetime.now(UTC)
        for run in _siblings(client, [StateType.SCHEDULED, StateType.PENDING]):  # a running one ends itself
            state = run.state
            later = state.is_scheduled() and state.name != "AwaitingConcurrencySlot" and (
                run.expected_start_time is not None and run.expected_start_time > now)
            if later:
                continue
            why = f"coalesced into flow run {flow_run.name}: it reads GitHub after this run's event"
            client.set_flow_run_state(run.id, Cancelled(message=why), force=True)
            cancelled.append(run.name)
    if cancelled:
        get_run_logger().info("coalesced %d queued run(s) into this pass: %s", len(cancelled), ", ".join(cancelled))
    return cancelled


# pass id -> its lock's `assure`, while a pass of this process holds its lock on GitHub
_FENCES: dict[str, Callable[[], None]] = {}


@contextmanager
def one_pass_on_github(url: str, token: SecretStr | None, *, pass_id: str, holder: str,
                       lease_seconds: float, margin: float,
                       on_lost: Callable[[], None] | None = None,
                       ca_bundle: Path | None = None) -> Iterator[PassLock]:
    """The repository's pass lock on GitHub (`refs/conductor/lock`, a compare-and-swap on the
    git server): `lock.held` says whether this pass got it, else `lock.other` holds it.
    Renewed every third of the lease while the block runs, released after it. While held,
    `fence_of(pass_id)` asks it before each write (`PassLock.assure` with `margin`)."""
    with pass_lock(url, token, pass_id=pass_id, holder=holder, lease_seconds=lease_seconds,
                   on_lost=on_lost, ca_bundle=ca_bundle) as lock:
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
                      token: SecretStr | None, ca_bundle: Path | None = None) -> Iterator[Callable[[], None]]:
    """The write check of a coordinator of pass `pass_id`: the pass's own lock when it runs in
    this process (`fence_of`); on another worker, the pass's lease read from the ref at
    `lock_url` (`passlock.LeaseReader`); none when the pass holds no lock (`lock_url` None)."""
    if lock_url is None or pass_id in _FENCES:
        yield fence_of(pass_id)
        return
    with GitRefLock(lock_url, token, ca_bundle=ca_bundle) as store:
        yield LeaseReader(store, pass_id=pass_id, margin=margin).assure

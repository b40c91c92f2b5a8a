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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
from pydantic import SecretStr
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.concurrency.sync import concurrency

from conductor.edges.git_lock import pass_lock
from conductor.core.passlock import PassLock


def _ensure_limit(name: str) -> None:
    """Create the limit unless it exists; two passes starting together may race to it."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except (ObjectAlreadyExists, httpx.HTTPStatusError):
            client.read_global_concurrency_limit_by_name(name)  # the other pass made it


def limit_name(repo: str) -> str:
    return "conductor-" + re.sub(r"[^a-z0-9]+", "-", repo.lower()).strip("-")


@contextmanager
def one_pass_per_repo(repo: str, wait_seconds: float, lease_seconds: float = 60.0) -> Iterator[bool]:
    """Yield True holding the repository's slot, or False if another pass kept it `wait_seconds`."""
    name = limit_name(repo)
    _ensure_limit(name)
    with ExitStack() as held:
        try:
            # A zero timeout fails even when the slot is free (acquiring takes a round trip).
            held.enter_context(concurrency(name, occupy=1, timeout_seconds=max(wait_seconds, 2.0),
                                           lease_duration=lease_seconds, strict=True))
        except TimeoutError:
            yield False
            return
        # Only acquiring may time out into False: a TimeoutError raised by the pass itself
        # (a socket, a future) goes through here unchanged.
        yield True


@contextmanager
def one_pass_on_github(url: str, token: SecretStr | None, *, pass_id: str, holder: str,
                       lease_seconds: float) -> Iterator[PassLock]:
    """The repository's pass lock on GitHub (`refs/conductor/lock`, a compare-and-swap on the
    git server): `lock.held` says whether this pass got it, else `lock.other` holds it.
    Renewed every third of the lease while the block runs, released after it."""
    with pass_lock(url, token, pass_id=pass_id, holder=holder, lease_seconds=lease_seconds) as lock:
        yield lock

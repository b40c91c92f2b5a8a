"""One pass per repository across every Prefect server and machine: a lease on GitHub itself.

The lease is a git ref in the repository, `refs/conductor/lock` (`constants.LOCK_REF`),
pointing at a commit whose message holds the pass id, the holder and the expiry (`Lease`).
Every change of the ref is a compare-and-swap the git server performs atomically
(`git push --force-with-lease=REF:EXPECTED`, see `conductor/edges/git_lock.py`):

- acquire: create the ref only if it is absent;
- take over: only when the lease it holds has expired, and only if the ref still points
  at the commit that was read (so of two passes taking over together, one wins);
- renew: a live pass moves the ref to a commit with a later expiry, only if it still
  holds it (a pass that lost its lease finds out and says so);
- release: delete the ref, only if it still holds it.

A pass killed with its lease held leaves the ref; the lease expires (by default a few
minutes beyond the agent timeout) and the next pass takes it over. The rules are pure
(`decide`); the store is a Protocol, so the I/O lives at the edge.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

LEASE_TITLE = "conductor pass lock"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Lease(BaseModel):
    """Who holds the repository's pass lock, and until when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pass_id: str = Field(min_length=1, description="The id of the pass holding the lock.")
    holder: str = Field(description="Who runs that pass: login@host (shown to other passes).")
    expires_at: datetime = Field(description="After this instant (UTC) another pass may take over.")

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def to_message(self) -> str:
        """The lock commit's message: a title line, then the lease as JSON."""
        data = {"pass_id": self.pass_id, "holder": self.holder,
                "expires_at": self.expires_at.astimezone(UTC).isoformat()}
        return f"{LEASE_TITLE}\n\n{json.dumps(data, sort_keys=True)}\n"

    @classmethod
    def from_message(cls, message: str) -> Lease | None:
        """The lease in a lock commit's message; None when it is not one (never trusted
        further than that: an unreadable lock is treated as expired)."""
        for line in reversed(message.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    lease = cls.model_validate(json.loads(line))
                except (ValueError, ValidationError):
                    return None
                if lease.expires_at.tzinfo is None:
                    return None
                return lease
        return None


class LockState(BaseModel):
    """What the ref points at now: its commit and the lease in it (None: unreadable)."""

    model_config = ConfigDict(frozen=True)

    sha: str
    lease: Lease | None = None


class LockStore(Protocol):
    """A compare-and-swap register on the git server (`conductor.edges.git_lock.GitRefLock`)."""

    def read(self) -> LockState | None:
        """The ref's commit and lease, or None when the ref does not exist."""
        ...

    def swap(self, expected: str | None, lease: Lease | None) -> str | None:
        """Point the ref at a new commit holding `lease` (None: delete the ref), only if it
        still points at `expected` (None: only if it does not exist). Returns the new
        commit (or "" after a delete), or None when the ref had moved: the swap lost."""
        ...


Decision = Literal["create", "take-over", "renew", "busy"]


def decide(current: LockState | None, pass_id: str, now: datetime,
           holder_dead: Callable[[Lease], bool] | None = None) -> Decision:
    """What a pass that wants the lock may do, given what the ref holds now. Pure.

    Absent: create it. Held by this pass: renew. Expired or unreadable, or held by a
    process known to be dead (`holder_dead`: on this machine, its pid gone): take it over.
    Otherwise another live pass holds it: busy."""
    if current is None:
        return "create"
    if current.lease is None or current.lease.expired(now):
        return "take-over"
    if current.lease.pass_id != pass_id and holder_dead is not None and holder_dead(current.lease):
        return "take-over"
    if current.lease.pass_id == pass_id:
        return "renew"
    return "busy"


class PassLock:
    """The lease of one pass. `acquire`, `renew` and `release` are each one
    compare-and-swap; `hold` wraps them for a `with` block, renewing in the background."""

    def __init__(self, store: LockStore, *, pass_id: str, holder: str, lease_seconds: float,
                 clock: Clock = utc_now, holder_dead: Callable[[Lease], bool] | None = None) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.store = store
        self.pass_id = pass_id
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.holder_dead = holder_dead
        self.sha: str | None = None  # the lock commit this pass wrote last, while it holds it
        self.other: Lease | None = None  # the lease that kept this pass out
        self.took_over: Lease | None = None  # the expired lease this pass replaced
        self.lost = False  # the lease was taken while this pass believed it held it

    @property
    def held(self) -> bool:
        return self.sha is not None and not self.lost

    def _lease(self) -> Lease:
        return Lease(pass_id=self.pass_id, holder=self.holder,
                     expires_at=self.clock() + timedelta(seconds=self.lease_seconds))

    def acquire(self, attempts: int = 3) -> bool:
        """Take the lock if it is free or expired. False when a live pass holds it.
        A lost race is re-read and decided again (up to `attempts` times)."""
        for _ in range(attempts):
            current = self.store.read()
            decision = decide(current, self.pass_id, self.clock(), self.holder_dead)
            if decision == "busy":
                self.other = current.lease if current else None
                return False
            expected = current.sha if current else None
            sha = self.store.swap(expected, self._lease())
            if sha:
                if decision == "take-over" and current is not None:
                    self.took_over = current.lease
                    log.warning("took over the expired conductor lock of pass %s (%s)",
                                current.lease.pass_id if current.lease else "?",
                                current.lease.holder if current.lease else "unreadable lease")
                self.sha, self.lost = sha, False
                return True
        current = self.store.read()
        self.other = current.lease if current else None
        return False

    def renew(self) -> bool:
        """Push the expiry forward, only while this pass still holds the lock."""
        if not self.held:
            return False
        sha = self.store.swap(self.sha, self._lease())
        if sha is None:
            self.lost = True
            current = self.store.read()
            self.other = current.lease if current else None
            log.error("the conductor lock was taken over while this pass held it (now held by %s)",
                      self.other.holder if self.other else "nobody")
            return False
        self.sha = sha
        return True

    def release(self) -> bool:
        """Delete the lock if this pass still holds it; a lost lease is left alone."""
        if not self.held:
            return False
        done = self.store.swap(self.sha, None) is not None
        self.sha = None
        return done

    @contextmanager
    def hold(self, renew_every: float | None = None) -> Iterator[PassLock]:
        """`with lock.hold() as held:` — `held.held` says whether this pass got the lock.
        While the block runs the lease is renewed every `renew_every` seconds (a third of
        the lease by default); it is released on the way out, whatever happened."""
        if not self.acquire():
            yield self
            return
        stop = threading.Event()
        interval = renew_every if renew_every is not None else self.lease_seconds / 3
        keeper = threading.Thread(target=self._keep_alive, args=(stop, interval),
                                  name=f"conductor-lock-{self.pass_id}", daemon=True)
        keeper.start()
        try:
            yield self
        finally:
            stop.set()
            keeper.join()
            try:
                self.release()
            except Exception as exc:  # the lease expires by itself; never mask the pass's result
                log.warning("could not release the conductor lock (%s); it expires at its lease end", exc)

    def _keep_alive(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                if not self.renew():
                    return
            except Exception as exc:  # a fault: try again next time, the lease still runs
                log.warning("could not renew the conductor lock (%s); retrying", exc)

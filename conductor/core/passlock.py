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
(`decide`, `may_write`); the store is a Protocol, so the I/O lives at the edge.

Fencing: a pass that was paused past its lease (SIGSTOP, a suspended laptop) must not write
to GitHub once another pass took the lock over. `PassLock.assure` is asked before each
write (the gateway's write door): it answers from the lease this pass last wrote while that
has `margin` seconds to spare, renews it (one compare-and-swap) when it has not, and raises
`LockLost` naming the new holder from the moment the lease is found taken.
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
WriteVerdict = Literal["write", "check", "refuse"]


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


def may_write(lease: Lease | None, pass_id: str, now: datetime, margin: float, *,
              lost: bool = False) -> WriteVerdict:
    """May pass `pass_id` write to GitHub now, given the lease it last saw? Pure.

    Lost, or the lease is another pass's: refuse. The lease is this pass's and has more
    than `margin` seconds left: write (no other pass can take it over before then). No
    lease known, or too little left: check it first (renew it, or read the ref)."""
    if lost or (lease is not None and lease.pass_id != pass_id):
        return "refuse"
    if lease is not None and now + timedelta(seconds=margin) < lease.expires_at:
        return "write"
    return "check"


class LockLost(Exception):  # not a ConductorError: no handler of faults may swallow it
    """This pass no longer holds its lock: the write door refuses every write from now on."""

    def __init__(self, other: Lease | None) -> None:
        self.other = other
        who = f"{other.holder} (pass {other.pass_id})" if other else "nobody"
        super().__init__(f"the conductor lock was taken over: now held by {who}")


class LeaseReader:
    """The write door's check for a part of pass `pass_id` that runs without its `PassLock`
    (a coordinator deployment on another worker): the pass's lease as the ref shows it, read
    again whenever the last reading has `margin` seconds or less left."""

    def __init__(self, store: LockStore, *, pass_id: str, margin: float, clock: Clock = utc_now) -> None:
        self.store = store
        self.pass_id = pass_id
        self.margin = margin
        self.clock = clock
        self.lease: Lease | None = None  # the ref's lease when last read
        self.lost = False
        self._mutex = threading.Lock()

    def assure(self) -> None:
        """Return when the pass may write now, else raise `LockLost` (from then on, always)."""
        with self._mutex:
            if may_write(self.lease, self.pass_id, self.clock(), self.margin, lost=self.lost) == "check":
                current = self.store.read()
                self.lease = current.lease if current else None
            if may_write(self.lease, self.pass_id, self.clock(), self.margin, lost=self.lost) != "write":
                self.lost = True
                raise LockLost(self.lease if self.lease and self.lease.pass_id != self.pass_id else None)


class PassLock:
    """The lease of one pass. `acquire`, `renew` and `release` are each one
    compare-and-swap; `hold` wraps them for a `with` block, renewing in the background."""

    def __init__(self, store: LockStore, *, pass_id: str, holder: str, lease_seconds: float,
                 clock: Clock = utc_now, holder_dead: Callable[[Lease], bool] | None = None,
                 on_lost: Callable[[], None] | None = None) -> None:
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
        self.lease: Lease | None = None  # the lease this pass wrote last, while it holds it
        self.on_lost = on_lost  # called once, when the lease is first found taken
        self._mutex = threading.RLock()  # one compare-and-swap at a time (keeper and write door)

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
            lease = self._lease()
            sha = self.store.swap(expected, lease)
            if sha:
                if decision == "take-over" and current is not None:
                    self.took_over = current.lease
                    log.warning("took over the expired conductor lock of pass %s (%s)",
                                current.lease.pass_id if current.lease else "?",
                                current.lease.holder if current.lease else "unreadable lease")
                self.sha, self.lost, self.lease = sha, False, lease
                return True
        current = self.store.read()
        self.other = current.lease if current else None
        return False

    def renew(self) -> bool:
        """Push the expiry forward, only while this pass still holds the lock."""
        with self._mutex:
            if not self.held:
                return False
            lease = self._lease()
            sha = self.store.swap(self.sha, lease)
            if sha is None:
                self.lost = True
                current = self.store.read()
                self.other = current.lease if current else None
                log.error("the conductor lock was taken over while this pass held it (now held by %s)",
                          self.other.holder if self.other else "nobody")
                if self.on_lost is not None:
                    self.on_lost()
                return False
            self.sha, self.lease = sha, lease
            return True

    def assure(self, margin: float) -> None:
        """The write door's question: return when this pass may write now (its lease has more
        than `margin` seconds left, renewed first if need be), else raise `LockLost`."""
        with self._mutex:
            verdict = may_write(self.lease, self.pass_id, self.clock(), margin, lost=not self.held)
            if verdict == "check" and self.renew():
                verdict = may_write(self.lease, self.pass_id, self.clock(), margin, lost=not self.held)
            if verdict != "write":
                raise LockLost(self.other)

    def release(self) -> bool:
        """Delete the lock if this pass still holds it; a lost lease is left alone."""
        with self._mutex:
            if not self.held:
                return False
            done = self.store.swap(self.sha, None) is not None
            self.sha = self.lease = None
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

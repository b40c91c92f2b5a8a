"""The pass lock on GitHub (issue #11 item 3): a compare-and-swap on `refs/conductor/lock`
against the sandbox's real git smart HTTP, with real threads and a real killed process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from conductor.core.constants import LOCK_REF
from conductor.edges.git_lock import GitRefLock
from conductor.core.passlock import Lease, LockState, PassLock, decide

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


def _lease(pass_id: str, seconds: float) -> Lease:
    return Lease(pass_id=pass_id, holder="alice@host", expires_at=NOW + timedelta(seconds=seconds))


@pytest.mark.parametrize(("current", "expected"), [
    (None, "create"),
    (LockState(sha="a" * 40, lease=_lease("other", 60)), "busy"),
    (LockState(sha="a" * 40, lease=_lease("other", 0)), "take-over"),  # expires exactly now
    (LockState(sha="a" * 40, lease=_lease("other", -1)), "take-over"),
    (LockState(sha="a" * 40, lease=_lease("mine", 60)), "renew"),
    (LockState(sha="a" * 40, lease=None), "take-over"),  # an unreadable lock holds nobody out
])
def test_decide(current, expected):
    assert decide(current, "mine", NOW) == expected


@pytest.mark.parametrize("message", ["", "hello", "conductor pass lock\n\n{not json}",
                                     'x\n\n{"pass_id": "p", "holder": "h", "expires_at": "2026-01-01T00:00:00"}'])
def test_unreadable_lease_messages_are_none(message):
    assert Lease.from_message(message) is None


def test_lease_message_round_trip():
    lease = _lease("p1", 30)
    assert Lease.from_message(lease.to_message()) == lease


@pytest.fixture
def lock_url(sandbox, sandbox_repo) -> str:
    return sandbox.repo_url(sandbox_repo)


@pytest.fixture
def token(sandbox) -> SecretStr:
    return SecretStr(sandbox.admin_token)


def _lock(url, token, pass_id, lease_seconds=30.0) -> PassLock:
    return PassLock(GitRefLock(url, token), pass_id=pass_id, holder=f"{pass_id}@test",
                    lease_seconds=lease_seconds)


def _remote_ref(sandbox, url: str) -> str:
    done = subprocess.run(["git", "ls-remote", url, LOCK_REF], capture_output=True, text=True, check=True,
                          env={**os.environ, **sandbox.git_env()})
    return done.stdout.strip()


def _acquire_together(locks: list[PassLock]) -> dict[str, bool]:
    """Every lock's `acquire()` from its own thread, released at the same instant: pass id -> won."""
    barrier = threading.Barrier(len(locks))
    results: dict[str, bool] = {}

    def race(lock: PassLock) -> None:
        barrier.wait()
        results[lock.pass_id] = lock.acquire()

    threads = [threading.Thread(target=race, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_of_passes_starting_together_exactly_one_gets_the_lock(lock_url, token):
    locks = [_lock(lock_url, token, f"pass-{i}") for i in range(6)]
    results = _acquire_together(locks)

    winners = [p for p, ok in results.items() if ok]
    assert len(winners) == 1, results
    losers = [lock for lock in locks if lock.pass_id not in winners]
    assert {lock.other.pass_id for lock in losers} == set(winners)  # they were told who holds it
    assert GitRefLock(lock_url, token).read().lease.pass_id == winners[0]


def test_of_passes_taking_over_an_expired_lease_together_exactly_one_wins(lock_url, token):
    dead = _lock(lock_url, token, "dead", lease_seconds=0.5)
    assert dead.acquire()
    time.sleep(0.8)
    locks = [_lock(lock_url, token, f"heir-{i}") for i in range(5)]
    results = _acquire_together(locks)

    winners = [lock for lock in locks if results[lock.pass_id]]
    assert len(winners) == 1, results
    assert winners[0].took_over.pass_id == "dead"


HOLDER = textwrap.dedent("""
    import sys, time
    from pydantic import SecretStr
    from conductor.edges.git_lock import GitRefLock
    from conductor.core.passlock import PassLock
    url, token, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lock = PassLock(GitRefLock(url, SecretStr(token)), pass_id="killed", holder="killed@test",
                    lease_seconds=lease)
    with lock.hold(renew_every=0.5) as held:
        print("held" if held.held else "busy", flush=True)
        time.sleep(600)
""")


@pytest.mark.slow
def test_a_killed_holders_lock_is_taken_over_after_expiry_not_before(lock_url, token):
    lease = 6.0
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lock_url, token.get_secret_value(), str(lease)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        time.sleep(1.5)  # the holder has renewed at least once while alive
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)
        killed_at = time.monotonic()
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)

    heir = _lock(lock_url, token, "heir")
    assert not heir.acquire()  # not before expiry
    assert heir.other.pass_id == "killed"
    while time.monotonic() - killed_at < lease + 1:
        time.sleep(0.5)
    assert heir.acquire()  # after expiry
    assert heir.took_over.pass_id == "killed"
    assert GitRefLock(lock_url, token).read().lease.pass_id == "heir"


@pytest.mark.slow
def test_a_live_pass_renews_its_lease_and_releases_it(sandbox, lock_url, token):
    owner = _lock(lock_url, token, "live", lease_seconds=3)
    other = _lock(lock_url, token, "other")
    with owner.hold(renew_every=0.5) as held:
        assert held.held
        first = GitRefLock(lock_url, token).read()
        assert _remote_ref(sandbox, lock_url).split()[1:] == [LOCK_REF]
        full_name = lock_url.rsplit("/", 2)[-2] + "/" + lock_url.rsplit("/", 1)[-1].removesuffix(".git")
        with sandbox.api() as c:  # a ref outside refs/heads is no branch
            assert sorted(b["name"] for b in c.get(f"/repos/{full_name}/branches").json()) == ["dev", "main"]
        time.sleep(4)  # longer than the lease: only renewal keeps it
        assert not other.acquire()
        renewed = GitRefLock(lock_url, token).read()
        assert renewed.lease.pass_id == "live" and renewed.lease.expires_at > first.lease.expires_at
    assert _remote_ref(sandbox, lock_url) == ""  # released: the ref is gone
    assert other.acquire()


def test_a_pass_whose_lease_was_taken_knows_it_and_leaves_the_new_lock_alone(lock_url, token):
    slow = _lock(lock_url, token, "slow", lease_seconds=0.5)
    assert slow.acquire()
    time.sleep(0.8)
    fast = _lock(lock_url, token, "fast")
    assert fast.acquire()

    assert not slow.renew()
    assert slow.lost and slow.other.pass_id == "fast"
    assert not slow.release()
    assert GitRefLock(lock_url, token).read().lease.pass_id == "fast"


def test_the_lock_needs_write_access(sandbox, lock_url):
    reader = PassLock(GitRefLock(lock_url, SecretStr(sandbox.users["carol"])), pass_id="r",
                      holder="carol@test", lease_seconds=30)
    with pytest.raises(Exception, match="conductor lock"):
        reader.acquire()


def test_a_dead_holder_on_this_machine_is_taken_over_at_once(lock_url, token):
    from conductor.edges.git_lock import holder_dead, holder_name, pass_lock

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = PassLock(GitRefLock(lock_url, token), pass_id="dead", lease_seconds=600,
                    holder=holder_name("alice").replace(f"pid {os.getpid()}", f"pid {gone.pid}"))
    assert dead.acquire()
    assert holder_dead(GitRefLock(lock_url, token).read().lease)
    with pass_lock(lock_url, token, pass_id="next", holder=holder_name("alice"), lease_seconds=60) as lock:
        assert lock.held and lock.took_over.pass_id == "dead"
    alive = Lease(pass_id="x", holder=holder_name("alice"), expires_at=NOW)
    assert not holder_dead(alive)  # this process
    assert not holder_dead(Lease(pass_id="x", holder="alice@elsewhere (pid 1)", expires_at=NOW))

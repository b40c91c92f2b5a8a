"""The one-pass-per-repository slot (tasks/guard.py), on the session's real Prefect server."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tasks.guard import limit_name, one_pass_per_repo


def test_a_timeout_error_inside_the_pass_surfaces_as_itself(prefect_server):
    repo = "guard/timeout-inside"
    with pytest.raises(TimeoutError, match="socket read timed out"):
        with one_pass_per_repo(repo, wait_seconds=5) as mine:
            assert mine
            raise TimeoutError("socket read timed out")
    with one_pass_per_repo(repo, wait_seconds=5) as again:  # and the slot was given back
        assert again


@contextmanager
def held_by_another(repo: str, release_after: float | None = None) -> Iterator[None]:
    """Another pass holds `repo`'s slot while the block runs (or, with `release_after`, until
    that many seconds into it)."""
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with one_pass_per_repo(repo, wait_seconds=5) as mine:
            assert mine
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(30)
        if release_after is not None:
            threading.Timer(release_after, release.set).start()
        yield
    finally:
        release.set()
        thread.join(30)


def test_a_second_pass_gets_false_while_the_first_holds_the_slot(prefect_server):
    with held_by_another("guard/held"), one_pass_per_repo("guard/held", wait_seconds=0) as second:
        assert second is False


@pytest.mark.parametrize("repo,name", [("Acme/Maestro", "conductor-acme-maestro"), ("o/a.b_c", "conductor-o-a-b-c")])
def test_limit_names_are_slugs(repo, name):
    assert limit_name(repo) == name


def test_a_pass_waiting_beside_another_takes_the_slot_once_freed_and_logs_no_error(prefect_server, caplog):
    """A run waiting for the slot reads the limit and tries only when the slot is free: it
    gets the slot within a read of its release, and Prefect logs no failed acquisition every
    try (an error line every 2 s for as long as the pass beside it runs)."""
    import logging

    with held_by_another("guard/beside", release_after=5.0), caplog.at_level(logging.ERROR):
        with one_pass_per_repo("guard/beside", wait_seconds=30) as second:
            assert second is True  # released after 5 s: well before the deadline
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]

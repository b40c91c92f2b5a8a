"""Shared fixtures: one sandbox GitHub server for the whole test session.

`sandbox` is a `github_sandbox.testing.RunningSandbox` with users `admin` (site admin),
`alice`, `bob` and `carol` (no rights anywhere until a test grants them some). Tests
isolate themselves by creating uniquely named repositories; `sandbox_repo` makes one
with an initial commit on `main` and a `dev` branch at the same commit.
"""
from __future__ import annotations

import itertools
import os
import re
import secrets
import tempfile

import pytest

from shell.prefect_server import embedded_server, free_port
from github_sandbox.testing import RunningSandbox, running_sandbox

# One real Prefect server for the whole session (started on first use). Its address is
# fixed before anything imports Prefect, so Prefect's global settings and background
# workers (logs, events) all point at it and never start an ephemeral server of their own.
_PREFECT_HOME = tempfile.mkdtemp(prefix="conductor-tests-prefect-")
_PREFECT_PORT = free_port()
os.environ.update({
    "PREFECT_HOME": _PREFECT_HOME,
    "PREFECT_API_URL": f"http://127.0.0.1:{_PREFECT_PORT}/api",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The sandbox needs none of PyGithub's courtesy pauses (0.25 s per request, 1 s per write
    # by default); every conductor process a test starts inherits this.
    "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
    "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0",
})

SANDBOX_USERS = {
    "admin": "sbx_admin_" + secrets.token_hex(8),
    "alice": "sbx_alice_" + secrets.token_hex(8),
    "bob": "sbx_bob_" + secrets.token_hex(8),
    "carol": "sbx_carol_" + secrets.token_hex(8),
}
_serial = itertools.count(1)


# Tiers: `python3 dev.py test -m "not e2e and not slow"` is the fast loop (under a minute).
# A test that needs the Prefect server is slow by definition (the server takes seconds to start
# and every pass is a real flow run); whole-product tests mark themselves `e2e`.
_PREFECT_FIXTURES = {"prefect_server", "prefect_client"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _PREFECT_FIXTURES & set(getattr(item, "fixturenames", ())) and "e2e" not in item.keywords:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> RunningSandbox:
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), users=SANDBOX_USERS) as sb:
        yield sb


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory: pytest.TempPathFactory) -> RunningSandbox:
    """A sandbox of its own on https (`serve --tls`), one per test module: `ca` is its CA."""
    with running_sandbox(tmp_path_factory.mktemp("tls-sandbox"), users=SANDBOX_USERS, tls=True) as sb:
        yield sb


def unique_repo_name(hint: str) -> str:
    """A repository name unique within the session, readable in failures."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", hint).strip("-")[:48] or "repo"
    return f"{stem}-{next(_serial)}-{secrets.token_hex(2)}"


@pytest.fixture
def sandbox_repo(sandbox: RunningSandbox, request: pytest.FixtureRequest) -> str:
    """A fresh public repository owned by `admin`: one commit on `main`, `dev` at it."""
    full_name = sandbox.create_repo(unique_repo_name(request.node.name))
    sandbox.push_initial(full_name)
    return full_name


@pytest.fixture(scope="session")
def prefect_server() -> str:
    """The API URL of the session's Prefect server (conductor's embedded server)."""
    with embedded_server(prefect_home=_PREFECT_HOME, port=_PREFECT_PORT) as url:
        yield url


@pytest.fixture(scope="session")
def prefect_client(prefect_server: str):
    from prefect_support import PrefectHistory

    return PrefectHistory()

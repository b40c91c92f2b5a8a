"""The embedded Prefect server: Prefect's own API app, with writes taken one at a time.

Why: on SQLite, Prefect's server lets concurrent transactions that read and then write
collide ("database is locked"); it answers 503 and the client backs off 2 s, so a dozen
concurrent coordinator subflows cost ~1 s each. SQLite has one writer anyway, so this
wrapper queues write requests (POST/PUT/PATCH/DELETE) in the server process instead:
they wait milliseconds, never fail. Reads still run concurrently (WAL). On PostgreSQL
none of this is needed: point PREFECT_API_URL at that server and the conductor uses it.

`conductor run` starts this server when PREFECT_API_URL is not set; tests use it as
their one session-wide server.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conductor.errors import ConductorError

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SerializedWrites:
    """ASGI middleware: one write request at a time; reads pass straight through.

    Prefect's own background services still write to SQLite outside this queue, so a
    request can still meet a lock and get a 503; those answers carry `Retry-After: 0.05`,
    which Prefect's client honours instead of its 2 s exponential back-off."""

    RETRY_AFTER = b"0.05"

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock: asyncio.Lock | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_retry_after(message: dict) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 503:
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"retry-after"]
                message = {**message, "headers": [*headers, (b"retry-after", self.RETRY_AFTER)]}
            await send(message)

        if scope.get("method") in WRITE_METHODS:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                await self.app(scope, receive, send_with_retry_after)
        else:
            await self.app(scope, receive, send_with_retry_after)


def create_app() -> SerializedWrites:
    """uvicorn factory: `uvicorn --factory conductor.prefect_server:create_app`."""
    from prefect.server.api.server import create_app as prefect_app

    return SerializedWrites(prefect_app(final=True))


def drain_prefect_workers() -> None:
    """Send the logs and events Prefect still queues, while the server still listens."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    EventsWorker.drain_all()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def embedded_server(prefect_home: str | None = None, port: int | None = None,
                    ui: bool = False, startup_timeout: float = 120.0) -> Iterator[str]:
    """Start the server in a subprocess; yield its API URL (…/api); stop it on exit."""
    port = port or free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update({
        "PREFECT_UI_ENABLED": "1" if ui else "0",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })
    if prefect_home:
        env["PREFECT_HOME"] = prefect_home
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "conductor.prefect_server:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env=env, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(api_url):
            if process.poll() is not None:
                raise ConductorError(f"the embedded Prefect server exited with status {process.returncode}; "
                                     "set PREFECT_API_URL to a running Prefect server instead")
            if time.monotonic() > deadline:
                raise ConductorError(f"the embedded Prefect server did not start within {startup_timeout:.0f} s; "
                                     "set PREFECT_API_URL to a running Prefect server instead")
            time.sleep(0.2)
        yield api_url
        drain_prefect_workers()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

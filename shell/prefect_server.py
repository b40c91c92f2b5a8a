"""The embedded Prefect server: Prefect's own API app, with writes taken one at a time.

Why: on SQLite, Prefect's server lets concurrent transactions that read and then write
collide ("database is locked"); it answers 503 and the client backs off 2 s, so a dozen
concurrent coordinator subflows cost ~1 s each. SQLite has one writer anyway, so this
wrapper queues write requests (POST/PUT/PATCH/DELETE) in the server process instead:
they wait milliseconds, never fail. Reads still run concurrently (WAL). On PostgreSQL
none of this is needed: point PREFECT_API_URL at that server and the conductor uses it.

`conductor run` starts this server when PREFECT_API_URL is not set; tests use it as
their one session-wide server. It keeps its own database (`conductor-embedded.db` under
PREFECT_HOME, not the `prefect.db` of a `prefect server start` on the same home), takes
a lock per PREFECT_HOME around start-up and migrations, and dies with its parent.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conductor.core.errors import ConductorError
from conductor.core.settings import load_settings, process_environment

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EMBEDDED_DB_NAME = "conductor-embedded.db"
LOCK_NAME = "conductor-embedded.lock"


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
    """uvicorn factory: `uvicorn --factory shell.prefect_server:create_app`."""
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


def database_url(prefect_home: str | Path) -> str:
    """The embedded server's own SQLite database: under PREFECT_HOME, but never the file
    a `prefect server start` on the same home uses (`prefect.db`)."""
    return f"sqlite+aiosqlite:///{Path(prefect_home).resolve() / EMBEDDED_DB_NAME}"


def default_home() -> Path:
    return load_settings().run.prefect_home


class EmbeddedServer:
    """The server as a child process that cannot outlive its parent.

    `start()` returns at once (the process imports Prefect and migrates while the caller
    does other work, e.g. checks its inputs); `wait_ready()` blocks until it answers.
    The child runs in its own process group (a Ctrl-C at the terminal reaches only the
    parent, which stops it in order) and watches a pipe from its parent: when the parent
    dies, even by `kill -9`, the pipe closes and the server exits within a second.
    Start-up and migrations take a lock file in PREFECT_HOME, so two servers on one fresh
    home never migrate the same database at once."""

    def __init__(self, prefect_home: str | Path | None = None, port: int | None = None,
                 ui: bool = False, startup_timeout: float = 300.0, log_file: Path | None = None) -> None:
        self.home = Path(prefect_home).expanduser() if prefect_home else default_home()
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui = ui
        self.startup_timeout = startup_timeout
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    def start(self) -> EmbeddedServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = process_environment()
        env.pop("PREFECT_API_URL", None)
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_UI_ENABLED": "1" if self.ui else "0",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        })
        env.setdefault("PREFECT_API_DATABASE_CONNECTION_URL", database_url(self.home))
        self._lock_fd = os.open(self.home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115 (handed to the child)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shell.prefect_server", "--port", str(self.port),
                 "--lock-fd", str(self._lock_fd)],
                env=env, stdin=subprocess.PIPE, stdout=out, stderr=out,
                pass_fds=(self._lock_fd,), start_new_session=True)
        finally:
            if out:
                out.close()
            os.close(self._lock_fd)  # the child holds the lock through its own copy
            self._lock_fd = None
        return self

    def wait_ready(self) -> str:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + self.startup_timeout
        while not _healthy(self.api_url):
            if self.process.poll() is not None:
                raise ConductorError(f"the embedded Prefect server exited with status {self.process.returncode}; "
                                     "set PREFECT_API_URL to a running Prefect server instead")
            if time.monotonic() > deadline:
                raise ConductorError(f"the embedded Prefect server did not start within {self.startup_timeout:.0f} s; "
                                     "set PREFECT_API_URL to a running Prefect server instead")
            time.sleep(0.1)
        return self.api_url

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin:
            process.stdin.close()

    def __enter__(self) -> str:
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                drain_prefect_workers()
        finally:
            self.stop()


@contextmanager
def embedded_server(prefect_home: str | None = None, port: int | None = None,
                    ui: bool = False, startup_timeout: float = 300.0) -> Iterator[str]:
    """Start the server in a subprocess; yield its API URL (…/api); stop it on exit."""
    with EmbeddedServer(prefect_home, port, ui, startup_timeout) as url:
        yield url


# ---------------------------------------------------------------- the child process
def _watch_parent(stream: Any) -> None:
    """Block until the parent's end of our stdin closes (the parent died), then exit."""
    try:
        while stream.read(1024):
            pass
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # a graceful shutdown gets 5 s, then the process ends regardless
    os._exit(0)


def _serve(port: int, lock_fd: int | None) -> None:
    import uvicorn

    threading.Thread(target=_watch_parent, args=(sys.stdin.buffer,), daemon=True,
                     name="parent-watch").start()
    if lock_fd is not None:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # one start-up (and migration) per PREFECT_HOME at a time

    config = uvicorn.Config("shell.prefect_server:create_app", factory=True, host="127.0.0.1",
                            port=port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)

    if lock_fd is not None:
        async def release_when_started() -> None:
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.05)
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

        async def main() -> None:
            task = asyncio.ensure_future(release_when_started())
            await server.serve()
            task.cancel()

        asyncio.run(main())
    else:
        server.run()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="conductor's embedded Prefect server (a child process)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lock-fd", type=int, default=None)
    args = parser.parse_args()
    _serve(args.port, args.lock_fd)

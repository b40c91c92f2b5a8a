"""A Prefect server on PostgreSQL, for local use and the tests: `python -m deployments.postgres_server`.

    python -m deployments.postgres_server --root ~/.conductor/prefect-pg [--host 127.0.0.1] [--port 4200]

Uses Debian's PostgreSQL (`apt-get install postgresql`; `python3 dev.py test` installs it):
a cluster of its own under ROOT (made on first use, owned by the `postgres` user when run as
root, since PostgreSQL refuses to run as root), listening on 127.0.0.1 only, with the database
`prefect`; then `prefect server start` on it, at HOST:PORT. Both run until this process is
interrupted (Ctrl-C, SIGTERM), and stop with it. Production runs the same two pieces as
services of their own (README, "A fleet").
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from conductor.core.errors import ConductorError
from conductor.core.settings import process_environment

DATABASE = "prefect"
ROLE = "prefect"


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL's bin directory, or the one of `postgres` on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


def _as_owner(argv: list[str]) -> list[str]:
    """Run as `postgres` when this process is root (PostgreSQL refuses root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _started(argv: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A child in its own process group, logging to `log`; its group is stopped on exit."""
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    try:
        yield process
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _wait(what: str, ready: callable, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise ConductorError(f"{what} exited with {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise ConductorError(f"{what} did not start within {timeout:.0f} s; see {log}")
        time.sleep(0.3)


@contextmanager
def postgresql(root: Path, port: int | None = None, timeout: float = 60) -> Iterator[str]:
    """PostgreSQL with its data under `root` (made on first use), on 127.0.0.1; yields the
    SQLAlchemy URL of its `prefect` database for Prefect (`postgresql+asyncpg://…`)."""
    bindir = postgres_bin()
    if bindir is None:
        raise ConductorError("PostgreSQL is not installed; install it with `sudo apt-get install postgresql` "
                             "(Debian), or run `python3 dev.py test` as root once")
    root = Path(root).resolve()
    data, sockets = root / "data", root / "sockets"
    for folder in (root, sockets):
        folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        closed = [p for p in root.parents if not os.stat(p).st_mode & 0o001]
        if closed:
            raise ConductorError(f"the postgres user cannot reach {root} ({closed[0]} is closed to others); "
                                 f"choose a --root under an open folder, or `chmod o+x {closed[0]}`")
        owner = pwd.getpwnam("postgres")
        for folder in (root, sockets, *([data] if data.exists() else [])):
            os.chown(folder, owner.pw_uid, owner.pw_gid)
    env = {**process_environment(), "LC_ALL": "C.UTF-8"}
    if not (data / "PG_VERSION").exists():
        done = subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", ROLE, "-A", "trust",
                                         "--no-sync", "-E", "UTF8"]), capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise ConductorError(f"initdb failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    port = port or _free_port()
    log = root / "postgresql.log"
    argv = _as_owner([str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
                      "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=off"])
    with _started(argv, log, env) as process:
        def ready() -> bool:
            return subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", ROLE],
                                  env=env).returncode == 0
        _wait("PostgreSQL", ready, process, log, timeout)
        created = subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", ROLE,
                                  DATABASE], capture_output=True, text=True, env=env)
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise ConductorError(f"createdb {DATABASE} failed: {created.stderr.strip()}")
        yield f"postgresql+asyncpg://{ROLE}@127.0.0.1:{port}/{DATABASE}"


@contextmanager
def prefect_on_postgresql(root: Path, host: str = "127.0.0.1", port: int = 4200,
                          extra_env: dict[str, str] | None = None, timeout: float = 180) -> Iterator[str]:
    """PostgreSQL (`postgresql`) and `prefect server start` on it at HOST:PORT, its home under
    `root`; yields the server's API URL."""
    with ExitStack() as stack:
        database = stack.enter_context(postgresql(Path(root) / "postgresql"))
        home = Path(root) / "prefect-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {**{k: v for k, v in process_environment().items() if not k.startswith("PREFECT_")},
               "PREFECT_HOME": str(home), "PREFECT_API_DATABASE_CONNECTION_URL": database,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
               **(extra_env or {})}
        log = Path(root) / "prefect-server.log"
        prefect = Path(sys.executable).parent / "prefect"
        process = stack.enter_context(_started(
            [str(prefect), "server", "start", "--host", host, "--port", str(port)], log, env))
        api = f"http://{host}:{port}/api"

        def healthy() -> bool:
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        _wait("prefect server", healthy, process, log, timeout)
        yield api


def default_root() -> Path:
    """~/.conductor/prefect-pg; as root /var/lib/conductor/prefect-pg (root's home is closed
    to the `postgres` user)."""
    return Path("/var/lib/conductor/prefect-pg") if os.geteuid() == 0 else Path.home() / ".conductor" / "prefect-pg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.postgres_server",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=default_root(),
                        help="where the database and the server's home live (as root, a folder the "
                        "postgres user can reach; default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="the address the Prefect API listens on")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with prefect_on_postgresql(args.root, args.host, args.port) as api:
            print(f"Prefect on PostgreSQL: PREFECT_API_URL={api} (Ctrl-C stops both)", flush=True)
            while True:
                time.sleep(3600)
    except ConductorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

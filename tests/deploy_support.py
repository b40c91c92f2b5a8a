"""Test support for running the conductor "the Prefect way": a real `prefect server start`,
`prefect deploy --all`, `prefect worker start` processes and `prefect deployment run`.

Every process runs in its own process group (start_new_session) with an environment built
here from scratch for Prefect and the conductor (nothing inherited from the test session's
in-process server), logs to a file, and is killed at the end with its whole group and the
groups of all its descendants (flow run processes, agents).
"""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
PREFECT = BIN_DIR / "prefect"
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})
_INHERITED_PREFIXES = ("PREFECT_", "CONDUCTOR_")
_INHERITED_NAMES = frozenset({"GITHUB_TOKEN", "GH_TOKEN", "GITHUB_API_URL"})


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any Prefect, conductor or GitHub setting, plus `values`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_INHERITED_PREFIXES) and k not in _INHERITED_NAMES}
    env.update(values)
    return env


@dataclass
class Background:
    """A process started in its own session; its stdout and stderr go to `log`."""

    name: str
    process: subprocess.Popen
    log: Path
    worker_of: tuple[str, str] = ("", "")  # (pool, worker name) of a Prefect worker
    stopped: bool = False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until the process has no child left: a worker's flow run processes (which send
        their last logs as they exit) are gone."""
        deadline = time.monotonic() + timeout
        while (children := descendants(self.process.pid)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: processes {children} still running after {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL, to the process's group and to the groups of all its
        descendants: Prefect starts each flow run in a session of its own, and the conductor
        each agent, so the worker's group alone does not hold them."""
        if self.stopped:
            return
        self.stopped = True
        groups = [self.process.pid]
        for pid in descendants(self.process.pid):
            try:
                groups.append(os.getpgid(pid))
            except ProcessLookupError:
                pass
        groups = list(dict.fromkeys(groups))
        _signal_groups(groups, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _signal_groups(groups, signal.SIGKILL)
        self.process.wait(timeout=10)


def _signal_groups(groups: list[int], sig: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


def descendants(pid: int) -> list[int]:
    """Live (not zombie) descendants of `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Launcher:
    """Starts background processes and stops every one of them on `stop_all`."""

    log_dir: Path
    started: list[Background] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = PROJECT_DIR) -> Background:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        background = Background(name, process, log)
        self.started.append(background)
        return background

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


@dataclass
class WorkerSpec:
    pool: str
    name: str
    env: dict[str, str]
    limit: int | None = None


class PrefectServer:
    """`prefect server start` on SQLite with a PREFECT_HOME of its own, and its REST API."""

    def __init__(self, launcher: Launcher, home: Path, port: int) -> None:
        self.launcher = launcher
        self.home = home
        self.port = port
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.process: Background | None = None

    def start(self, timeout: float = 180) -> None:
        assert PREFECT.is_file(), f"{PREFECT} is missing: run the tests with the project's venv (python dev.py test)"
        self.home.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            # No scheduler service: the hourly schedule is stored and checked, but no scheduled
            # run is created that a test's worker could pick up at the top of an hour.
            PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        )
        self.process = self.launcher.start(
            "prefect-server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)], env)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not self.process.alive():
                raise AssertionError(f"prefect server exited with {self.process.process.returncode}:\n"
                                     f"{self.process.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"prefect server did not answer /api/health within {timeout:.0f} s:\n"
                                     f"{self.process.tail()}")
            time.sleep(0.3)

    # -- processes of the server's clients --------------------------------------------------
    def env(self, home: Path, **values: str) -> dict[str, str]:
        """The environment of a Prefect client (CLI, worker) of this server with its own home."""
        home.mkdir(parents=True, exist_ok=True)
        return clean_env(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(home),
                         PREFECT_SERVER_ANALYTICS_ENABLED="false", **values)

    def cli(self, argv: list[str], env: dict[str, str], timeout: float = 180) -> str:
        """Run a command to completion in the project root; its output, or a failure showing it."""
        try:
            done = subprocess.run([str(a) for a in argv], cwd=PROJECT_DIR, env=env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{argv} did not finish in {timeout} s: {exc.stdout} {exc.stderr}") from None
        assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def start_workers(self, specs: list[WorkerSpec]) -> list[Background]:
        """`prefect worker start --pool POOL --name NAME [--limit N]` for each spec, polling for
        work every second; returns at once (see `wait_online`)."""
        workers = []
        for spec in specs:
            argv = [PREFECT, "worker", "start", "--pool", spec.pool, "--name", spec.name]
            if spec.limit is not None:
                argv += ["--limit", str(spec.limit)]
            worker = self.launcher.start(f"worker-{spec.name}", argv,
                                         {**spec.env, "PREFECT_WORKER_QUERY_SECONDS": "1"})
            worker.worker_of = (spec.pool, spec.name)
            workers.append(worker)
        return workers

    @contextmanager
    def test_workers(self, online: bool = False) -> Iterator[Callable[..., list[Background]]]:
        """`start(*specs)` for one test (waiting until they are online, with `online`); stops
        them, and cancels what they left, at its end."""
        started: list[Background] = []

        def start(*specs: WorkerSpec) -> list[Background]:
            workers = self.start_workers(list(specs))
            started.extend(workers)
            if online:
                self.wait_online(workers)
            return workers

        try:
            yield start
        finally:
            for worker in started:
                worker.stop()
            self.cancel_unfinished()

    def wait_online(self, workers: Iterable[Background], timeout: float = 90) -> None:
        """Return once the server lists every worker as online in its pool."""
        deadline = time.monotonic() + timeout
        for worker in workers:
            pool, name = worker.worker_of
            while not any(w["name"] == name and w.get("status") == "ONLINE" for w in self.workers(pool)):
                if not worker.alive():
                    raise AssertionError(f"worker {name} exited with {worker.process.returncode}:\n{worker.tail()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"worker {name} did not come online within {timeout:.0f} s:\n"
                                         f"{worker.tail()}")
                time.sleep(0.3)

    def run_deployment(self, name: str, env: dict[str, str], **parameters: str) -> str:
        """`prefect deployment run NAME --param k=v ...`; returns the new flow run's id."""
        argv: list[Any] = [PREFECT, "deployment", "run", name]
        for key, value in parameters.items():
            argv += ["--param", f"{key}={value}"]
        out = self.cli(argv, env)
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
        assert found, f"no flow run id in the output of {argv}:\n{out}"
        return found.group(1)

    def wait_for_flow_run(self, flow_run_id: str, watch: Iterable[Background] = (),
                          timeout: float = 120) -> dict[str, Any]:
        """Poll the flow run until its state is final; fail early if a watched process died."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/flow_runs/{flow_run_id}")
            if run["state_type"] in TERMINAL:
                return run
            for process in watch:
                if not process.alive():
                    raise AssertionError(f"{process.name} exited while flow run {flow_run_id} was "
                                         f"{run['state_name']}:\n{process.tail()}")
            if time.monotonic() > deadline:
                logs = "\n".join(process.tail(30) for process in watch)
                raise AssertionError(f"flow run {flow_run_id} still {run['state_name']} after {timeout:.0f} s:\n{logs}")
            time.sleep(0.5)

    # -- REST API ------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.api_url}{path}", timeout=30)
        assert response.status_code < 400, (path, response.status_code, response.text)
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.api_url}{path}", json=body, timeout=30)
        assert response.status_code < 400, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def _all(self, path: str, body: dict[str, Any], page: int = 200) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            batch = self.post(path, {**body, "limit": page, "offset": len(items)})
            items += batch
            if len(batch) < page:
                return items

    def workers(self, pool: str) -> list[dict[str, Any]]:
        return self.post(f"/work_pools/{pool}/workers/filter", {})

    def deployment(self, name: str) -> dict[str, Any]:
        return self.get(f"/deployments/name/{name}")

    def flow_runs(self, **flow_run_filter: Any) -> list[dict[str, Any]]:
        return self._all("/flow_runs/filter", {"flow_runs": flow_run_filter, "sort": "EXPECTED_START_TIME_ASC"})

    def child_flow_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        return self.flow_runs(parent_flow_run_id={"any_": [flow_run_id]})

    def artifacts(self, flow_run_ids: list[str]) -> list[dict[str, Any]]:
        return self._all("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": flow_run_ids}}})

    def logs(self, flow_run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """The logs of these flow runs, or every log the server holds."""
        where = {"flow_run_id": {"any_": flow_run_ids}} if flow_run_ids is not None else {}
        return self._all("/logs/filter", {"logs": where, "sort": "TIMESTAMP_ASC"})

    def cancel_unfinished(self) -> None:
        """Cancel every flow run not yet final (a failed test must not hold a deployment's
        concurrency slot for the next one)."""
        for run in self.flow_runs(state={"type": {"not_any_": sorted(TERMINAL)}}):
            self.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "CANCELLED"}, "force": True})


def lose_machine(worker: Background) -> None:
    """A lost machine: SIGKILL to the worker and to every process under it (its flow runs,
    their agents), nobody told."""
    groups = {worker.process.pid}
    for pid in descendants(worker.process.pid):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    _signal_groups(sorted(groups), signal.SIGKILL)
    worker.process.wait(timeout=10)
    worker.stopped = True


def agents_of(worker: Background) -> int:
    """How many scripted agents (`shell.demo_agent`) run under the worker now."""
    found = 0
    for pid in descendants(worker.process.pid):
        try:
            found += b"shell.demo_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            pass
    return found


def conductor_env(server: PrefectServer, home: Path, *, api_url: str, token: str, agent_token: str,
                  repo_path: Path, work: Path, agent_command: list[str] | None = None,
                  **extra: str) -> dict[str, str]:
    """The environment of a worker that runs conductor passes or coordinators: the project
    dir for the deployments' pull step, the tokens, a clone and work directories of its own."""
    return server.env(
        home,
        CONDUCTOR_PROJECT_DIR=str(PROJECT_DIR),
        GITHUB_TOKEN=token,
        CONDUCTOR_AGENT_TOKEN=agent_token,
        CONDUCTOR_GITHUB_URL=api_url,
        CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS="0",
        CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES="0",
        CONDUCTOR_GITHUB_BACKOFF="0.05",
        CONDUCTOR_REPO_PATH=str(repo_path),
        CONDUCTOR_WORKTREE_ROOT=str(work / "worktrees"),
        CONDUCTOR_SALVAGE_DIR=str(work / "salvage"),
        CONDUCTOR_AGENT_TIMEOUT="120",
        **({"CONDUCTOR_AGENT_COMMAND": json.dumps(agent_command)} if agent_command else {}),
        **extra,
    )


def demo_agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "shell.demo_agent", *args]


def unescape_markdown(text: str) -> str:
    """Undo conductor.core.markdown.escape: backslash escapes and the zero-width spaces after '#'/'@'."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u200b", "")


def slug(repo: str) -> str:
    """The suffix of a pass's artifact keys (tasks/steps.py)."""
    return re.sub(r"[^a-z0-9]+", "-", repo.lower()).strip("-")


def token_forms(token: str) -> list[bytes]:
    """The ways a token could be written down: as is, and as git's HTTP basic credential."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return [token.encode(), basic.encode()]


def files_containing(roots: Iterable[Path], needles: list[bytes]) -> list[str]:
    """Every file under `roots` whose bytes contain one of `needles` (path: which)."""
    hits = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                hits += [f"{path}: {needle[:12]!r}..." for needle in needles if needle in data]
    return hits


def scanned_file_count(roots: Iterable[Path]) -> int:
    return sum(1 for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink())

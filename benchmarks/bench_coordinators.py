"""Benchmark: do K concurrent coordinators cost S seconds, or K×S?

    .venv/bin/python benchmarks/bench_coordinators.py [--k 1,4,12] [--sleep 3]
        [--servers embedded,sqlite,postgres] [--no-warmup]

For each Prefect server (conductor's embedded server, Prefect's stock SQLite server,
Prefect's stock server on a throwaway PostgreSQL cluster) and each K, runs one real
conductor pass over a fresh sandbox repository with K issues in K batches, so the pass
dispatches K coordinator subflows at once; each coordinator's agent sleeps S seconds and
reports done with no artifact (a verification failure: only the time matters here).

The figure is the wall time of `flows.coordinators.dispatch_all` (from starting the
first coordinator to the last one returning), timed by a wrapper in the pass's own
process. Overhead per coordinator = (dispatch time − S) / K: everything a coordinator
costs besides its agent's sleep (subflow bookkeeping on the server, GitHub claim and
release, git worktree, agent process start, verification), spread over the K that ran
at once. The other columns break it down, from more wrappers in that process:

- `all started`: dispatch start -> the last coordinator body entered (subflow start);
- `agent run`: mean wall time of the agent step (S plus process start and exit);
- `finish`: the last body's end -> dispatch end;
- `pass CPU`: CPU seconds of the pass process (all its threads) during the dispatch;
- `child CPU`: CPU seconds of the agent and git processes it ran meanwhile;
- `API retries`: requests of the whole pass that the Prefect client retried after a
  503 or a connection error, each after a back-off of about 2 s;
- `subflows ended`: the pass's child flow runs in a final state in the Prefect API
  (Failed here, as the agents' claims verify nothing).

Each server gets one unreported K=1 pass first (`--no-warmup` skips it). Every server
and cluster this script starts is stopped, every file it made removed; a server that
cannot run here prints `skipped`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pwd
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path
from typing import Any

SERVERS = ("embedded", "sqlite", "postgres")
PHASE = "phase-4/new-ui-pages"
GOAL_SERVER, GOAL_K, GOAL_SECONDS = "embedded", 12, 0.3
STARTUP_TIMEOUT = 180.0
PASS_TIMEOUT = 900.0
CONDUCTOR, AGENT = "alice", "bob"


class BenchInputError(Exception):
    """Bad command-line input (exit 2)."""


class Skipped(Exception):
    """A server that cannot run here; the message says why."""


# -- pure parts ------------------------------------------------------------------------------

# The agent: sleeps S seconds, then reports "done" with no artifact (a verification failure,
# which is fine: only time is measured). Standard library only (`python -S`), so its own
# start-up costs ~20 ms of CPU and the figures measure the conductor, not an agent's imports.
SLEEP_AGENT = (
    "import json, os, sys, time\n"
    "time.sleep(float(sys.argv[1]))\n"
    "lines = open(os.environ['CONDUCTOR_TASK_FILE'], encoding='utf-8').read().splitlines()\n"
    "task = dict(line.split('=', 1) for line in lines if '=' in line)\n"
    "report = {'workflow': task['WORKFLOW'], 'status': 'done'}\n"
    "open(os.environ['CONDUCTOR_REPORT_FILE'], 'w', encoding='utf-8').write(json.dumps(report))\n"
)


def parse_ks(text: str) -> list[int]:
    """'1,4,12' -> [1, 4, 12]: whole numbers from 1 to 99 (batch-NN), no repeats."""
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchInputError(f"--k {text!r}: expected whole numbers separated by commas, e.g. --k 1,4,12") from None
    if not ks or any(not 1 <= k <= 99 for k in ks) or len(set(ks)) != len(ks):
        raise BenchInputError(f"--k {text!r}: give distinct numbers from 1 to 99, e.g. --k 1,4,12")
    return ks


def parse_servers(text: str) -> list[str]:
    """'embedded,sqlite' -> ['embedded', 'sqlite'], each one of SERVERS."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if not names or unknown or len(set(names)) != len(names):
        raise BenchInputError(f"--servers {text!r}: give distinct names from {', '.join(SERVERS)}")
    return names


def overhead_per_coordinator(dispatch_seconds: float, sleep_seconds: float, k: int) -> float:
    """What each of the K concurrent coordinators added to the dispatch beyond its agent's sleep."""
    return (dispatch_seconds - sleep_seconds) / k


def goal_line(rows: list[dict[str, Any]], sleep_seconds: float) -> str:
    """The verdict for the embedded server at K=12 (or why there is none)."""
    row = next((r for r in rows if r["server"] == GOAL_SERVER and r["k"] == GOAL_K), None)
    what = f"goal: {GOAL_SERVER}, K={GOAL_K}, overhead per coordinator < {GOAL_SECONDS} s"
    if row is None:
        return f"{what}: not measured (needs --servers {GOAL_SERVER} and {GOAL_K} in --k)"
    overhead = overhead_per_coordinator(row["dispatch_s"], sleep_seconds, row["k"])
    return f"{what}: {'PASS' if overhead < GOAL_SECONDS else 'FAIL'} ({overhead:.3f} s)"


COLUMNS = [  # (heading, row key or None for the overhead, format)
    ("server", "server", "<9"), ("K", "k", ">3"), ("pass (s)", "pass_s", ">9.2f"),
    ("dispatch (s)", "dispatch_s", ">13.2f"), ("overhead/coordinator (s)", None, ">25.3f"),
    ("all started (s)", "started_s", ">16.2f"), ("agent run (s)", "agent_s", ">14.2f"),
    ("finish (s)", "finish_s", ">11.2f"), ("pass CPU (s)", "cpu_s", ">13.2f"),
    ("child CPU (s)", "child_cpu_s", ">14.2f"), ("API retries", "retries", ">12"),
    ("subflows ended", "ended", ">15"),
]


def table(rows: list[dict[str, Any]], sleep_seconds: float) -> str:
    """One line per (server, K); `subflows ended` counts the pass's child flow runs in a final
    state (Completed, or Failed when the agent's claims did not verify) in the Prefect API."""
    def cell(row: dict[str, Any], key: str | None, fmt: str) -> str:
        value = overhead_per_coordinator(row["dispatch_s"], sleep_seconds, row["k"]) if key is None else row[key]
        return format(value, fmt)

    head = " ".join(format(h, fmt.split(".")[0]) for h, _, fmt in COLUMNS)
    lines = [head, "-" * len(head)]
    lines += [" ".join(cell(r, key, fmt) for _, key, fmt in COLUMNS) for r in rows]
    return "\n".join(lines)


# -- processes ---------------------------------------------------------------------------------

def _load() -> str:
    """Other processes skew every figure here: say how busy the machine was."""
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _children_cpu() -> float:
    """CPU seconds of this process's ended children (agents, git)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    from shell.prefect_server import free_port

    return free_port()


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process's group, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_healthy(api_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer within {STARTUP_TIMEOUT:.0f} s:\n{_tail(log)}")
        time.sleep(0.2)


def _server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL",
                        "PREFECT_SERVER_DATABASE_CONNECTION_URL")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "0",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    return env


@contextmanager
def stock_server(home: Path, database_url: str | None = None) -> Iterator[str]:
    """Prefect's own app as `prefect server start` runs it (final app, no wrapper)."""
    port = _free_port()
    env = _server_env(home)
    env["PREFECT__SERVER_FINAL"] = "1"
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = home / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        api_url = f"http://127.0.0.1:{port}/api"
        _wait_healthy(api_url, process, log)
        yield api_url
    finally:
        _stop(process)


def _postgres_bin() -> Path:
    found = shutil.which("initdb") or next(iter(sorted(glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None)
    if not found:
        raise Skipped("no initdb found; install PostgreSQL (apt-get install -y postgresql)")
    bindir = Path(found).resolve().parent
    if not (bindir / "pg_ctl").exists():
        raise Skipped(f"no pg_ctl next to {found}")
    return bindir


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with database `prefect`; yields its asyncpg URL."""
    bindir = _postgres_bin()
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise Skipped("running as root and there is no 'postgres' user to run the cluster as") from None
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid}
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data, port = root / "data", _free_port()
    try:
        if as_user:
            os.chown(root, as_user["user"], as_user["group"])

        def run(*argv: str) -> None:
            done = subprocess.run(argv, capture_output=True, text=True, cwd=root, **as_user)
            if done.returncode:
                raise Skipped(f"{Path(argv[0]).name} failed: {(done.stderr or done.stdout).strip()[-300:]}")

        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n"
                       "max_connections = 200\n")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-t", "60", "start")
        try:
            run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect")
            yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
        finally:
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, cwd=root, **as_user)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def prefect_server(name: str, home: Path) -> Iterator[str]:
    """Start the named server in its own PREFECT_HOME; yield its API URL; stop it after."""
    home.mkdir(parents=True)
    if name == "embedded":
        from shell.prefect_server import embedded_server

        with embedded_server(prefect_home=str(home), port=_free_port(), startup_timeout=STARTUP_TIMEOUT) as url:
            yield url
    elif name == "sqlite":
        with stock_server(home) as url:
            yield url
    else:
        with postgres_cluster() as database_url, stock_server(home, database_url) as url:
            yield url


# -- the sandbox repositories ----------------------------------------------------------------

def make_repo(sandbox, name: str, k: int, workdir: Path) -> tuple[str, Path]:
    """A repository with `main` and `dev`, alice and bob as writers, K issues in batches
    01..K of one phase; plus a local clone. Returns (OWNER/NAME, clone path)."""
    from conductor.edges import worktrees

    full_name = sandbox.create_repo(name)
    sandbox.push_initial(full_name)
    with sandbox.api() as client:
        for login in (CONDUCTOR, AGENT):
            client.put(f"/repos/{full_name}/collaborators/{login}", json={"permission": "write"}).raise_for_status()
        batches = [f"batch-{n:02d}" for n in range(1, k + 1)]
        for label in (PHASE, *batches):
            client.post(f"/repos/{full_name}/labels", json={"name": label, "color": "ededed"}).raise_for_status()
        for batch in batches:
            client.post(f"/repos/{full_name}/issues",
                        json={"title": f"Page {batch}", "labels": [PHASE, batch]}).raise_for_status()
    clone = worktrees.clone(f"{sandbox.base_url}/{full_name}.git", workdir / "clone")
    return full_name, clone


def pass_env(api_url: str, home: Path, conductor_token: str, agent_token: str, **extra: str) -> dict[str, str]:
    """A pass process's environment: none of our CONDUCTOR_* variables, the Prefect client on
    `api_url` with its own PREFECT_HOME, the two tokens, no request throttle; then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update({
        "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home / "client"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GITHUB_TOKEN": conductor_token, "CONDUCTOR_AGENT_TOKEN": agent_token,
        "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0", "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0",
        **extra,
    })
    return env


def run_pass_process(script: Path, flag: str, spec: Path, results: Path, env: dict[str, str], log: Path,
                     timeout: float = PASS_TIMEOUT) -> Any:
    """`python script flag spec` in its own session (stopped afterwards), output to `log`;
    returns the JSON it wrote to `results`, or raises RuntimeError with the log's tail."""
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, str(script), flag, str(spec)],
                                   env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the passes did not end within {timeout:.0f} s:\n{_tail(log)}") from None
    finally:
        _stop(process)
    if process.returncode != 0 or not results.exists():
        raise RuntimeError(f"the pass process exited with status {process.returncode}:\n{_tail(log)}")
    return json.loads(results.read_text(encoding="utf-8"))


def run_passes(sandbox, api_url: str, home: Path, passes: list[dict[str, Any]], sleep: float) -> list[dict[str, Any]]:
    """Run the passes (label, k, repo, clone, workdir) one after another in one fresh
    Python process pointed at `api_url`."""
    spec = home / "passes.json"
    results = home / "results.json"
    spec.write_text(json.dumps({"github_url": sandbox.api_url, "sleep": sleep, "results": str(results),
                                "passes": passes}), encoding="utf-8")
    env = pass_env(api_url, home, sandbox.users[CONDUCTOR], sandbox.users[AGENT])
    return run_pass_process(Path(__file__).resolve(), "--run-passes", spec, results, env, home / "passes.log")


# -- inside the pass process -----------------------------------------------------------------

def pass_process(spec_path: Path) -> int:
    """Run each pass with `dispatch_all`, the coordinator bodies and the agent runs timed
    (wrappers around them); write one result per pass as JSON."""
    import flows.pipeline_pass as conductor_flow
    import flows.coordinators as coordinator_flows
    from conductor.actions import coordinator as core
    from shell.prefect_server import drain_prefect_workers
    from shell.run_cli import run_pass
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    marks: dict[str, list[float]] = {}

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            marks.setdefault(f"{name} start", []).append(time.perf_counter())
            marks.setdefault(f"{name} cpu start", []).append(time.process_time())
            marks.setdefault(f"{name} child cpu start", []).append(_children_cpu())
            try:
                return function(*args, **kwargs)
            finally:
                marks.setdefault(f"{name} end", []).append(time.perf_counter())
                marks.setdefault(f"{name} cpu end", []).append(time.process_time())
                marks.setdefault(f"{name} child cpu end", []).append(_children_cpu())
        return wrapper

    retries: list[str] = []  # the Prefect client's "retryable status code 503 ... in 2s" notes

    class RetryCounter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retryable" in record.getMessage():
                retries.append(record.getMessage())

    client_logger = logging.getLogger("prefect.client")
    client_logger.setLevel(logging.DEBUG)
    client_logger.propagate = False  # its debug lines would flood the log; warnings still counted here
    client_logger.addHandler(RetryCounter())
    conductor_flow.dispatch_all = timed("dispatch", conductor_flow.dispatch_all)
    coordinator_flows.coordinate = timed("body", coordinator_flows.coordinate)
    core.run = timed("agent", core.run)
    agent = [sys.executable, "-S", "-c", SLEEP_AGENT, str(spec["sleep"])]
    results = []
    for p in spec["passes"]:
        os.environ["CONDUCTOR_WORKTREE_ROOT"] = str(Path(p["workdir"]) / "worktrees")
        os.environ["CONDUCTOR_SALVAGE_DIR"] = str(Path(p["workdir"]) / "salvage")
        marks.clear()
        retries.clear()
        started = time.perf_counter()
        report, state = run_pass(repo=p["repo"], github_url=spec["github_url"], repo_path=p["clone"],
                                 agent_command=agent, agent_timeout=120)
        pass_seconds = time.perf_counter() - started
        counts = {name: len(times) for name, times in marks.items()}
        expected = {f"{n} {e}": 1 if n == "dispatch" else p["k"] for n in ("dispatch", "body", "agent")
                    for e in ("start", "end", "cpu start", "cpu end", "child cpu start", "child cpu end")}
        if len(report.outcomes) != p["k"] or counts != expected:
            raise RuntimeError(f"{p['label']}: expected {p['k']} coordinators in one dispatch, got "
                               f"{len(report.outcomes)} outcomes and {counts}")
        [dispatch_start], [dispatch_end] = marks["dispatch start"], marks["dispatch end"]
        agent_runs = [end - start for start, end in zip(sorted(marks["agent start"]), sorted(marks["agent end"]))]
        with get_client(sync_client=True) as client:
            children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])))
        results.append({
            "label": p["label"], "k": p["k"], "pass_s": pass_seconds, "dispatch_s": dispatch_end - dispatch_start,
            "started_s": max(marks["body start"]) - dispatch_start,
            "agent_s": sum(agent_runs) / len(agent_runs),
            "finish_s": dispatch_end - max(marks["body end"]),
            "cpu_s": marks["dispatch cpu end"][0] - marks["dispatch cpu start"][0],
            "child_cpu_s": marks["dispatch child cpu end"][0] - marks["dispatch child cpu start"][0],
            "retries": len(retries),
            "ended": sum(1 for r in children if r.state and r.state.is_final()),
            "retry_notes": sorted(set(retries))})
    drain_prefect_workers()
    Path(spec["results"]).write_text(json.dumps(results), encoding="utf-8")
    return 0


# -- main ------------------------------------------------------------------------------------------

def bench_server(name: str, sandbox, root: Path, ks: list[int], sleep: float, warmup: bool) -> list[dict[str, Any]]:
    """Every K (after an unreported warm-up pass) against one freshly started server."""
    started = time.perf_counter()
    with prefect_server(name, root / name / "prefect-home") as api_url:
        steps = [f"server start {time.perf_counter() - started:.1f} s"]
        started = time.perf_counter()
        passes = []
        for label, k in ([("warmup", 1)] if warmup else []) + [(f"K={k}", k) for k in ks]:
            workdir = root / name / f"pass-{len(passes)}"
            repo, clone = make_repo(sandbox, f"bench-{name}-{len(passes)}-{secrets.token_hex(3)}", k, workdir)
            passes.append({"label": label, "k": k, "repo": repo, "clone": str(clone), "workdir": str(workdir)})
        steps.append(f"repositories {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        results = run_passes(sandbox, api_url, root / name / "prefect-home", passes, sleep)
        steps.append(f"{len(passes)} passes in one process {time.perf_counter() - started:.1f} s")
    print(f"{name}: {', '.join(steps)}", flush=True)
    return [{"server": name, **r} for r in results if r["label"] != "warmup"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="1,4,12", help="coordinators per pass, comma separated (default 1,4,12)")
    parser.add_argument("--sleep", type=float, default=3.0, help="seconds each agent sleeps (default 3)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma separated: " + ", ".join(SERVERS))
    parser.add_argument("--no-warmup", action="store_true", help="skip the unreported K=1 pass per server")
    parser.add_argument("--run-passes", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_passes:
        return pass_process(args.run_passes)
    try:
        ks, servers = parse_ks(args.k), parse_servers(args.servers)
        if not 0 <= args.sleep <= 60:
            raise BenchInputError(f"--sleep {args.sleep}: give seconds from 0 to 60")
    except BenchInputError as exc:
        print(f"bench_coordinators: {exc}", file=sys.stderr)
        return 2

    from github_sandbox.testing import running_sandbox

    users = {login: f"sbx_{login}_{secrets.token_hex(8)}" for login in ("admin", CONDUCTOR, AGENT)}
    rows: list[dict[str, Any]] = []
    broken = False
    print(f"K = {', '.join(map(str, ks))}; each agent sleeps {args.sleep:g} s; servers: {', '.join(servers)}; "
          f"{os.cpu_count()} cores, {_load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-coordinators-") as tmp:
        with running_sandbox(Path(tmp) / "sandbox", users=users) as sandbox:
            for name in servers:
                try:
                    measured = bench_server(name, sandbox, Path(tmp), ks, args.sleep, warmup=not args.no_warmup)
                except Skipped as exc:
                    print(f"{name}: skipped ({exc})", flush=True)
                    continue
                except Exception as exc:  # one broken server must not hide the others' figures
                    print(f"{name}: failed ({exc})", flush=True)
                    broken = True
                    continue
                rows += measured
    print(f"finished at {_load()}")
    print()
    print(table(rows, args.sleep))
    print()
    print(goal_line(rows, args.sleep))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

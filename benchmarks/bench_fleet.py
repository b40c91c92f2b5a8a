"""Benchmark: does a second worker halve a fleet's makespan? 24 leaves on one worker vs two.

    .venv/bin/python benchmarks/bench_fleet.py [--duration 20] [--leaves 24] [--slots 6]

A Prefect server on PostgreSQL (`deployments.postgres_server`), the sandbox, the work pools and
the `leaf/<kind>` deployments; then, for W = 1 and W = 2: W `prefect worker start --pool
conductor-agents --limit SLOTS` processes (each with its own home: clone cache, worktrees,
PREFECT_HOME; polling every second) and one `conductor run` pass with
CONDUCTOR_DISPATCH=deployment over a fresh repository with LEAVES issues in 3 batches, whose
agents each last D seconds. The workers are on this one machine, so both configurations share
its 2 cores: the figure is what the fleet's dispatch costs, not what a second machine adds.

makespan = from the first leaf run's creation to the last one's end (Prefect API);
ideal = ceil(LEAVES / (W x SLOTS)) x D (the waves the slots allow);
dispatch overhead per leaf = (makespan - ideal) / LEAVES, against the in-process leaves of
`bench_leaves.py` (S + 0.116 s per leaf on this machine, quiet).
Goal: two workers' makespan <= 0.6 x one worker's; overhead <= 0.5 s per leaf.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bc, bl = _load("bench_coordinators"), _load("bench_leaves")
CONDUCTOR, AGENT = bc.CONDUCTOR, bc.AGENT
GOAL_RATIO, GOAL_OVERHEAD = 0.6, 0.5
PREFECT = Path(sys.executable).parent / "prefect"


def ideal(leaves: int, workers: int, slots: int, duration: float) -> float:
    return math.ceil(leaves / (workers * slots)) * duration


def overhead_per_leaf(makespan: float, leaves: int, workers: int, slots: int, duration: float) -> float:
    return (makespan - ideal(leaves, workers, slots, duration)) / leaves


def verdict(one: float, two: float, overheads: list[float]) -> str:
    ratio = two / one
    return (f"two workers / one: {ratio:.2f} (goal <= {GOAL_RATIO}: {'PASS' if ratio <= GOAL_RATIO else 'FAIL'}); "
            f"worst overhead per leaf {max(overheads):.3f} s "
            f"(goal <= {GOAL_OVERHEAD} s: {'PASS' if max(overheads) <= GOAL_OVERHEAD else 'FAIL'})")


def makespan(runs: list[dict[str, Any]]) -> float:
    """First creation to last end of these flow runs (seconds)."""
    def at(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return max(at(r["end_time"]) for r in runs) - min(at(r["created"]) for r in runs)


def leaf_runs(api: str, repo: str) -> list[dict[str, Any]]:
    ids = [httpx.get(f"{api}/deployments/name/leaf/{name}", timeout=30).json()["id"]
           for name in ("issue-to-pr", "pr-review")]
    runs = httpx.post(f"{api}/flow_runs/filter", timeout=30, json={
        "flow_runs": {"deployment_id": {"any_": ids}}, "limit": 200}).json()
    return [r for r in runs if r["parameters"].get("ctx", {}).get("settings", {}).get("run", {}).get("repo") == repo]


def start_workers(api: str, home: Path, count: int, slots: int, tokens: dict[str, str]) -> list[subprocess.Popen]:
    workers = []
    for i in range(count):
        machine = home / f"worker-{i}"
        machine.mkdir(parents=True)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONDUCTOR_"))},
               "PREFECT_API_URL": api, "PREFECT_HOME": str(machine / "prefect-home"), "HOME": str(machine),
               "PREFECT_WORKER_QUERY_SECONDS": "1", "CONDUCTOR_PROJECT_DIR": str(ROOT),
               "GITHUB_TOKEN": tokens[CONDUCTOR], "CONDUCTOR_AGENT_TOKEN": tokens[AGENT],
               "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0", "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0"}
        with open(machine / "worker.log", "ab") as log:
            workers.append(subprocess.Popen(
                [str(PREFECT), "worker", "start", "--pool", "conductor-agents", "--name", f"{home.name}-{i}",
                 "--limit", str(slots)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True))
    deadline = time.monotonic() + 120
    names = {f"{home.name}-{i}" for i in range(count)}
    while time.monotonic() < deadline:
        online = {w["name"] for w in httpx.post(f"{api}/work_pools/conductor-agents/workers/filter", json={},
                                                 timeout=30).json() if w.get("status") == "ONLINE"}
        if names <= online:
            return workers
        time.sleep(0.5)
    raise RuntimeError(f"workers {sorted(names)} did not come online; see {home}/worker-*/worker.log")


def run_pass(api: str, sandbox, repo: str, clone: Path, home: Path, duration: float, leaves: int) -> None:
    agent = [sys.executable, "-S", "-c", bc.SLEEP_AGENT, str(duration)]
    env = bc.pass_env(api, home, sandbox.users[CONDUCTOR], sandbox.users[AGENT], CONDUCTOR_DISPATCH="deployment",
                      CONDUCTOR_AGENT_SLOTS=str(leaves), CONDUCTOR_WORKTREE_ROOT=str(home / "worktrees"),
                      CONDUCTOR_SALVAGE_DIR=str(home / "salvage"))
    argv = [sys.executable, "-m", "shell.cli", "run", "--repo", repo, "--github-url", sandbox.api_url,
            "--repo-path", str(clone), "--agent-command", json.dumps(agent), "--agent-timeout", "600",
            "--max-issues", "99", "--json"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=bc.PASS_TIMEOUT)
    if not done.stdout.strip():
        raise RuntimeError(f"the pass gave no report (exit {done.returncode}): {done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each agent lasts (default 20)")
    parser.add_argument("--leaves", type=int, default=24, help="issues in each pass (default 24)")
    parser.add_argument("--slots", type=int, default=6, help="leaves one worker runs at once (default 6)")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 300 or not 1 <= args.leaves <= 60 or not 1 <= args.slots <= 30:
        print("bench_fleet: give --duration from 0 to 300, --leaves from 1 to 60, --slots from 1 to 30",
              file=sys.stderr)
        return 2
    users = {login: f"sbx_{login}_{secrets.token_hex(8)}" for login in ("admin", CONDUCTOR, AGENT)}
    print(f"{args.leaves} leaves lasting {args.duration:g} s; {args.slots} slots per worker; Prefect on PostgreSQL; "
          f"{os.cpu_count()} cores, {bc._load()}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    os.chmod(root, 0o755)  # the postgres user reaches its cluster under it
    try:
        rows = measure(root, users, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(verdict(rows[0]["makespan"], rows[1]["makespan"], [r["overhead"] for r in rows]))
    return 0


def measure(root: Path, users: dict[str, str], args: argparse.Namespace) -> list[dict[str, Any]]:
    from deployments.postgres_server import prefect_on_postgresql
    from github_sandbox.testing import running_sandbox

    rows: list[dict[str, Any]] = []
    with running_sandbox(root / "sandbox", users=users) as sandbox, \
            prefect_on_postgresql(root / "server", port=bc._free_port()) as api:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
               "PREFECT_API_URL": api, "PREFECT_HOME": str(root / "deploy-home")}
        for command in ([sys.executable, "-m", "deployments.pools"],
                        [str(PREFECT), "--no-prompt", "deploy", "--name", "issue-to-pr", "--name", "pr-review"]):
            subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        for workers in (1, 2):
            home = root / f"fleet-{workers}"
            repo, clone = bl.make_repo(sandbox, f"bench-fleet-{workers}-{secrets.token_hex(3)}", args.leaves, 0, home)
            started = start_workers(api, home, workers, args.slots, sandbox.users)
            try:
                run_pass(api, sandbox, repo, clone, home, args.duration, args.leaves)
            finally:
                for process in started:
                    bc._stop(process)
            runs = leaf_runs(api, repo)
            if len(runs) != args.leaves or any(r["end_time"] is None for r in runs):
                raise RuntimeError(f"{workers} worker(s): {len(runs)} leaf runs, not {args.leaves} ended")
            span = makespan(runs)
            rows.append({"workers": workers, "makespan": span,
                         "ideal": ideal(args.leaves, workers, args.slots, args.duration),
                         "overhead": overhead_per_leaf(span, args.leaves, workers, args.slots, args.duration)})
            print(f"{workers} worker(s): makespan {span:.1f} s (ideal {rows[-1]['ideal']:.0f} s), "
                  f"overhead {rows[-1]['overhead']:.3f} s per leaf; {bc._load()}", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: does a pass with 24 leaves (12 issues, 12 PRs) cost S seconds, or 24×S?

    .venv/bin/python benchmarks/bench_leaves.py [--sleep 3] [--issues 12] [--prs 12]

One embedded Prefect server (conductor's default), one sandbox, and three real conductor
passes in one fresh Python process, measured in the same run so that they share the
machine's load and can be compared as ratios:

1. `1 leaf`: one issue (a baseline: one leaf's fixed cost);
2. `leaves`: N issues in 3 batches and M PRs in 3 batches of one phase, one leaf per item
   (the default `fan_out = "leaf"`): 6 coordinator subflows, N+M leaf task runs;
3. `coordinator-agent`: the same items again, one agent per (kind, batch) group.

Every agent sleeps S seconds and reports done with no artifact (a verification failure:
only time matters). The figure is the wall time of `flows.coordinators.dispatch_all`.
Overhead per leaf = (dispatch − S) / leaves: everything a leaf costs besides its agent's
sleep (task run bookkeeping, agent slot, GitHub claim, item read and release, git
worktree, prompt, agent process start, proof), spread over the leaves that ran at once.
The ratios: leaves / 1 leaf, leaves / coordinator-agent.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_spec = importlib.util.spec_from_file_location("bench_coordinators", Path(__file__).with_name("bench_coordinators.py"))
assert _spec is not None and _spec.loader is not None
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

PHASE = bc.PHASE
BATCHES = 3
GOAL_LEAVES, GOAL_SECONDS = 24, 0.15
CONDUCTOR, AGENT = bc.CONDUCTOR, bc.AGENT


def overhead_per_leaf(dispatch_seconds: float, sleep_seconds: float, leaves: int) -> float:
    return (dispatch_seconds - sleep_seconds) / leaves


def goal_line(row: dict[str, Any] | None, sleep_seconds: float) -> str:
    what = f"goal: embedded, {GOAL_LEAVES} leaves, overhead per leaf < {GOAL_SECONDS} s"
    if row is None or row["leaves"] != GOAL_LEAVES:
        return f"{what}: not measured (needs --issues and --prs adding up to {GOAL_LEAVES})"
    overhead = overhead_per_leaf(row["dispatch_s"], sleep_seconds, row["leaves"])
    return f"{what}: {'PASS' if overhead < GOAL_SECONDS else 'FAIL'} ({overhead:.3f} s)"


def make_repo(sandbox, name: str, issues: int, prs: int, workdir: Path) -> tuple[str, Path]:
    """`main` and `dev`; `issues` issues and `prs` open PRs (each from its own branch, into
    dev) spread over batches 01..03 of one phase; plus a local clone."""
    from conductor.edges import worktrees

    full_name = sandbox.create_repo(name)
    sandbox.push_initial(full_name)
    batches = [f"batch-{n:02d}" for n in range(1, BATCHES + 1)]
    with sandbox.api() as client:
        for login in (CONDUCTOR, AGENT):
            client.put(f"/repos/{full_name}/collaborators/{login}", json={"permission": "write"}).raise_for_status()
        for label in (PHASE, *batches):
            client.post(f"/repos/{full_name}/labels", json={"name": label, "color": "ededed"}).raise_for_status()
        for i in range(issues):
            client.post(f"/repos/{full_name}/issues", json={
                "title": f"Page {i}", "labels": [PHASE, batches[i % BATCHES]]}).raise_for_status()
        for i in range(prs):
            branch = f"feature-{i}"
            sandbox.commit_files(full_name, branch, {f"pages/page_{i}.md": f"page {i}\n"}, base="dev")
            number = client.post(f"/repos/{full_name}/pulls", json={
                "title": f"Feature {i}", "head": branch, "base": "dev", "body": "A feature."}).json()["number"]
            client.post(f"/repos/{full_name}/issues/{number}/labels",
                        json={"labels": [PHASE, batches[i % BATCHES]]}).raise_for_status()
    clone = worktrees.clone(f"{sandbox.base_url}/{full_name}.git", workdir / "clone")
    return full_name, clone


def pass_process(spec_path: Path) -> int:
    """Run each pass with `dispatch_all` timed (and its fan-out set); write the figures."""
    import flows.pipeline_pass as conductor_flow
    from conductor.actions import coordinator as core
    from shell.prefect_server import drain_prefect_workers
    from shell.run_cli import run_pass

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    marks: dict[str, list[float]] = {}
    dispatch_all = conductor_flow.dispatch_all

    def timed_dispatch(*args, **kwargs):
        marks.setdefault("dispatch", []).append(time.perf_counter())
        marks.setdefault("cpu", []).append(time.process_time())
        try:
            return dispatch_all(*args, **kwargs)
        finally:
            marks["dispatch"].append(time.perf_counter())
            marks["cpu"].append(time.process_time())

    run = core.run

    def timed_run(*args, **kwargs):
        started = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            marks.setdefault("agents", []).append(time.perf_counter() - started)

    conductor_flow.dispatch_all = timed_dispatch
    core.run = timed_run
    agent = [sys.executable, "-S", "-c", bc.SLEEP_AGENT, str(spec["sleep"])]
    results = []
    for p in spec["passes"]:
        os.environ["CONDUCTOR_WORKTREE_ROOT"] = str(Path(p["workdir"]) / "worktrees")
        os.environ["CONDUCTOR_SALVAGE_DIR"] = str(Path(p["workdir"]) / "salvage")
        os.environ["CONDUCTOR_FAN_OUT"] = p["mode"]
        marks.clear()
        started = time.perf_counter()
        report, _ = run_pass(repo=p["repo"], github_url=spec["github_url"], repo_path=p["clone"],
                             agent_command=agent, agent_timeout=120, max_issues_per_dispatch=99,
                             max_prs_per_dispatch=99)
        pass_seconds = time.perf_counter() - started
        items = sum(len(o.items) for o in report.outcomes)
        if items != p["items"] or len(marks.get("dispatch", [])) != 2:
            raise RuntimeError(f"{p['label']}: expected {p['items']} items in one dispatch, got {items}")
        start, end = marks["dispatch"]
        results.append({"label": p["label"], "mode": p["mode"], "items": items,
                        "leaves": items if p["mode"] == "leaf" else 0,
                        "coordinators": len(report.outcomes), "agents": len(marks["agents"]),
                        "pass_s": pass_seconds, "dispatch_s": end - start, "cpu_s": marks["cpu"][1] - marks["cpu"][0],
                        "agent_s": sum(marks["agents"]) / len(marks["agents"])})
    drain_prefect_workers()
    Path(spec["results"]).write_text(json.dumps(results), encoding="utf-8")
    return 0


def run_passes(sandbox, api_url: str, home: Path, passes: list[dict[str, Any]], sleep: float) -> list[dict[str, Any]]:
    spec, results = home / "passes.json", home / "results.json"
    spec.write_text(json.dumps({"github_url": sandbox.api_url, "sleep": sleep, "results": str(results),
                                "passes": passes}), encoding="utf-8")
    env = bc.pass_env(api_url, home, sandbox.users[CONDUCTOR], sandbox.users[AGENT],
                      CONDUCTOR_AGENT_SLOTS=str(max(p["items"] for p in passes)))
    return bc.run_pass_process(Path(__file__).resolve(), "--run-passes", spec, results, env, home / "passes.log")


def table(rows: list[dict[str, Any]], sleep: float) -> str:
    base = next((r for r in rows if r["label"] == "1 leaf"), None)
    head = (f"{'pass':<19} {'items':>5} {'coordinators':>12} {'agents':>6} {'pass (s)':>9} {'dispatch (s)':>12} "
            f"{'overhead/item (s)':>17} {'x 1 leaf':>8} {'pass CPU (s)':>12} {'agent run (s)':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = r["dispatch_s"] / base["dispatch_s"] if base else float("nan")
        lines.append(f"{r['label']:<19} {r['items']:>5} {r['coordinators']:>12} {r['agents']:>6} {r['pass_s']:>9.2f} "
                     f"{r['dispatch_s']:>12.2f} {overhead_per_leaf(r['dispatch_s'], sleep, r['items']):>17.3f} "
                     f"{ratio:>8.2f} {r['cpu_s']:>12.2f} {r['agent_s']:>13.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=float, default=3.0, help="seconds each agent sleeps (default 3)")
    parser.add_argument("--issues", type=int, default=12, help="issues in the pass (default 12)")
    parser.add_argument("--prs", type=int, default=12, help="open PRs in the pass (default 12)")
    parser.add_argument("--run-passes", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_passes:
        return pass_process(args.run_passes)
    if not 0 <= args.sleep <= 60 or not 1 <= args.issues <= 60 or not 0 <= args.prs <= 60:
        print("bench_leaves: give --sleep from 0 to 60, --issues from 1 to 60, --prs from 0 to 60", file=sys.stderr)
        return 2

    from github_sandbox.testing import running_sandbox

    users = {login: f"sbx_{login}_{secrets.token_hex(8)}" for login in ("admin", CONDUCTOR, AGENT)}
    total = args.issues + args.prs
    print(f"{args.issues} issues + {args.prs} PRs; each agent sleeps {args.sleep:g} s; embedded server; "
          f"{os.cpu_count()} cores, {bc._load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-leaves-") as tmp, \
            running_sandbox(Path(tmp) / "sandbox", users=users) as sandbox, \
            bc.prefect_server("embedded", Path(tmp) / "prefect-home") as api_url:
        passes = []
        for label, mode, issues, prs in (("warm-up", "leaf", 1, 0), ("1 leaf", "leaf", 1, 0),
                                         ("leaves", "leaf", args.issues, args.prs),
                                         ("coordinator-agent", "coordinator-agent", args.issues, args.prs)):
            workdir = Path(tmp) / f"pass-{len(passes)}"
            repo, clone = make_repo(sandbox, f"bench-leaves-{len(passes)}-{secrets.token_hex(3)}", issues, prs, workdir)
            passes.append({"label": label, "mode": mode, "items": issues + prs, "repo": repo,
                           "clone": str(clone), "workdir": str(workdir)})
        rows = [r for r in run_passes(sandbox, api_url, Path(tmp) / "prefect-home", passes, args.sleep)
                if r["label"] != "warm-up"]
    print(f"finished at {bc._load()}")
    print()
    print(table(rows, args.sleep))
    leaf_row = next(r for r in rows if r["label"] == "leaves")
    group_row = next(r for r in rows if r["label"] == "coordinator-agent")
    print()
    print(f"leaves / coordinator-agent dispatch: {leaf_row['dispatch_s'] / group_row['dispatch_s']:.2f}")
    print(goal_line({**leaf_row, "leaves": total}, args.sleep))
    return 0


if __name__ == "__main__":
    sys.exit(main())

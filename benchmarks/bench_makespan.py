"""Benchmark: how long does the demo pipeline take to reach idle, by clock, by events, ideally?

    .venv/bin/python benchmarks/bench_makespan.py [--step 10] [--every 30] [--modes event,cron]

The pipeline is the demo's (`conductor/sample_pipeline.json`): 7 phases in 3 chains
(1→2→3, 4→5, 6→7), 12 issues, one `Depends on #7` pair (#8) and one pair of issues owning the
same files (#1, #2: their PRs are reviewed one after the other). The human gates (the
`security` label, the gated phase 1, the protected path) are switched off with
`CONDUCTOR_GATE_LABELS`, `CONDUCTOR_GATED_PHASES` and `CONDUCTOR_PROTECTED_PATHS` set to `[]`:
a person's wait is no part of the conductor's makespan. The leaves are the demo's scripted
agent (`shell.demo_agent --lasting D`): each really pushes a branch and opens a PR, or
grades, merges and closes the issue, then waits out the rest of its D seconds, so that every
leaf's agent lasts D seconds from its process start, its own work included (the agents'
measured durations are printed: the conductor's overhead is everything else).

One sandbox, one Prefect server (`--server`: the embedded one by default), one fresh repository per mode, and
real conductor passes (`shell.run_cli.run_pass`) in one Python process, after one
unreported dry-run pass that warms it up. Three figures:

- **ideal**: the critical path × D, computed from the pipeline's dependency graph
  (`critical_path`). A *step* is one leaf: implementing an issue (its PR opened) or reviewing
  its PR (merged). Implement #i comes before review #i; review #j before implement #i when
  #i says `Depends on #j` or #i's phase depends (transitively) on #j's; review #j before
  review #i when #j is the closest earlier issue of the same phase that owns one of the same
  files (the planner's merge chain). The ideal is the longest chain of steps × D: no pass,
  no read, no overhead.
- **cron**: a pass at t0, t0 + T, t0 + 2T, ... A tick that falls while a pass runs is
  skipped (as `CANCEL_NEW` does), so the next pass starts at the first tick after the last one
  ended.
- **event-driven**: the sandbox's real webhooks (a hook on the repository for `issues` and
  `pull_request`, signed) go to the conductor's real receiver (`deployments.webhooks.Receiver`
  over HTTP: signature check, the plan-changing events only, the conductor's own login
  ignored), in the pass process. Its emitter is replaced by the policy of the `on-change`
  deployment's concurrency limit (1, `ENQUEUE`): a delivery starts a pass when none is
  running, else queues one (one at most). What is *not* run here is the Prefect part of
  the chain: the Prefect event, the automation (prefect.yaml's Reactive trigger), the
  coalescing of queued runs (`tasks/guard.py`) and a worker starting a flow run of the
  deployment. That part added 0.9 s from a merge to the flow run in
  `tests/test_e2e_on_change.py`, and a worker's flow-run process start comes on top; neither is in this figure. The first pass starts at t0 without a
  delivery (the pipeline was seeded before the hook existed).

- **deployed** (`--modes deployed`, not in the default run): the whole real chain in a process
  of its own, as a user serves it: the receiver emits one Prefect event per delivery, and the
  `conductor` flow is served as `on-change` with prefect.yaml's triggers and concurrency limit
  (each run in a fresh process, as Prefect's runner does). The first run is started with
  `run_deployment`; the makespan ends with the last run that started before the sandbox showed
  no open item.

Makespan: t0 (the first pass starts) → the end of the first pass whose plan after its
leaves is idle (no open issue or PR in any phase). Each mode prints its passes (start,
length, leaves) and the time spent waiting between them. Goal: the event-driven makespan
≤ 1.2 × the ideal + 10 s. Exit 0 when it ran (PASS or FAIL), 1 when a mode broke, 2 for
bad options.
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
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

_spec = importlib.util.spec_from_file_location("bench_coordinators", Path(__file__).with_name("bench_coordinators.py"))
assert _spec is not None and _spec.loader is not None
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

MODES = ("event", "cron", "deployed")
GOAL_FACTOR, GOAL_SLACK = 1.2, 10.0
MAINTAINER, CONDUCTOR, AGENT = "maintainer", "conductor-bot", "demo-agent"
SECRET_ENV = "BENCH_MAKESPAN_HOOK_SECRET"  # the hook's secret, made by the main process
NO_GATES = {"CONDUCTOR_GATE_LABELS": "[]", "CONDUCTOR_GATED_PHASES": "[]", "CONDUCTOR_PROTECTED_PATHS": "[]"}
STALL_SECONDS = 60.0  # event mode: no delivery for this long after a pass while not idle → broken
MAX_PASSES = 30


# -- pure parts ------------------------------------------------------------------------------

class Item(BaseModel):
    """One issue of the pipeline, as far as the order of its steps goes."""

    number: int
    phase: str
    files: frozenset[str] = frozenset()
    depends_on: list[int] = Field(default_factory=list)
    rework_rounds: int = 0  # reviews graded down before the one that merges (each: a rework leaf)


def items_from_issues(issues: Iterable[Mapping[str, Any]], phases: Sequence[str], repo: str) -> list[Item]:
    """Items from GitHub issue objects (number, labels, body); issues in no configured phase
    are left out. Files: what the issue says it owns (`Files:` / `File ownership:`); one rework
    round when the body asks the demo's reviewer to grade its PR down once."""
    from conductor.core.dependencies import issue_dependencies
    from conductor.core.leaf import file_ownership
    from shell.demo_agent import GRADE_D_ONCE

    out = []
    for issue in issues:
        labels = [lab["name"] if isinstance(lab, Mapping) else lab for lab in issue.get("labels", [])]
        phase = next((lab for lab in labels if lab in phases), None)
        if phase is None:
            continue
        owned = file_ownership(issue.get("body") or "")
        out.append(Item(number=issue["number"], phase=phase,
                        files=frozenset() if owned == "tbd" else frozenset(owned.split(",")),
                        depends_on=issue_dependencies(issue.get("body"), repo).numbers,
                        rework_rounds=int(GRADE_D_ONCE in (issue.get("body") or ""))))
    return sorted(out, key=lambda i: i.number)


def review_after(items: Sequence[Item]) -> dict[int, int]:
    """#i → #j: review #i waits for review #j, the closest earlier issue of its phase that
    owns one of the same files (overlapping PRs form one line, in number order)."""
    after: dict[int, int] = {}
    for item in items:
        earlier = [o for o in items if o.phase == item.phase and o.number < item.number and o.files & item.files]
        if earlier:
            after[item.number] = max(o.number for o in earlier)
    return after


def _closure(phase_deps: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    def reach(phase: str, seen: frozenset[str]) -> set[str]:
        if phase in seen:
            raise ValueError(f"phase dependency cycle through {phase}")
        out: set[str] = set()
        for dep in phase_deps.get(phase, ()):
            out |= {dep, *reach(dep, seen | {phase})}
        return out

    return {phase: reach(phase, frozenset()) for phase in phase_deps}


def critical_path(items: Sequence[Item], phase_deps: Mapping[str, Sequence[str]]) -> list[str]:
    """The longest chain of leaves ("implement #N", "review #N", "rebase #N", "rework #N"),
    first first: the chain of steps whose leaves add up to the most (a review step is several
    leaves when its PR needs a rebase first or its review is graded down). Dependencies on numbers that are not items (closed, or not in the
    pipeline) are ignored; a cycle among the items raises ValueError."""
    by_number = {i.number: i for i in items}
    before = _closure(phase_deps)
    after = review_after(items)

    def preds(step: tuple[str, int]) -> list[tuple[str, int]]:
        kind, n = step
        if kind == "review":
            return [("implement", n)] + ([("review", after[n])] if n in after else [])
        item = by_number[n]
        phases = before.get(item.phase, set())
        return [("review", j) for j in sorted(set(item.depends_on)) if j in by_number and j != n] + \
               [("review", o.number) for o in items if o.phase in phases]

    memo: dict[tuple[str, int], list[str]] = {}

    def leaves(step: tuple[str, int]) -> list[str]:
        kind, n = step
        if kind != "review":
            return [f"{kind} #{n}"]
        # a PR reviewed after another that owns the same files was opened before that one merged:
        # it no longer merges cleanly, so its first review sends it to a rebase leaf
        rebase = [f"review #{n}", f"rebase #{n}"] if n in after else []
        return rebase + [f"review #{n}", f"rework #{n}"] * by_number[n].rework_rounds + [f"review #{n}"]

    def longest(step: tuple[str, int], on_path: frozenset[tuple[str, int]]) -> list[str]:
        if step in on_path:
            raise ValueError(f"dependency cycle through {step[0]} #{step[1]}")
        if step not in memo:
            best: list[str] = []
            for p in preds(step):
                chain = longest(p, on_path | {step})
                if len(chain) > len(best):
                    best = chain
            memo[step] = best + leaves(step)
        return memo[step]

    best: list[str] = []
    for item in items:
        chain = longest(("review", item.number), frozenset())
        if len(chain) > len(best):
            best = chain
    return best


def next_tick(now: float, t0: float, every: float) -> float:
    """Cron: the first tick t0 + k·every at or after `now` (ticks during a pass are skipped)."""
    return t0 + max(0, math.ceil((now - t0) / every - 1e-9)) * every


def goal_line(label: str, seconds: float | None, ideal_s: float) -> str:
    """The goal's verdict on one mode's makespan (None: the mode was not run, or broke)."""
    limit = GOAL_FACTOR * ideal_s + GOAL_SLACK
    what = f"goal: {label} makespan <= {GOAL_FACTOR:g} x critical path + {GOAL_SLACK:g} s (= {limit:.1f} s)"
    if seconds is None:
        return f"{what}: not measured"
    return f"{what}: {'PASS' if seconds <= limit else 'FAIL'} ({seconds:.1f} s)"


def table(rows: list[dict[str, Any]], ideal_s: float) -> str:
    head = (f"{'mode':<16} {'makespan (s)':>12} {'x critical path':>15} {'passes':>6} "
            f"{'in passes (s)':>13} {'waiting (s)':>11} {'leaves':>6} {'deliveries':>10}")
    lines = [head, "-" * len(head), f"{'ideal':<16} {ideal_s:>12.1f} {1:>15.2f} {'-':>6} {'-':>13} {'-':>11} "
             f"{'-':>6} {'-':>10}"]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['label']:<16} broke: {r['error']}")
            continue
        busy = sum(p["seconds"] for p in r["passes"])
        leaves = sum(p["leaves"] for p in r["passes"]) if all("leaves" in p for p in r["passes"]) else "-"
        ratio = r["makespan_s"] / ideal_s if ideal_s else float("nan")
        deliveries = r["deliveries"] if r["deliveries"] is not None else "-"
        lines.append(f"{r['label']:<16} {r['makespan_s']:>12.1f} {ratio:>15.2f} {len(r['passes']):>6} "
                     f"{busy:>13.1f} {r['makespan_s'] - busy:>11.1f} {leaves:>6} "
                     f"{deliveries:>10}")
    return "\n".join(lines)


def parse_modes(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or any(n not in MODES for n in names) or len(set(names)) != len(names):
        raise ValueError(f"--modes {text!r}: give distinct names from {', '.join(MODES)}")
    return names


# -- the pass process --------------------------------------------------------------------------

def _one(pass_kwargs: dict[str, Any], t0: float) -> tuple[dict[str, Any], bool, bool]:
    """One pass: its row, whether the pipeline is idle after it, and whether it asked for the
    next pass itself (`PassReport.more_work`: the `conductor.pass.more-work` event)."""
    from shell.run_cli import run_pass

    started = time.monotonic()
    report, _ = run_pass(**pass_kwargs)
    ended = time.monotonic()
    if report is None:
        return {"start": started - t0, "seconds": ended - started, "leaves": 0, "skipped": True}, False, False
    leaves = sum(len(o.items) for o in report.outcomes)
    agents = [r.agent_ended_at - r.agent_started_at for o in report.outcomes for r in o.results
              if r.agent_started_at is not None and r.agent_ended_at is not None]
    return {"start": started - t0, "seconds": ended - started, "leaves": leaves, "agent_s": agents,
            "failures": len(report.failures)}, report.final_plan.idle, report.more_work


def run_cron(pass_kwargs: dict[str, Any], every: float, passes: list[dict[str, Any]]) -> dict[str, Any]:
    t0 = time.monotonic()
    while len(passes) < MAX_PASSES:
        row, idle, _ = _one(pass_kwargs, t0)
        passes.append(row)
        if idle:
            return {"makespan_s": time.monotonic() - t0, "passes": passes, "deliveries": None}
        time.sleep(max(0.0, next_tick(time.monotonic(), t0, every) - time.monotonic()))
    raise RuntimeError(f"not idle after {MAX_PASSES} passes")


def run_event(pass_kwargs: dict[str, Any], hook_port: int, passes: list[dict[str, Any]]) -> dict[str, Any]:
    """Deliveries reach the real receiver; a pass runs while one is due (one queued at most)."""
    from pydantic import SecretStr

    from deployments.webhooks import Receiver, make_server

    due = threading.Event()
    receiver = Receiver(SecretStr(os.environ[SECRET_ENV]), [CONDUCTOR], emit=lambda _spec: due.set())
    server = make_server(receiver, "127.0.0.1", hook_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        while len(passes) < MAX_PASSES:
            due.clear()  # the queued run starts now; deliveries during it queue the next one
            row, idle, more_work = _one(pass_kwargs, t0)
            passes.append(row)
            if idle:
                return {"makespan_s": time.monotonic() - t0, "passes": passes, "deliveries": receiver.emitted}
            if not more_work and not due.wait(STALL_SECONDS):  # the pass's own event queues the next
                raise RuntimeError(f"not idle and no delivery for {STALL_SECONDS:.0f} s")
        raise RuntimeError(f"not idle after {MAX_PASSES} passes")
    finally:
        server.shutdown()
        server.server_close()


def pass_process(spec_path: Path) -> int:
    from shell.prefect_server import drain_prefect_workers
    from shell.run_cli import run_pass

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    agent = [sys.executable, "-m", "shell.demo_agent", "--lasting", str(spec["step"])]
    results = []
    for i, mode in enumerate(spec["modes"]):
        os.environ["CONDUCTOR_WORKTREE_ROOT"] = str(Path(mode["workdir"]) / "worktrees")
        os.environ["CONDUCTOR_SALVAGE_DIR"] = str(Path(mode["workdir"]) / "salvage")
        kwargs = {"repo": mode["repo"], "github_url": spec["github_url"], "repo_path": mode["clone"],
                  "agent_command": agent, "agent_timeout": 120 + 2 * spec["step"]}
        if i == 0:  # warm-up, unreported: imports, flow registration, the server's first writes
            run_pass(**kwargs, dry_run=True)
        passes: list[dict[str, Any]] = []
        try:
            if mode["mode"] == "cron":
                result = run_cron(kwargs, spec["every"], passes)
            else:
                result = run_event(kwargs, mode["hook_port"], passes)
        except Exception as exc:  # noqa: BLE001 - reported as the mode's row; the other mode still runs
            result = {"error": f"{type(exc).__name__}: {exc}"[:300], "passes": passes}
        results.append({"mode": mode["mode"], "label": mode["label"], **result})
    drain_prefect_workers()
    Path(spec["results"]).write_text(json.dumps(results), encoding="utf-8")
    return 0


# -- the deployed mode: its own process, as a user serves `conductor/on-change` ----------------

def _on_change_spec() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "prefect.yaml").read_text(encoding="utf-8"))
    return next(d for d in data["deployments"] if d["name"] == "on-change")


def _pipeline_idle(github_url: str, token: str, repo: str) -> bool:
    """The planner's idle, read from GitHub: no open issue or PR in any phase (the gates are
    off, so nothing waits for a person)."""
    import httpx

    from conductor.core.config import PipelineConfig
    from shell.demo import _all

    with httpx.Client(base_url=github_url, headers={"Authorization": f"token {token}"}, timeout=30) as gh:
        open_items = _all(gh, f"/repos/{repo}/issues", state="open")  # PRs included, as GitHub lists them
    return not items_from_issues(open_items, PipelineConfig().phase_names, repo)


def _pass_times(client: Any, run: Any, t0: datetime) -> list[dict[str, float]]:
    """A run's passes (one, or several back to back: `chain_passes`): each from its first task
    (`label pre-flight`, the slot and lock taken) to the end of its `report` task; `leaves`: the
    seconds from its first coordinator subflow's start to its last one's end; `process`: how
    long the run was up before its first pass (its process's start, waiting beside another)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    tasks: list[Any] = []
    while True:  # a chained run has more task runs than one page
        page = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                                     limit=200, offset=len(tasks))
        tasks += page
        if len(page) < 200:
            break
    firsts = sorted(t.start_time for t in tasks if t.name.startswith("label pre-flight") and t.start_time)
    ends = sorted(t.end_time for t in tasks if t.name.startswith("report") and t.end_time)
    subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])))
    steps: dict[str, float] = {}  # where the passes' time went: each step's seconds, summed
    for t in tasks:
        if t.start_time and t.end_time:
            name = t.name.rsplit("-", 1)[0]
            steps[name] = steps.get(name, 0.0) + (t.end_time - t.start_time).total_seconds()
    passes = []
    for i, begun in enumerate(firsts):
        end = ends[i] if i < len(ends) else run.end_time
        mine = [f for f in subflows if f.start_time and f.end_time and begun <= f.start_time <= end]
        first = min((f.start_time for f in mine), default=end)
        last = max((f.end_time for f in mine), default=end)
        passes.append({"start": (begun - t0).total_seconds(), "seconds": (end - begun).total_seconds(),
                       "before_s": (first - begun).total_seconds(), "leaves_s": (last - first).total_seconds(),
                       "process": (begun - run.start_time).total_seconds() if i == 0 else 0.0,
                       **({"steps": steps} if i == 0 else {})})
    return passes


def _timeline(client: Any, runs: Sequence[Any], t0: datetime) -> list[str]:
    """Each run of the deployment: when it was made, each state it entered (seconds from t0)."""
    lines = []
    for run in sorted(runs, key=lambda r: r.created or t0):
        if not run.run_count:  # coalesced before it started
            continue
        states = client.read_flow_run_states(run.id)
        marks = " ".join(f"{s.name}@{(s.timestamp - t0).total_seconds():.1f}" for s in states)
        lines.append(f"{run.name}: made@{((run.created or t0) - t0).total_seconds():.1f} {marks}")
    return lines


def serve_on_change(spec_path: Path) -> int:
    """The whole real chain in one process, as `python -m deployments.serve` would run it:
    the receiver (`emit_to_prefect`: a Prefect event per delivery), and the `conductor` flow
    served as `on-change` with prefect.yaml's triggers and concurrency limit (each triggered
    run in a fresh process, as Prefect's runner does). A monitor thread starts the first run
    (`run_deployment`, as `prefect deployment run`), waits until the sandbox shows no open item
    and no run of the deployment is left, and writes the runs' times."""
    from pydantic import SecretStr

    from deployments.webhooks import Receiver, emit_to_prefect, make_server
    from flows.pipeline_pass import conductor
    from prefect import serve
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.deployments import run_deployment

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    yaml_spec = _on_change_spec()
    os.environ.update(yaml_spec["work_pool"].get("job_variables", {}).get("env", {}))  # as a worker sets them
    receiver = Receiver(SecretStr(os.environ[SECRET_ENV]), [CONDUCTOR], emit=emit_to_prefect)
    hooks = make_server(receiver, "127.0.0.1", spec["hook_port"])
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    from prefect.deployments.runner import EntrypointType

    deployment = conductor.to_deployment(
        name="on-change", parameters=yaml_spec.get("parameters", {}),
        entrypoint_type=EntrypointType.MODULE_PATH,  # as prefect.yaml (a file path shadows `conductor`)
        triggers=_initialize_deployment_triggers("on-change", [dict(t) for t in yaml_spec["triggers"]]),
        concurrency_limit=ConcurrencyLimitConfig(**yaml_spec["concurrency_limit"]))

    def monitor() -> None:
        result: dict[str, Any]
        try:
            with get_client(sync_client=True) as client:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        dep = client.read_deployment_by_name("conductor/on-change")
                        break
                    except Exception:  # noqa: BLE001 - not registered yet
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                started = datetime.now(timezone.utc)
                run_deployment(dep.id, parameters={"repo": spec["repo"]}, timeout=0)
                idle_at = None
                deadline = time.monotonic() + bc.PASS_TIMEOUT
                while time.monotonic() < deadline:
                    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
                    if idle_at is None and _pipeline_idle(spec["github_url"], os.environ["GITHUB_TOKEN"], spec["repo"]):
                        idle_at = datetime.now(timezone.utc)
                    before = [r for r in runs if idle_at and r.start_time and r.start_time <= idle_at]
                    if idle_at and before and all(r.state and r.state.is_final() for r in before):
                        made = [r for r in before if r.end_time and not r.state.is_cancelled()]  # coalesced: no pass
                        passes = sorted((p for r in made for p in _pass_times(client, r, started)),
                                        key=lambda row: row["start"])
                        end = max(r.end_time for r in made)
                        result = {"makespan_s": (end - started).total_seconds(), "passes": passes,
                                  "deliveries": receiver.emitted, "runs": len(runs),
                                  "runs_started": sum(1 for r in runs if r.run_count),
                                  "coalesced": sum(1 for r in runs if r.state and r.state.is_cancelled()),
                                  "timeline": _timeline(client, runs, started)}
                        break
                    time.sleep(0.5)
                else:
                    raise RuntimeError("not idle in time")
        except Exception as exc:  # noqa: BLE001 - reported as the mode's row
            result = {"error": f"{type(exc).__name__}: {exc}"[:300], "passes": []}
        Path(spec["results"]).write_text(json.dumps(result), encoding="utf-8")

    threading.Thread(target=monitor, daemon=True).start()
    serve(deployment)
    return 0


def run_deployed(sandbox, tokens: dict[str, str], api_url: str, home: Path, mode: dict[str, Any],
                 step: float, secret: str) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    spec_path, results = home / "deployed.json", home / "deployed-results.json"
    spec_path.write_text(json.dumps({**mode, "github_url": sandbox.api_url, "results": str(results)}),
                         encoding="utf-8")
    workdir = Path(mode["workdir"])
    env = bc.pass_env(api_url, home, tokens[CONDUCTOR], tokens[AGENT], **NO_GATES, **{SECRET_ENV: secret},
                      PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING", CONDUCTOR_GITHUB_URL=sandbox.api_url,
                      PREFECT_RUNNER_POLL_FREQUENCY="1",  # README: serve on-change polling every second
                      CONDUCTOR_REPO_PATH=mode["clone"], CONDUCTOR_AGENT_TIMEOUT=str(120 + 2 * step),
                      CONDUCTOR_AGENT_COMMAND=json.dumps([sys.executable, "-m", "shell.demo_agent",
                                                          "--lasting", str(step)]),
                      CONDUCTOR_WORKTREE_ROOT=str(workdir / "worktrees"), CONDUCTOR_SALVAGE_DIR=str(workdir / "salvage"))
    log = home / "deployed.log"
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-on-change", str(spec_path)],
                                   env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + bc.PASS_TIMEOUT
        while not results.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                return {"error": f"the served process ended or timed out:\n{bc._tail(log)}"[-300:], "passes": []}
            time.sleep(0.5)
        time.sleep(0.2)
        return json.loads(results.read_text(encoding="utf-8"))
    finally:
        bc._stop(process)
        kept = Path(tempfile.gettempdir()) / "bench_makespan_deployed.log"  # the served runs' logs, kept
        shutil.copyfile(log, kept)
        print(f"the served process's log: {kept}")


# -- the main process --------------------------------------------------------------------------

def make_repo(sandbox, tokens: dict[str, str], name: str, workdir: Path,
              hook: tuple[int, str] | None) -> tuple[str, Path, list]:
    """The demo's sample pipeline in `maintainer/NAME`, the conductor and the agent as writers,
    a clone; with `hook` (port, secret), a signed webhook to the receiver on that port. Returns (repo, clone, issues)."""
    from conductor.edges import worktrees
    from shell.demo import SAMPLE_PIPELINE, _all
    from github_sandbox.seed import seed_pipeline

    repo = seed_pipeline(sandbox.api_url, tokens[MAINTAINER], f"{MAINTAINER}/{name}", pipeline=SAMPLE_PIPELINE)
    with sandbox.api(tokens[MAINTAINER]) as admin:
        for login in (CONDUCTOR, AGENT):
            admin.put(f"/repos/{repo}/collaborators/{login}", json={"permission": "write"}).raise_for_status()
        if hook is not None:
            admin.post(f"/repos/{repo}/hooks", json={"events": ["issues", "pull_request"], "config": {
                "url": f"http://127.0.0.1:{hook[0]}/", "content_type": "json",
                "secret": hook[1]}}).raise_for_status()
        issues = [i for i in _all(admin, f"/repos/{repo}/issues", state="open") if "pull_request" not in i]
    clone = worktrees.clone(f"{sandbox.base_url}/{repo}.git", workdir / "clone")
    return repo, clone, issues


def run_modes(sandbox, tokens: dict[str, str], api_url: str, home: Path, spec: dict[str, Any],
              secret: str) -> list[dict[str, Any]]:
    spec_path, results = home / "modes.json", home / "results.json"
    spec_path.write_text(json.dumps({**spec, "github_url": sandbox.api_url, "results": str(results)}), encoding="utf-8")
    env = bc.pass_env(api_url, home, tokens[CONDUCTOR], tokens[AGENT], **NO_GATES, **{SECRET_ENV: secret},
                      PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING")
    return bc.run_pass_process(Path(__file__).resolve(), "--run-modes", spec_path, results, env,
                               home / "passes.log", timeout=bc.PASS_TIMEOUT * 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=10.0, help="seconds each leaf's agent lasts, its work included: D (default 10)")
    parser.add_argument("--every", type=float, default=30.0, help="cron mode: seconds between passes: T (default 30)")
    parser.add_argument("--modes", default="event,cron", help="modes to run, in order (default event,cron)")
    parser.add_argument("--server", choices=("embedded", "sqlite", "postgres"), default="embedded",
                        help="the Prefect server: conductor's embedded one (default), a stock `prefect server "
                             "start` on SQLite, or on PostgreSQL (what the README advises for deployments)")
    parser.add_argument("--run-modes", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-on-change", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_modes:
        return pass_process(args.run_modes)
    if args.serve_on_change:
        return serve_on_change(args.serve_on_change)
    try:
        modes = parse_modes(args.modes)
    except ValueError as exc:
        print(f"bench_makespan: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.step <= 300 or not 1 <= args.every <= 3600:
        print("bench_makespan: give --step from 0 to 300 and --every from 1 to 3600 (seconds)", file=sys.stderr)
        return 2

    from conductor.core.config import PipelineConfig
    from github_sandbox.testing import running_sandbox

    config = PipelineConfig()
    phase_deps = {p.name: p.depends_on for p in config.phases}
    tokens = {login: "sbx_" + secrets.token_hex(16) for login in (MAINTAINER, CONDUCTOR, AGENT)}
    secret = secrets.token_hex(16)
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, {bc._load()}; "
          f"D = {args.step:g} s per leaf, T = {args.every:g} s; {args.server} server; gates off", flush=True)
    labels = {"event": "event-driven", "cron": f"cron T={args.every:g} s", "deployed": "deployed on-change"}
    with tempfile.TemporaryDirectory(prefix="bench-makespan-") as tmp, \
            running_sandbox(Path(tmp) / "sandbox", users=tokens) as sandbox, \
            bc.prefect_server(args.server, Path(tmp) / "prefect-home") as api_url:
        specs, chain = [], None
        for mode in modes:
            workdir = Path(tmp) / mode
            port = bc._free_port() if mode in ("event", "deployed") else None
            repo, clone, issues = make_repo(sandbox, tokens, f"makespan-{mode}", workdir,
                                            (port, secret) if port else None)
            chain = critical_path(items_from_issues(issues, config.phase_names, repo), phase_deps)
            specs.append({"mode": mode, "label": labels[mode], "repo": repo, "clone": str(clone),
                          "workdir": str(workdir), "hook_port": port})
        in_process = [m for m in specs if m["mode"] != "deployed"]
        rows = run_modes(sandbox, tokens, api_url, Path(tmp) / "prefect-home",
                         {"step": args.step, "every": args.every, "modes": in_process}, secret) if in_process else []
        for m in specs:
            if m["mode"] == "deployed":
                rows.append({"mode": "deployed", "label": m["label"], **run_deployed(
                    sandbox, tokens, api_url, Path(tmp) / "deployed-home", m, args.step, secret)})
    print(f"finished at {bc._load()}")
    assert chain is not None
    ideal = len(chain) * args.step
    print(f"critical path: {len(chain)} leaves x {args.step:g} s = {ideal:.1f} s: {' -> '.join(chain)}")
    for r in rows:
        if r["passes"]:
            print(f"{r['label']}: " + "; ".join(
                f"+{p['start']:.1f} s {p['seconds']:.1f} s" + (f" {p['leaves']} leaves" if "leaves" in p else "")
                + (f" ({p['before_s']:.1f} s before its leaves, {p['leaves_s']:.1f} s of leaves)"
                   if "leaves_s" in p else "")
                + (f" (process up {p['process']:.1f} s before)" if p.get("process") else "")
                for p in r["passes"]))
            spent: dict[str, float] = {}
            for p in r["passes"]:
                for name, seconds in p.get("steps", {}).items():
                    spent[name] = spent.get(name, 0.0) + seconds
            if spent:
                print("  the passes' steps, in all: " + ", ".join(
                    f"{name} {seconds:.1f} s" for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])))
            for line in r.get("timeline", []):
                print(f"  run {line}")
            agents = [a for p in r["passes"] for a in p.get("agent_s", [])]
            if agents:
                print(f"  its {len(agents)} agents lasted {min(agents):.2f}-{max(agents):.2f} s "
                      f"(mean {sum(agents) / len(agents):.2f} s)")
    print()
    print(table(rows, ideal))
    print()
    for r in rows:  # the deployed mode is the figure that counts; the in-process one shows the floor
        if r["mode"] in ("deployed", "event"):
            print(goal_line(r["label"], None if r.get("error") else r["makespan_s"], ideal))
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

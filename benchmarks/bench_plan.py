"""Benchmark: plan a large synthetic pipeline, and load its snapshot JSON.

    .venv/bin/python benchmarks/bench_plan.py [--items 10000] [--repeat 5] [--profile]

Builds a `PipelineState` of N open items (80% issues, 20% PRs; every phase, 20 batches,
gate labels, PRs closing issues, drafts, forks, changed files, a few label problems),
then times `planner.plan` and `PipelineState.model_validate_json` of the state's JSON
(best and median of --repeat runs, time.perf_counter). No network, no sandbox.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from conductor.core.config import PipelineConfig
from conductor.core.models import Issue, PipelineState, PullRequest
from conductor.core.planner import plan, prs_needing_files
from conductor.core.settings import Settings

GOAL_ITEMS = 10_000
GOAL_SECONDS = 1.0
PROTECTED_FILE = "maestro/protocol/events.py"


def synthetic_state(items: int, phases: list[str], repo: str = "bench/pipeline") -> PipelineState:
    """Items #1..#items: every 5th a PR closing the issue just before it, the rest issues."""
    issues: list[Issue] = []
    pulls: list[PullRequest] = []
    approved: list[int] = []
    for n in range(1, items + 1):
        phase = phases[n % len(phases)]
        labels = [phase, f"batch-{(n // len(phases)) % 20 + 1:02d}"]
        if n % 37 == 0:
            labels.append("security")
            if n % 74 == 0:
                approved.append(n)
        if n % 997 == 0:
            labels.append("phase-9/typo")  # a label problem: reported, never dispatched
        if n % 5:
            if n % 13 == 0:
                labels.append("status/in-progress")
            issues.append(Issue(number=n, title=f"{phase}: item {n}", labels=labels,
                                body=f"Synthetic issue {n}.\n\nSee the design notes."))
            continue
        if n % 11 == 0:
            labels.append("status/pr-open")
        files = [f"src/module_{n % 50}/file_{n}.py", f"tests/test_{n}.py", "README.md"]
        if n % 9 == 0:
            files.append(PROTECTED_FILE)
        pulls.append(PullRequest(
            number=n, title=f"Implement #{n - 1}", labels=[] if n % 3 == 0 else labels,
            body=f"Closes #{n - 1}\n\nSynthetic pull request {n}.", draft=n % 7 == 0,
            fork=n % 50 == 0, head_ref=f"feature/{n}", base_ref="dev", files=files,
        ))
    return PipelineState(repo=repo, issues=issues, pull_requests=pulls, approved=approved)


def timings(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def profile_text(fn: Callable[[], Any], top: int = 20) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def _fmt(seconds: list[float]) -> str:
    return f"best {min(seconds) * 1000:8.1f} ms   median {statistics.median(seconds) * 1000:8.1f} ms"


def run(items: int, repeat: int, profile: bool) -> None:
    config = PipelineConfig()
    rules = Settings(pipeline=config)
    state = synthetic_state(items, config.phase_names)
    text = state.model_dump_json()
    result = plan(state, rules)
    print(f"state: {len(state.issues)} issues + {len(state.pull_requests)} PRs = {items} items, "
          f"snapshot JSON {len(text) / 1e6:.2f} MB")
    print(f"plan: {len(result.dispatches)} dispatches, {len(result.gated)} gated, "
          f"{len(result.problems)} problems, {len(result.deferred)} deferred, "
          f"active {', '.join(result.active_phases)}")

    plan_s = timings(lambda: plan(state, rules), repeat)
    files_s = timings(lambda: prs_needing_files(state, rules), repeat)
    load_s = timings(lambda: PipelineState.model_validate_json(text), repeat)
    print(f"\n{repeat} runs each:")
    print(f"  planner.plan                      {_fmt(plan_s)}")
    print(f"  planner.prs_needing_files         {_fmt(files_s)}")
    print(f"  PipelineState.model_validate_json {_fmt(load_s)}")

    median = statistics.median(plan_s)
    ok = median < GOAL_SECONDS
    where = "" if items == GOAL_ITEMS else f" (measured at {items} items; the goal is set at {GOAL_ITEMS})"
    print(f"\ngoal: plan {GOAL_ITEMS:,} items under {GOAL_SECONDS:g} s, median {median:.3f} s{where}: "
          f"{'PASS' if ok else 'FAIL'}")
    if profile or not ok:
        print("\ncProfile of one plan() call, by cumulative time:")
        print(profile_text(lambda: plan(state, rules)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=GOAL_ITEMS, help=f"open items (default {GOAL_ITEMS})")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each step (default 5)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one plan() call")
    args = parser.parse_args(argv)
    if args.items < 1 or args.repeat < 1:
        parser.error("--items and --repeat must be 1 or more")
    run(args.items, args.repeat, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())

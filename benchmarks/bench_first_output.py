#!/usr/bin/env python3
"""Time to first output and to first dispatch of `conductor run`, as a person at a terminal sees it.

Starts the sandbox GitHub with a small pipeline (two ready issues), then runs
`conductor run` in a pseudo-terminal (so it draws what a terminal gets) with the embedded
Prefect server, on a fresh PREFECT_HOME and again on the same (warm) one. Measures, from
the start of the process: the first byte on the terminal, the line saying the inputs are
checked ("conductor pass over ..."), the logged dispatch decision (first dispatch), and the end.

    .venv/bin/python benchmarks/bench_first_output.py [--runs N]

Goal (issue "First run"): first output within 1 s.
"""
from __future__ import annotations

import argparse
import os
import pty
import re
import secrets
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def timed_run(argv: list[str], env: dict[str, str], timeout: float = 600) -> dict[str, float | None]:
    """Run `argv` on a pty; seconds to first byte, to the marks, to the end."""
    leader, follower = pty.openpty()
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    marks: dict[str, float | None] = {"first_output": None, "inputs_checked": None, "first_dispatch": None}
    text = ""
    while time.monotonic() - start < timeout:
        ready, _, _ = select.select([leader], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(leader, 65536).decode(errors="replace")
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic() - start
            if marks["first_output"] is None and chunk.strip():
                marks["first_output"] = now
            text += ANSI.sub("", chunk)
            if marks["inputs_checked"] is None and "conductor pass over" in text:
                marks["inputs_checked"] = now
            if marks["first_dispatch"] is None and re.search(r"\bdispatch (issue_to_pr|pr_review) ", text):
                marks["first_dispatch"] = now
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    marks["end"] = time.monotonic() - start
    marks["exit"] = proc.returncode
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="passes on the same PREFECT_HOME (the first is fresh)")
    args = parser.parse_args()

    from github_sandbox.testing import running_sandbox
    from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, make_pipeline_repo

    users = {name: f"sbx_{name}_{secrets.token_hex(6)}" for name in ("admin", "alice", "bob", "carol")}
    with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp:
        work = Path(tmp)
        with running_sandbox(work / "sandbox", users=users) as sandbox:
            home = work / "prefect-home"
            print(f"{'run':<6} {'home':<6} {'first output':>12} {'inputs ok':>10} {'1st dispatch':>12} {'end':>7} exit")
            for run in range(1, args.runs + 1):
                pipe = make_pipeline_repo(sandbox, f"bench-{run}", work / f"r{run}")
                pipe.issue("Page A", "phase-4/new-ui-pages", "batch-01")
                pipe.issue("Page B", "phase-4/new-ui-pages", "batch-02")
                env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONDUCTOR_"))}
                env.update(PREFECT_HOME=str(home), GITHUB_TOKEN=users[CONDUCTOR_LOGIN],
                           CONDUCTOR_AGENT_TOKEN=users[AGENT_LOGIN], TERM="xterm", COLUMNS="120",
                           CONDUCTOR_WORKTREE_ROOT=str(work / f"wt{run}"),
                           CONDUCTOR_SALVAGE_DIR=str(work / f"salvage{run}"),
                           CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS="0",
                           CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES="0")
                marks = timed_run([sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name,
                                   "--github-url", sandbox.api_url, "--repo-path", str(pipe.clone),
                                   "--log-file", str(work / f"run{run}.log"),
                                   "--agent-command", f"{sys.executable} -m shell.demo_agent"], env)

                def f(x: float | None) -> str:
                    return "-" if x is None else f"{x:.2f}"

                print(f"{run:<6} {'fresh' if run == 1 else 'warm':<6} {f(marks['first_output']):>12} "
                      f"{f(marks['inputs_checked']):>10} {f(marks['first_dispatch']):>12} {f(marks['end']):>7} "
                      f"{marks['exit']}", flush=True)
                first = marks["first_output"]
                if run == args.runs:
                    verdict = "PASS" if first is not None and first < 1.0 else "not met"
                    print(f"goal: first output < 1 s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

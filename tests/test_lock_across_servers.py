"""Two `conductor run`, each on its own Prefect server (different PREFECT_HOME, embedded
servers), each with its own clone and worktrees, as a laptop beside a scheduled deployment:
the Prefect slot cannot see across servers, the lock on GitHub does (issue #11 item 3)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conductor.core import constants
from conductor.edges import worktrees
from conftest import unique_repo_name
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, make_pipeline_repo

pytestmark = pytest.mark.slow

UI = "phase-4/new-ui-pages"


def test_two_runs_on_different_prefect_servers_started_together_exactly_one_dispatches(sandbox, tmp_path):
    pipe = make_pipeline_repo(sandbox, unique_repo_name("two-servers"), tmp_path)
    issues = [pipe.issue("Page A", UI, "batch-01"), pipe.issue("Page B", UI, "batch-02")]
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CONDUCTOR_", "GITHUB_TOKEN", "GH_TOKEN", "PREFECT_"))}
    runs = []
    for name in ("laptop", "server"):
        clone = worktrees.clone(f"{sandbox.base_url}/{pipe.full_name}.git", tmp_path / f"clone-{name}")
        env = {**base, "GITHUB_TOKEN": sandbox.users[CONDUCTOR_LOGIN],
               "CONDUCTOR_AGENT_TOKEN": sandbox.users[AGENT_LOGIN],
               "PREFECT_HOME": str(tmp_path / f"prefect-{name}"),
               "CONDUCTOR_WORKTREE_ROOT": str(tmp_path / f"wt-{name}"),
               "CONDUCTOR_SALVAGE_DIR": str(tmp_path / f"salvage-{name}"),
               "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
               "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0"}
        argv = [sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name,
                "--github-url", sandbox.api_url, "--repo-path", str(clone), "--json",
                "--log-file", str(tmp_path / f"{name}.log"),
                "--agent-command", f"{sys.executable} -m shell.demo_agent --sleep 30"]
        runs.append(subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
    results = []
    deadline = time.monotonic() + 600
    for proc in runs:
        out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
        results.append((proc.returncode, out, err))

    reports = [json.loads(out) for code, out, _ in results if out.strip()]
    refused = [err for _, out, err in results if not out.strip()]
    assert [code for code, _, _ in results] == [0, 0], [r[2][-2000:] for r in results]
    assert len(reports) == 1 and len(refused) == 1, results
    assert "holds the lock on GitHub" in refused[0] and "dispatched nothing" in refused[0]
    dispatched = sorted(n for o in reports[0]["outcomes"] for n in o["items"])
    assert dispatched == issues and all(o["ok"] for o in reports[0]["outcomes"])
    assert len(pipe.pulls()) == 2  # one PR per issue: nothing was dispatched twice
    assert len(pipe.issues(labels=constants.REMINDER_LABEL)) == 1
    done = subprocess.run(["git", "ls-remote", f"{sandbox.base_url}/{pipe.full_name}.git", constants.LOCK_REF],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""  # the holder released it

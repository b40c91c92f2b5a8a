"""`conductor demo --json`: the whole product on the sample pipeline, until idle."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_reaches_idle_with_every_sample_issue_merged(prefect_server):
    result = subprocess.run([sys.executable, "-m", "conductor.cli", "demo", "--json"],
                            env={**os.environ, "PREFECT_API_URL": prefect_server},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {**summary, "idle": True, "merged_prs": 12, "open_issues": 0,
                       "open_reminders": 0, "failures": [], "worktrees_left": 0}
    assert 2 <= summary["passes"] <= 12
    assert "maintainer approves" in result.stderr  # gated items were approved between passes

"""`conductor demo --json`: the whole product on the sample pipeline, until idle."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_reaches_idle_with_every_sample_issue_merged(prefect_server):
    result = subprocess.run([sys.executable, "-m", "shell.cli", "demo", "--json"],
                            env={**os.environ, "PREFECT_API_URL": prefect_server},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {**summary, "idle": True, "merged_prs": 12, "open_issues": 0,
                       "open_reminders": 0, "failures": [], "worktrees_left": 0}
    assert 2 <= summary["passes"] <= 16
    # the loops: one PR graded D once and reworked, one of a conflicting pair rebased before its review
    assert any(i["Item"].startswith("PR") and "(rework 1 (review graded D))" in i["Item"] and i["Result"] == "proved"
               for i in summary["items"])
    assert any(i["Item"].endswith("(rebase)") and i["Result"] == "proved" for i in summary["items"])
    # one leaf per item: every sample issue proved by a PR of its own, every PR reviewed and merged
    proved = [i for i in summary["items"] if i["Result"] == "proved"]
    assert sorted(int(i["Item"].split("#")[1]) for i in proved if i["Item"].startswith("issue")) == list(range(1, 13))
    merged = [i for i in proved if i["Item"].startswith("PR") and i["Merged"] == "yes"]
    assert len(merged) == 12 and len({i["Item"] for i in merged}) == 12
    assert summary["leaves"] == len(summary["items"]) >= 24
    assert all(i["Prompt"].startswith("conductor/prompts/") for i in summary["items"])
    assert "maintainer approves" in result.stderr  # gated items were approved between passes

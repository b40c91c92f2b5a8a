"""The write door, fenced (issue 18 point 5): a pass paused (SIGSTOP) past its lease while its
agents run; a second pass takes the lock over, stops those agents and dispatches the items
again; the first, resumed (SIGCONT), writes nothing more to GitHub and ends Cancelled naming
the new holder. Real `conductor run` processes, real Prefect servers, the sandbox."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from conductor import constants, worktrees
from conductor.coordinator import AGENT_PID_FILE
from conductor.git_lock import GitRefLock
from conftest import unique_repo_name
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, PipelineRepo, make_pipeline_repo

pytestmark = pytest.mark.slow

UI = "phase-4/new-ui-pages"
LEASE = 3.0  # seconds: the paused pass is past it well before the second pass starts


def _wait(what: str, ready: Callable[[], Any], running: subprocess.Popen[str], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := ready():
            return value
        if running.poll() is not None:
            raise AssertionError(f"the pass ended before {what}: {running.stderr.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _agents_running(root: Path, pass_id: str, count: int) -> bool:
    """`count` worktrees of pass `pass_id` whose agent has started (its pid file is written)."""
    if not root.is_dir():
        return False
    mine = [p for p in root.iterdir() if p.name.endswith(f"-{pass_id}")]
    return len(mine) == count and all(
        (worktrees.private_dir(p) / AGENT_PID_FILE).exists() for p in mine)


def _github_as_seen(pipe: PipelineRepo) -> list[Any]:
    """Every issue (reminders too), its state, labels, comments and label/close events."""
    seen = []
    for issue in sorted(pipe.issues(state="all"), key=lambda i: i["number"]):
        n = issue["number"]
        comments = pipe.call("GET", f"/issues/{n}/comments", params={"per_page": 100})
        events = pipe.call("GET", f"/issues/{n}/events", params={"per_page": 100})
        seen.append((n, issue["title"], issue["state"], sorted(label["name"] for label in issue["labels"]),
                     [c["body"] for c in comments], [(e["event"], e["actor"]["login"]) for e in events]))
    return seen


def test_a_pass_paused_past_its_lease_writes_nothing_once_resumed_and_ends_cancelled(sandbox, tmp_path):
    pipe = make_pipeline_repo(sandbox, unique_repo_name("fenced"), tmp_path)
    issues = [pipe.issue("Page A", UI, "batch-01"), pipe.issue("Page B", UI, "batch-02")]
    root = tmp_path / "worktrees"
    token = SecretStr(sandbox.users[CONDUCTOR_LOGIN])
    url = f"{sandbox.base_url}/{pipe.full_name}.git"
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CONDUCTOR_", "GITHUB_TOKEN", "GH_TOKEN", "PREFECT_"))}
    env = {**base, "GITHUB_TOKEN": token.get_secret_value(),
           "CONDUCTOR_AGENT_TOKEN": sandbox.users[AGENT_LOGIN],
           "CONDUCTOR_WORKTREE_ROOT": str(root), "CONDUCTOR_SALVAGE_DIR": str(tmp_path / "salvage"),
           "CONDUCTOR_LOCK_LEASE": str(LEASE),
           "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0", "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0"}

    def start(name: str, agent_sleep: float) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "conductor.cli", "run", "--repo", pipe.full_name,
                "--github-url", sandbox.api_url, "--repo-path", str(pipe.clone), "--json",
                "--log-file", str(tmp_path / f"{name}.log"),
                "--agent-command", f"{sys.executable} -m conductor.demo_agent --sleep {agent_sleep}"]
        # each pass on its own Prefect server: the Prefect slot cannot see across them
        return subprocess.Popen(argv, env={**env, "PREFECT_HOME": str(tmp_path / f"prefect-{name}")},
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    first = start("first", agent_sleep=120)
    second = None
    lock = GitRefLock(url, token)

    def holder_other_than(pass_id: str | None) -> str | None:
        state = lock.read()
        lease = state.lease if state else None
        return lease.pass_id if lease and lease.pass_id != pass_id else None

    try:
        first_id = _wait("the first pass's lock", lambda: holder_other_than(None), first)
        _wait("the first pass's agents", lambda: _agents_running(root, first_id, len(issues)), first)
        os.kill(first.pid, signal.SIGSTOP)  # paused while its agents run
        time.sleep(LEASE + 0.5)

        second = start("second", agent_sleep=12)
        second_id = _wait("the second pass's lock", lambda: holder_other_than(first_id), second)
        _wait("the second pass's agents", lambda: _agents_running(root, second_id, len(issues)), second)
        before = _github_as_seen(pipe)
        assert all(constants.STATUS_IN_PROGRESS in labels for n, _, _, labels, _, _ in before if n in issues)

        os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=60)
        after = _github_as_seen(pipe)
        holder = lock.read().lease
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        lock.close()
    assert holder.pass_id == second_id  # the second pass still holds it, still running
    assert after == before  # no comment, label, reminder or close by the first pass
    assert first.returncode == 0 and out == "", err[-2000:]
    assert (f"was taken over ({CONDUCTOR_LOGIN}@" in err and f"(pid {second.pid}), pass {second_id})" in err
            and "wrote nothing more" in err), err[-2000:]
    assert "Cancelled" in (tmp_path / "first.log").read_text()

    out, err = second.communicate(timeout=120)  # the second pass finishes the work
    assert second.returncode == 0, err[-2000:]
    assert len(pipe.pulls()) == len(issues)

"""The write door, fenced (issue 18 point 5): a pass paused (SIGSTOP) past its lease while its
agents run; a second pass takes the lock over, stops those agents and dispatches the items
again; the first, resumed (SIGCONT), writes nothing more to GitHub and ends Cancelled naming
the new holder. Real `conductor run` processes, real Prefect servers, the sandbox."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from conductor.actions.coordinator import AGENT_PID_FILE
from conductor.actions.orphans import stop_agents_of_pass
from conductor.core import constants
from conductor.edges import worktrees
from conductor.core.errors import ConfigError
from conductor.core.passlock import Lease, LockLost
from conductor.core.settings import RunSettings
from conductor.edges.git_lock import GitRefLock
from pipeline_support import CONDUCTOR_LOGIN, PipelineRepo, agent, pipeline_for_test
from tasks.guard import coordinator_fence, fence_of, one_pass_on_github

UI = "phase-4/new-ui-pages"
LEASE = 3.0  # seconds: the paused pass is past it well before the second pass starts


def _wait(what: str, ready: Callable[[], Any], running: subprocess.Popen[str] | None = None,
          timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := ready():
            return value
        if running is not None and running.poll() is not None:
            raise AssertionError(f"the pass ended before {what}: {running.stderr.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _agents_running(root: Path, pass_id: str, count: int) -> bool:
    """`count` worktrees of pass `pass_id` whose agent has started (its pid file is written)."""
    if not root.is_dir():
        return False
    mine = [p for p in root.iterdir() if p.name.endswith(f"-{pass_id}")]
    try:
        return len(mine) == count and all(
            (p / ".git").is_file() and (worktrees.private_dir(p) / AGENT_PID_FILE).exists() for p in mine)
    except worktrees.WorktreeError:  # being made
        return False


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


@pytest.mark.slow
def test_a_pass_paused_past_its_lease_writes_nothing_once_resumed_and_ends_cancelled(
        sandbox, tmp_path, monkeypatch, prefect_server):
    pipe = pipeline_for_test(sandbox, tmp_path, monkeypatch, "fenced", CONDUCTOR_LOCK_LEASE=str(LEASE))
    issues = [pipe.issue("Page A", UI, "batch-01"), pipe.issue("Page B", UI, "batch-02")]
    root = tmp_path / "worktrees"
    lock = GitRefLock(f"{sandbox.base_url}/{pipe.full_name}.git", SecretStr(sandbox.users[CONDUCTOR_LOGIN]))

    def holder_other_than(pass_id: str | None) -> str | None:
        state = lock.read()
        lease = state.lease if state else None
        return lease.pass_id if lease and lease.pass_id != pass_id else None

    # The first pass: a process of its own (to pause), on a Prefect server of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    first = subprocess.Popen(
        [sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name, "--github-url",
         sandbox.api_url, "--repo-path", str(pipe.clone), "--json", "--log-file", str(tmp_path / "first.log"),
         "--agent-command", shlex.join(agent("work", "--sleep", "120"))],
        env={**env, "PREFECT_HOME": str(tmp_path / "prefect-first")}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen: dict[str, Any] = {}

    def resume_first_once_the_second_works() -> None:
        """While the second pass's agents run: GitHub as it is, then the first pass resumed."""
        try:
            second_id = _wait("the second pass's lock", lambda: holder_other_than(seen["first_id"]))
            _wait("the second pass's agents", lambda: _agents_running(root, second_id, len(issues)))
            seen["before"] = _github_as_seen(pipe)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        seen["out"], seen["err"] = first.communicate(timeout=180)
        seen["after"] = _github_as_seen(pipe)
        seen["holder"] = lock.read().lease
        seen["second_id"] = second_id

    try:
        seen["first_id"] = _wait("the first pass's lock", lambda: holder_other_than(None), first)
        _wait("the first pass's agents", lambda: _agents_running(root, seen["first_id"], len(issues)), first)
        os.kill(first.pid, signal.SIGSTOP)  # paused while its agents run
        time.sleep(LEASE + 0.5)
        resumer = threading.Thread(target=resume_first_once_the_second_works)
        resumer.start()
        # The second pass, here: takes the lock over, stops the first pass's agents, releases
        # their claims and dispatches the items again; its agents last a few seconds.
        report, state = pipe.run("work", "--sleep", "6")
        resumer.join(180)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        lock.close()

    assert state.is_completed() and all(o.ok for o in report.outcomes), state.message
    assert sorted(n for o in report.outcomes for n in o.items) == issues  # dispatched again
    assert seen["holder"].pass_id == seen["second_id"]  # still held by the second pass then
    before = seen["before"]
    assert all(constants.STATUS_IN_PROGRESS in labels for n, _, _, labels, _, _ in before if n in issues)
    assert seen["after"] == before  # no comment, label, reminder or close by the first pass
    assert first.returncode == 0, seen["err"][-2000:]
    skipped = json.loads(seen["out"])["skipped"]  # --json: a report for a pass that ended without one
    assert "was taken over" in skipped and "wrote nothing more" in skipped, seen["out"]
    assert (f"was taken over ({CONDUCTOR_LOGIN}@" in seen["err"]
            and f"(pid {os.getpid()}), pass {seen['second_id']})" in seen["err"]
            and "wrote nothing more" in seen["err"]), seen["err"][-2000:]
    assert "Finished in state Cancelled(" in (tmp_path / "first.log").read_text()


def test_a_pass_that_lost_its_lock_stops_its_own_agents_and_no_others(tmp_path):
    """What the pass does once its lease is found taken (`PassLock.on_lost`): the agents in
    its own worktrees (named `...-<pass id>`) are stopped, another pass's keep running."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    repo = tmp_path / "repo"
    for args in (["init", "-q", "-b", "dev", str(repo)], ["-C", str(repo), "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], env=env, check=True)
    root = tmp_path / "worktrees"
    agents = {}
    for name in ("issue-1-lost", "issue-2-other"):
        path = worktrees.create_worktree(repo, root, name, "dev")
        agents[name] = subprocess.Popen(["sleep", "60"], cwd=path, start_new_session=True)
        (worktrees.private_dir(path) / AGENT_PID_FILE).write_text(str(agents[name].pid))
    try:
        assert stop_agents_of_pass(root, "lost") == [root / "issue-1-lost"]
        assert agents["issue-1-lost"].wait(10) is not None
        assert agents["issue-2-other"].poll() is None
    finally:
        for agent_process in agents.values():
            agent_process.kill()
            agent_process.wait()


@pytest.mark.parametrize(("lease", "margin", "expected"), [
    (3900.0, None, 60.0),  # the default: a tenth of the lease, at most 60 s
    (30.0, None, 3.0),
    (30.0, 5.0, 5.0),
    (30.0, 10.0, None),  # a third of the lease: renewed at every write, never allowed
])
def test_the_lock_margin(lease, margin, expected):
    settings = RunSettings(lock_lease=lease, lock_margin=margin)
    if expected is None:
        with pytest.raises(ConfigError, match="CONDUCTOR_LOCK_MARGIN .* less than a third"):
            settings.lock_margin_seconds()
    else:
        assert settings.lock_margin_seconds() == expected


def test_the_fence_of_a_pass_asks_its_lock_while_it_holds_it_and_elsewhere_reads_the_ref(sandbox, sandbox_repo):
    url, token = sandbox.repo_url(sandbox_repo), SecretStr(sandbox.admin_token)
    fence_of("p1")()  # a pass without the lock (lock = false, a dry run) is not fenced
    with coordinator_fence("p1", None, 5, token) as fence:
        fence()
    with coordinator_fence("p1", url, 5, token) as elsewhere:  # another worker: reads the ref
        with pytest.raises(LockLost, match="held by nobody"):  # no lock there
            elsewhere()
    with one_pass_on_github(url, token, pass_id="p1", holder="p1@test", lease_seconds=30, margin=5) as lock:
        fence_of("p1")()
        with coordinator_fence("p1", url, 5, token) as fence:  # in the pass's process: its own lock
            fence()
            with GitRefLock(url, token) as store:  # another pass takes the ref
                store.swap(lock.sha, Lease(pass_id="heir", holder="heir@test",
                                           expires_at=datetime.now(UTC) + timedelta(seconds=60)))
            assert not lock.renew()  # the keeper finds out
            with pytest.raises(LockLost, match="heir@test"):
                fence()
        with pytest.raises(LockLost, match="heir@test"):
            fence_of("p1")()
    fence_of("p1")()  # the pass is over: nothing to ask

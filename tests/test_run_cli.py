"""`conductor run` as a new user meets it: real processes against the sandbox.

Bad input of every kind: one stderr line, exit 2, and nothing written to GitHub (the
sandbox's own request log shows no write). PREFECT_API_URL points at a closed port, so a
pass that got as far as Prefect would fail differently: the checks run before it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import unique_repo_name
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, make_pipeline_repo

pytestmark = pytest.mark.slow

WRITES = ("POST ", "PATCH ", "PUT ", "DELETE ")
CLOSED = "http://127.0.0.1:9/api"


def conductor(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "GITHUB_TOKEN", "GH_TOKEN"))}
    return subprocess.run([sys.executable, "-m", "shell.cli", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def pipe(sandbox, tmp_path_factory):
    pipe = make_pipeline_repo(sandbox, unique_repo_name("run-cli"), tmp_path_factory.mktemp("run-cli"))
    pipe.issue("Page", "phase-4/new-ui-pages", "batch-01")
    return pipe


def writes(sandbox) -> list[str]:
    return sorted(k for k, n in sandbox.control.counts().items() if n and k.startswith(WRITES))


def bad_inputs(pipe, tmp_path: Path):
    """(name, args, env, expected text in the one line)."""
    sandbox = pipe.sandbox
    good = {"GITHUB_TOKEN": sandbox.users[CONDUCTOR_LOGIN], "PREFECT_API_URL": CLOSED}
    base = ["run", "--repo", pipe.full_name, "--github-url", sandbox.api_url, "--repo-path", str(pipe.clone),
            "--agent-command", f"{sys.executable} -m shell.demo_agent"]
    other = sandbox.create_repo(unique_repo_name("other"))
    sandbox.push_initial(other)
    from conductor.edges import worktrees

    other_clone = worktrees.clone(f"{sandbox.base_url}/{other}.git", tmp_path / "other")
    (tmp_path / "latin1.task").write_bytes("GH_REPO=a/b\n# caf\xe9\n".encode("latin-1"))
    (tmp_path / "bad.task").write_text("GH_REPO=a/b\nMAX_ISSUES_PER_DISPATCH=lots\n")
    (tmp_path / "cycle.toml").write_text('[[phases]]\nname = "a"\ndepends_on = ["b"]\n'
                                         '[[phases]]\nname = "b"\ndepends_on = ["a"]\n')
    (tmp_path / "plain").mkdir()
    return [
        ("wrong token", base, {**good, "GITHUB_TOKEN": "wrong"}, "GitHub rejected the token"),
        ("no token", base, {"PREFECT_API_URL": CLOSED}, "no GitHub token"),
        ("unknown repository", ["run", "--repo", "admin/no-such-repo", *base[3:]], good, "404"),
        ("private repository the token cannot see",
         ["run", "--repo", pipe.full_name, *base[3:]], {**good, "GITHUB_TOKEN": sandbox.users["carol"]}, None),
        ("repo path not a git repository", [*base[:6], str(tmp_path / "plain"), *base[7:]], good,
         "is not a git repository"),
        ("repo path a clone of another repository", [*base[:6], str(other_clone), *base[7:]], good,
         f"is not a clone of {pipe.full_name}"),
        ("agent not on PATH", [*base[:-1], "no-such-agent-xyz {task_file}"], good, "not on PATH"),
        ("unknown preset", [*base[:-2], "--agent-preset", "nope"], good, "unknown agent preset"),
        ("agent command env not JSON", base[:-2], {**good, "CONDUCTOR_AGENT_COMMAND": "not json"},
         "CONDUCTOR_AGENT_COMMAND is not a JSON list"),
        ("malformed task file", [*base, "--task-file", str(tmp_path / "bad.task")], good, "line 2"),
        ("non-UTF-8 task file", [*base, "--task-file", str(tmp_path / "latin1.task")], good, "not UTF-8"),
        ("config cycle", [*base, "--config", str(tmp_path / "cycle.toml")], good, "cycle"),
        ("GitHub unreachable", [*base[:4], "http://127.0.0.1:9/api/v3", *base[5:]],
         {**good, "CONDUCTOR_GITHUB_RETRIES": "0"}, "cannot reach GitHub"),
    ]


def test_each_bad_input_is_one_line_exit_2_and_no_write(pipe, tmp_path):
    cases = bad_inputs(pipe, tmp_path)
    for name, args, env, expected in cases:
        if name.startswith("private"):
            continue  # the sample repository is public: carol sees it; covered by "unknown repository"
        pipe.sandbox.control.reset_counts()
        result = conductor(*args, env=env, cwd=tmp_path)
        assert result.returncode == 2, (name, result.returncode, result.stderr[-2000:])
        assert result.stderr.count("\n") == 1, (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and result.stdout == "", name
        if expected:
            assert expected in result.stderr, (name, result.stderr)
        assert writes(pipe.sandbox) == [], (name, writes(pipe.sandbox))


def test_bad_input_takes_about_a_second_not_a_prefect_start(pipe, tmp_path):
    import time

    started = time.monotonic()
    result = conductor("run", "--repo", pipe.full_name, "--github-url", pipe.sandbox.api_url,
                       "--agent-preset", "nope", env={"GITHUB_TOKEN": "x"}, cwd=tmp_path)
    assert result.returncode == 2
    assert time.monotonic() - started < 15  # no embedded server start and migration waited for


def pass_env(pipe, tmp_path: Path, prefect_server: str) -> dict[str, str]:
    return {"GITHUB_TOKEN": pipe.sandbox.users[CONDUCTOR_LOGIN], "CONDUCTOR_AGENT_TOKEN": pipe.sandbox.users[AGENT_LOGIN],
            "PREFECT_API_URL": prefect_server, "CONDUCTOR_WORKTREE_ROOT": str(tmp_path / "wt"),
            "CONDUCTOR_SALVAGE_DIR": str(tmp_path / "salvage"), "CONDUCTOR_GITHUB_BACKOFF": "0.05",
            "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0", "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0"}


def test_a_failed_coordinator_exits_1_and_json_is_the_only_stdout(pipe, tmp_path, prefect_server):
    env = pass_env(pipe, tmp_path, prefect_server)
    (tmp_path / "coordinators.toml").write_text('fan_out = "coordinator-agent"\n')  # a "run agent" task per group
    # GitHub answers 503 now and then: retries are shown, and still the last line says why the pass failed
    pipe.sandbox.control.add_fault(status=503, method="GET", path=f"/repos/{pipe.full_name}/issues", times=2)
    result = conductor("run", "--repo", pipe.full_name, "--github-url", pipe.sandbox.api_url,
                       "--config", str(tmp_path / "coordinators.toml"),
                       "--repo-path", str(pipe.clone), "--json", "--log-file", str(tmp_path / "run.log"),
                       "--agent-command", f"{sys.executable} -m shell.demo_agent --mode crash",
                       env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["repo"] == pipe.full_name and len(report["outcomes"]) == 1
    assert report["outcomes"][0]["ok"] is False
    assert (tmp_path / "run.log").read_text()  # Prefect's own lines went to the log file
    assert "Beginning flow run" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert any("GitHub answered 503, retry" in line for line in lines), result.stderr[-3000:]
    [number] = report["outcomes"][0]["items"]
    assert lines[-1].startswith(f"conductor: #{number} failed (issue_to_pr phase-4/new-ui-pages batch-01): "), lines[-1]
    assert "exited with status 3" in lines[-1] and f"details: {tmp_path / 'run.log'} and Prefect flow run " \
        f"{prefect_server.removesuffix('/api')}/runs/flow-run/" in lines[-1]
    # in Prefect, the coordinator's "run agent" task failed with the agent
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        [coordinator] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="issue-to-pr phase-4/new-ui-pages batch-01")),
            sort=FlowRunSort.START_TIME_DESC, limit=1)
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="run agent")),
                                      flow_run_filter=FlowRunFilter(id={"any_": [coordinator.id]}))
        [the_pass] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=pipe.full_name)),
            sort=FlowRunSort.START_TIME_DESC, limit=1)
    assert [t.state.type.value for t in tasks] == ["FAILED"]
    assert "exited with status 3" in tasks[0].state.message
    assert the_pass.name.startswith(f"{pipe.full_name} ") and the_pass.state.name == "Completed with failures"
    assert the_pass.state.message.startswith("dispatched 1 group (1 item): 0 proved, 1 failed; 0 gated; reminder #")
    # the reminder asks for exactly the command that ran this pass
    [reminder] = pipe.issues(labels="conductor-reminder")
    assert f"conductor run --repo {pipe.full_name} --github-url {pipe.sandbox.api_url} --config" in reminder["body"]


def test_a_pass_refused_by_the_lock_prints_a_report_with_json(pipe, tmp_path, prefect_server):
    from pydantic import SecretStr

    from conductor.edges.git_lock import holder_name, pass_lock

    token = pipe.sandbox.users[CONDUCTOR_LOGIN]
    with pass_lock(pipe.sandbox.repo_url(pipe.full_name), SecretStr(token), pass_id="other",
                   holder=holder_name(CONDUCTOR_LOGIN), lease_seconds=300) as lock:
        assert lock.held
        result = conductor("run", "--repo", pipe.full_name, "--github-url", pipe.sandbox.api_url,
                           "--repo-path", str(pipe.clone), "--json",
                           "--agent-command", f"{sys.executable} -m shell.demo_agent",
                           env=pass_env(pipe, tmp_path, prefect_server), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["repo"] == pipe.full_name and report["error"] is None
    assert report["skipped"].startswith(f"another conductor pass over {pipe.full_name} holds the lock on GitHub")
    assert "pass other" in report["skipped"] and "dispatched nothing" in report["skipped"]
    assert result.stderr.strip().splitlines()[-1] == f"conductor: {report['skipped']}"


def test_a_github_credentials_block_is_a_token_source(prefect_server, monkeypatch):
    import secrets

    from prefect_github import GitHubCredentials

    from conductor.core.settings import load_settings
    from tasks.secrets import with_token

    def github_settings():
        return with_token(load_settings().github)

    name = "creds-" + secrets.token_hex(4)
    for var in ("GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CONDUCTOR_GITHUB_TOKEN_BLOCK", "no-such-secret-" + name)
    monkeypatch.setenv("CONDUCTOR_GITHUB_CREDENTIALS_BLOCK", name)
    assert github_settings().token is None
    GitHubCredentials(token="tok-" + name).save(name)
    assert github_settings().token.get_secret_value() == "tok-" + name


def test_dry_run_with_the_token_in_a_credentials_block_writes_nothing(pipe, tmp_path, prefect_server):
    import secrets

    from prefect_github import GitHubCredentials

    name = "creds-" + secrets.token_hex(4)
    GitHubCredentials(token=pipe.sandbox.users[CONDUCTOR_LOGIN]).save(name)
    pipe.sandbox.control.reset_counts()
    result = conductor("run", "--repo", pipe.full_name, "--github-url", pipe.sandbox.api_url, "--dry-run",
                       env={"PREFECT_API_URL": prefect_server, "CONDUCTOR_GITHUB_CREDENTIALS_BLOCK": name,
                            "CONDUCTOR_GITHUB_TOKEN_BLOCK": "no-such-secret-" + name, "COLUMNS": "200"},
                       cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DRY RUN, nothing written" in result.stderr and "Would dispatch" in result.stdout
    assert "DRY RUN: would dispatch 1 group (1 item)" in result.stdout
    assert writes(pipe.sandbox) == []

"""`conductor plan`, `snapshot` and `setup` as a user runs them: real processes, the sandbox."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shell.demo import SAMPLE_PIPELINE
from github_sandbox.seed import seed_pipeline
from conftest import unique_repo_name


def conductor(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run([sys.executable, "-m", "shell.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def sample(sandbox) -> str:
    return seed_pipeline(sandbox.api_url, sandbox.admin_token, f"admin/{unique_repo_name('sample')}",
                         pipeline=SAMPLE_PIPELINE)


def test_plan_against_the_sample_pipeline(sandbox, sample):
    result = conductor("plan", "--repo", sample, "--github-url", sandbox.api_url, "--json",
                       env={"GITHUB_TOKEN": sandbox.admin_token})
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert set(plan) >= {"active_phases", "dispatches", "gated", "problems", "idle", "stuck", "api_requests"}
    assert plan["active_phases"] == ["phase-1/db-schema", "phase-4/new-ui-pages", "phase-6/seed-data"]
    assert {d["phase"] for d in plan["dispatches"]} == {"phase-4/new-ui-pages", "phase-6/seed-data"}
    assert {g["reason"] for g in plan["gated"]} >= {"phase phase-1/db-schema is gated"}
    assert plan["idle"] is False and plan["stuck"] is False
    # one page of issues (PRs included), one page of PRs; then the login and one page of the
    # repository's comments (the spend its leaves recorded and the failed attempts of every
    # item the plan dispatches); one listing of the previous reminders and one of stuck issues
    # (the snapshot a pass plans from holds them too); one page of closed PRs (those merged
    # into dev finish their issues)
    assert plan["dispatches"]
    assert plan["api_requests"] == 2 + 1 + 1 + 1 + 1 + 1


@pytest.mark.slow
def test_snapshot_reproduces_the_same_plan_offline(sandbox, sample, tmp_path):
    snapshot = tmp_path / "state.json"
    env = {"GITHUB_TOKEN": sandbox.admin_token}
    written = conductor("snapshot", "--repo", sample, "--github-url", sandbox.api_url, "--out", str(snapshot), env=env)
    assert written.returncode == 0, written.stderr
    online = json.loads(conductor("plan", "--repo", sample, "--github-url", sandbox.api_url, "--json", env=env).stdout)
    offline = json.loads(conductor("plan", "--state-file", str(snapshot), "--json").stdout)
    for key in ("active_phases", "dispatches", "gated", "problems", "idle", "stuck"):
        assert offline[key] == online[key], key


def test_plan_with_a_task_file_at_attempt_4_reports_the_pipeline_stuck(sandbox, sample, tmp_path):
    """ATTEMPT_N of the task file reaches the planner: above the anti-loop limit nothing is dispatched."""
    (tmp_path / "t").write_text(f"GH_REPO={sample}\nATTEMPT_N=4\n")
    result = conductor("plan", "--task-file", str(tmp_path / "t"), "--github-url", sandbox.api_url, "--json",
                       env={"GITHUB_TOKEN": sandbox.admin_token})
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["stuck"] is True and plan["attempt"] == 4 and plan["dispatches"] == []


def test_config_show_names_the_source_of_every_setting_and_masks_secrets(tmp_path):
    (tmp_path / "conductor.toml").write_text('integration_branch = "main"\n[run]\nreminder_mode = "update"\n')
    (tmp_path / "t").write_text("GH_REPO=a/b\nPHASE_FILTER=phase-4/new-ui-pages\nATTEMPT_N=4\n")
    secrets = {"GITHUB_TOKEN": "ghp_never_shown_1", "CONDUCTOR_AGENT_TOKEN": "ghp_never_shown_2",
               "CONDUCTOR_WEBHOOK_SECRET": "never_shown_3"}
    env = {**secrets, "CONDUCTOR_AGENT_TIMEOUT": "99", "CONDUCTOR_GITHUB_URL": "http://127.0.0.1:9/api/v3"}
    shown = conductor("config", "show", "--task-file", "t", "--max-issues", "3", "--json", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {r["setting"]: (r["value"], r["source"]) for r in json.loads(shown.stdout)}
    assert rows["run.max_issues_per_dispatch"] == ("3", "flag")
    assert rows["run.phase_filter"] == ("phase-4/new-ui-pages", "task file")
    assert rows["run.attempt"] == ("4", "task file")
    assert rows["run.agent_timeout"] == ("99.0", "env")
    assert rows["github.api_url"] == ("http://127.0.0.1:9/api/v3", "env")
    assert rows["run.reminder_mode"] == ("update", "toml")
    assert rows["pipeline.integration_branch"] == ("main", "toml")
    assert rows["run.max_prs_per_dispatch"] == ("12", "default")
    assert rows["pipeline.gate_forks"] == ("True", "default")
    assert rows["github.token"][1] == rows["run.agent_token"][1] == rows["github.webhook_secret"][1] == "env"
    table = conductor("config", "show", "--task-file", "t", env=env, cwd=tmp_path)
    assert table.returncode == 0 and "run.phase_filter" in table.stdout and "(task file)" in table.stdout
    for secret in secrets.values():
        assert secret not in shown.stdout + shown.stderr + table.stdout + table.stderr


def test_plan_table_is_the_default(sandbox, sample):
    result = conductor("plan", "--repo", sample, "--github-url", sandbox.api_url,
                       env={"GITHUB_TOKEN": sandbox.admin_token, "COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    assert "phase-4/new-ui-pages" in result.stdout and "waiting on" in result.stdout


@pytest.mark.parametrize(("files", "args", "message"), [
    ({"t": "GH_REPO=a/b\nMAX_ISSUES_PER_DISPATCH=lots\n"}, ["--task-file", "t"], "line 2"),
    ({"t": "GH_REPO=a/b\nCOLOUR=blue\n"}, ["--task-file", "t"], "not a known key"),
    ({"t": "GH_REPO=a/b\nno equals sign\n"}, ["--task-file", "t"], "line 2"),
    ({}, ["--task-file", "missing"], "missing"),
    ({"s": "{not json"}, ["--state-file", "s"], "not valid JSON"),
    ({}, ["--state-file", "nowhere.json"], "does not exist"),
    ({"s": '{"repo": "a/b", "issues": [{"title": "no number"}]}'}, ["--state-file", "s"], "snapshot format"),
    ({"c.toml": '[[phases]]\nname = "a"\ndepends_on = ["b"]\n[[phases]]\nname = "b"\ndepends_on = ["a"]\n',
      "s": '{"repo": "a/b"}'}, ["--config", "c.toml", "--state-file", "s"], "cycle"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, files, args, message):
    """In process (`cli.main` is what the console script calls); the next test runs one case
    as a real process."""
    from shell import cli

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["plan", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("conductor: error: ")


def test_bad_input_as_a_real_process_is_one_line_exit_2_and_no_traceback(tmp_path):
    (tmp_path / "t").write_text("GH_REPO=a/b\nMAX_ISSUES_PER_DISPATCH=lots\n")
    result = conductor("plan", "--task-file", "t", cwd=tmp_path)
    assert result.returncode == 2
    assert "line 2" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_bad_repo_slug_bad_token_and_unreachable_github(sandbox, sample):
    slug = conductor("plan", "--repo", "not a slug")
    assert slug.returncode == 2 and "OWNER/NAME" in slug.stderr
    token = conductor("plan", "--repo", sample, "--github-url", sandbox.api_url, env={"GITHUB_TOKEN": "wrong"})
    assert token.returncode == 2 and "GITHUB_TOKEN" in token.stderr and "Traceback" not in token.stderr
    down = conductor("plan", "--repo", sample, "--github-url", "http://127.0.0.1:9/api/v3",
                     env={"GITHUB_TOKEN": "x", "CONDUCTOR_GITHUB_RETRIES": "0"})
    assert down.returncode == 2 and "cannot reach GitHub" in down.stderr and "Traceback" not in down.stderr


def test_setup_creates_the_conductor_worktree_once(tmp_path, sandbox, sample):
    from conductor.edges import worktrees

    clone = worktrees.clone(f"{sandbox.base_url}/{sample}.git", tmp_path / "clone")
    env = {"CONDUCTOR_WORKTREE_ROOT": str(tmp_path / "wt")}
    first = conductor("setup", "--repo", sample, "--repo-path", str(clone), env=env)
    assert first.returncode == 0, first.stderr
    task = (tmp_path / "wt" / "conductor" / ".agent-task").read_text()
    assert f"GH_REPO={sample}" in task and "MAX_ISSUES_PER_DISPATCH=12" in task
    suggested = first.stdout.strip().splitlines()[-1].split()
    assert suggested[:2] == ["conductor", "run"] and "--agent-preset" in suggested  # runs as printed
    assert suggested[suggested.index("--repo-path") + 1] == str(clone.resolve())
    again = conductor("setup", "--repo", sample, "--repo-path", str(clone), env=env)
    assert again.returncode == 2
    assert "git worktree remove --force" in again.stderr and "git worktree prune" in again.stderr


@pytest.mark.parametrize(("env", "args", "message"), [
    ({}, ["--repo", "a/b"], "no agent command"),
    ({"CONDUCTOR_AGENT_TIMEOUT": "soon"}, ["--repo", "a/b", "--agent-preset", "claude"], "CONDUCTOR_AGENT_TIMEOUT"),
    ({"CONDUCTOR_GITHUB_URL": "ftp://x"}, ["--repo", "a/b", "--agent-preset", "claude"], "http:// or https://"),
    ({}, ["--agent-preset", "claude"], "no repository given"),
    ({}, ["--repo", "a/b", "--agent-preset", "nope"], "unknown agent preset"),
    ({}, ["--repo", "a/b", "--agent-command", "[1, 2]"], "list of strings"),
])
def test_run_refuses_bad_input_before_starting_prefect(tmp_path, env, args, message):
    result = conductor("run", *args, env={"PREFECT_API_URL": "http://127.0.0.1:9/api", **env}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_status_shows_the_reminder_the_plan_and_where_prefect_is(sandbox, tmp_path):
    from datetime import UTC, datetime

    from conductor.core import constants
    from conductor.core.models import Plan
    from conductor.core.reminder import render_reminder

    repo = seed_pipeline(sandbox.api_url, sandbox.admin_token, f"admin/{unique_repo_name('status')}",
                         pipeline=SAMPLE_PIPELINE)
    body = render_reminder(Plan(repo=repo), attempt=2, fingerprint="abc123", now=datetime(2026, 1, 2, tzinfo=UTC),
                           rerun_hint="conductor run --repo " + repo)
    with sandbox.api() as c:
        c.post(f"/repos/{repo}/labels", json={"name": constants.REMINDER_LABEL, "color": "ededed"})
        number = c.post(f"/repos/{repo}/issues", json={"title": "Pipeline status", "body": body,
                                                       "labels": [constants.REMINDER_LABEL]}).json()["number"]
    env = {"GITHUB_TOKEN": sandbox.admin_token, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    result = conductor("status", "--repo", repo, "--github-url", sandbox.api_url, "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["reminder"]["number"] == number and status["reminder"]["attempt"] == 2
    assert status["reminder"]["fingerprint"] == "abc123"
    assert status["reminder"]["next"] == f"conductor run --repo {repo}"
    assert "not reachable" in status["last_pass"]["error"]
    assert status["plan"]["attempt"] == 2 and status["plan"]["active_phases"]
    table = conductor("status", "--repo", repo, "--github-url", sandbox.api_url, env={**env, "COLUMNS": "120"},
                      cwd=tmp_path)
    assert table.returncode == 0 and f"reminder #{number}: attempt 2" in table.stdout
    assert "phase-4/new-ui-pages" in table.stdout


@pytest.mark.parametrize("passes", ["0", "-1"])
def test_demo_refuses_fewer_than_one_pass(passes):
    result = conductor("demo", "--max-passes", passes)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "give 1 or more" in result.stderr


def test_run_without_an_agent_says_so_before_asking_any_server(tmp_path):
    """No token in the environment means the token could come from a Prefect block: the agent
    command (a local check) is refused first, without one request to Prefect or GitHub."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connections: list[object] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in {"GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN"}}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "shell.cli", "run", "--repo", "a/b",
             "--github-url", f"http://127.0.0.1:{port}/api/v3"], capture_output=True, text=True, cwd=tmp_path,
            env={**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}, timeout=60)
    finally:
        listener.close()
    assert result.returncode == 2 and "no agent command" in result.stderr, result.stderr
    assert connections == []

"""The agent reaches GitHub with its own token on any host (issue #13 item 6), against the
sandbox (a non-github.com host, like GitHub Enterprise): `git push` through the credential
helper the conductor sets in the agent's environment, and `gh api` through GH_ENTERPRISE_TOKEN
and GH_HOST. Real git, real gh, real processes started by `run_agent`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conductor.edges import worktrees
from conductor.edges.agent_process import agent_environment, agent_github_env, run_agent, write_askpass
from pipeline_support import AGENT_LOGIN, READER_LOGIN, make_pipeline_repo
from conftest import unique_repo_name


@pytest.fixture
def pipe(sandbox, tmp_path, request):
    return make_pipeline_repo(sandbox, unique_repo_name(request.node.name), tmp_path)


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int | None, list[str]]:
    lines: list[str] = []
    result = run_agent(argv, cwd=cwd, env=env, timeout=60, on_line=lines.append)
    return result.returncode, lines


def test_agent_push_uses_its_own_token_and_writes_it_nowhere(pipe, sandbox, tmp_path, monkeypatch):
    agent_token = sandbox.users[AGENT_LOGIN]
    # the user's clone already holds a credential: a read-only user's, which must not be used
    store = tmp_path / "user-credentials"
    store.write_text(f"http://{READER_LOGIN}:{sandbox.users[READER_LOGIN]}@"
                     f"{sandbox.base_url.removeprefix('http://')}\n")
    subprocess.run(["git", "-C", str(pipe.clone), "config", "credential.helper", f"store --file={store}"],
                   check=True)
    wt = worktrees.create_worktree(pipe.clone, tmp_path / "wts", "leaf", worktrees.integration_tip(pipe.clone, "dev"))
    git = ["git", "-c", "user.name=agent", "-c", "user.email=agent@sandbox.invalid"]
    subprocess.run([*git, "-C", str(wt), "commit", "--allow-empty", "-q", "-m", "agent work"], check=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no global git config or gh login of ours

    # without the conductor's helper, the clone's own credential (read-only) is refused
    plain = agent_environment(os.environ, {"GIT_TERMINAL_PROMPT": "0"})
    code, lines = _run(["git", "push", "origin", "HEAD:refs/heads/agent/leaf"], wt, plain)
    assert code != 0, lines

    env = agent_environment(os.environ, agent_github_env(sandbox.api_url, agent_token))
    code, lines = _run(["git", "push", "origin", "HEAD:refs/heads/agent/leaf"], wt, env)
    assert code == 0, lines
    branch = pipe.call("GET", "/branches/agent/leaf")
    assert branch["name"] == "agent/leaf"

    # an agent CLI that resets git's credential helpers for its commands (Gemini CLI appends
    # `credential.helper=`): the askpass script answers instead
    askpass = write_askpass(tmp_path)
    env = agent_environment(os.environ, agent_github_env(sandbox.api_url, agent_token, askpass=askpass))
    env.update({"GIT_CONFIG_COUNT": "4", "GIT_CONFIG_KEY_3": "credential.helper", "GIT_CONFIG_VALUE_3": ""})
    code, lines = _run(["git", "push", "origin", "HEAD:refs/heads/agent/leaf-2"], wt, env)
    assert code == 0, lines
    # as Gemini CLI runs commands: every helper and askpass dropped; the header still answers
    env.update({"GIT_ASKPASS": ""})
    code, lines = _run(["git", "push", "origin", "HEAD:refs/heads/agent/leaf-3"], wt, env)
    assert code == 0, lines
    without_header = {**env, "GIT_CONFIG_KEY_2": "core.pager", "GIT_CONFIG_VALUE_2": "cat"}
    code, lines = _run(["git", "push", "origin", "HEAD:refs/heads/agent/leaf-4"], wt, without_header)
    assert code != 0, lines  # (the helper alone would not have answered)
    assert pipe.call("GET", "/branches/agent/leaf-2")["name"] == "agent/leaf-2"
    assert agent_token not in askpass.read_text()
    # the token is in no file: not the clone's config, not the worktree's, not anywhere in the clone
    for path in [*pipe.clone.rglob("*"), *wt.rglob("*")]:
        if path.is_file():
            assert agent_token.encode() not in path.read_bytes(), path


@pytest.mark.skipif(shutil.which("gh") is None, reason="gh is not installed (apt-get install gh)")
def test_gh_reaches_a_non_github_host_with_the_agents_token(pipe, sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GH_ENTERPRISE_TOKEN", sandbox.users["admin"])  # the conductor's: never the agent's
    env = agent_environment(os.environ, agent_github_env(sandbox.api_url, sandbox.users[AGENT_LOGIN]))
    code, lines = _run(["gh", "api", f"{sandbox.api_url}/user"], tmp_path, env)
    assert code == 0, lines
    assert json.loads("".join(lines))["login"] == AGENT_LOGIN
    # what the issue measured: GH_TOKEN alone is not used for a host other than github.com
    only_gh_token = agent_environment(os.environ, {"GH_TOKEN": sandbox.users[AGENT_LOGIN]})
    code, lines = _run(["gh", "api", f"{sandbox.api_url}/user"], tmp_path, only_gh_token)
    assert code != 0 and any("401" in line or "Requires authentication" in line for line in lines), lines

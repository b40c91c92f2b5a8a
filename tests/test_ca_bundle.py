"""CONDUCTOR_CA_BUNDLE: a private certificate authority (GitHub Enterprise Server's, here the https
sandbox's) trusted by PyGithub, the conductor's git, the pass lock's git and every agent, over the
machine-wide CA variables (this machine sets GIT_SSL_CAINFO and REQUESTS_CA_BUNDLE to the system's).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from git import Repo

from conductor.core.errors import GitHubError
from conductor.core.github_urls import gh_host, gh_repo
from conductor.core.settings import GitHubSettings, process_environment
from conductor.edges import worktrees
from conductor.edges.agent_process import agent_environment, agent_github_env
from conductor.edges.git_lock import GitRefLock, LockError
from conductor.edges.github_gateway import GitHubGateway
from conftest import unique_repo_name
from github_sandbox.testing import RunningSandbox

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def https_repo(tls_sandbox: RunningSandbox) -> str:
    full_name = tls_sandbox.create_repo(unique_repo_name("ca-bundle"))
    tls_sandbox.push_initial(full_name)
    return full_name


def _settings(sb: RunningSandbox, ca: str | None) -> GitHubSettings:
    return GitHubSettings(api_url=sb.api_url, token=sb.admin_token, ca_bundle=ca, retries=0,
                          conditional_reads=False, seconds_between_requests=0, seconds_between_writes=0)


@pytest.fixture
def system_ca_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose environment names the system's CAs for every client (as this one does)."""
    for name in ("GIT_SSL_CAINFO", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, SYSTEM_CA)
    monkeypatch.delenv("NODE_EXTRA_CA_CERTS", raising=False)


@pytest.mark.parametrize("trusted", [True, False])
def test_pygithub_trusts_the_ca_bundle(tls_sandbox: RunningSandbox, https_repo: str, trusted: bool,
                                       system_ca_everywhere: None) -> None:
    with GitHubGateway(_settings(tls_sandbox, tls_sandbox.ca if trusted else None), https_repo) as gh:
        if trusted:
            assert gh.default_branch() == "main"
        else:
            with pytest.raises(GitHubError, match="(?i)certificate|ssl"):
                gh.default_branch()


@pytest.mark.parametrize("trusted", [True, False])
def test_the_pass_lock_git_trusts_the_ca_bundle(tls_sandbox: RunningSandbox, https_repo: str, trusted: bool,
                                                system_ca_everywhere: None) -> None:
    url = tls_sandbox.repo_url(https_repo)
    with GitRefLock(url, _token(tls_sandbox),
                    ca_bundle=Path(tls_sandbox.ca) if trusted else None) as lock:
        if trusted:
            assert lock.read() is None  # reached the server: no lock yet
        else:
            with pytest.raises(LockError, match="(?i)certificate|ssl"):
                lock.read()


def _token(sb: RunningSandbox):
    return _settings(sb, None).token


def test_the_conductors_git_fetch_trusts_the_ca_bundle(tls_sandbox: RunningSandbox, https_repo: str,
                                                       tmp_path: Path, system_ca_everywhere: None) -> None:
    clone = tmp_path / "clone"
    with Repo.init(clone) as repo:
        repo.create_remote("origin", tls_sandbox.repo_url(https_repo))
        repo.git.config("http.extraHeader", tls_sandbox.git_env()["GIT_CONFIG_VALUE_0"])
    with pytest.raises(worktrees.WorktreeError, match="(?i)certificate|ssl"):
        worktrees.fetch(clone)
    worktrees.fetch(clone, ca_bundle=Path(tls_sandbox.ca))
    with Repo(clone) as repo:
        assert repo.git.rev_parse("origin/main")


def test_agents_trust_the_ca_bundle_with_gh_host_repo_and_enterprise_token(
        tls_sandbox: RunningSandbox, https_repo: str, system_ca_everywhere: None) -> None:
    token = tls_sandbox.admin_token
    extra = agent_github_env(tls_sandbox.api_url, token, ca_bundle=Path(tls_sandbox.ca))
    env = agent_environment(process_environment(), extra)
    assert env["GH_ENTERPRISE_TOKEN"] == token and env["GH_HOST"] == f"127.0.0.1:{tls_sandbox.port}"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"):
        assert env[name] == tls_sandbox.ca
    health = f"{tls_sandbox.base_url}/_sandbox/health"
    # git (push and fetch go the same way), Python requests and Node, as an agent runs them
    subprocess.run(["git", "ls-remote", tls_sandbox.repo_url(https_repo)], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", f"import requests; requests.get({health!r}).raise_for_status()"],
                   env=env, check=True, capture_output=True)
    if os.path.exists("/usr/bin/node"):
        script = f"require('https').get({health!r}, r => process.exit(r.statusCode === 200 ? 0 : 1))" \
                 ".on('error', e => {{ console.error(e.message); process.exit(1) }})"
        subprocess.run(["node", "-e", script], env=env, check=True, capture_output=True)
    # without the bundle the machine's CAs win, and the sandbox's certificate is refused
    bare = agent_environment(process_environment(), agent_github_env(tls_sandbox.api_url, token))
    refused = subprocess.run(["git", "ls-remote", tls_sandbox.repo_url(https_repo)], env=bare, capture_output=True,
                             text=True)
    assert refused.returncode != 0 and "certificate" in refused.stderr.lower()


@pytest.mark.parametrize(("api_url", "host", "repo"), [
    ("https://api.github.com", "github.com", "o/r"),
    ("https://ghe.example.com/api/v3", "ghe.example.com", "ghe.example.com/o/r"),
    ("https://ghe.example.com:443/api/v3", "ghe.example.com", "ghe.example.com/o/r"),
    ("https://127.0.0.1:8443/api/v3", "127.0.0.1:8443", "127.0.0.1:8443/o/r"),
    ("http://127.0.0.1:8765/api/v3", "127.0.0.1:8765", "127.0.0.1:8765/o/r"),
])
def test_gh_host_and_repo(api_url: str, host: str, repo: str) -> None:
    assert gh_host(api_url) == host and gh_repo(api_url, "o/r") == repo


def _conductor_run(pipe, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shell.cli", "run", "--json", "--repo", pipe.full_name, "--github-url",
         pipe.sandbox.api_url, "--repo-path", str(pipe.clone), "--agent-command", '["true"]'],
        env=env, capture_output=True, text=True, timeout=240)


def test_conductor_run_honours_the_bundle_and_a_lock_it_cannot_read_fails_the_pass(
        tls_sandbox: RunningSandbox, prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline_support import CONDUCTOR_LOGIN, make_pipeline_repo

    monkeypatch.setenv("GIT_SSL_CAINFO", tls_sandbox.ca)  # the test's own clone
    pipe = make_pipeline_repo(tls_sandbox, unique_repo_name("ca-run"), tmp_path)
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "GITHUB_TOKEN": tls_sandbox.users[CONDUCTOR_LOGIN],
           "GIT_SSL_CAINFO": SYSTEM_CA, "SSL_CERT_FILE": SYSTEM_CA,
           "CONDUCTOR_WORKTREE_ROOT": str(tmp_path / "worktrees")}
    # requests trusts the sandbox through the machine's own variable, git does not: the lock
    # cannot be read over TLS, and the pass says so
    broken = _conductor_run(pipe, {**env, "REQUESTS_CA_BUNDLE": tls_sandbox.ca})
    assert broken.returncode != 0, broken.stderr[-3000:]
    error = json.loads(broken.stdout)["error"]
    assert "conductor lock" in error and "certificate" in error.lower()
    last = broken.stderr.strip().splitlines()[-1]
    assert last.startswith("conductor: ") and "conductor lock" in last
    # CONDUCTOR_CA_BUNDLE alone: PyGithub, git and the lock trust the sandbox
    fine = _conductor_run(pipe, {**env, "REQUESTS_CA_BUNDLE": SYSTEM_CA, "CONDUCTOR_CA_BUNDLE": tls_sandbox.ca})
    assert fine.returncode == 0, fine.stderr[-3000:]
    assert json.loads(fine.stdout)["plan"]["dispatches"] == []

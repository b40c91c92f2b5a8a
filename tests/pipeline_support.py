"""Test support for conductor passes: a pipeline repository in the sandbox, a local clone,
and a way to run one real pass (Prefect flow run) with the scripted agent."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conductor.edges import worktrees
from github_sandbox.testing import RunningSandbox

CONDUCTOR_LOGIN, AGENT_LOGIN, READER_LOGIN = "alice", "bob", "carol"


def agent(mode: str = "work", *extra: str) -> list[str]:
    return [sys.executable, "-m", "shell.demo_agent", "--mode", mode, *extra]


@dataclass
class PipelineRepo:
    sandbox: RunningSandbox
    full_name: str
    clone: Path
    workdir: Path
    _labels: set[str] = field(default_factory=set)

    def client(self, login: str | None = None) -> httpx.Client:
        return self.sandbox.api(self.sandbox.users[login] if login else None)

    def call(self, method: str, path: str, login: str | None = None, **kwargs: Any) -> Any:
        with self.client(login) as c:
            response = c.request(method, f"/repos/{self.full_name}{path}", **kwargs)
        assert response.status_code < 400, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def issue(self, title: str, *labels: str, body: str = "") -> int:
        for name in labels:
            if name not in self._labels:
                with self.client() as c:
                    c.post(f"/repos/{self.full_name}/labels", json={"name": name, "color": "ededed"})
                self._labels.add(name)
        return self.call("POST", "/issues", json={"title": title, "body": body, "labels": list(labels)})["number"]

    def issues(self, state: str = "open", labels: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state, "per_page": 100, **({"labels": labels} if labels else {})}
        return [i for i in self.call("GET", "/issues", params=params) if "pull_request" not in i]

    def pulls(self, state: str = "open") -> list[dict[str, Any]]:
        return self.call("GET", "/pulls", params={"state": state, "per_page": 100})

    def labels_of(self, number: int) -> list[str]:
        return [label["name"] for label in self.call("GET", f"/issues/{number}")["labels"]]

    def add_label(self, number: int, label: str, login: str | None = None) -> None:
        self.call("POST", f"/issues/{number}/labels", login=login, json={"labels": [label]})

    def run(self, mode: str = "work", *agent_args: str, **parameters: Any):
        """One real conductor pass; returns (PassReport, final Prefect state)."""
        from shell.run_cli import run_pass

        parameters.setdefault("agent_command", agent(mode, *agent_args))
        parameters.setdefault("agent_timeout", 60)
        return run_pass(repo=self.full_name, github_url=self.sandbox.api_url,
                        repo_path=str(self.clone), **parameters)

    def worktrees_left(self) -> list[Path]:
        return [Path(w.path) for w in worktrees.list_worktrees(self.clone)
                if Path(w.path) != self.clone.resolve()]


def pipeline_for_test(sandbox: RunningSandbox, tmp_path: Path, monkeypatch: Any, name: str,
                      **extra_env: str) -> PipelineRepo:
    """The `pipe` fixture of the pass tests: the conductor's and the agent's tokens, this test's
    worktree and salvage folders, no request pacing, fast back-off (plus `extra_env`), and a
    fresh pipeline repository named after the test."""
    from conftest import unique_repo_name

    env = {
        "GITHUB_TOKEN": sandbox.users[CONDUCTOR_LOGIN],
        "CONDUCTOR_AGENT_TOKEN": sandbox.users[AGENT_LOGIN],
        "CONDUCTOR_WORKTREE_ROOT": str(tmp_path / "worktrees"),
        "CONDUCTOR_SALVAGE_DIR": str(tmp_path / "salvage"),
        "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
        "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0",
        "CONDUCTOR_GITHUB_BACKOFF": "0.05",
        **extra_env,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return make_pipeline_repo(sandbox, unique_repo_name(name), tmp_path)


def make_pipeline_repo(sandbox: RunningSandbox, name: str, workdir: Path) -> PipelineRepo:
    """A repository owned by `admin` with `main` and `dev`; alice (the conductor) and bob
    (the agent) may write, carol may only read; plus a local clone."""
    full_name = sandbox.create_repo(name)
    sandbox.push_initial(full_name)
    with sandbox.api() as c:
        for login, permission in ((CONDUCTOR_LOGIN, "write"), (AGENT_LOGIN, "write"), (READER_LOGIN, "read")):
            c.put(f"/repos/{full_name}/collaborators/{login}", json={"permission": permission}).raise_for_status()
    clone = worktrees.clone(f"{sandbox.base_url}/{full_name}.git", workdir / "clone")
    return PipelineRepo(sandbox=sandbox, full_name=full_name, clone=clone, workdir=workdir)

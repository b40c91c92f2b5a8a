"""Test support: run the real sandbox server in a subprocess and drive it.

    with running_sandbox(tmp_path, users={"admin": "tok", "bob": "tok2"}) as sb:
        gh = Github(base_url=sb.api_url, auth=Auth.Token(sb.admin_token))
        full_name = sb.create_repo("demo")
        sb.push_initial(full_name)                     # main + dev, one commit
        sb.commit_files(full_name, "feature", {"a.py": "x = 1\n"})
        sb.control.add_fault(status=502, path="/repos/*/issues", times=1)
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
from git import Repo


class SandboxStartError(RuntimeError):
    """The sandbox server did not come up; the message holds its log tail."""


class Control:
    """The /_sandbox control API, with the site admin's token."""

    def __init__(self, base_url: str, admin_token: str, verify: str | bool = True) -> None:
        self._base = base_url
        self._verify = verify
        self._headers = {"Authorization": f"token {admin_token}"}

    def _call(self, method: str, path: str, json_body: Any = None) -> Any:
        resp = httpx.request(method, f"{self._base}/_sandbox{path}", json=json_body,
                             headers=self._headers, timeout=30, verify=self._verify)
        if resp.status_code >= 400:
            raise RuntimeError(f"sandbox control {method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def counts(self) -> dict[str, int]:
        """`"METHOD /route/{template}"` -> requests received since the last reset."""
        return self._call("GET", "/counts")["counts"]

    def reset_counts(self) -> None:
        self._call("POST", "/counts/reset")

    def add_fault(self, status: int | None = None, *, method: str | None = None, path: str | None = None,
                  times: int | None = 1, retry_after: int | None = None, latency: float = 0.0,
                  message: str | None = None) -> dict[str, Any]:
        """Make the next `times` matching requests fail with `status` (and/or wait `latency` s).

        `path` is a glob on the path without /api/v3 (`/repos/*/issues`) or the route
        template (`/repos/{owner}/{repo}/issues`); None matches every API request.
        403/429 with `retry_after` answer as GitHub's secondary rate limit."""
        spec = {"status": status, "method": method, "path": path, "times": times,
                "retry_after": retry_after, "latency": latency, "message": message}
        return self._call("POST", "/faults", spec)

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_rate_limit(self, limit: int | None = None, used: dict[str, int] | None = None) -> None:
        """Change the hourly core limit and/or how much of it a login has used."""
        self._call("POST", "/rate-limit", {"limit": limit, "used": used})

    def hook_deliveries(self) -> list[dict[str, Any]]:
        """Webhook deliveries sent so far (guid, hook_id, event, action, url, status_code, error)."""
        return self._call("GET", "/hooks/deliveries")

    def add_user(self, login: str, token: str) -> None:
        self._call("POST", "/users", {"login": login, "token": token})


class RunningSandbox:
    """A sandbox server process; see `running_sandbox`."""

    def __init__(self, data_dir: Path, users: dict[str, str], port: int | None,
                 rate_limit: int | None, tls: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.users = dict(users)
        self.admin_login, self.admin_token = next(iter(self.users.items()))
        self.port = port or 0
        self.rate_limit = rate_limit
        self.tls = tls
        self.ca: str | None = None  # DATA/tls/ca.pem when serving https
        self.log_path = self.data_dir / "sandbox.log"
        self.base_url = ""
        self.api_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self.control: Control

    # -- process ----------------------------------------------------------------
    def start(self, timeout: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        users_file = self.data_dir / "users.txt"
        users_file.write_text("".join(f"{k}={v}\n" for k, v in self.users.items()))
        users_file.chmod(0o600)
        ready = self.data_dir / "ready.json"
        ready.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "github_sandbox", "serve", "--port", str(self.port),
               "--data", str(self.data_dir), "--users-file", str(users_file), "--ready-file", str(ready)]
        if self.rate_limit:
            cmd += ["--rate-limit", str(self.rate_limit)]
        if self.tls:
            cmd.append("--tls")
        log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SandboxStartError(f"sandbox exited with {self._proc.returncode}:\n{self.log_tail()}")
            if ready.exists():
                info = json.loads(ready.read_text())
                self.base_url, self.api_url, self.port = info["base_url"], info["api_url"], info["port"]
                self.ca = info.get("ca")
                try:
                    if httpx.get(f"{self.base_url}/_sandbox/health", timeout=2, verify=self.verify).status_code == 200:
                        self.control = Control(self.base_url, self.admin_token, self.verify)
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise SandboxStartError(f"sandbox did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port and data directory (state must survive)."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- conveniences -------------------------------------------------------------
    @property
    def verify(self) -> str | bool:
        """What an httpx client passes as `verify`: the sandbox's CA when it serves https."""
        return self.ca or True

    def token_of(self, login: str) -> str:
        return self.users[login]

    def api(self, token: str | None = None) -> httpx.Client:
        """An httpx client on /api/v3 (admin token unless given; "" for anonymous)."""
        token = self.admin_token if token is None else token
        headers = {"Accept": "application/vnd.github+json"}
        if token:
            headers["Authorization"] = f"token {token}"
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30, verify=self.verify)

    def create_repo(self, name: str, owner_token: str | None = None, *, private: bool = False,
                    auto_init: bool = False) -> str:
        """POST /user/repos as the token's user; returns OWNER/NAME."""
        with self.api(owner_token) as client:
            resp = client.post("/user/repos", json={"name": name, "private": private, "auto_init": auto_init})
        if resp.status_code != 201:
            raise RuntimeError(f"create_repo {name}: {resp.status_code} {resp.text}")
        return resp.json()["full_name"]

    def repo_url(self, full_name: str) -> str:
        """The repository's git URL (its `clone_url`), without credentials."""
        return f"{self.base_url}/{full_name}.git"

    def clone_url(self, full_name: str, token: str | None = None) -> str:
        """The repository's git URL with `x-access-token:TOKEN@` credentials in it."""
        token = self.admin_token if token is None else token
        scheme, host = self.base_url.split("://", 1)
        return f"{scheme}://x-access-token:{token}@{host}/{full_name}.git"

    def git_env(self, token: str | None = None) -> dict[str, str]:
        """Environment that makes git send `token` to the sandbox (HTTP basic, as an
        `http.extraHeader` from the environment, so the token is in no URL or argv)."""
        token = self.admin_token if token is None else token
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
               "GIT_CONFIG_KEY_0": "http.extraHeader",
               "GIT_CONFIG_VALUE_0": f"Authorization: {basic_auth(token)}"}
        if self.ca:  # git trusts the sandbox's CA (GIT_SSL_CAINFO too: it outranks http.sslCAInfo)
            env.update({"GIT_SSL_CAINFO": self.ca})
        return env

    @contextmanager
    def _workdir(self, token: str | None) -> Iterator[tuple[Repo, Path]]:
        """A throwaway git repository that authenticates to the sandbox as `token`."""
        with tempfile.TemporaryDirectory(prefix="sandbox-wc-") as tmp:
            repo = Repo.init(tmp)
            try:
                repo.git.update_environment(**self.git_env(token))
                with repo.config_writer() as cfg:
                    cfg.set_value("user", "name", "sandbox-test")
                    cfg.set_value("user", "email", "test@sandbox.invalid")
                yield repo, Path(tmp)
            finally:
                repo.close()

    @staticmethod
    def _write(repo: Repo, root: Path, files: dict[str, str | None]) -> None:
        for name, text in files.items():
            if text is None:
                repo.git.rm("-q", "--", name)
            else:
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text(text, encoding="utf-8")
                repo.git.add("--", name)

    def commit_files(self, full_name: str, branch: str, files: dict[str, str | None], *,
                     message: str = "Update files", base: str = "main", token: str | None = None,
                     push_to: str | None = None) -> str:
        """Commit `files` (path -> text, None deletes) on `branch` (made from `base` if new)
        and push it, with real git over HTTP. Returns the new commit sha.

        `push_to` pushes to another repository (e.g. a fork) instead of `full_name`."""
        source = self.repo_url(full_name)
        target = self.repo_url(push_to) if push_to else source
        with self._workdir(token) as (repo, root):
            start = _first_existing(repo, [(target, branch), (source, branch), (source, base)])
            if start is None:
                repo.git.checkout("--orphan", branch)
            else:
                repo.git.checkout("-B", branch, start)
            self._write(repo, root, files)
            repo.git.commit("-q", "--allow-empty", "-m", message)
            repo.git.push("-q", target, f"HEAD:refs/heads/{branch}")
            return repo.head.commit.hexsha

    def push_initial(self, full_name: str, *, branches: tuple[str, ...] = ("main", "dev"),
                     files: dict[str, str] | None = None, token: str | None = None) -> str:
        """One initial commit pushed to every branch in `branches`. Returns its sha."""
        with self._workdir(token) as (repo, root):
            self._write(repo, root, files or {"README.md": f"# {full_name.split('/')[1]}\n"})
            repo.git.commit("-q", "-m", "Initial commit")
            repo.git.push("-q", self.repo_url(full_name), *[f"HEAD:refs/heads/{b}" for b in branches])
            return repo.head.commit.hexsha


def _first_existing(repo: Repo, candidates: list[tuple[str, str]]) -> str | None:
    """Fetch the first (url, branch) that exists and return its sha."""
    heads: dict[str, set[str]] = {}
    for url, branch in candidates:
        if url not in heads:
            out = repo.git.ls_remote("--heads", url)
            heads[url] = {line.split("\t", 1)[1].removeprefix("refs/heads/")
                          for line in out.splitlines() if "\t" in line}
        if branch in heads[url]:
            repo.git.fetch("-q", url, f"refs/heads/{branch}")
            return repo.git.rev_parse("FETCH_HEAD")
    return None


@contextmanager
def running_sandbox(data_dir: Path | str, users: dict[str, str] | None = None, port: int | None = None,
                    *, rate_limit: int | None = None, tls: bool = False) -> Iterator[RunningSandbox]:
    """Start `python -m github_sandbox serve` on a free port (or `port`); stop it after.
    `tls`: serve https (`ca` is then the certificate authority to trust).

    `users` maps login -> token; the first is the site admin. Default: one admin with a
    random token."""
    users = users or {"admin": "sbx_" + secrets.token_hex(16)}
    for login in users:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$", login):
            raise ValueError(f"users: {login!r} is not a GitHub login")
    sandbox = RunningSandbox(Path(data_dir), users, port, rate_limit, tls)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def basic_auth(token: str, login: str = "x-access-token") -> str:
    """An `Authorization` header value for git-style HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{login}:{token}".encode()).decode()


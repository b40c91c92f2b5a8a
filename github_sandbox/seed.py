"""Load a pipeline (the bundled sample by default) into a sandbox through its HTTP API.

Idempotent: the repository, labels and issues (matched by title) are created only when
missing, labels whose colour or description drifted are updated, and branches are
pushed only when absent. Git content goes over smart HTTP with the same token.
"""
from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from git import Repo
from git.exc import GitCommandError
from pydantic import BaseModel, Field, SecretStr, ValidationError


class SeedError(Exception):
    """Seeding failed; the message says which request and why."""


class LabelSpec(BaseModel):
    name: str = Field(min_length=1)
    color: str = "ededed"
    description: str | None = None


class IssueSpec(BaseModel):
    title: str = Field(min_length=1)
    body: str = ""
    labels: list[str] = Field(default_factory=list)


class Pipeline(BaseModel):
    name: str = "sample-pipeline"
    description: str = ""
    default_branch: str = "main"
    integration_branch: str | None = "dev"
    files: dict[str, str] = Field(default_factory=lambda: {"README.md": "# sample\n"})
    labels: list[LabelSpec] = Field(default_factory=list)
    issues: list[IssueSpec] = Field(default_factory=list)


def load_pipeline(path: Path | None = None) -> Pipeline:
    """The pipeline in `path`, or an empty one (a repository with a README, no issues)."""
    if path is None:
        return Pipeline()
    try:
        text = Path(path).read_text(encoding="utf-8")
        return Pipeline.model_validate(json.loads(text))
    except OSError as exc:
        raise SeedError(f"cannot read pipeline file {path}: {exc.strerror}") from None
    except (ValueError, ValidationError) as exc:
        raise SeedError(f"pipeline file {path} is invalid: "
                        f"{str(exc).splitlines()[0]}") from None


def api_root(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/api/v3") else f"{url}/api/v3"


class _Api:
    def __init__(self, api_url: str, token: str) -> None:
        self.client = httpx.Client(base_url=api_url, timeout=30, headers={
            "Authorization": f"token {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        })

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204),
             **kwargs: Any) -> httpx.Response:
        try:
            resp = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SeedError(f"{method} {path}: cannot reach the sandbox ({exc})") from None
        if resp.status_code not in ok:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text[:200]
            raise SeedError(f"{method} {path} answered {resp.status_code}: {message}")
        return resp

    def all_pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        query: dict[str, Any] | None = {"per_page": 100, **params}
        while url:
            resp = self.call("GET", url, params=query)
            items.extend(resp.json())
            url, query = resp.links.get("next", {}).get("url"), None
        return items


def _push_branches(clone_url: str, token: str, pipe: Pipeline, existing: set[str]) -> None:
    """Create the default branch (with `files`) and the integration branch if missing."""
    wanted = [pipe.default_branch] + ([pipe.integration_branch] if pipe.integration_branch else [])
    if all(b in existing for b in wanted):
        return
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "http.extraHeader",
           "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}
    with tempfile.TemporaryDirectory(prefix="sandbox-seed-") as tmp:
        repo = Repo.init(tmp, initial_branch=pipe.default_branch)
        try:
            repo.git.update_environment(**env)
            with repo.config_writer() as cfg:
                cfg.set_value("user", "name", "sandbox-seed")
                cfg.set_value("user", "email", "seed@sandbox.invalid")
            if pipe.default_branch in existing:
                repo.git.fetch(clone_url, f"refs/heads/{pipe.default_branch}")
                tip = repo.git.rev_parse("FETCH_HEAD")
            else:
                for name, text in pipe.files.items():
                    target = Path(tmp, name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
                repo.git.add("--all")
                repo.git.commit("-m", "Initial commit")
                tip = repo.head.commit.hexsha
            refspecs = [f"{tip}:refs/heads/{b}" for b in wanted if b not in existing]
            repo.git.push(clone_url, *refspecs)
        except GitCommandError as exc:
            detail = (exc.stderr or "").strip().splitlines()
            raise SeedError(f"git push to {clone_url} failed: {detail[-1] if detail else exc.status}") from None
        finally:
            repo.close()


def seed_pipeline(api_url: str, token: str | SecretStr, repo: str | None = None, *,
                pipeline: Path | None = None) -> str:
    """Fill `repo` (OWNER/NAME; default: the token owner's `sample-pipeline`) with the
    pipeline's branches, labels and issues. Safe to re-run. Returns OWNER/NAME."""
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    pipe = load_pipeline(pipeline)
    api = _Api(api_root(api_url), secret)
    try:
        login = api.call("GET", "/user").json()["login"]
        owner, _, name = (repo or f"{login}/{pipe.name}").partition("/")
        if not owner or not name or "/" in name:
            raise SeedError(f"--repo wants OWNER/NAME, got {repo!r}")
        found = api.call("GET", f"/repos/{owner}/{name}", ok=(200, 404))
        if found.status_code == 404:
            if owner.lower() != login.lower():
                raise SeedError(f"{owner}/{name} does not exist and the token belongs to {login}; "
                                f"use --repo {login}/{name} or the token of {owner}")
            found = api.call("POST", "/user/repos", json={"name": name, "description": pipe.description})
        info = found.json()
        full = info["full_name"]
        branches = {b["name"] for b in api.all_pages(f"/repos/{full}/branches")}
        _push_branches(info["clone_url"], secret, pipe, branches)

        labels = {lab["name"].lower(): lab for lab in api.all_pages(f"/repos/{full}/labels")}
        for spec in pipe.labels:
            have = labels.get(spec.name.lower())
            if have is None:
                api.call("POST", f"/repos/{full}/labels", json=spec.model_dump())
            elif (have["color"].lower(), have.get("description")) != (spec.color.lower(), spec.description):
                api.call("PATCH", f"/repos/{full}/labels/{quote(have['name'], safe='')}",
                         json={"color": spec.color, "description": spec.description})

        titles = {i["title"] for i in api.all_pages(f"/repos/{full}/issues", state="all")
                  if "pull_request" not in i}
        for issue in pipe.issues:
            if issue.title not in titles:
                api.call("POST", f"/repos/{full}/issues", json=issue.model_dump())
        return full
    finally:
        api.client.close()

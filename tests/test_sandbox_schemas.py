"""Every JSON shape the sandbox returns, checked against GitHub's published schemas
(githubkit's models for REST API 2022-11-28), including that no required key is missing."""
from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from githubkit_schemas.v2022_11_28 import models as gh
from pydantic import BaseModel, TypeAdapter, ValidationError

from conftest import unique_repo_name


# -- the checker ------------------------------------------------------------------------------
def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _fits(annotation: Any, value: Any) -> bool:
    try:
        TypeAdapter(annotation).validate_python(value)
        return True
    except ValidationError:
        return False


def missing_required(annotation: Any, value: Any, path: str = "$") -> list[str]:
    """Paths of required keys absent from `value`, recursively (pydantic alone accepts
    some of them because githubkit's `Missing[...]` unions are lenient)."""
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return []
        out = []
        for name, info in annotation.model_fields.items():
            key = info.alias or name
            if key not in value:
                if info.is_required():
                    out.append(f"{path}.{key}")
                continue
            out += missing_required(info.annotation, value[key], f"{path}.{key}")
        return out
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return []
        for arg in typing.get_args(annotation):
            arg = _unwrap(arg)
            if arg is type(None) or typing.get_origin(arg) is typing.Literal:
                continue
            if _fits(arg, value):
                return missing_required(arg, value, path)
        return []
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation) or (Any,)
        return [p for i, v in enumerate(value) for p in missing_required(item, v, f"{path}[{i}]")]
    return []


def assert_schema(model: Any, value: Any) -> None:
    missing = missing_required(model, value)
    assert not missing, f"required keys missing for {model}: {missing}"
    TypeAdapter(model).validate_python(value)


@pytest.mark.parametrize("model,good,drop", [
    (gh.Label, {"id": 1, "node_id": "n", "url": "u", "name": "x", "description": None, "color": "ffffff",
                "default": False, "archived_at": None, "archived_by": None}, "description"),
    (gh.RateLimit, {"limit": 1, "remaining": 1, "reset": 1, "used": 0}, "used"),
])
def test_checker_catches_a_missing_required_key(model, good, drop):
    assert_schema(model, good)
    bad = {k: v for k, v in good.items() if k != drop}
    assert missing_required(model, bad) == [f"$.{drop}"]
    with pytest.raises(AssertionError, match=drop):
        assert_schema(model, bad)


def test_checker_catches_a_missing_nested_key():
    user = {"login": "a", "id": 1, "node_id": "n", "avatar_url": "", "gravatar_id": "", "url": "",
            "html_url": "", "followers_url": "", "following_url": "", "gists_url": "", "starred_url": "",
            "subscriptions_url": "", "organizations_url": "", "repos_url": "", "events_url": "",
            "received_events_url": "", "type": "User", "site_admin": False}
    event = {"id": 1, "node_id": "n", "url": "u", "actor": user, "event": "labeled", "commit_id": None,
             "commit_url": None, "created_at": "2024-01-01T00:00:00Z", "performed_via_github_app": None,
             "label": {"name": "x", "color": "ffffff"}}
    assert_schema(gh.LabeledIssueEvent, event)
    broken = {**event, "actor": {k: v for k, v in user.items() if k != "site_admin"}}
    assert missing_required(gh.LabeledIssueEvent, broken) == ["$.actor.site_admin"]


# -- one repository exercising every endpoint --------------------------------------------------
@pytest.fixture(scope="module")
def world(sandbox) -> dict[str, Any]:
    alice = sandbox.token_of("alice")
    full = sandbox.create_repo(unique_repo_name("schemas"))
    sandbox.push_initial(full, files={"README.md": "# s\n", "src/app.py": "x = 1\n"})
    sandbox.commit_files(full, "feature", {"src/app.py": "x = 2\n", "src/new.py": "y = 1\n"},
                         message="Change app; fixes #1")
    sandbox.commit_files(full, "other", {"notes.txt": "n\n"})
    out: dict[str, Any] = {"full": full}
    with sandbox.api() as api:
        r = api.put(f"/repos/{full}/collaborators/alice", json={"permission": "triage"})
        assert r.status_code == 201, r.text
        out["invitation"] = r.json()
        out["label"] = api.post(f"/repos/{full}/labels", json={"name": "phase-1/db-schema", "color": "5319e7"}).json()
        issue = api.post(f"/repos/{full}/issues", json={"title": "Bug", "body": "b", "labels": ["phase-1/db-schema"],
                                                       "assignees": ["alice"]}).json()
        out["issue"] = issue
        out["comment"] = api.post(f"/repos/{full}/issues/1/comments", json={"body": "hello"}).json()
        api.delete(f"/repos/{full}/issues/1/labels/phase-1%2Fdb-schema")
        api.post(f"/repos/{full}/issues", json={"title": "Closed one"})
        api.patch(f"/repos/{full}/issues/2", json={"state": "closed", "state_reason": "not_planned"})
        out["pull_created"] = api.post(f"/repos/{full}/pulls", json={
            "title": "Feature", "head": "feature", "base": "main", "body": "Fixes #1"}).json()
        other = api.post(f"/repos/{full}/pulls", json={"title": "Other", "head": "other", "base": "main"}).json()
        out["pull_open"] = api.get(f"/repos/{full}/pulls/{other['number']}").json()
        n = out["pull_created"]["number"]
        out["files"] = api.get(f"/repos/{full}/pulls/{n}/files").json()
        out["merge"] = api.put(f"/repos/{full}/pulls/{n}/merge", json={}).json()
        out["pull_merged"] = api.get(f"/repos/{full}/pulls/{n}").json()
        out["pulls"] = api.get(f"/repos/{full}/pulls", params={"state": "all"}).json()
        out["issues"] = api.get(f"/repos/{full}/issues", params={"state": "all"}).json()
        out["events_1"] = api.get(f"/repos/{full}/issues/1/events").json()
        out["events_pr"] = api.get(f"/repos/{full}/issues/{n}/events").json()
        out["repo"] = api.get(f"/repos/{full}").json()
        out["labels"] = api.get(f"/repos/{full}/labels").json()
        out["comments"] = api.get(f"/repos/{full}/issues/1/comments").json()
        out["user"] = api.get("/user").json()
        out["public_user"] = api.get("/users/alice").json()
        out["rate_limit"] = api.get("/rate_limit").json()
        out["permission"] = api.get(f"/repos/{full}/collaborators/alice/permission").json()
        out["collaborators"] = api.get(f"/repos/{full}/collaborators").json()
        out["branches"] = api.get(f"/repos/{full}/branches").json()
        out["branch"] = api.get(f"/repos/{full}/branches/main").json()
        out["error_404"] = api.get(f"/repos/{full}/labels/nope").json()
        out["error_422"] = api.post(f"/repos/{full}/pulls", json={"title": "x", "head": "nope", "base": "main"}).json()
    with sandbox.api(alice) as api:
        out["created_repo"] = api.post("/user/repos", json={"name": unique_repo_name("alice-own")}).json()
        fork = api.post(f"/repos/{full}/forks", json={})
        assert fork.status_code == 202, fork.text
        out["fork"] = fork.json()
    with sandbox.api() as api:
        out["forks"] = api.get(f"/repos/{full}/forks").json()
    return out


CASES = [
    ("user", gh.PrivateUser), ("public_user", gh.PublicUser), ("repo", gh.FullRepository),
    ("created_repo", gh.FullRepository), ("fork", gh.FullRepository), ("forks", list[gh.MinimalRepository]),
    ("label", gh.Label), ("labels", list[gh.Label]), ("issue", gh.Issue), ("issues", list[gh.Issue]),
    ("comment", gh.IssueComment), ("comments", list[gh.IssueComment]),
    ("pull_created", gh.PullRequest), ("pull_open", gh.PullRequest), ("pull_merged", gh.PullRequest),
    ("pulls", list[gh.PullRequestSimple]), ("files", list[gh.DiffEntry]),
    ("merge", gh.PullRequestMergeResult), ("rate_limit", gh.RateLimitOverview),
    ("permission", gh.RepositoryCollaboratorPermission), ("collaborators", list[gh.Collaborator]),
    ("invitation", gh.RepositoryInvitation), ("branches", list[gh.ShortBranch]),
    ("branch", gh.BranchWithProtection), ("error_404", gh.BasicError), ("error_422", gh.ValidationError),
]


@pytest.mark.parametrize("key,model", CASES, ids=[c[0] for c in CASES])
def test_shape_matches_github_schema(world, key, model):
    value = world[key]
    if isinstance(value, list):
        assert value, f"{key} is empty; nothing was checked"
    assert_schema(model, value)


EVENT_MODELS = {"labeled": gh.LabeledIssueEvent, "unlabeled": gh.UnlabeledIssueEvent}


def test_issue_events_match_their_schemas(world):
    events = world["events_1"] + world["events_pr"]
    kinds = [e["event"] for e in events]
    assert {"labeled", "unlabeled", "closed", "merged"} <= set(kinds), kinds
    for ev in events:
        assert_schema(EVENT_MODELS.get(ev["event"], gh.IssueEvent), ev)


def test_listing_marks_pull_requests_and_keeps_plain_issues_plain(world):
    by_number = {i["number"]: i for i in world["issues"]}
    pr_number = world["pull_created"]["number"]
    assert "pull_request" in by_number[pr_number]
    assert by_number[pr_number]["pull_request"]["merged_at"] == world["pull_merged"]["merged_at"]
    assert "pull_request" not in by_number[1]
    assert by_number[2]["state_reason"] == "not_planned"


def test_errors_carry_status_as_string(world):
    assert world["error_404"] == {"message": "Not Found", "documentation_url":
                                  "https://docs.github.com/rest/issues/labels#get-a-label", "status": "404"}
    assert world["error_422"]["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    assert world["error_422"]["status"] == "422"

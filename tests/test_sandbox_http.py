"""The sandbox at the HTTP level: permissions, faults, rate limits, bad input, GitHub's
semantics for labels/issues/pulls, and state surviving a restart."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from git import Repo
from git.exc import GitCommandError

from github_sandbox.testing import basic_auth
from conftest import unique_repo_name

NO_RIGHTS = "Must have admin rights to Repository."


def grant(sandbox, full: str, login: str, permission: str) -> None:
    with sandbox.api() as api:
        resp = api.put(f"/repos/{full}/collaborators/{login}", json={"permission": permission})
    assert resp.status_code in (201, 204), resp.text


def pushed_branch(sandbox, full: str, branch: str, files: dict[str, str], message: str = "work") -> str:
    return sandbox.commit_files(full, branch, files, message=message)


# -- authentication and permissions --------------------------------------------------------------
def test_unknown_token_is_401_bad_credentials_and_missing_token_on_writes_is_401(sandbox, sandbox_repo):
    with sandbox.api("nope") as api:
        resp = api.get(f"/repos/{sandbox_repo}")
    assert resp.status_code == 401
    assert resp.json() == {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                           "status": "401"}
    with sandbox.api("") as anon:
        assert anon.get(f"/repos/{sandbox_repo}").status_code == 200  # public read
        write = anon.post(f"/repos/{sandbox_repo}/issues", json={"title": "x"})
        assert write.status_code == 401 and write.json()["message"] == "Requires authentication"
        assert anon.get("/user").status_code == 401


@pytest.mark.parametrize("header", ["token {t}", "Bearer {t}", "basic"])
def test_all_github_auth_header_forms_work(sandbox, header):
    token = sandbox.token_of("carol")
    value = basic_auth(token, "carol") if header == "basic" else header.format(t=token)
    resp = httpx.get(f"{sandbox.api_url}/user", headers={"Authorization": value})
    assert resp.status_code == 200 and resp.json()["login"] == "carol"


def test_reader_gets_403_on_writes_but_may_open_issues_without_labels(sandbox, sandbox_repo):
    grant(sandbox, sandbox_repo, "bob", "read")
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "owned by admin"})
    with sandbox.api(sandbox.token_of("bob")) as bob:
        for method, path, body in [
            ("POST", "/labels", {"name": "x"}),
            ("POST", "/issues/1/labels", {"labels": ["bug"]}),
            ("PATCH", "/issues/1", {"state": "closed"}),
            ("PUT", "/collaborators/carol", {}),
        ]:
            resp = bob.request(method, f"/repos/{sandbox_repo}{path}", json=body)
            assert (resp.status_code, resp.json()["message"]) == (403, NO_RIGHTS), (method, path)
        perm = bob.get(f"/repos/{sandbox_repo}/collaborators/bob/permission")
        assert perm.status_code == 403
        assert perm.json()["message"] == "Must have push access to view collaborator permission."
        created = bob.post(f"/repos/{sandbox_repo}/issues", json={"title": "from bob", "labels": ["bug"]})
        assert created.status_code == 201 and created.json()["labels"] == []  # silently dropped
        own = created.json()["number"]
        closed = bob.patch(f"/repos/{sandbox_repo}/issues/{own}", json={"state": "closed"})
        assert closed.status_code == 200 and closed.json()["state"] == "closed"  # authors may close
        assert bob.post(f"/repos/{sandbox_repo}/issues/1/comments", json={"body": "hi"}).status_code == 201


def test_private_repository_is_404_for_strangers(sandbox):
    full = sandbox.create_repo(unique_repo_name("secret"), private=True, auto_init=True)
    with sandbox.api(sandbox.token_of("carol")) as carol:
        for method, path in [("GET", ""), ("GET", "/issues"), ("POST", "/issues"), ("GET", "/labels/bug")]:
            resp = carol.request(method, f"/repos/{full}{path}", json={"title": "x"} if method == "POST" else None)
            assert (resp.status_code, resp.json()["message"]) == (404, "Not Found"), path
    with sandbox.api("") as anon:
        assert anon.get(f"/repos/{full}").status_code == 404
    grant(sandbox, full, "carol", "read")
    with sandbox.api(sandbox.token_of("carol")) as carol:
        assert carol.get(f"/repos/{full}").json()["permissions"]["push"] is False


def test_triage_may_label_issues_but_not_manage_labels_and_events_name_the_actor(sandbox, sandbox_repo):
    grant(sandbox, sandbox_repo, "carol", "triage")
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "t"})
    with sandbox.api(sandbox.token_of("carol")) as carol:
        added = carol.post(f"/repos/{sandbox_repo}/issues/1/labels", json={"labels": ["bug"]})
        assert added.status_code == 200 and [lab["name"] for lab in added.json()] == ["bug"]
        assert carol.post(f"/repos/{sandbox_repo}/labels", json={"name": "mine"}).status_code == 403
        assert carol.delete(f"/repos/{sandbox_repo}/issues/1/labels/bug").status_code == 200
        events = carol.get(f"/repos/{sandbox_repo}/issues/1/events").json()
    assert [(e["event"], e["actor"]["login"], e["label"]["name"]) for e in events] == [
        ("labeled", "carol", "bug"), ("unlabeled", "carol", "bug")]


@pytest.mark.parametrize("granted,legacy", [
    ("read", "read"), ("pull", "read"), ("triage", "read"), ("write", "write"), ("push", "write"),
    ("maintain", "write"), ("admin", "admin"),
])
def test_permission_endpoint_reports_role_and_legacy_permission(sandbox, sandbox_repo, granted, legacy):
    grant(sandbox, sandbox_repo, "alice", granted)
    with sandbox.api() as api:
        body = api.get(f"/repos/{sandbox_repo}/collaborators/alice/permission").json()
        stranger = api.get(f"/repos/{sandbox_repo}/collaborators/carol/permission").json()
        missing = api.get(f"/repos/{sandbox_repo}/collaborators/nobody-here/permission")
    role = {"pull": "read", "push": "write"}.get(granted, granted)
    assert (body["permission"], body["role_name"], body["user"]["login"]) == (legacy, role, "alice")
    assert body["user"]["permissions"]["push"] is (legacy in ("write", "admin"))
    assert (stranger["permission"], stranger["role_name"]) == ("read", "read")  # public repository
    assert missing.status_code == 404


def test_collaborator_grants_answer_201_then_204_and_refuse_bad_roles(sandbox, sandbox_repo):
    with sandbox.api() as api:
        first = api.put(f"/repos/{sandbox_repo}/collaborators/alice", json={"permission": "write"})
        again = api.put(f"/repos/{sandbox_repo}/collaborators/alice", json={"permission": "maintain"})
        bad = api.put(f"/repos/{sandbox_repo}/collaborators/alice", json={"permission": "owner"})
        owner = api.put(f"/repos/{sandbox_repo}/collaborators/admin", json={})
        assert api.get(f"/repos/{sandbox_repo}/collaborators/alice").status_code == 204
        assert api.delete(f"/repos/{sandbox_repo}/collaborators/alice").status_code == 204
        assert api.get(f"/repos/{sandbox_repo}/collaborators/alice").status_code == 404
    assert (first.status_code, first.json()["invitee"]["login"], first.json()["permissions"]) == (201, "alice", "write")
    assert again.status_code == 204
    assert bad.status_code == 422 and owner.status_code == 422


def test_write_collaborator_pushes_with_git_reader_is_refused(sandbox, sandbox_repo, tmp_path):
    grant(sandbox, sandbox_repo, "alice", "write")
    grant(sandbox, sandbox_repo, "bob", "read")
    sha = sandbox.commit_files(sandbox_repo, "alice-branch", {"a.txt": "a\n"}, token=sandbox.token_of("alice"))
    with sandbox.api() as api:
        assert api.get(f"/repos/{sandbox_repo}/branches/alice-branch").json()["commit"]["sha"] == sha
    with pytest.raises(GitCommandError) as denied:
        sandbox.commit_files(sandbox_repo, "bob-branch", {"b.txt": "b\n"}, token=sandbox.token_of("bob"))
    assert "403" in str(denied.value) or "denied" in str(denied.value)
    with pytest.raises(GitCommandError):
        sandbox.commit_files(sandbox_repo, "x", {"c.txt": "c\n"}, token="wrong-token")
    Repo.clone_from(f"{sandbox.base_url}/{sandbox_repo}.git", tmp_path / "anon")  # public: anonymous clone
    assert (tmp_path / "anon" / "README.md").exists()


def test_control_api_needs_the_admin_token_and_is_not_under_api_v3(sandbox):
    url = f"{sandbox.base_url}/_sandbox/counts"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"token {sandbox.token_of('alice')}"}).status_code == 403
    assert httpx.get(url, headers={"Authorization": f"token {sandbox.admin_token}"}).status_code == 200
    with sandbox.api() as api:
        assert api.get("/_sandbox/counts").status_code == 404


# -- counts, faults, rate limits ------------------------------------------------------------
def test_counts_are_per_method_and_route_template(sandbox, sandbox_repo):
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "t"})
        sandbox.control.reset_counts()
        for _ in range(3):
            api.get(f"/repos/{sandbox_repo}/issues")
        api.get(f"/repos/{sandbox_repo}/issues/1")
        api.get(f"/repos/{sandbox_repo}/labels/phase-1/db-schema")
    counts = sandbox.control.counts()
    assert counts == {"GET /repos/{owner}/{repo}/issues": 3, "GET /repos/{owner}/{repo}/issues/{issue_number}": 1,
                      "GET /repos/{owner}/{repo}/labels/{name}": 1}


def test_fault_502_fires_the_given_number_of_times_then_requests_succeed(sandbox, sandbox_repo):
    sandbox.control.add_fault(502, method="GET", path="/repos/*/*/issues", times=2)
    with sandbox.api() as api:
        assert api.post(f"/repos/{sandbox_repo}/issues", json={"title": "ok"}).status_code == 201  # POST unaffected
        statuses = [api.get(f"/repos/{sandbox_repo}/issues").status_code for _ in range(3)]
        assert api.get(f"/repos/{sandbox_repo}").status_code == 200  # other paths unaffected
    assert statuses == [502, 502, 200]
    assert sandbox.control.faults() == []


def test_secondary_rate_limit_403_and_429_carry_retry_after(sandbox, sandbox_repo):
    sandbox.control.add_fault(403, path="/repos/{owner}/{repo}/labels", retry_after=42)
    sandbox.control.add_fault(429, path="/repos/{owner}/{repo}/labels", retry_after=7)
    with sandbox.api() as api:
        first = api.get(f"/repos/{sandbox_repo}/labels")
        second = api.get(f"/repos/{sandbox_repo}/labels")
        third = api.get(f"/repos/{sandbox_repo}/labels")
    assert (first.status_code, first.headers["retry-after"]) == (403, "42")
    assert first.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert "x-ratelimit-remaining" in first.headers
    assert (second.status_code, second.headers["retry-after"]) == (429, "7")
    assert third.status_code == 200


def test_latency_fault_delays_without_failing(sandbox, sandbox_repo):
    sandbox.control.add_fault(latency=0.4, path="/repos/{owner}/{repo}")
    with sandbox.api() as api:
        started = time.monotonic()
        resp = api.get(f"/repos/{sandbox_repo}")
        slow = time.monotonic() - started
        started = time.monotonic()
        api.get(f"/repos/{sandbox_repo}")
        fast = time.monotonic() - started
    assert resp.status_code == 200 and slow >= 0.4 and fast < 0.3


def test_fault_without_times_stays_until_cleared(sandbox, sandbox_repo):
    sandbox.control.add_fault(500, path="/rate_limit", times=None)
    with sandbox.api() as api:
        assert [api.get("/rate_limit").status_code for _ in range(3)] == [500, 500, 500]
        sandbox.control.clear_faults()
        assert api.get("/rate_limit").status_code == 200


def test_rate_limit_headers_count_down_and_exhaustion_is_403(sandbox):
    sandbox.control.add_user("ratey", "sbx_ratey_token")
    with sandbox.api("sbx_ratey_token") as api:
        one = api.get("/user")
        two = api.get("/repos/admin/does-not-exist")  # errors count too
        free = api.get("/rate_limit")
        assert int(two.headers["x-ratelimit-used"]) == int(one.headers["x-ratelimit-used"]) + 1
        assert free.headers["x-ratelimit-used"] == two.headers["x-ratelimit-used"]
        assert free.json()["resources"]["core"]["used"] == int(two.headers["x-ratelimit-used"])
        assert two.headers["x-ratelimit-resource"] == "core" and two.headers["x-ratelimit-limit"] == "5000"
        sandbox.control.set_rate_limit(used={"ratey": 5000})
        spent = api.get("/user")
        assert spent.status_code == 403 and spent.headers["x-ratelimit-remaining"] == "0"
        assert spent.json()["message"].startswith("API rate limit exceeded for user ID")
        assert api.get("/rate_limit").status_code == 200
        sandbox.control.set_rate_limit(used={"ratey": 0})
        assert api.get("/user").status_code == 200


# -- bad input --------------------------------------------------------------------------------------
def test_malformed_json_is_400_problems_parsing_json_and_logged(sandbox, sandbox_repo):
    with sandbox.api() as api:
        resp = api.post(f"/repos/{sandbox_repo}/issues", content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json() == {"message": "Problems parsing JSON", "documentation_url":
                           "https://docs.github.com/rest/issues/issues#create-an-issue", "status": "400"}
    assert re.search(rf"refused 400 POST /api/v3/repos/{sandbox_repo}/issues: bad JSON", sandbox.log_text())


@pytest.mark.parametrize("body,message", [
    ({}, 'Invalid request.\n\n"title" wasn\'t supplied.'),
    ({"title": None}, "Invalid request.\n\nFor 'properties/title', null is not a string or integer."),
    ({"title": "x", "labels": "bug"}, "Invalid request.\n\nFor 'properties/labels', \"bug\" is not an array."),
])
def test_issue_body_validation_is_422_invalid_request(sandbox, sandbox_repo, body, message):
    with sandbox.api() as api:
        resp = api.post(f"/repos/{sandbox_repo}/issues", json=body)
    assert (resp.status_code, resp.json()["message"]) == (422, message)


def test_unknown_fields_are_ignored_and_title_may_be_a_number(sandbox, sandbox_repo):
    with sandbox.api() as api:
        resp = api.post(f"/repos/{sandbox_repo}/issues", json={"title": 42, "flavour": "mint"})
    assert resp.status_code == 201 and resp.json()["title"] == "42" and "flavour" not in resp.json()


def test_missing_labels_are_404_and_applying_one_creates_it(sandbox, sandbox_repo):
    with sandbox.api() as api:
        assert api.get(f"/repos/{sandbox_repo}/labels/ghost").status_code == 404
        assert api.delete(f"/repos/{sandbox_repo}/labels/ghost").status_code == 404
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "t"})
        assert api.delete(f"/repos/{sandbox_repo}/issues/1/labels/bug").json()["message"] == "Label does not exist"
        added = api.post(f"/repos/{sandbox_repo}/issues/1/labels", json=["status/in-progress"])
        assert [lab["name"] for lab in added.json()] == ["status/in-progress"]
        created = api.get(f"/repos/{sandbox_repo}/labels/status/in-progress")
        assert created.status_code == 200 and created.json()["color"] == "ededed"
        dup = api.post(f"/repos/{sandbox_repo}/labels", json={"name": "STATUS/in-progress"})
        assert dup.json()["errors"] == [{"resource": "Label", "code": "already_exists", "field": "name"}]
        bad = api.post(f"/repos/{sandbox_repo}/labels", json={"name": "c", "color": "nothex"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "color"


def test_label_rename_and_delete_follow_the_issues_that_carry_them(sandbox, sandbox_repo):
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/labels", json={"name": "old", "color": "#AABBCC"})
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "t", "labels": ["old", "bug"]})
        renamed = api.patch(f"/repos/{sandbox_repo}/labels/old", json={"new_name": "new", "description": "d"})
        assert renamed.json()["color"] == "AABBCC"
        assert [x["name"] for x in api.get(f"/repos/{sandbox_repo}/issues/1").json()["labels"]] == ["new", "bug"]
        assert api.delete(f"/repos/{sandbox_repo}/labels/new").status_code == 204
        assert [x["name"] for x in api.get(f"/repos/{sandbox_repo}/issues/1/labels").json()] == ["bug"]


def test_unknown_repository_and_route_are_github_404s(sandbox):
    with sandbox.api() as api:
        repo = api.get("/repos/admin/no-such-repo")
        route = api.get("/no/such/route")
    assert repo.json() == {"message": "Not Found", "documentation_url":
                           "https://docs.github.com/rest/repos/repos#get-a-repository", "status": "404"}
    assert route.status_code == 404 and route.json()["message"] == "Not Found"


def test_pull_request_validation_errors(sandbox, sandbox_repo):
    pushed_branch(sandbox, sandbox_repo, "topic", {"t.txt": "t\n"})
    with sandbox.api() as api:
        def create(**body):
            return api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "t", **body})

        no_head = create(head="missing", base="main")
        revision = create(head="main~1", base="dev")  # revision syntax is no branch
        no_base = create(head="topic", base="missing")
        empty = create(head="dev", base="main")
        ok = create(head="topic", base="main")
        dup = create(head="admin:topic", base="main")
    assert no_head.status_code == 422
    assert no_head.json()["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    assert revision.json()["errors"] == no_head.json()["errors"]
    assert no_base.json()["errors"] == [{"resource": "PullRequest", "field": "base", "code": "invalid"}]
    assert empty.json()["errors"] == [{"resource": "PullRequest", "code": "custom",
                                      "message": "No commits between main and dev"}]
    assert ok.status_code == 201
    assert dup.json()["errors"][0]["message"] == "A pull request already exists for admin:topic."


def test_merge_conflict_is_405_and_draft_is_405(sandbox, sandbox_repo):
    pushed_branch(sandbox, sandbox_repo, "left", {"README.md": "left\n"})
    pushed_branch(sandbox, sandbox_repo, "right", {"README.md": "right\n"})
    with sandbox.api() as api:
        left = api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "l", "head": "left", "base": "main"}).json()
        right = api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "r", "head": "right", "base": "main"}).json()
        assert api.put(f"/repos/{sandbox_repo}/pulls/{left['number']}/merge").status_code == 200
        conflicted = api.get(f"/repos/{sandbox_repo}/pulls/{right['number']}").json()
        assert (conflicted["mergeable"], conflicted["mergeable_state"]) == (False, "dirty")
        refused = api.put(f"/repos/{sandbox_repo}/pulls/{right['number']}/merge", json={})
        assert (refused.status_code, refused.json()["message"]) == (405, "Pull Request is not mergeable")
        again = api.put(f"/repos/{sandbox_repo}/pulls/{left['number']}/merge")
        assert again.status_code == 405
        pushed_branch(sandbox, sandbox_repo, "drafty", {"d.txt": "d\n"})
        draft = api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "d", "head": "drafty", "base": "main",
                                                              "draft": True}).json()
        assert draft["draft"] is True
        assert api.put(f"/repos/{sandbox_repo}/pulls/{draft['number']}/merge").json()["message"] == \
            "Pull Request is still a draft"


def test_a_request_that_breaks_the_server_is_a_500_and_the_server_lives_on(sandbox, sandbox_repo):
    pushed_branch(sandbox, sandbox_repo, "doomed", {"x.txt": "x\n"})
    with sandbox.api() as api:
        pr = api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "t", "head": "doomed", "base": "main"}).json()
        owner, name = sandbox_repo.split("/")
        git_dir = Path(sandbox.data_dir, "repos", owner.lower(), f"{name.lower()}.git")
        shutil.move(git_dir, git_dir.with_suffix(".moved"))
        try:
            broken = api.get(f"/repos/{sandbox_repo}/pulls/{pr['number']}/files")
        finally:
            shutil.move(git_dir.with_suffix(".moved"), git_dir)
        assert broken.status_code == 500 and broken.json()["message"] == "Server Error"
        assert api.get(f"/repos/{sandbox_repo}/pulls/{pr['number']}/files").status_code == 200
    assert f"error 500 GET /api/v3/repos/{sandbox_repo}/pulls/{pr['number']}/files" in sandbox.log_text()


# -- GitHub semantics ----------------------------------------------------------------------------
def test_closing_keywords_close_issues_only_when_merging_into_the_default_branch(sandbox, sandbox_repo):
    with sandbox.api() as api:
        for n in range(5):
            api.post(f"/repos/{sandbox_repo}/issues", json={"title": f"issue {n + 1}"})
        pushed_branch(sandbox, sandbox_repo, "to-dev", {"dev.txt": "d\n"})
        to_dev = api.post(f"/repos/{sandbox_repo}/pulls", json={
            "title": "dev", "head": "to-dev", "base": "dev", "body": "Fixes #1"}).json()
        api.put(f"/repos/{sandbox_repo}/pulls/{to_dev['number']}/merge")
        assert api.get(f"/repos/{sandbox_repo}/issues/1").json()["state"] == "open"

        pushed_branch(sandbox, sandbox_repo, "to-main", {"main.txt": "m\n"}, message="Work\n\nresolved #4")
        body = f"CLOSES {sandbox_repo}#2, fixes: #3, fixes other/repo#5 and mentions #1"
        to_main = api.post(f"/repos/{sandbox_repo}/pulls", json={
            "title": "main", "head": "to-main", "base": "main", "body": body}).json()
        merged = api.put(f"/repos/{sandbox_repo}/pulls/{to_main['number']}/merge", json={"merge_method": "squash"})
        states = {n: api.get(f"/repos/{sandbox_repo}/issues/{n}").json() for n in range(1, 6)}
        events = api.get(f"/repos/{sandbox_repo}/issues/2/events").json()
        pr = api.get(f"/repos/{sandbox_repo}/pulls/{to_main['number']}").json()
    assert {n: s["state"] for n, s in states.items()} == {1: "open", 2: "closed", 3: "closed", 4: "closed", 5: "open"}
    assert states[2]["state_reason"] == "completed"
    assert events[-1]["event"] == "closed" and events[-1]["commit_id"] == merged.json()["sha"]
    assert (pr["state"], pr["merged"], pr["merge_commit_sha"]) == ("closed", True, merged.json()["sha"])
    assert pr["changed_files"] == 1  # files of a merged PR still come from its own diff


def test_issue_and_pull_share_numbers_and_urls_look_like_githubs(sandbox, sandbox_repo):
    pushed_branch(sandbox, sandbox_repo, "numbers", {"n.txt": "n\n"})
    with sandbox.api() as api:
        issue = api.post(f"/repos/{sandbox_repo}/issues", json={"title": "i"}).json()
        pr = api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "p", "head": "numbers", "base": "main"}).json()
        issue2 = api.post(f"/repos/{sandbox_repo}/issues", json={"title": "i2"}).json()
        as_issue = api.get(f"/repos/{sandbox_repo}/issues/{pr['number']}").json()
        not_a_pull = api.get(f"/repos/{sandbox_repo}/pulls/{issue['number']}")
    assert [issue["number"], pr["number"], issue2["number"]] == [1, 2, 3]
    assert issue["html_url"] == f"{sandbox.base_url}/{sandbox_repo}/issues/1"
    assert pr["html_url"] == f"{sandbox.base_url}/{sandbox_repo}/pull/2"
    assert issue["url"] == f"{sandbox.api_url}/repos/{sandbox_repo}/issues/1"
    assert as_issue["pull_request"]["url"] == pr["url"] and not_a_pull.status_code == 404
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", issue["created_at"])


def test_issue_list_filters_sorts_and_since(sandbox, sandbox_repo):
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "a", "labels": ["phase-1/x", "batch-01"]})
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "b", "labels": ["phase-1/x"]})
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "c", "labels": ["batch-01"]})
        api.patch(f"/repos/{sandbox_repo}/issues/3", json={"state": "closed"})
        time.sleep(1.1)
        api.post(f"/repos/{sandbox_repo}/issues/1/comments", json={"body": "bump"})
        since = api.get(f"/repos/{sandbox_repo}/issues/1").json()["updated_at"]

        def numbers(**params):
            return [i["number"] for i in api.get(f"/repos/{sandbox_repo}/issues", params=params).json()]

        assert numbers() == [2, 1]
        assert numbers(state="closed") == [3] and numbers(state="all") == [3, 2, 1]
        assert numbers(labels="phase-1/x,batch-01") == [1]
        assert numbers(labels="batch-01", state="all", direction="asc") == [1, 3]
        assert numbers(sort="updated", state="all")[0] == 1
        assert numbers(since=since, state="all") == [1]
        assert api.get(f"/repos/{sandbox_repo}/issues", params={"state": "weird"}).status_code == 422


def test_repository_comments_listing_filters_sorts_pages_and_answers_304(sandbox, sandbox_repo):
    with sandbox.api() as api:
        for title in ("a", "b"):
            api.post(f"/repos/{sandbox_repo}/issues", json={"title": title})
        first = [api.post(f"/repos/{sandbox_repo}/issues/{n}/comments", json={"body": f"c{n}"}).json()["id"]
                 for n in (1, 2, 1)]
        time.sleep(1.1)
        api.patch(f"/repos/{sandbox_repo}/issues/comments/{first[0]}", json={"body": "edited"})
        edited = api.get(f"/repos/{sandbox_repo}/issues/comments/{first[0]}").json()["updated_at"]
        url = f"/repos/{sandbox_repo}/issues/comments"

        def ids(**params):
            return [c["id"] for c in api.get(url, params=params).json()]

        assert ids() == first                                        # no sort: by id, ascending
        assert ids(sort="created") == first[::-1]                    # sort: descending unless asc
        assert ids(sort="updated", direction="asc") == [first[1], first[2], first[0]]
        assert ids(sort="updated", since=edited) == [first[0]]       # updated at or after `since`
        listed = api.get(url, params={"sort": "updated", "direction": "desc"}).json()
        assert [c["issue_url"].rsplit("/", 1)[1] for c in listed] == ["1", "1", "2"]
        paged = api.get(url, params={"per_page": 2})
        assert [c["id"] for c in paged.json()] == first[:2] and 'rel="next"' in paged.headers["link"]
        again = api.get(url, params={"per_page": 2}, headers={"If-None-Match": paged.headers["etag"]})
        assert again.status_code == 304
        assert api.get(url, params={"sort": "weird"}).status_code == 422
        assert api.get(url, params={"since": "yesterday"}).status_code == 422


def test_pull_list_filters_by_state_head_and_base(sandbox, sandbox_repo):
    pushed_branch(sandbox, sandbox_repo, "f1", {"1.txt": "1\n"})
    pushed_branch(sandbox, sandbox_repo, "f2", {"2.txt": "2\n"})
    with sandbox.api() as api:
        one = api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "1", "head": "f1", "base": "main"}).json()
        two = api.post(f"/repos/{sandbox_repo}/pulls", json={"title": "2", "head": "f2", "base": "dev"}).json()
        api.patch(f"/repos/{sandbox_repo}/pulls/{one['number']}", json={"state": "closed"})

        def numbers(**params):
            return [p["number"] for p in api.get(f"/repos/{sandbox_repo}/pulls", params=params).json()]

        assert numbers() == [two["number"]]
        assert numbers(state="all") == [two["number"], one["number"]]
        assert numbers(state="all", head="admin:f1") == [one["number"]]
        assert numbers(state="all", base="dev") == [two["number"]]
        closed = api.get(f"/repos/{sandbox_repo}/pulls/{one['number']}").json()
    assert (closed["state"], closed["merged"], closed["mergeable"]) == ("closed", False, None)


# -- persistence ----------------------------------------------------------------------------------
def test_state_survives_a_restart(sandbox, sandbox_repo, tmp_path):
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/labels", json={"name": "kept", "color": "123456"})
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "survivor", "labels": ["kept"]})
        api.post(f"/repos/{sandbox_repo}/issues/1/comments", json={"body": "still here"})
    grant(sandbox, sandbox_repo, "alice", "write")
    before = sandbox.port
    sandbox.restart()
    assert sandbox.port == before
    with sandbox.api() as api:
        issue = api.get(f"/repos/{sandbox_repo}/issues/1").json()
        assert (issue["title"], [x["name"] for x in issue["labels"]], issue["comments"]) == ("survivor", ["kept"], 1)
        assert api.post(f"/repos/{sandbox_repo}/issues", json={"title": "next"}).json()["number"] == 2
        assert api.get(f"/repos/{sandbox_repo}/collaborators/alice/permission").json()["permission"] == "write"
    Repo.clone_from(sandbox.clone_url(sandbox_repo), tmp_path / "after")
    assert (tmp_path / "after" / "README.md").exists()

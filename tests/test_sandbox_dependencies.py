"""The sandbox's issue dependencies over real HTTP: GitHub's endpoints, their answers and the
`issue_dependencies_summary` of the issues listing, checked against GitHub's schemas."""
from __future__ import annotations

from typing import Any

from githubkit_schemas.v2022_11_28 import models as gh

from conftest import unique_repo_name
from test_sandbox_schemas import assert_schema

DEPS = "/repos/{full}/issues/{n}/dependencies"


def new_issue(api, full: str, title: str, **extra: Any) -> dict[str, Any]:
    resp = api.post(f"/repos/{full}/issues", json={"title": title, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def summary(api, full: str, n: int) -> dict[str, int]:
    return api.get(f"/repos/{full}/issues/{n}").json()["issue_dependencies_summary"]


def test_add_list_and_remove_blocked_by_with_summaries(sandbox, sandbox_repo):
    full = sandbox_repo
    with sandbox.api() as api:
        blocked = new_issue(api, full, "blocked")
        first = new_issue(api, full, "first blocker")
        second = new_issue(api, full, "second blocker")
        base = DEPS.format(full=full, n=blocked["number"])
        assert summary(api, full, blocked["number"]) == {
            "blocked_by": 0, "blocking": 0, "total_blocked_by": 0, "total_blocking": 0}

        added = api.post(f"{base}/blocked_by", json={"issue_id": first["id"]})
        assert added.status_code == 201, added.text
        assert_schema(gh.Issue, added.json())
        assert added.json()["number"] == blocked["number"]
        assert added.json()["issue_dependencies_summary"]["blocked_by"] == 1
        assert api.post(f"{base}/blocked_by", json={"issue_id": second["id"]}).status_code == 201

        listed = api.get(f"{base}/blocked_by")
        assert listed.status_code == 200
        assert_schema(list[gh.Issue], listed.json())
        assert [i["number"] for i in listed.json()] == [first["number"], second["number"]]
        blocking = api.get(DEPS.format(full=full, n=first["number"]) + "/blocking")
        assert_schema(list[gh.Issue], blocking.json())
        assert [i["number"] for i in blocking.json()] == [blocked["number"]]

        # closing a blocker lowers the open count, not the total
        api.patch(f"/repos/{full}/issues/{first['number']}", json={"state": "closed"})
        assert summary(api, full, blocked["number"]) == {
            "blocked_by": 1, "blocking": 0, "total_blocked_by": 2, "total_blocking": 0}
        assert summary(api, full, second["number"]) == {
            "blocked_by": 0, "blocking": 1, "total_blocked_by": 0, "total_blocking": 1}
        listing = api.get(f"/repos/{full}/issues", params={"state": "all"}).json()
        assert_schema(list[gh.Issue], listing)
        by_number = {i["number"]: i["issue_dependencies_summary"] for i in listing}
        assert by_number[blocked["number"]]["total_blocked_by"] == 2

        removed = api.delete(f"{base}/blocked_by/{second['id']}")
        assert removed.status_code == 200, removed.text
        assert_schema(gh.Issue, removed.json())
        assert removed.json()["issue_dependencies_summary"] == {
            "blocked_by": 0, "blocking": 0, "total_blocked_by": 1, "total_blocking": 0}
        again = api.delete(f"{base}/blocked_by/{second['id']}")
        assert again.status_code == 404
        assert again.json()["documentation_url"].endswith(
            "issue-dependencies#remove-dependency-an-issue-is-blocked-by")


def test_blockers_in_another_repository_are_named_by_id(sandbox, sandbox_repo):
    other = sandbox.create_repo(unique_repo_name("other-deps"))
    sandbox.push_initial(other)
    with sandbox.api() as api:
        blocked = new_issue(api, sandbox_repo, "blocked")
        foreign = new_issue(api, other, "elsewhere")
        resp = api.post(DEPS.format(full=sandbox_repo, n=blocked["number"]) + "/blocked_by",
                        json={"issue_id": foreign["id"]})
        assert resp.status_code == 201, resp.text
        listed = api.get(DEPS.format(full=sandbox_repo, n=blocked["number"]) + "/blocked_by").json()
        assert [i["repository_url"].rsplit("/", 2)[-2:] for i in listed] == [other.split("/")]


def test_refusals_match_github(sandbox, sandbox_repo):
    full = sandbox_repo
    sandbox.commit_files(full, "feature", {"f.py": "x = 1\n"})
    with sandbox.api() as api:
        a = new_issue(api, full, "a")
        b = new_issue(api, full, "b")
        pull = api.post(f"/repos/{full}/pulls", json={"title": "p", "head": "feature", "base": "main"}).json()
        pull_issue = api.get(f"/repos/{full}/issues/{pull['number']}").json()  # its issue id, not the PR's
        base = DEPS.format(full=full, n=a["number"]) + "/blocked_by"
        cases = [
            ({}, 422, "\"issue_id\" wasn't supplied."),
            ({"issue_id": "x"}, 422, None),
            ({"issue_id": a["id"]}, 422, "Validation Failed"),  # itself
            ({"issue_id": pull_issue["id"]}, 422, "Validation Failed"),  # a pull request
            ({"issue_id": 987654321}, 404, "Not Found"),
        ]
        for body, status, message in cases:
            resp = api.post(base, json=body)
            assert resp.status_code == status, (body, resp.text)
            assert_schema(gh.ValidationError if status == 422 and "errors" in resp.json() else gh.BasicError,
                          resp.json())
            if message:
                assert message in resp.json()["message"], (body, resp.json())
        assert api.post(base, json={"issue_id": b["id"]}).status_code == 201
        duplicate = api.post(base, json={"issue_id": b["id"]})
        assert duplicate.status_code == 422
        assert duplicate.json()["errors"][0]["code"] == "already_exists"
        assert api.get(DEPS.format(full=full, n=9999) + "/blocked_by").status_code == 404
    with sandbox.api("") as anon:
        assert anon.post(base, json={"issue_id": b["id"]}).status_code == 401
        assert anon.get(base).status_code == 200  # public read
    grant_read = sandbox.api()
    with grant_read as api:
        api.put(f"/repos/{full}/collaborators/bob", json={"permission": "read"})
    with sandbox.api(sandbox.token_of("bob")) as bob:
        resp = bob.delete(f"{base}/{b['id']}")
        assert resp.status_code == 403

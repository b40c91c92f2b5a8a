"""The sandbox's GraphQL API (/api/graphql) and issue search, over real HTTP (plain http here;
tests/test_gh_cli.py drives the same through `gh` on https), and the search syntax they share."""
from __future__ import annotations

import pytest

from github_sandbox.search import SearchError, parse_query
from github_sandbox.testing import RunningSandbox


def _gql(sb: RunningSandbox, query: str, token: str | None = None, **variables) -> tuple[dict, dict]:
    with sb.api(token) as api:
        resp = api.post(f"{sb.base_url}/api/graphql", json={"query": query, "variables": variables})
    assert resp.status_code == 200, resp.text
    return resp.json(), dict(resp.headers)


@pytest.fixture
def repo(sandbox: RunningSandbox, sandbox_repo: str) -> str:
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "First", "body": "closes nothing",
                                                        "labels": ["bug"]}).raise_for_status()
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "Second"}).raise_for_status()
    return sandbox_repo


def test_graphql_reads_issues_with_paging_and_its_own_rate_limit(sandbox: RunningSandbox, repo: str) -> None:
    owner, name = repo.split("/")
    query = """query($o: String!, $n: String!, $after: String) { repository(owner: $o, name: $n) {
        nameWithOwner issues(first: 1, after: $after, states: [OPEN]) { totalCount
          nodes { number title labels(first: 5) { nodes { name } } } pageInfo { hasNextPage endCursor } } } }"""
    first, headers = _gql(sandbox, query, o=owner, n=name)
    page = first["data"]["repository"]["issues"]
    assert page["totalCount"] == 2 and page["nodes"][0]["number"] == 1 and page["pageInfo"]["hasNextPage"]
    assert page["nodes"][0]["labels"]["nodes"] == [{"name": "bug"}]
    second, _ = _gql(sandbox, query, o=owner, n=name, after=page["pageInfo"]["endCursor"])
    assert [n["number"] for n in second["data"]["repository"]["issues"]["nodes"]] == [2]
    assert headers["x-ratelimit-resource"] == "graphql"


def test_graphql_errors_take_githubs_shape_and_nothing_is_a_silent_null(sandbox: RunningSandbox, repo: str) -> None:
    missing, _ = _gql(sandbox, '{ repository(owner: "nobody", name: "nothing") { name } }')
    assert missing["errors"][0]["type"] == "NOT_FOUND"
    assert missing["errors"][0]["message"] == "Could not resolve to a Repository with the name 'nobody/nothing'."
    owner, name = repo.split("/")
    unknown, _ = _gql(sandbox, f'{{ repository(owner: "{owner}", name: "{name}") {{ codeOfConduct {{ name }} }} }}')
    assert unknown["errors"][0]["message"] == "The sandbox does not implement Repository.codeOfConduct"
    search, _ = _gql(sandbox, f'{{ search(query: "repo:{repo} is:issue label:bug", type: ISSUE, first: 5) '
                              '{ issueCount nodes { ... on Issue { number } } } }')
    assert search["data"]["search"] == {"issueCount": 1, "nodes": [{"number": 1}]}


def test_rest_search_issues_shares_the_parser(sandbox: RunningSandbox, repo: str) -> None:
    with sandbox.api() as api:
        found = api.get("/search/issues", params={"q": f"repo:{repo} is:open closes"}).json()
        refused = api.get("/search/issues", params={"q": f"repo:{repo} reactions:>5"})
    assert found["total_count"] == 1 and found["items"][0]["title"] == "First"
    assert refused.status_code == 422 and "reactions:>5" in refused.text


@pytest.mark.parametrize(("text", "expected"), [
    ("repo:O/R is:pr is:merged", {"repos": ["o/r"], "kind": "pr", "merged": True}),
    ("type:issue state:closed label:a,b -label:c", {"kind": "issue", "state": "closed", "labels": ["a", "b"],
                                                    "no_labels": ["c"]}),
    ('head:agent/issue-3 base:dev "closes #3"', {"head": "agent/issue-3", "base": "dev", "words": ["closes #3"]}),
    ("closes #3 sort:updated-asc", {"words": ["closes", "#3"], "sort": "updated", "ascending": True}),
])
def test_parse_query(text: str, expected: dict) -> None:
    q = parse_query(text)
    assert {k: getattr(q, k) for k in expected} == expected


@pytest.mark.parametrize("text", ["stars:>3", "sort:best-match", "is:locked"])
def test_parse_query_refuses_what_it_does_not_know(text: str) -> None:
    with pytest.raises(SearchError):
        parse_query(text)

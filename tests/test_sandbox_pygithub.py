"""PyGithub and git, unchanged, against the sandbox: the real client code paths."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from git import Repo
from github import Auth, Github, GithubException, GithubRetry

from conftest import unique_repo_name


def client(sandbox, login: str = "admin", **kwargs) -> Github:
    """PyGithub on the sandbox, without PyGithub's client-side throttling."""
    kwargs.setdefault("retry", None)
    return Github(base_url=sandbox.api_url, auth=Auth.Token(sandbox.token_of(login)),
                  seconds_between_requests=0, seconds_between_writes=0, **kwargs)


def git_commit(workdir: Path, files: dict[str, str], message: str) -> str:
    repo = Repo(workdir)
    for name, text in files.items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        repo.index.add([name])
    return repo.index.commit(message).hexsha


def with_token(clone_url: str, token: str) -> str:
    scheme, rest = clone_url.split("://", 1)
    return f"{scheme}://x-access-token:{token}@{rest}"


def test_round_trip_labels_issues_git_push_pr_files_merge_closes_issue(sandbox, tmp_path):
    gh = client(sandbox)
    repo = gh.get_user().create_repo(unique_repo_name("roundtrip"), auto_init=True)
    assert repo.default_branch == "main"

    phase = repo.create_label("phase-1/db-schema", "5319e7", "Phase one")
    assert repo.get_label("phase-1/db-schema").color == "5319e7"
    phase.edit("phase-1/db-schema", "112233", "Phase one, edited")
    assert repo.get_label("phase-1/db-schema").description == "Phase one, edited"
    repo.create_label("batch-01", "ededed")
    issue = repo.create_issue("Add users table", body="schema", labels=["phase-1/db-schema", "batch-01"])
    assert sorted(lab.name for lab in issue.labels) == ["batch-01", "phase-1/db-schema"]

    work = tmp_path / "wc"
    Repo.clone_from(with_token(repo.clone_url, sandbox.admin_token), work)
    Repo(work).git.checkout("-b", "feature/users")
    head_sha = git_commit(work, {"migrations/001_users.py": "create = 'users'\n", "README.md": "# changed\n"},
                          "Add users migration")
    Repo(work).git.push("origin", "feature/users")

    pr = repo.create_pull(title="Users table", body=f"Fixes #{issue.number}", head="feature/users", base="main")
    assert pr.number == issue.number + 1  # one counter for issues and pulls
    assert pr.head.sha == head_sha and pr.head.ref == "feature/users"
    assert pr.head.repo.full_name == repo.full_name and not pr.merged and pr.mergeable
    files = {f.filename: f for f in pr.get_files()}
    assert set(files) == {"migrations/001_users.py", "README.md"}
    assert files["migrations/001_users.py"].status == "added"
    assert files["README.md"].status == "modified" and "+# changed" in files["README.md"].patch
    assert pr.changed_files == 2 and pr.commits == 1

    result = pr.merge()
    assert result.merged
    pr = repo.get_pull(pr.number)
    assert pr.merged and pr.state == "closed" and pr.merged_at is not None
    closed = repo.get_issue(issue.number)
    assert closed.state == "closed" and closed.state_reason == "completed"
    assert closed.closed_by.login == "admin"

    Repo(work).git.fetch("origin")
    main = Repo(work).commit("origin/main")
    assert main.hexsha == result.sha and len(main.parents) == 2 and main.parents[1].hexsha == head_sha
    assert repo.get_branch("main").commit.sha == result.sha


def test_pull_request_from_a_fork_shows_the_fork_and_merges(sandbox, sandbox_repo, tmp_path):
    admin, bob = client(sandbox), client(sandbox, "bob")
    upstream = admin.get_repo(sandbox_repo)
    upstream.create_issue("Fork fix wanted")
    fork = bob.get_repo(sandbox_repo).create_fork()
    assert fork.full_name == f"bob/{upstream.name}" and fork.fork and fork.parent.full_name == sandbox_repo

    work = tmp_path / "fork"
    Repo.clone_from(with_token(fork.clone_url, sandbox.token_of("bob")), work)
    Repo(work).git.checkout("-b", "fix")
    sha = git_commit(work, {"fix.txt": "fixed\n"}, "Fix from a fork")
    Repo(work).git.push("origin", "fix")

    pr = bob.get_repo(sandbox_repo).create_pull(title="Fix", body="closes #1", head="bob:fix", base="main")
    assert pr.head.repo.full_name == fork.full_name and pr.base.repo.full_name == sandbox_repo
    assert pr.head.label == "bob:fix" and pr.head.sha == sha
    assert [f.filename for f in pr.get_files()] == ["fix.txt"]
    with pytest.raises(GithubException) as denied:  # bob only reads upstream
        bob.get_repo(sandbox_repo).get_pull(pr.number).merge()
    assert denied.value.status == 403
    assert admin.get_repo(sandbox_repo).get_pull(pr.number).merge().merged
    assert upstream.get_issue(1).state == "closed"


def test_pull_request_follows_pushes_to_its_head_branch(sandbox, sandbox_repo):
    repo = client(sandbox).get_repo(sandbox_repo)
    first = sandbox.commit_files(sandbox_repo, "grow", {"a.txt": "1\n"})
    pr = repo.create_pull(title="Grow", body="", head="grow", base="main")
    assert pr.head.sha == first
    second = sandbox.commit_files(sandbox_repo, "grow", {"b.txt": "2\n"})
    pr = repo.get_pull(pr.number)
    assert pr.head.sha == second and pr.commits == 2
    assert sorted(f.filename for f in pr.get_files()) == ["a.txt", "b.txt"]
    with pytest.raises(GithubException) as stale:
        pr.merge(sha=first)
    assert stale.value.status == 409


def test_paginated_list_sees_all_45_issues_across_three_pages(sandbox):
    full = sandbox.create_repo(unique_repo_name("pages"))
    with sandbox.api() as api:
        for n in range(45):
            assert api.post(f"/repos/{full}/issues", json={"title": f"issue {n}"}).status_code == 201
        first = api.get(f"/repos/{full}/issues", params={"per_page": 20})
        assert len(first.json()) == 20
        assert first.links["next"]["url"].endswith("page=2") and "page=3" in first.links["last"]["url"]
        seen, url, pages = [], f"/repos/{full}/issues?per_page=20", 0
        while url:
            resp = api.get(url)
            seen += [i["number"] for i in resp.json()]
            url = resp.links.get("next", {}).get("url")
            pages += 1
        assert pages == 3 and sorted(seen) == list(range(1, 46))
        assert len(api.get(f"/repos/{full}/issues", params={"per_page": 500}).json()) == 45  # max 100
    issues = client(sandbox, per_page=20).get_repo(full).get_issues(state="all")
    assert issues.totalCount == 45
    assert sorted(i.number for i in issues) == list(range(1, 46))


def test_conditional_requests_answer_304_until_the_resource_changes(sandbox, sandbox_repo):
    with sandbox.api() as api:
        api.post(f"/repos/{sandbox_repo}/issues", json={"title": "cached"})
        first = api.get(f"/repos/{sandbox_repo}/issues/1")
        etag = first.headers["etag"]
        again = api.get(f"/repos/{sandbox_repo}/issues/1", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["x-ratelimit-used"] == first.headers["x-ratelimit-used"]  # 304s are free
        api.patch(f"/repos/{sandbox_repo}/issues/1", json={"title": "changed"})
        changed = api.get(f"/repos/{sandbox_repo}/issues/1", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
    issue = client(sandbox).get_repo(sandbox_repo).get_issue(1)
    assert issue.update() is False  # PyGithub's conditional GET sees 304
    with sandbox.api() as api:
        api.patch(f"/repos/{sandbox_repo}/issues/1", json={"title": "changed again"})
    assert issue.update() is True and issue.title == "changed again"


def test_pygithub_retries_through_a_502_and_a_secondary_rate_limit(sandbox, sandbox_repo):
    gh = client(sandbox, retry=GithubRetry(total=3, secondary_rate_wait=1))
    repo = gh.get_repo(sandbox_repo)
    sandbox.control.reset_counts()
    sandbox.control.add_fault(502, method="GET", path="/repos/*/*/labels", times=1)
    assert any(lab.name == "bug" for lab in repo.get_labels())
    assert sandbox.control.counts()["GET /repos/{owner}/{repo}/labels"] == 2
    sandbox.control.add_fault(403, method="GET", path="/repos/{owner}/{repo}/issues", retry_after=1)
    started = time.monotonic()
    assert list(repo.get_issues()) == []
    assert time.monotonic() - started >= 0.9  # honoured Retry-After


def test_pygithub_classifies_sandbox_errors_like_githubs(sandbox, sandbox_repo):
    gh = client(sandbox)
    with pytest.raises(GithubException) as missing:
        gh.get_repo(sandbox_repo).get_label("nope")
    assert type(missing.value).__name__ == "UnknownObjectException"
    bad = Github(base_url=sandbox.api_url, auth=Auth.Token("not-a-token"), retry=None)
    with pytest.raises(GithubException) as creds:
        bad.get_user().login
    assert type(creds.value).__name__ == "BadCredentialsException"
    sandbox.control.add_fault(403, path="/repos/{owner}/{repo}", retry_after=30)
    with pytest.raises(GithubException) as limited:
        gh.get_repo(sandbox_repo)
    assert type(limited.value).__name__ == "RateLimitExceededException"
    assert limited.value.headers["retry-after"] == "30"

"""The GitHub gateway against the sandbox over real HTTP: counting, retries, idempotent writes."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from conductor.edges.github_gateway import GitHubError, GitHubGateway
from conductor.core.passlock import Lease, LockLost
from conductor.core.settings import GitHubSettings


@pytest.fixture
def gh(sandbox, sandbox_repo):
    settings = GitHubSettings(api_url=sandbox.api_url, token=sandbox.admin_token, backoff_factor=0.05,
                              seconds_between_requests=0, seconds_between_writes=0)
    with GitHubGateway(settings, sandbox_repo) as gateway:
        yield gateway
    sandbox.control.clear_faults()


def _repo_path(gh: GitHubGateway, suffix: str) -> str:
    return f"/repos/{gh.repo_name}{suffix}"


def test_reading_state_is_two_listings_and_counts_them(gh):
    for n in range(3):
        gh.create_issue(f"issue {n}", "", ["phase-4/new-ui-pages"])
    state = gh.read_state()
    assert [i.title for i in state.issues] == ["issue 0", "issue 1", "issue 2"]
    assert state.api_requests == 2


def test_a_502_on_a_listing_is_retried_and_both_requests_count(sandbox, gh):
    gh.create_issue("one", "", [])
    sandbox.control.add_fault(502, method="GET", path=_repo_path(gh, "/issues"), times=1)
    state = gh.read_state()
    assert len(state.issues) == 1
    assert state.api_requests == 3


def test_429_without_retry_after_backs_off_and_succeeds(sandbox, gh):
    sandbox.control.add_fault(429, method="GET", path=_repo_path(gh, "/issues"), times=2)
    assert gh.read_state().issues == []
    assert gh.faults_met == 2  # retried faults count: a leaf that met them failed while GitHub was failing


def test_a_final_fault_counts_and_other_errors_do_not(sandbox, gh):
    sandbox.control.add_fault(500, method="POST", path=_repo_path(gh, "/issues"), times=1)
    with pytest.raises(GitHubError):
        gh.create_issue("x", "", [])
    with pytest.raises(GitHubError):
        gh.issue_item(9999)  # 404: GitHub answered, no fault
    assert gh.faults_met == 1


def test_secondary_rate_limit_waits_for_retry_after(sandbox, gh):
    sandbox.control.add_fault(403, method="GET", path=_repo_path(gh, "/pulls"), times=1, retry_after=1,
                              message="You have exceeded a secondary rate limit.")
    started = time.monotonic()
    gh.read_state()
    assert time.monotonic() - started >= 1.0


def test_a_failed_creation_is_not_retried_blindly(sandbox, gh):
    sandbox.control.add_fault(500, method="POST", path=_repo_path(gh, "/issues"), times=1)
    with pytest.raises(GitHubError, match="create an issue"):
        gh.create_issue("reminder", "", [])
    gh.create_issue("reminder", "", [])
    assert [i.title for i in gh.read_state().issues] == ["reminder"]


def test_writes_are_idempotent(sandbox, gh):
    wanted = {"conductor-reminder": ("e4e669", "reminder"), "status/in-progress": ("fbca04", "busy")}
    assert sorted(gh.ensure_labels(wanted)) == sorted(wanted)
    assert gh.ensure_labels(wanted) == []

    number = gh.create_issue("work", "", [])
    gh.set_labels(number, add=["status/in-progress"])
    gh.set_labels(number, add=["status/in-progress"])
    assert gh.read_state().issues[0].labels == ["status/in-progress"]
    gh.set_labels(number, remove=["status/in-progress"])
    gh.set_labels(number, remove=["status/in-progress"])
    assert gh.read_state().issues[0].labels == []

    gh.close_with_comment(number, "Superseded.")
    gh.close_with_comment(number, "Superseded.")
    with sandbox.api() as api:
        comments = api.get(f"{_repo_path(gh, f'/issues/{number}/comments')}").json()
        assert [c["body"] for c in comments] == ["Superseded."]
        assert api.get(_repo_path(gh, f"/issues/{number}")).json()["state"] == "closed"


def test_who_labelled_and_whether_they_may_write(sandbox, gh):
    number = gh.create_issue("gated", "", ["security"])
    with sandbox.api() as api:
        api.put(_repo_path(gh, "/collaborators/carol"), json={"permission": "triage"}).raise_for_status()
        api.put(_repo_path(gh, "/collaborators/bob"), json={"permission": "maintain"}).raise_for_status()
    with sandbox.api(sandbox.users["carol"]) as carol:
        carol.post(_repo_path(gh, f"/issues/{number}/labels"), json={"labels": ["conductor/approved"]})
    assert gh.last_labeler(number, "conductor/approved") == "carol"
    assert gh.has_write_access("carol") is False
    assert gh.has_write_access("bob") is True
    assert gh.has_write_access("admin") is True
    assert gh.last_labeler(number, "no-such-label") is None


def test_every_write_asks_the_fence_first_and_a_refusal_sends_nothing(sandbox, sandbox_repo):
    """The write door: a pass whose lock was taken over (the fence raises) sends no write."""
    taken = LockLost(Lease(pass_id="heir", holder="heir@host", expires_at=datetime.now(UTC)))
    open_door = [True]

    def fence() -> None:
        if not open_door[0]:
            raise taken

    settings = GitHubSettings(api_url=sandbox.api_url, token=sandbox.admin_token,
                              seconds_between_requests=0, seconds_between_writes=0)
    with GitHubGateway(settings, sandbox_repo, fence=fence) as gh:
        number = gh.create_issue("work", "", [])  # the door open: written
        gh.login()
        open_door[0] = False
        sandbox.control.reset_counts()
        writes = {
            "ensure_labels": lambda: gh.ensure_labels({"status/in-progress": ("fbca04", "busy")}),
            "set_labels": lambda: gh.set_labels(number, add=["status/in-progress"]),
            "create_issue": lambda: gh.create_issue("reminder", "", []),
            "edit_issue_body": lambda: gh.edit_issue_body(number, "changed"),
            "close_with_comment": lambda: gh.close_with_comment(number, "Superseded."),
            "add_comment": lambda: gh.add_comment(number, "failed"),
        }
        for write in writes.values():
            with pytest.raises(LockLost, match="now held by heir@host"):
                write()
        assert sandbox.control.counts() == {}  # not one request, not even a read
        with sandbox.api() as api:
            issues = api.get(_repo_path(gh, "/issues"), params={"state": "all"}).json()
            assert [(i["title"], i["state"], i["labels"], i["comments"]) for i in issues] == [("work", "open", [], 0)]

"""Dependencies and per-item attempts read through the gateway from the sandbox over real HTTP,
and the plans made from them."""
from __future__ import annotations

import pytest

from conductor.core import planner
from conductor.actions.item_attempts import marker_comments, read_marker_index, record_attempt
from conductor.actions.loop_records import item_history
from conductor.actions.snapshot import read_open_items, with_dispatch_facts
from conductor.core.config import PipelineConfig
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.settings import GitHubSettings
from conductor.core.settings import RunSettings, Settings

P4 = "phase-4/new-ui-pages"


def settings(sandbox, token: str) -> GitHubSettings:
    return GitHubSettings(api_url=sandbox.api_url, token=token, backoff_factor=0.05,
                          seconds_between_requests=0, seconds_between_writes=0)


@pytest.fixture
def gh(sandbox, sandbox_repo):
    with GitHubGateway(settings(sandbox, sandbox.admin_token), sandbox_repo) as gateway:
        yield gateway


def read_and_plan(gh: GitHubGateway, config: PipelineConfig | None = None, **limits):
    config = config or PipelineConfig(protected_paths=[])
    rules = Settings(pipeline=config, run=RunSettings(**limits))
    state = with_dispatch_facts(gh, read_open_items(gh, rules), rules)
    return state, planner.plan(state, rules)


def read_item_attempts(gh: GitHubGateway, number: int):
    return item_history(marker_comments(gh, read_marker_index(gh), [number])[1][number], gh.login()).attempts


def dispatched(plan) -> list[int]:
    return sorted(n for d in plan.dispatches for n in d.items)


def close(sandbox, full: str, number: int) -> None:
    with sandbox.api() as api:
        assert api.patch(f"/repos/{full}/issues/{number}", json={"state": "closed"}).status_code == 200


def test_native_blockers_come_with_the_listing_at_no_extra_request(sandbox, gh):
    blocker = gh.create_issue("blocker", "", ["bug"])
    blocked = gh.create_issue("blocked", "", [P4])
    with sandbox.api() as api:
        blocker_id = api.get(f"/repos/{gh.repo_name}/issues/{blocker}").json()["id"]
        resp = api.post(f"/repos/{gh.repo_name}/issues/{blocked}/dependencies/blocked_by",
                        json={"issue_id": blocker_id})
        assert resp.status_code == 201, resp.text
    state = gh.read_state()
    assert {i.number: i.native_blockers for i in state.issues} == {blocker: 0, blocked: 1}
    assert state.api_requests == 2
    close(sandbox, gh.repo_name, blocker)
    assert [i.native_blockers for i in gh.read_state().issues] == [0]


@pytest.mark.parametrize("how", ["text", "native"])
def test_a_blocked_issue_is_dispatched_only_once_its_blocker_is_closed(sandbox, gh, how):
    blocker = gh.create_issue("blocker", "", [P4])
    blocked = gh.create_issue("blocked", f"Depends on #{blocker}" if how == "text" else "", [P4])
    if how == "native":
        with sandbox.api() as api:
            blocker_id = api.get(f"/repos/{gh.repo_name}/issues/{blocker}").json()["id"]
            api.post(f"/repos/{gh.repo_name}/issues/{blocked}/dependencies/blocked_by",
                     json={"issue_id": blocker_id})
    _, before = read_and_plan(gh)
    assert dispatched(before) == [blocker]
    assert [(w.number, w.blockers, w.native_blockers) for w in before.waiting] == [
        (blocked, [blocker] if how == "text" else [], 1 if how == "native" else 0)]
    close(sandbox, gh.repo_name, blocker)
    _, after = read_and_plan(gh)
    assert dispatched(after) == [blocked] and after.waiting == []
    assert after.dispatches[0].depends_on == {blocked: [blocker] if how == "text" else []}


def test_attempts_are_read_back_from_the_conductors_own_comments(sandbox, gh):
    number = gh.create_issue("flaky", "", [P4])
    assert record_attempt(gh, number, "pass-a", "agent exited with status 1", limit=3)
    assert not record_attempt(gh, number, "pass-a", "agent exited with status 1", limit=3)  # re-run
    assert record_attempt(gh, number, "pass-b", "the agent wrote no report", limit=3)
    before = read_item_attempts(gh, number)
    # another user copying the marker is not the conductor
    sandbox.api().put(f"/repos/{gh.repo_name}/collaborators/alice", json={"permission": "write"})
    with GitHubGateway(settings(sandbox, sandbox.token_of("alice")), gh.repo_name) as alice:
        alice._repo.get_issue(number).create_comment(
            '<!-- conductor:attempt {"pass": "forged", "reason": "x"} -->')
    attempts = read_item_attempts(gh, number)
    assert attempts == before
    assert (attempts.count, attempts.passes, attempts.last_reason) == (
        2, ["pass-a", "pass-b"], "the agent wrote no report")
    with sandbox.api() as api:
        bodies = [c["body"] for c in api.get(f"/repos/{gh.repo_name}/issues/{number}/comments").json()]
    assert len(bodies) == 3 and "(attempt 2 of 3)" in bodies[1]


def test_reading_attempts_costs_one_listing_for_the_items_the_plan_would_dispatch(sandbox, gh):
    numbers = [gh.create_issue(f"issue {n}", "", [P4]) for n in range(3)]
    other = gh.create_issue("waiting phase", "", ["phase-5/ui-enhancements"])
    gh.login()  # cached: the count below is the reads themselves
    state, plan = read_and_plan(gh, max_issues_per_dispatch=2)
    assert sorted(state.attempts) == numbers[:2]
    assert state.api_requests == 2 + 1  # two listings of items, one of comments (spend and attempts)
    assert dispatched(plan) == numbers[:2] and other not in state.attempts


def test_an_item_that_failed_three_times_is_held_back_and_the_next_one_takes_its_place(sandbox, gh):
    flaky, steady, spare = (gh.create_issue(t, "", [P4]) for t in ("flaky", "steady", "spare"))
    for k in range(3):
        record_attempt(gh, flaky, f"pass-{k}", f"timeout after {k + 1}0 s", limit=3)
    gh.login()
    state, plan = read_and_plan(gh, max_issues_per_dispatch=2)
    assert [(h.number, h.attempts, h.last_reason) for h in plan.held_back] == [(flaky, 3, "timeout after 30 s")]
    assert dispatched(plan) == [steady, spare]
    assert sorted(state.attempts) == [flaky, steady, spare]
    assert state.api_requests == 2 + 1 + 1  # the comments listing, and the one item with markers re-read
    assert plan.dispatches[0].attempts == {steady: 0, spare: 0}


def test_a_failed_attempt_is_no_pipeline_progress(sandbox, gh):
    from conductor.core.reminder import fingerprint

    number = gh.create_issue("flaky", "", [P4])
    before = fingerprint(gh.read_state())
    record_attempt(gh, number, "pass-x", "agent exited with status 1", limit=3)
    state, plan = read_and_plan(gh, PipelineConfig(protected_paths=[], item_attempt_limit=1))
    assert [h.number for h in plan.held_back] == [number]
    assert fingerprint(state) == before  # held back by a comment: the anti-loop counter goes on


def test_a_dependency_that_names_no_issue_holds_its_issue_with_one_lookup_per_number(sandbox, gh):
    closed = gh.create_issue("done", "", [P4])
    close(sandbox, gh.repo_name, closed)
    sandbox.commit_files(gh.repo_name, "side", {"a.txt": "1\n"})
    with sandbox.api() as api:  # a PR, closed: a number GitHub has, but no issue
        pull = api.post(f"/repos/{gh.repo_name}/pulls", json={"title": "side", "head": "side", "base": "main"})
        assert pull.status_code == 201, pull.text
        pull = pull.json()["number"]
        api.patch(f"/repos/{gh.repo_name}/pulls/{pull}", json={"state": "closed"})
    missing = gh.create_issue("missing", "Depends on #9999", [P4])
    on_pull = gh.create_issue("on a PR", f"Depends on #{pull}", [P4])
    ready = gh.create_issue("ready", f"Depends on #{closed}", [P4])
    gh.login()
    state, plan = read_and_plan(gh)
    assert state.named == {9999: "missing", pull: "pull_request", closed: "closed_issue"}
    assert state.api_requests == 2 + 1 + 3  # listings, the comments (spend, attempts), one lookup per number
    assert dispatched(plan) == [ready] and plan.dispatches[0].depends_on == {ready: [closed]}
    assert {w.number: (w.reason, w.not_issues) for w in plan.waiting} == {
        missing: ("depends on #9999, which does not exist", ["#9999 (does not exist)"]),
        on_pull: (f"depends on #{pull}, which is a pull request, not an issue", [f"#{pull} (a pull request)"])}
    assert sorted(state.attempts) == [ready]  # a held issue's attempts are never read

    gh.edit_issue_body(missing, f"Depends on #{closed}")  # the text fixed: dispatched
    _, plan = read_and_plan(gh)
    assert dispatched(plan) == [missing, ready] and missing not in {w.number for w in plan.waiting}

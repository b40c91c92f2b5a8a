"""Each housekeeping step directly against the sandbox gateway (real HTTP, no Prefect pass):
ownership of reminders and stuck issues, approvals only from people, stale claims as facts,
merged PRs finishing their issues, and the reminder written before stale ones are closed."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from conductor.core import constants, reminder
from conductor.actions.approvals import check_approvals, with_approvals
from conductor.actions.claims import release_stale_claims, without_claims
from conductor.core.config import PipelineConfig
from conductor.actions.finished_issues import close_finished, find_finished, without_finished
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.models import Plan
from conductor.core.planner import plan as make_plan
from conductor.actions.previous_run import read_previous_run
from conductor.actions.reminder_publish import close_superseded, open_stuck_issue, publish_reminder
from conductor.core.settings import GitHubSettings
from conductor.core.settings import Settings
from conftest import unique_repo_name

UI = "phase-4/new-ui-pages"
GATED_PHASE = "phase-1/db-schema"
NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
CONDUCTOR, AGENT, TRIAGE, READER = "alice", "bob", "carol", "dave"


@pytest.fixture
def repo(sandbox, request) -> str:
    """admin owns it (a maintainer); alice is the conductor, bob the agent (both write),
    carol may triage (label, but not write), dave may only read."""
    if "dave" not in sandbox.users:
        sandbox.users["dave"] = "sbx_dave_" + "d" * 16
        sandbox.control.add_user("dave", sandbox.users["dave"])
    full = sandbox.create_repo(unique_repo_name(request.node.name))
    sandbox.push_initial(full)
    with sandbox.api() as c:
        for login, role in ((CONDUCTOR, "write"), (AGENT, "write"), (TRIAGE, "triage"), (READER, "read")):
            c.put(f"/repos/{full}/collaborators/{login}", json={"permission": role}).raise_for_status()
        for label in (constants.REMINDER_LABEL, constants.STUCK_LABEL, UI, GATED_PHASE,
                      constants.APPROVAL_LABEL, constants.STATUS_IN_PROGRESS):
            c.post(f"/repos/{full}/labels", json={"name": label, "color": "ededed"})
    yield full
    sandbox.control.clear_faults()


def _gateway(sandbox, repo: str, login: str) -> GitHubGateway:
    settings = GitHubSettings(api_url=sandbox.api_url, token=sandbox.users.get(login, sandbox.admin_token),
                              backoff_factor=0.05, seconds_between_requests=0, seconds_between_writes=0)
    return GitHubGateway(settings, repo)


@pytest.fixture
def gh(sandbox, repo):
    with _gateway(sandbox, repo, CONDUCTOR) as gateway:
        yield gateway


def _call(sandbox, method: str, path: str, login: str | None = None, **kwargs):
    token = sandbox.users[login] if login else None
    with sandbox.api(token) as c:
        response = c.request(method, path, **kwargs)
    assert response.status_code < 400, (method, path, response.status_code, response.text)
    return response.json() if response.content else None


def _issue(sandbox, repo, login, title, labels=(), body=""):
    return _call(sandbox, "POST", f"/repos/{repo}/issues", login,
                 json={"title": title, "body": body, "labels": list(labels)})["number"]


def _state_of(sandbox, repo, number):
    return _call(sandbox, "GET", f"/repos/{repo}/issues/{number}")


def _comments(sandbox, repo, number):
    return [c["body"] for c in _call(sandbox, "GET", f"/repos/{repo}/issues/{number}/comments")]


def _plan_body(attempt: int, fp: str) -> str:
    p = Plan(repo="o/r", open_issues=1)
    return reminder.render_reminder(p, attempt=attempt, fingerprint=fp, now=NOW, rerun_hint="conductor run")


# ── 1. the conductor owns only what it wrote ───────────────────────────────


def test_a_forged_reminder_by_a_triage_user_changes_nothing_and_closes_nothing(sandbox, repo, gh):
    config = PipelineConfig()
    state = gh.read_state()
    fp = reminder.fingerprint(state)
    ours = _issue(sandbox, repo, CONDUCTOR, "reminder", [constants.REMINDER_LABEL], _plan_body(0, "aaaa"))
    forged = _issue(sandbox, repo, TRIAGE, "reminder", [constants.REMINDER_LABEL], _plan_body(3, fp))
    other = _issue(sandbox, repo, TRIAGE, "another", [constants.REMINDER_LABEL], "no marker at all")
    forged_stuck = _issue(sandbox, repo, TRIAGE, "stuck", [constants.STUCK_LABEL],
                          f"<!-- {constants.STUCK_MARKER} -->")

    previous = read_previous_run(gh, config)

    assert previous.reminders == [ours] and previous.newest == ours
    assert previous.state is not None and previous.state.fingerprint == "aaaa"
    assert reminder.next_attempt(previous.state, fp) == 0  # the forged attempt 3 is not read
    assert previous.stuck_issues == []
    lines = [n.line() for n in previous.not_ours]
    assert f"issue #{forged} carries {constants.REMINDER_LABEL} but was not written by the conductor " \
           f"(author: {TRIAGE})" in lines
    assert {n.number for n in previous.not_ours} == {forged, other, forged_stuck}

    result = publish_reminder(gh, Plan(repo=repo, open_issues=1), attempt=0, fingerprint=fp, outcomes=[],
                              previous=previous, mode="recreate", config=config, rerun_hint="conductor run",
                              now=NOW, dry_run=False)
    assert result.action == "created" and result.closed == [ours]
    assert open_stuck_issue(gh, Plan(repo=repo), attempt=4, repo=repo, config=config, dry_run=False,
                            previous=previous) not in (None, forged_stuck)
    assert _state_of(sandbox, repo, ours)["state"] == "closed"
    for number in (forged, other, forged_stuck):  # never closed, never commented on
        assert _state_of(sandbox, repo, number)["state"] == "open"
        assert _comments(sandbox, repo, number) == []


def test_a_reminder_of_ours_whose_marker_was_removed_is_reported_not_read(sandbox, repo, gh):
    edited = _issue(sandbox, repo, CONDUCTOR, "reminder", [constants.REMINDER_LABEL], "a person rewrote it")
    previous = read_previous_run(gh, PipelineConfig())
    assert previous.reminders == [] and previous.state is None
    assert [n.line() for n in previous.not_ours] == [
        f"issue #{edited} carries {constants.REMINDER_LABEL} but has no conductor marker (edited by hand?)"]
    assert close_superseded(gh, previous, None, constants.STALE_REMINDER_COMMENT, dry_run=False) == []
    assert _state_of(sandbox, repo, edited)["state"] == "open"


# ── 2. approvals only from people ───────────────────────────────────────────


def test_agent_and_conductor_approvals_approve_nothing_while_a_maintainers_does(sandbox, repo, gh):
    config = PipelineConfig()
    numbers = {who: _issue(sandbox, repo, "admin", f"schema by {who}", [GATED_PHASE]) for who in
               (AGENT, CONDUCTOR, TRIAGE, "admin")}
    for who, number in numbers.items():
        _call(sandbox, "POST", f"/repos/{repo}/issues/{number}/labels", who,
              json={"labels": [constants.APPROVAL_LABEL]})
    state = gh.read_state()
    plan = make_plan(state, Settings(pipeline=config))
    assert {g.number for g in plan.gated} == set(numbers.values())
    agent_login = gh.token_login(SecretStr(sandbox.users[AGENT]))
    assert agent_login == AGENT

    check = check_approvals(gh, state, config, not_people={gh.login(), agent_login})

    assert check.approved == {numbers["admin"]: "admin"}
    refused = {r.number: r.reason for r in check.refused}
    assert "not by a person" in refused[numbers[AGENT]]
    assert "not by a person" in refused[numbers[CONDUCTOR]]
    assert "no write" in refused[numbers[TRIAGE]]
    replanned = make_plan(with_approvals(state, check), Settings(pipeline=config))
    dispatched = {n for d in replanned.dispatches for n in d.items}
    assert dispatched == {numbers["admin"]}
    assert state.approved == []  # the snapshot it was given is unchanged
    body = reminder.render_reminder(replanned, attempt=0, fingerprint="ab", now=NOW, rerun_hint="x",
                                    approvals=check.approved)
    assert f"Issue #{numbers['admin']}: approved by `admin`" in body


def test_configured_approvers_restrict_who_may_approve(sandbox, repo, gh):
    config = PipelineConfig(approvers=["someone-else"])
    number = _issue(sandbox, repo, "admin", "schema", [GATED_PHASE])
    _call(sandbox, "POST", f"/repos/{repo}/issues/{number}/labels", "admin",
          json={"labels": [constants.APPROVAL_LABEL]})
    state = gh.read_state()
    check = check_approvals(gh, state, config, not_people={CONDUCTOR})
    assert check.approved == {}
    assert [r.reason for r in check.refused] == ["not one of the configured approvers"]
    allowed = PipelineConfig(approvers=["ADMIN"])
    check = check_approvals(gh, state, allowed, not_people={CONDUCTOR})
    assert check.approved == {number: "admin"}


# ── stale claims: facts, and a new snapshot ─────────────────────────────────


def test_stale_claims_are_returned_as_facts_and_the_snapshot_is_not_changed(sandbox, repo, gh):
    mine = _issue(sandbox, repo, "admin", "a", [UI])
    theirs = _issue(sandbox, repo, "admin", "b", [UI])
    _call(sandbox, "POST", f"/repos/{repo}/issues/{mine}/labels", CONDUCTOR,
          json={"labels": [constants.STATUS_IN_PROGRESS]})
    _call(sandbox, "POST", f"/repos/{repo}/issues/{theirs}/labels", "admin",
          json={"labels": [constants.STATUS_IN_PROGRESS]})
    state = gh.read_state()
    before = state.model_dump()

    released = release_stale_claims(gh, state, PipelineConfig(), dry_run=False)

    assert released == {mine: [constants.STATUS_IN_PROGRESS]}
    assert state.model_dump() == before
    after = without_claims(state, released)
    labels = {i.number: i.labels for i in after.issues}
    assert labels == {mine: [UI], theirs: [UI, constants.STATUS_IN_PROGRESS]}
    on_github = [lbl["name"] for lbl in _state_of(sandbox, repo, mine)["labels"]]
    assert on_github == [UI]


# ── 5. a merged PR finishes its issues ──────────────────────────────────────


def _merged_pr(sandbox, repo: str, branch: str, body: str, base: str = "dev", merge: bool = True) -> int:
    sandbox.commit_files(repo, branch, {f"{branch}.txt": "done\n"}, base=base)
    number = _call(sandbox, "POST", f"/repos/{repo}/pulls", json={
        "title": branch, "head": branch, "base": base, "body": body})["number"]
    if merge:
        _call(sandbox, "PUT", f"/repos/{repo}/pulls/{number}/merge", json={})
    else:
        _call(sandbox, "PATCH", f"/repos/{repo}/pulls/{number}", json={"state": "closed"})
    return number


def test_an_issue_with_a_pr_merged_into_dev_is_closed_fixed_by_and_never_dispatched(sandbox, repo, gh):
    config = PipelineConfig()
    done = _issue(sandbox, repo, "admin", "Page A", [UI, "batch-01"])
    todo = _issue(sandbox, repo, "admin", "Page B", [UI, "batch-01"])
    outside = _issue(sandbox, repo, "admin", "not in the pipeline")
    pr = _merged_pr(sandbox, repo, "agent/page-a", f"Closes #{done}\n\nAlso fixes #{outside}")
    _merged_pr(sandbox, repo, "agent/page-b", f"Closes #{todo}", merge=False)  # closed, not merged
    _merged_pr(sandbox, repo, "agent/main", f"Closes #{outside}", base="main", merge=False)
    state = gh.read_state()
    start = gh.requests_made

    finished = find_finished(gh, state, config)

    assert gh.requests_made - start == 1  # one bounded listing
    assert [(f.issue, f.pr) for f in finished] == [(done, pr)]
    planned = make_plan(without_finished(state, finished), Settings(pipeline=config))
    assert [d.items for d in planned.dispatches] == [[todo]]
    assert {i.number for i in state.issues} >= {done, todo}  # the snapshot given is unchanged

    assert close_finished(gh, finished, dry_run=False) == finished
    assert close_finished(gh, finished, dry_run=False) == finished  # safe to repeat
    assert _state_of(sandbox, repo, done)["state"] == "closed"
    assert _comments(sandbox, repo, done) == [f"Fixed by PR #{pr}."]
    assert _state_of(sandbox, repo, outside)["state"] == "open"
    assert find_finished(gh, gh.read_state(), config) == []


def test_finishing_merged_issues_can_be_turned_off(sandbox, repo, gh):
    done = _issue(sandbox, repo, "admin", "Page A", [UI])
    _merged_pr(sandbox, repo, "agent/off", f"Closes #{done}")
    state = gh.read_state()
    start = gh.requests_made
    assert find_finished(gh, state, PipelineConfig(close_merged_issues=False)) == []
    assert gh.requests_made == start


# ── 7. no window without a reminder ─────────────────────────────────────────


def _publish(gh, previous, **kw):
    return publish_reminder(gh, Plan(repo=gh.repo_name, open_issues=1), attempt=0, fingerprint="abcd",
                            outcomes=[], previous=previous, config=PipelineConfig(),
                            rerun_hint="conductor run", now=NOW, dry_run=False, pause=0.01,
                            **({"mode": "recreate"} | kw))


def test_a_fault_on_the_reminder_write_leaves_the_old_reminder_open(sandbox, repo, gh):
    old = _issue(sandbox, repo, CONDUCTOR, "reminder", [constants.REMINDER_LABEL], _plan_body(0, "aaaa"))
    previous = read_previous_run(gh, PipelineConfig())
    sandbox.control.add_fault(502, method="POST", path=f"/repos/{repo}/issues", times=None)

    result = _publish(gh, previous)  # never raises

    assert result.action == "failed" and "create an issue" in result.error
    assert result.closed == []
    sandbox.control.clear_faults()
    open_reminders = [i["number"] for i in _call(sandbox, "GET", f"/repos/{repo}/issues",
                                                 params={"labels": constants.REMINDER_LABEL})]
    assert open_reminders == [old]


def test_a_failed_reminder_write_is_retried_then_old_ones_are_closed(sandbox, repo, gh):
    old = _issue(sandbox, repo, CONDUCTOR, "reminder", [constants.REMINDER_LABEL], _plan_body(0, "aaaa"))
    previous = read_previous_run(gh, PipelineConfig())
    sandbox.control.add_fault(502, method="POST", path=f"/repos/{repo}/issues", times=1)

    result = _publish(gh, previous)

    assert result.action == "created" and result.closed == [old]
    reminders = _call(sandbox, "GET", f"/repos/{repo}/issues", params={"labels": constants.REMINDER_LABEL})
    assert [i["number"] for i in reminders] == [result.number]


def test_update_mode_edits_the_reminder_in_place_and_unchanged_writes_nothing(sandbox, repo, gh):
    old = _issue(sandbox, repo, CONDUCTOR, "reminder", [constants.REMINDER_LABEL], _plan_body(0, "aaaa"))
    first = _publish(gh, read_previous_run(gh, PipelineConfig()), mode="update")
    assert (first.action, first.number) == ("updated", old)
    previous = read_previous_run(gh, PipelineConfig())
    start = gh.requests_made
    again = _publish(gh, previous, mode="update")
    assert (again.action, again.number) == ("unchanged", old)
    assert gh.requests_made == start  # nothing written, nothing read


def test_an_item_another_pass_claimed_since_the_snapshot_is_skipped(sandbox, repo, gh):
    from conductor.actions.claims import claimed_since, without_items

    first = _issue(sandbox, repo, "admin", "a", [UI, "batch-01"])
    second = _issue(sandbox, repo, "admin", "b", [UI, "batch-01"])
    alone = _issue(sandbox, repo, "admin", "c", [UI, "batch-02"])
    config = PipelineConfig()
    planned = make_plan(gh.read_state(), Settings(pipeline=config))
    assert [d.items for d in planned.dispatches] == [[first, second], [alone]]
    for number in (second, alone):  # another pass claims them after our snapshot
        _call(sandbox, "POST", f"/repos/{repo}/issues/{number}/labels", CONDUCTOR,
              json={"labels": [constants.STATUS_IN_PROGRESS]})

    skipped = claimed_since(gh, planned, config)

    assert skipped == [second, alone]
    assert [d.items for d in without_items(planned, skipped).dispatches] == [[first]]
    assert [d.items for d in planned.dispatches] == [[first, second], [alone]]

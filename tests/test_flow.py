"""The conductor flow end to end: real Prefect server, real sandbox GitHub, real git, real
agent processes (the scripted agent in its misbehaving modes)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conductor.core import constants
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, PipelineRepo, READER_LOGIN, pipeline_for_test

UI = "phase-4/new-ui-pages"


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    return pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name)


def test_two_batches_dispatched_in_one_pass_as_two_coordinators(pipe: PipelineRepo, prefect_client):
    first = pipe.issue("Page A", UI, "batch-01")
    second = pipe.issue("Page B", UI, "batch-02")

    report, state = pipe.run()

    assert state.is_completed()
    groups = {(o.kind, o.batch): o for o in report.outcomes}
    assert set(groups) == {("issue_to_pr", "batch-01"), ("issue_to_pr", "batch-02")}
    assert all(o.ok for o in groups.values()), [o.failures for o in groups.values()]
    bodies = sorted(p["body"] for p in pipe.pulls())
    assert bodies == [f"Closes #{first}", f"Closes #{second}"]
    for number in (first, second):
        assert constants.STATUS_IN_PROGRESS not in pipe.labels_of(number)
    assert pipe.worktrees_left() == []
    # the two coordinators are subflows of this pass in Prefect's history
    children = prefect_client.child_flow_runs(state.state_details.flow_run_id)
    assert sorted(r.name for r in children) == ["issue-to-pr phase-4/new-ui-pages batch-01",
                                                "issue-to-pr phase-4/new-ui-pages batch-02"]
    assert all(r.state.is_completed() for r in children)
    # the pass leaves one reminder (PRs await review) and the table artifact
    reminders = pipe.issues(labels=constants.REMINDER_LABEL)
    assert len(reminders) == 1 and report.reminder.number == reminders[0]["number"]
    slug = re.sub(r"[^a-z0-9]+", "-", pipe.full_name.lower())
    assert prefect_client.artifact_keys_for(state.state_details.flow_run_id) >= {
        f"pipeline-state-{slug}", f"conductor-summary-{slug}"}


@pytest.mark.parametrize(("mode", "expected"), [
    ("crash", "agent exited with status 3"),
    ("empty", "no artifacts"),
    ("foreign-url", "is not in"),
    ("garbage", "not valid JSON"),
])
def test_agent_failures_are_reported_and_release_the_issue(pipe: PipelineRepo, prefect_client, mode, expected):
    number = pipe.issue("Page", UI, "batch-01")
    other = pipe.issue("Other page", UI, "batch-02")

    report, state = pipe.run(mode)

    assert state.is_completed()  # a failed coordinator never fails the pass...
    children = prefect_client.child_flow_runs(state.state_details.flow_run_id)
    assert [c.state.is_failed() for c in children] == [True, True]  # ...but shows as Failed itself
    assert len(report.outcomes) == 2
    for outcome in report.outcomes:
        assert not outcome.ok
        assert any(expected in reason for reason in outcome.failures), outcome.failures
    assert constants.STATUS_IN_PROGRESS not in pipe.labels_of(number)
    assert constants.STATUS_IN_PROGRESS not in pipe.labels_of(other)
    assert pipe.worktrees_left() == []
    reminder = pipe.issues(labels=constants.REMINDER_LABEL)[0]
    assert "### Failed coordinators" in reminder["body"]


def test_agent_that_hangs_is_killed_with_its_children_at_the_timeout(pipe: PipelineRepo):
    pipe.issue("Page", UI, "batch-01")
    started = time.monotonic()

    report, _ = pipe.run("hang", agent_timeout=2)

    assert time.monotonic() - started < 60
    [outcome] = report.outcomes
    assert any("timed out" in reason for reason in outcome.failures), outcome.failures
    leftovers = subprocess.run(["pgrep", "-f", "time.sleep\\(3600\\)"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_an_agent_silent_for_the_idle_timeout_is_stopped_long_before_the_total_one(
        pipe: PipelineRepo, monkeypatch):
    pipe.issue("Page", UI, "batch-01")
    monkeypatch.setenv("CONDUCTOR_AGENT_IDLE_TIMEOUT", "2")
    started = time.monotonic()

    report, _ = pipe.run("hang", agent_timeout=120)

    assert time.monotonic() - started < 60
    [outcome] = report.outcomes
    assert any(r.endswith("agent idle: no output for 2 s") for r in outcome.failures), outcome.failures
    leftovers = subprocess.run(["pgrep", "-f", "time.sleep\\(3600\\)"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_grade_d_leaves_the_pr_open_and_the_reminder_names_it(pipe: PipelineRepo):
    issue = pipe.issue("Page", UI, "batch-01")
    pipe.run()  # opens the PR
    [pr] = pipe.pulls()

    report, _ = pipe.run("grade-d")

    [outcome] = report.outcomes
    assert outcome.kind == "pr_review"
    assert [f.number for f in outcome.failed_prs] == [pr["number"]]
    assert pipe.call("GET", f"/pulls/{pr['number']}")["state"] == "open"
    assert pipe.call("GET", f"/issues/{issue}")["state"] == "open"
    reminder = pipe.issues(labels=constants.REMINDER_LABEL)[0]
    assert f"PR #{pr['number']}" in reminder["body"]
    assert "Failed PRs" in reminder["body"]


def test_gated_item_needs_a_maintainers_approval(pipe: PipelineRepo):
    by_reader = pipe.issue("Auth fix", UI, "batch-01", constants.SECURITY_LABEL)
    by_writer = pipe.issue("Token fix", UI, "batch-01", constants.SECURITY_LABEL)
    pipe.issue("seed the approval label", constants.APPROVAL_LABEL)
    # a read-only user cannot label at all (GitHub answers 403)...
    with pipe.client(READER_LOGIN) as c:
        refused = c.post(f"/repos/{pipe.full_name}/issues/{by_reader}/labels",
                         json={"labels": [constants.APPROVAL_LABEL]})
    assert refused.status_code == 403
    # ...and one who may triage can label, but that approves nothing
    pipe.call("PUT", f"/collaborators/{READER_LOGIN}", json={"permission": "triage"})
    pipe.add_label(by_reader, constants.APPROVAL_LABEL, login=READER_LOGIN)
    pipe.add_label(by_writer, constants.APPROVAL_LABEL)  # admin: a maintainer

    report, _ = pipe.run()

    dispatched = [n for d in report.plan.dispatches for n in d.items]
    assert dispatched == [by_writer]
    gated = {g.number: g for g in report.plan.gated}
    assert gated[by_reader].approved is False
    assert report.approvals == {by_writer: "admin"}


def test_an_approved_item_whose_coordinator_failed_is_still_approved_after_the_pass(pipe: PipelineRepo):
    """The re-plan after dispatch goes through the same snapshot and approvals as the first
    plan: the reminder and the table must not ask for a sign-off the item already has."""
    gated = pipe.issue("Token fix", UI, "batch-01", constants.SECURITY_LABEL)
    pipe.add_label(gated, constants.APPROVAL_LABEL)  # admin: a maintainer

    report, _ = pipe.run("crash")

    assert [n for d in report.plan.dispatches for n in d.items] == [gated]
    assert report.failures, "the crashing agent must fail its coordinator"
    after = {g.number: g for g in report.final_plan.gated}
    assert after[gated].approved is True
    body = report.reminder.body or ""
    assert "require human sign-off" not in body, body
    assert all(f"#{gated}" not in row[-1] for row in report.table_rows()), report.table_rows()


def test_stale_reminders_are_closed_with_the_seed_comment(pipe: PipelineRepo):
    pipe.issue("Page", UI, "batch-01")
    pipe.issue("seed the label", constants.REMINDER_LABEL)
    marker = '<!-- conductor:reminder {"attempt": 0, "fingerprint": "ab", "generated_at": "2026-01-01T00:00:00Z"} -->'
    old = [pipe.call("POST", "/issues", login=CONDUCTOR_LOGIN, json={
        "title": f"old reminder {i}", "body": marker, "labels": [constants.REMINDER_LABEL]})["number"]
        for i in range(2)]

    report, _ = pipe.run()

    assert sorted(report.closed_reminders) == old
    for number in old:
        assert pipe.call("GET", f"/issues/{number}")["state"] == "closed"
        comments = pipe.call("GET", f"/issues/{number}/comments")
        assert [c["body"] for c in comments] == [constants.STALE_REMINDER_COMMENT]
    assert len(pipe.issues(labels=constants.REMINDER_LABEL)) == 2  # ours, and the one admin wrote


def test_a_waiting_pipeline_holds_its_count_and_the_stuck_issue_is_opened_once(pipe: PipelineRepo):
    pipe.issue("Schema", "phase-1/db-schema", "batch-01")  # gated: nothing to dispatch, no loop

    attempts = [pipe.run()[0].attempt for _ in range(3)]
    assert attempts == [0, 0, 0] and pipe.issues(labels=constants.STUCK_LABEL) == []

    for attempt in (4, 5):  # ATTEMPT_N past the limit (as counted while dispatching without progress)
        report, state = pipe.run(attempt=attempt)
    assert state.is_failed() and "Conductor stuck: ATTEMPT_N=5" in state.message
    stuck = pipe.issues(labels=constants.STUCK_LABEL)
    assert len(stuck) == 1 and "ATTEMPT_N=4" in stuck[0]["title"]
    assert len(pipe.issues(labels=constants.REMINDER_LABEL)) == 1

    pipe.issue("New work", UI, "batch-01")  # progress resets the counter
    report, state = pipe.run()
    assert report.attempt == 0 and state.is_completed()


def test_orphaned_dirty_worktree_is_salvaged_then_removed(pipe: PipelineRepo, tmp_path: Path):
    from conductor.edges import worktrees

    root = tmp_path / "worktrees"
    sha = worktrees.integration_tip(pipe.clone, "dev")
    orphan = worktrees.create_worktree(pipe.clone, root, "issue_to_pr-crashed", sha)
    (orphan / "half-done.py").write_text("print('agent work')\n")

    report, _ = pipe.run()

    [cleanup] = report.orphans
    assert cleanup.removed and cleanup.salvaged_to is not None
    assert not orphan.exists()
    saved = list(Path(cleanup.salvaged_to).rglob("*.patch"))
    assert saved and "agent work" in saved[0].read_text()


def test_dry_run_writes_nothing(pipe: PipelineRepo):
    number = pipe.issue("Page", UI, "batch-01")
    before = pipe.sandbox.control.counts()

    report, state = pipe.run(dry_run=True)

    assert state.is_completed() and report.dry_run
    assert [d.items for d in report.plan.dispatches] == [[number]]
    writes = {k: v for k, v in pipe.sandbox.control.counts().items()
              if not k.startswith("GET") and v != before.get(k, 0)}
    assert writes == {}
    assert pipe.pulls() == [] and pipe.issues(labels=constants.REMINDER_LABEL) == []


def test_rerun_after_a_killed_pass_leaves_nothing_stuck_duplicated_or_lost(pipe: PipelineRepo, prefect_server):
    """`kill -9` of a pass whose leaves committed (not pushed) and left files uncommitted:
    the next pass releases their claims, stops their agents, saves both kinds of work of
    every leaf, removes its worktree on the first try (issue #19, item 2) and dispatches again."""
    numbers = [pipe.issue("Page A", UI, "batch-01"), pipe.issue("Page B", UI, "batch-02")]
    pipe.run("empty")  # leaves one reminder
    root = pipe.workdir / "worktrees"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name,
         "--github-url", pipe.sandbox.api_url, "--repo-path", str(pipe.clone),
         "--agent-command", f"{sys.executable} -m shell.demo_agent --mode half-done", "--agent-timeout", "120"],
        env={**os.environ, "PREFECT_API_URL": prefect_server}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(root.glob("*/uncommitted.md"))) < len(numbers):
            assert time.monotonic() < deadline and proc.poll() is None, "the leaves never got half done"
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = sorted(pipe.worktrees_left())
    assert len(killed) == len(numbers)
    assert all(constants.STATUS_IN_PROGRESS in pipe.labels_of(n) for n in numbers)  # the kill left claims

    report, state = pipe.run()

    assert state.is_completed()
    assert sorted(report.released_claims) == numbers
    assert sorted(o.path for o in report.orphans) == killed
    assert [(o.removed, o.error) for o in report.orphans] == [(True, None)] * len(numbers)
    saved = {}
    for orphan in report.orphans:
        patch = (orphan.salvaged_to / "uncommitted.patch").read_text()
        assert "uncommitted.md" in patch and constants.TASK_FILE_NAME not in patch
        heads = subprocess.run(["git", "bundle", "list-heads", str(orphan.salvaged_to / "unpushed.bundle")],
                               capture_output=True, text=True, check=True).stdout
        saved.update({n: orphan for n in numbers if f"refs/heads/agent/item-{n}" in heads})
    assert sorted(saved) == numbers  # each leaf's own commit is in its bundle
    assert pipe.worktrees_left() == []
    assert [o.ok for o in report.outcomes] == [True, True]  # dispatched again, once each
    assert all(constants.STATUS_IN_PROGRESS not in pipe.labels_of(n) for n in numbers)
    assert len(pipe.issues(labels=constants.REMINDER_LABEL)) == 1
    assert len(pipe.pulls()) == len(numbers)
    orphans = subprocess.run(["pgrep", "-f", "demo_agent --mode half-done"], capture_output=True, text=True)
    assert orphans.stdout.strip() == ""  # the dead pass's agents were stopped, not left spinning


def test_two_passes_started_together_never_both_dispatch(pipe: PipelineRepo, prefect_server):
    pipe.issue("Page", UI, "batch-01")
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "CONDUCTOR_GUARD_WAIT": "0"}
    command = [sys.executable, "-m", "shell.cli", "run", "--json", "--repo", pipe.full_name,
               "--github-url", pipe.sandbox.api_url, "--repo-path", str(pipe.clone),
               "--agent-command", f"{sys.executable} -m shell.demo_agent --sleep 3"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [proc.communicate(timeout=180) for proc in runs]

    assert [proc.returncode for proc in runs] == [0, 0], [err[-2000:] for _, err in results]
    reports = [json.loads(out) for out, _ in results]  # the skipped pass prints a report too
    done = [r for r in reports if not r.get("skipped")]
    skipped = [r["skipped"] for r in reports if r.get("skipped")]
    assert len(done) == 1 and len(skipped) == 1, "\n=====\n".join(err[-3000:] for _, err in results)
    assert skipped[0].startswith("another conductor pass")
    assert [o["items"] for o in done[0]["outcomes"]] == [[1]]
    assert len(pipe.pulls()) == 1


def test_agent_output_reaches_the_run_logs_with_secrets_redacted(pipe: PipelineRepo, prefect_client):
    pipe.issue("Page", UI, "batch-01")
    report, state = pipe.run("leak")

    assert [o.ok for o in report.outcomes] == [True]
    [child] = prefect_client.child_flow_runs(state.state_details.flow_run_id)
    lines = prefect_client.log_lines([child.id])
    leaked = [line for line in lines if "my token is" in line]
    assert leaked == ["agent: demo agent: my token is ***"]
    assert not any(pipe.sandbox.users[AGENT_LOGIN] in line for line in lines)


def test_update_mode_edits_one_reminder_in_place(pipe: PipelineRepo):
    pipe.issue("Schema", "phase-1/db-schema", "batch-01")  # gated: the pipeline stays put

    first, _ = pipe.run(reminder_mode="update")
    second, _ = pipe.run(reminder_mode="update")  # nothing changed: nothing written
    seeds = pipe.issue("Seeds", "phase-1/db-schema", "batch-01")  # a change: the reminder is edited
    third, _ = pipe.run(reminder_mode="update")

    reminders = pipe.issues(labels=constants.REMINDER_LABEL)
    assert len(reminders) == 1
    assert (first.reminder.action, second.reminder.action, third.reminder.action) == ("created", "unchanged", "updated")
    assert second.reminder.number == third.reminder.number == first.reminder.number
    # nothing dispatchable: the counter holds (a waiting pipeline is not stuck), the body lists the new item
    assert third.plan.attempt == 0 and f"#{seeds}" in reminders[0]["body"]


def test_idle_pipeline_leaves_no_reminder(pipe: PipelineRepo):
    pipe.issue("seed the label", constants.REMINDER_LABEL)  # by admin: not the conductor's
    marker = '<!-- conductor:reminder {"attempt": 0, "fingerprint": "ab", "generated_at": "2026-01-01T00:00:00Z"} -->'
    ours = pipe.call("POST", "/issues", login=CONDUCTOR_LOGIN, json={
        "title": "old reminder", "body": marker, "labels": [constants.REMINDER_LABEL]})["number"]
    pipe.issue("not part of the pipeline", "bug")

    report, state = pipe.run()

    assert state.is_completed() and report.plan.idle
    assert (report.reminder.action, report.reminder.number) == ("closed", ours)
    assert [i["title"] for i in pipe.issues(labels=constants.REMINDER_LABEL)] == ["seed the label"]


def test_a_pass_run_from_the_conductor_worktree_removes_it_at_the_end(pipe: PipelineRepo, tmp_path: Path):
    from conductor.edges import worktrees
    from shell.run_cli import run_pass
    from conductor.core.taskfile import TaskFile
    from pipeline_support import agent

    pipe.issue("Page", UI, "batch-01")
    home = worktrees.create_worktree(pipe.clone, tmp_path / "worktrees", "conductor",
                                     worktrees.integration_tip(pipe.clone, "dev"))
    task_file = home / ".agent-task"
    task_file.write_text(TaskFile(GH_REPO=pipe.full_name, MAX_ISSUES_PER_DISPATCH=5).render())

    report, state = run_pass(task_file=str(task_file), github_url=pipe.sandbox.api_url,
                             repo_path=str(pipe.clone), agent_command=agent())

    assert state.is_completed() and report.repo == pipe.full_name
    assert report.self_destructed == str(home) and not home.exists()
    assert pipe.worktrees_left() == []


@pytest.mark.parametrize("chain", [1, 20])
def test_serve_entry_point_runs_a_triggered_pass(pipe: PipelineRepo, prefect_server, chain: int):
    """`python -m deployments.serve`: the schedule for users without a worker. One pass a run;
    with CONDUCTOR_CHAIN_PASSES (on-change's 20), the run makes the next pass at once while
    work is ready: the issue's PR is opened, then reviewed and merged, in one run."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    pipe.issue("Page", UI, "batch-01")
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "CONDUCTOR_GITHUB_URL": pipe.sandbox.api_url,
           "CONDUCTOR_REPO_PATH": str(pipe.clone), "CONDUCTOR_CHAIN_PASSES": str(chain),
           "CONDUCTOR_AGENT_COMMAND": json.dumps([sys.executable, "-m", "shell.demo_agent"])}
    served = subprocess.Popen([sys.executable, "-m", "deployments.serve", "--repo", pipe.full_name,
                               "--cron", "0 0 1 1 *"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        with get_client(sync_client=True) as client:
            while True:  # registered by this test's serve (an earlier test's may still be there)
                assert served.poll() is None and time.monotonic() < deadline, "serve did not register"
                try:
                    deployment = client.read_deployment_by_name("conductor/served")
                    if deployment.parameters["repo"] == pipe.full_name:
                        break
                except Exception:
                    pass
                time.sleep(0.5)
        run = run_deployment("conductor/served", timeout=180)
        assert run.state.is_completed(), run.state
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        served.wait(timeout=30)
    if chain == 1:
        assert len(pipe.pulls()) == 1 and not run.state.message.startswith("pass ")
    else:
        assert run.state.message.startswith("pass 2 of this run: "), run.state.message
        [pull] = pipe.pulls(state="closed")
        assert pull["merged_at"] and not pipe.issues()


# ── hardening (issue #11) through whole passes ──────────────────────────────


def test_a_forged_reminder_by_a_triage_user_changes_nothing_in_a_pass(pipe: PipelineRepo):
    pipe.issue("Page", UI, "batch-01")
    pipe.issue("seed the label", constants.REMINDER_LABEL)
    pipe.call("PUT", f"/collaborators/{READER_LOGIN}", json={"permission": "triage"})
    forged_body = ('<!-- conductor:reminder {"attempt": 3, "fingerprint": "0123456789abcdef", '
                   '"generated_at": "2026-01-01T00:00:00Z"} -->')
    forged = pipe.call("POST", "/issues", login=READER_LOGIN, json={
        "title": "reminder", "body": forged_body, "labels": [constants.REMINDER_LABEL]})["number"]

    report, state = pipe.run()

    assert state.is_completed() and report.attempt == 0
    assert [d.items for d in report.plan.dispatches]  # it dispatched as if nothing were there
    assert any(f"issue #{forged} carries {constants.REMINDER_LABEL} but was not written by the conductor" in line
               for line in report.not_ours)
    assert pipe.call("GET", f"/issues/{forged}")["state"] == "open"
    assert pipe.call("GET", f"/issues/{forged}/comments") == []
    assert forged not in report.closed_reminders


def test_an_issue_whose_pr_merged_into_dev_is_closed_fixed_by_and_not_dispatched(pipe: PipelineRepo):
    done = pipe.issue("Page A", UI, "batch-01")
    todo = pipe.issue("Page B", UI, "batch-02")
    pipe.sandbox.commit_files(pipe.full_name, "agent/page-a", {"a.txt": "done\n"}, base="dev")
    pr = pipe.call("POST", "/pulls", json={"title": "Page A", "head": "agent/page-a", "base": "dev",
                                           "body": f"Closes #{done}"})["number"]
    pipe.call("PUT", f"/pulls/{pr}/merge", json={})
    assert pipe.call("GET", f"/issues/{done}")["state"] == "open"  # closing keywords act on main only

    report, state = pipe.run()

    assert state.is_completed()
    assert [n for d in report.plan.dispatches for n in d.items] == [todo]
    assert [(f.issue, f.pr) for f in report.finished] == [(done, pr)]
    assert pipe.call("GET", f"/issues/{done}")["state"] == "closed"
    assert [c["body"] for c in pipe.call("GET", f"/issues/{done}/comments")] == [f"Fixed by PR #{pr}."]
    again, _ = pipe.run()
    assert done not in [n for d in again.plan.dispatches for n in d.items]


def test_a_fault_on_the_final_reminder_write_leaves_a_reminder_open_and_the_result_intact(pipe: PipelineRepo):
    pipe.issue("Page A", UI, "batch-01")
    first, _ = pipe.run()
    old = first.reminder.number
    assert old is not None
    pipe.issue("Page B", UI, "batch-02")
    pipe.sandbox.control.add_fault(502, method="POST", path=f"/repos/{pipe.full_name}/issues", times=None)
    try:
        report, state = pipe.run()
    finally:
        pipe.sandbox.control.clear_faults()

    assert state.is_completed(), state.message
    assert report.outcomes and all(o.ok for o in report.outcomes), [o.failures for o in report.outcomes]
    assert report.reminder.action == "failed" and report.reminder.error
    assert [i["number"] for i in pipe.issues(labels=constants.REMINDER_LABEL)] == [old]  # never none open

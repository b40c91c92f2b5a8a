"""Leaves end to end: real passes (Prefect server, sandbox GitHub, git, agent processes), one
scripted agent per issue and per PR, each leaf in its own worktree."""
from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from conductor.core import constants, workflows
from conductor.edges import worktrees
from conductor.actions.coordinator import CoordinatorResult, PassContext
from conductor.core.settings import Settings
from conductor.core.models import Dispatch
from pipeline_support import PipelineRepo, agent, pipeline_for_test

pytestmark = pytest.mark.slow

UI = "phase-4/new-ui-pages"


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    monkeypatch.delenv("CONDUCTOR_AGENT_SLOTS", raising=False)
    return pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals running at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_twelve_issues_in_three_batches_run_as_twelve_concurrent_leaves(pipe: PipelineRepo):
    numbers = [pipe.issue(f"Page {i}", UI, f"batch-0{1 + i // 4}") for i in range(12)]

    report, state = pipe.run("work", "--sleep", "6")

    assert state.is_completed(), state.message
    assert sorted((o.batch, o.items) for o in report.outcomes) == [
        (f"batch-0{b + 1}", numbers[4 * b:4 * b + 4]) for b in range(3)]  # three coordinators...
    results = [r for o in report.outcomes for r in o.results]
    assert sorted(r.number for r in results) == numbers  # ...of four leaves each
    assert [(r.ok, r.reason) for r in results] == [(True, "")] * 12
    pass_ids = set()
    for r in results:  # each leaf had a worktree of its own
        match = re.fullmatch(rf"issue-{r.number}-([0-9a-f]{{8}})", r.worktree or "")
        assert match, r.worktree
        pass_ids.add(match.group(1))
    assert len(pass_ids) == 1
    # the twelve agents ran at the same time: each started before any of them ended
    starts = [r.agent_started_at for r in results]
    ends = [r.agent_ended_at for r in results]
    assert max(starts) < min(ends), (max(starts) - min(starts))
    assert max_overlap(list(zip(starts, ends))) == 12
    # proved per item: one PR per issue, from its own branch, closing it
    pulls = {p["body"]: p for p in pipe.pulls()}
    assert sorted(pulls) == sorted(f"Closes #{n}" for n in numbers)
    assert {r.pr for r in results} == {p["number"] for p in pulls.values()}
    for r in results:
        assert pulls[f"Closes #{r.number}"]["number"] == r.pr
        assert pulls[f"Closes #{r.number}"]["head"]["ref"] == f"agent/issue-{r.number}"
        assert r.prompt_source == "shipped" and r.prompt_path == "conductor/prompts/issue_to_pr.md"
        assert constants.STATUS_IN_PROGRESS not in pipe.labels_of(r.number)
    assert pipe.worktrees_left() == []


def test_agent_slots_cap_how_many_agents_run_at_once(pipe: PipelineRepo, monkeypatch):
    monkeypatch.setenv("CONDUCTOR_AGENT_SLOTS", "2")
    numbers = [pipe.issue(f"Page {i}", UI, "batch-01") for i in range(4)]

    report, _ = pipe.run("work", "--sleep", "2")

    [outcome] = report.outcomes
    assert outcome.ok, outcome.failures
    assert [r.number for r in outcome.results] == numbers
    intervals = [(r.agent_started_at, r.agent_ended_at) for r in outcome.results]
    assert max_overlap(intervals) == 2  # never three at once, yet two side by side


def _spec(pipe: PipelineRepo, tmp_path, command: list[str]) -> PassContext:
    # this machine's settings (the conductor's token from GITHUB_TOKEN) for this repository
    settings = Settings(github={"api_url": pipe.sandbox.api_url},
                        run={"repo": pipe.full_name, "repo_path": pipe.clone, "agent_command": command,
                             "worktree_root": (tmp_path / "worktrees").resolve(), "agent_timeout": 120})
    return PassContext(settings=settings, default_branch="main", pass_id=uuid.uuid4().hex[:8])


def test_two_prs_touching_one_file_are_reviewed_one_after_the_other_beside_a_third(
        pipe: PipelineRepo, prefect_client, tmp_path):
    from flows.coordinators import coordinator_flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    first = pipe.issue("Nav entry A", UI, "batch-01", body="Files: `app/nav.md`")
    second = pipe.issue("Nav entry B", UI, "batch-01", body="Files: `app/nav.md`")
    third = pipe.issue("Footer", UI, "batch-01", body="Files: `app/footer.md`")
    report, _ = pipe.run()  # three issue leaves open three PRs; two of them change app/nav.md
    assert [o.ok for o in report.outcomes] == [True]
    pr_of = {r.number: r.pr for r in report.outcomes[0].results}
    a, b, c = pr_of[first], pr_of[second], pr_of[third]
    worktrees.fetch(pipe.clone)
    dispatch = Dispatch(kind="pr_review", phase=UI, batch="batch-01", items=[b, a, c], merge_after={b: a})

    state = coordinator_flow(workflows.PR_REVIEW)(dispatch, _spec(pipe, tmp_path, agent("work", "--sleep", "3")), return_state=True)

    result = state.result(raise_on_failure=False)
    assert isinstance(result, CoordinatorResult), result
    by = {leaf.number: leaf.outcome.results[0] for leaf in result.leaves}
    assert sorted(by) == sorted([a, b, c]) and by[a].merged and by[c].merged
    # the chained one conflicts once the first merged: its review stops (blocked, no failure), and
    # the next pass sends it to a rebase leaf (tests/test_loops_flow.py)
    assert by[b].blocked and not by[b].merged and "needs a rebase" in by[b].reason
    assert result.outcome.failures == []
    assert by[b].merge_after == a and by[a].merge_after is None
    assert by[b].started_at >= by[a].ended_at  # the chained review began only when the first ended
    assert by[c].agent_started_at < by[a].agent_ended_at and by[a].agent_started_at < by[c].agent_ended_at
    assert result.outcome.merged_prs == sorted([a, c])
    worktrees.fetch(pipe.clone)
    nav = subprocess.run(["git", "-C", str(pipe.clone), "show", "origin/dev:app/nav.md"],
                         capture_output=True, text=True, check=True).stdout
    assert f"# part of #{first}" in nav and f"# part of #{second}" not in nav
    assert [pipe.call("GET", f"/issues/{n}")["state"] for n in (first, second, third)] == ["closed", "open", "closed"]
    # the Prefect UI draws the chain: the later leaf's task run waits for the earlier one's
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    leaf_runs = {r.name: r for r in runs if r.name.startswith("pr_review #")}
    assert set(leaf_runs) == {f"pr_review #{n}" for n in (a, b, c)}
    waits = {name: [i.id for i in run.task_inputs.get("wait_for", [])] for name, run in leaf_runs.items()}
    assert waits == {f"pr_review #{a}": [], f"pr_review #{b}": [leaf_runs[f"pr_review #{a}"].id],
                     f"pr_review #{c}": []}


def test_a_repository_prompt_replaces_the_shipped_one_and_the_result_names_its_sha(
        pipe: PipelineRepo, prefect_client):
    text = "# Our own issue-to-pr prompt\nFollow CONTRIBUTING.md.\n"
    pipe.sandbox.commit_files(pipe.full_name, "dev", {constants.PROMPT_ISSUE_TO_PR: text},
                              message="Our leaf prompt", base="dev")
    number = pipe.issue("Page", UI, "batch-01")
    worktrees.fetch(pipe.clone)
    sha = subprocess.run(["git", "-C", str(pipe.clone), "rev-parse", f"origin/dev:{constants.PROMPT_ISSUE_TO_PR}"],
                         capture_output=True, text=True, check=True).stdout.strip()

    report, state = pipe.run()

    [outcome] = report.outcomes
    [result] = outcome.results
    assert result.ok and result.number == number
    assert (result.prompt_path, result.prompt_sha, result.prompt_source) == (
        constants.PROMPT_ISSUE_TO_PR, sha, "repository")
    # the agent was handed that very file
    [child] = prefect_client.child_flow_runs(state.state_details.flow_run_id)
    lines = prefect_client.log_lines([child.id])
    assert "agent: demo agent: prompt: # Our own issue-to-pr prompt" in lines


def test_a_blocked_issue_waits_until_its_blocker_is_closed(pipe: PipelineRepo):
    """Issue #12's dependencies end to end: the dependent waits (listed with its blocker) while
    the blocker is open, and is dispatched by the first pass after the blocker closed."""
    blocker = pipe.issue("Schema helpers", UI, "batch-01")
    dependent = pipe.issue("Page using the helpers", UI, "batch-01", body=f"Depends on #{blocker}")

    first, state = pipe.run("work")

    assert state.is_completed(), state.message
    assert [n for d in first.plan.dispatches if d.kind == "issue_to_pr" for n in d.items] == [blocker]
    waiting = {w.number: w for w in first.plan.waiting}
    assert waiting[dependent].blockers == [blocker]
    assert f"#{dependent}" in (first.reminder.body or "")

    pipe.call("PATCH", f"/issues/{blocker}", json={"state": "closed"})  # as its reviewer would
    second, state = pipe.run("work")

    assert state.is_completed(), state.message
    dispatched = {d.kind: d for d in second.plan.dispatches}
    assert dispatched["issue_to_pr"].items == [dependent]
    assert dispatched["issue_to_pr"].depends_on.get(dependent) == [blocker]
    assert dependent not in {w.number for w in second.plan.waiting}
    results = {r.number: r for o in second.outcomes for r in o.results}
    assert results[dependent].ok, results[dependent].reason

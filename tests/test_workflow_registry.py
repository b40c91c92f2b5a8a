"""The workflow registry: a kind registered by a test alone (tests/workflow_support.py) is
planned, run as leaves and proved against GitHub through a real pass; the kinds the
conductor ships are spelled in the registry alone."""
from __future__ import annotations

import re

import pytest

from conductor.core import constants, workflows
from conductor.core.models import Dispatch
from conductor.core.verify import RunFacts
from pipeline_support import PipelineRepo, pipeline_for_test
from test_planner import _no_conductor_env, issue, pr, run, state  # noqa: F401 - the fixture isolates the env
from workflow_support import NEEDS_TRIAGE, TASK_KEYS, TRIAGE, TRIAGED, agent_command

UI = "phase-4/new-ui-pages"


@pytest.fixture
def triage():
    workflows.register(TRIAGE)
    yield TRIAGE
    workflows.unregister(TRIAGE.kind)


def _items(*more: str):
    return state(issue(1, UI, "batch-1"), issue(2, UI, "batch-1", *more), issue(3, UI, "batch-1"),
                 pr(9, UI, "batch-1", NEEDS_TRIAGE))


def test_a_registered_kind_takes_the_items_it_accepts_and_the_defaults_take_the_rest(triage):
    dispatches = run(_items(NEEDS_TRIAGE)).dispatches
    assert [(d.kind, d.items) for d in dispatches] == [
        ("issue_to_pr", [1, 3]), ("pr_review", [9]), ("triage_issue", [2])]  # a PR is not its item


def test_without_the_kind_its_items_go_to_the_default():
    assert [(d.kind, d.items) for d in run(_items(NEEDS_TRIAGE)).dispatches] == [
        ("issue_to_pr", [1, 2, 3]), ("pr_review", [9])]


@pytest.mark.parametrize("entry, error", [
    (TRIAGE.__class__(**{**TRIAGE.__dict__, "name": "issue-to-pr"}), "already issue_to_pr's"),
    (TRIAGE.__class__(**{**TRIAGE.__dict__, "takes": None}), "already takes every issue"),
    (TRIAGE.__class__(**{**TRIAGE.__dict__, "kind": "pr_review", "name": "x"}), "already registered"),
])
def test_a_clashing_entry_is_refused(entry, error):
    with pytest.raises(ValueError, match=error):
        workflows.register(entry)
    assert workflows.registered() == [workflows.ISSUE_TO_PR, workflows.PR_REVIEW, workflows.REWORK, workflows.REBASE]


def test_a_report_of_an_unregistered_kind_is_refused():
    with pytest.raises(ValueError, match="'triage-issue' is not a registered workflow"):
        workflows.read_report({"workflow": "triage-issue", "issue": 3, "label": TRIAGED})


@pytest.mark.slow
def test_a_test_only_kind_runs_end_to_end_through_a_real_pass(triage, sandbox, prefect_server, tmp_path,
                                                              monkeypatch, request):
    pipe: PipelineRepo = pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name)
    number = pipe.issue("Sort me", UI, "batch-01", NEEDS_TRIAGE)

    report, state = pipe.run(agent_command=agent_command())

    assert state.is_completed(), state.message
    [outcome] = report.outcomes
    assert (outcome.kind, outcome.items, outcome.ok, outcome.failures) == ("triage_issue", [number], True, [])
    [result] = outcome.results
    assert (result.kind, result.ok, result.prompt_path, result.prompt_source) == (
        "issue", True, "tests/data/triage_issue.md", "shipped")
    assert re.fullmatch(rf"issue-{number}-[0-9a-f]{{8}}", result.worktree or "")
    # the leaf ran the agent with this kind's task file, and the proof read the label back
    [comment] = pipe.call("GET", f"/issues/{number}/comments")
    assert comment["body"] == "task keys: " + ",".join(TASK_KEYS)
    assert TRIAGED in pipe.labels_of(number) and constants.STATUS_IN_PROGRESS not in pipe.labels_of(number)
    assert pipe.pulls() == []  # nothing of the issue kind ran
    # the pass report names the kind (Coordinators) and its label (Dispatched)
    text = report.markdown().replace("\u200b", "")
    assert re.search(rf"^\| triage\\_issue \| .* \| \\#{number} \| ok \|", text, re.MULTILINE), text
    assert re.search(rf"\| triage batch\\-01: \\#{number} \|", text), text
    assert pipe.worktrees_left() == []


def test_the_kinds_proof_fails_when_github_lacks_the_claimed_label(triage):
    report = workflows.read_report({"workflow": "triage-issue", "status": "done", "issue": 4, "label": TRIAGED})
    outcome = workflows.verify(Dispatch(kind=TRIAGE.kind, phase=UI, items=[4]), report, RunFacts(returncode=0),
                               {4: ["bug"]}, repo="o/r", default_branch="main")
    assert (outcome.ok, outcome.failures) == (False, ["issue #4 does not carry 'triaged'"])

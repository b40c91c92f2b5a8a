"""Per-item attempts in real passes: a failed item is commented on once per pass by the
conductor, and once it reaches the limit it is held back and the reminder asks for a human."""
from __future__ import annotations

import pytest

from conductor.core import constants
from pipeline_support import CONDUCTOR_LOGIN, PipelineRepo, pipeline_for_test

pytestmark = pytest.mark.slow
UI = "phase-4/new-ui-pages"


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    return pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name, CONDUCTOR_ITEM_ATTEMPT_LIMIT="2")


def attempt_comments(pipe: PipelineRepo, number: int) -> list[str]:
    return [c["body"] for c in pipe.call("GET", f"/issues/{number}/comments")
            if c["user"]["login"] == CONDUCTOR_LOGIN and "conductor:attempt" in c["body"]]


def test_an_item_failing_twice_is_held_back_and_named_in_the_reminder(pipe: PipelineRepo):
    number = pipe.issue("Page", UI, "batch-01")

    report, state = pipe.run("crash")
    assert state.is_completed() and not report.outcomes[0].ok
    assert len(attempt_comments(pipe, number)) == 1
    assert [h.number for h in report.final_plan.held_back] == []

    report, _ = pipe.run("crash")
    comments = attempt_comments(pipe, number)
    assert len(comments) == 2 and "(attempt 2 of 2)" in comments[1]
    assert "agent exited with status 3" in comments[1]
    # the plan after this pass already holds it back, and the reminder says why
    assert [(h.number, h.attempts) for h in report.final_plan.held_back] == [(number, 2)]
    reminder = pipe.issues(labels=constants.REMINDER_LABEL)[0]["body"]
    assert f"- Issue #{number}: Page — needs a human: failed 2 times (last reason: " in reminder
    assert "agent exited with status 3" in reminder

    report, _ = pipe.run("crash")  # the next pass dispatches nothing for it
    assert report.plan.dispatches == [] and report.outcomes == []
    assert len(attempt_comments(pipe, number)) == 2


def test_a_dependency_on_nothing_holds_the_issue_without_an_attempt_until_its_text_is_fixed(pipe: PipelineRepo):
    number = pipe.issue("Page", UI, "batch-01", body="Depends on #9999")

    report, state = pipe.run()
    assert state.is_completed() and report.plan.dispatches == [] and report.outcomes == []
    assert [(w.number, w.reason) for w in report.final_plan.waiting] == [
        (number, "depends on #9999, which does not exist")]
    assert attempt_comments(pipe, number) == []
    reminder = pipe.issues(labels=constants.REMINDER_LABEL)[0]["body"]
    assert f"- Issue #{number}: Page — depends on " in reminder and "9999, which does not exist" in reminder

    pipe.call("PATCH", f"/issues/{number}", json={"body": "No dependencies after all."})
    report, _ = pipe.run()
    assert [d.items for d in report.plan.dispatches] == [[number]] and report.outcomes[0].ok
    assert attempt_comments(pipe, number) == []


def test_agents_failing_on_githubs_injected_faults_are_charged_no_attempt(pipe: PipelineRepo):
    number = pipe.issue("Page", UI, "batch-01")
    pipe.sandbox.control.add_fault(503, method="POST", path=f"/repos/{pipe.full_name}/pulls", times=None)
    try:
        for _ in range(2):  # at the limit (2) it would be held as "needs a human"
            report, _ = pipe.run()
            result = report.outcomes[0].results[0]
            assert not result.ok and "HTTP 503" in result.github_unavailable, result
            assert attempt_comments(pipe, number) == [] and report.final_plan.held_back == []
    finally:
        pipe.sandbox.control.clear_faults()
    reminder = pipe.issues(labels=constants.REMINDER_LABEL)[0]["body"]
    assert "### GitHub unavailable (retried next pass, no attempt charged)" in reminder
    assert f"- #{number}: the agent met GitHub failing: " in reminder
    assert "GitHub was unavailable in 2 passes in a row" in reminder

    report, _ = pipe.run()  # GitHub answers again: retried and proved
    assert report.outcomes[0].ok and attempt_comments(pipe, number) == []


def test_a_leaf_whose_own_github_calls_met_faults_is_charged_no_attempt(pipe: PipelineRepo):
    number = pipe.issue("Page", UI, "batch-01")
    pipe.sandbox.control.add_fault(502, method="GET", path=f"/repos/{pipe.full_name}/issues/{number}", times=1)
    report, _ = pipe.run("crash")  # retried by the leaf's gateway; then its agent fails
    result = report.outcomes[0].results[0]
    assert result.github_unavailable == "the leaf's own GitHub calls met 1 5xx/429 answer"
    assert attempt_comments(pipe, number) == []

    report, _ = pipe.run("crash")  # the same failure with GitHub well: charged
    assert report.outcomes[0].results[0].github_unavailable == ""
    assert len(attempt_comments(pipe, number)) == 1

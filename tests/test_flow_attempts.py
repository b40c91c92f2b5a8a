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

"""A second pass over an unchanged pipeline costs (almost) no rate limit: its GETs are
conditional and answered 304. Measured from the sandbox's own X-RateLimit counts."""
from __future__ import annotations

import httpx
import pytest

from pipeline_support import CONDUCTOR_LOGIN, PipelineRepo, pipeline_for_test

pytestmark = pytest.mark.slow


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    return pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name, CONDUCTOR_ETAG_CACHE_DIR=str(tmp_path / "etags"))


def used(sandbox, login: str) -> int:
    answer = httpx.get(f"{sandbox.api_url}/rate_limit", timeout=30,
                       headers={"Authorization": f"token {sandbox.users[login]}"})
    return answer.json()["resources"]["core"]["used"]


def test_a_second_pass_over_an_idle_pipeline_spends_at_most_3_points(sandbox, pipe: PipelineRepo):
    pipe.run(reminder_mode="update")
    before = used(sandbox, CONDUCTOR_LOGIN)
    report, state = pipe.run(reminder_mode="update")
    spent = used(sandbox, CONDUCTOR_LOGIN) - before
    print(f"second pass over an unchanged (idle) pipeline: {spent} rate-limit points "
          f"(reported {report.rate_points}), "
          f"{report.api_requests} requests")
    assert state.is_completed()
    assert report.api_requests > 0  # it did read GitHub
    assert spent <= 3, f"{spent} points"
    assert report.rate_points == spent  # the pass reports what the sandbox counted
    assert f"{report.rate_points} rate-limit points spent" in report.markdown()


def test_a_second_pass_over_a_waiting_pipeline_spends_at_most_3_points(sandbox, pipe: PipelineRepo):
    """Every item gated (a gated phase, a gate label, unapproved) or waiting (a later phase, a
    dependency on an open issue): nothing to dispatch, the plan unchanged between passes."""
    first = pipe.issue("schema", "phase-1/db-schema")
    pipe.issue("audit me", "phase-4/new-ui-pages", "security")
    pipe.issue("api", "phase-2/core-api")
    pipe.issue("after the audit", "phase-4/new-ui-pages", body=f"Depends on #{first}")
    pipe.run(reminder_mode="update")  # writes the reminder: the pipeline is unchanged from here on
    pipe.run(reminder_mode="update")
    before = used(sandbox, CONDUCTOR_LOGIN)
    report, state = pipe.run(reminder_mode="update")
    spent = used(sandbox, CONDUCTOR_LOGIN) - before
    print(f"second pass over an unchanged waiting pipeline: {spent} rate-limit points, "
          f"{report.api_requests} requests")
    assert state.is_completed()
    assert not report.plan.dispatches and len(report.plan.gated) == 2 and report.plan.waiting
    assert spent <= 3, f"{spent} points"
    assert report.rate_points == spent

"""A second pass over an unchanged pipeline costs (almost) no rate limit: its GETs are
conditional and answered 304. Measured from the sandbox's own X-RateLimit counts."""
from __future__ import annotations

import httpx
import pytest

from conftest import unique_repo_name
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, PipelineRepo, make_pipeline_repo

pytestmark = pytest.mark.slow


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    monkeypatch.setenv("GITHUB_TOKEN", sandbox.users[CONDUCTOR_LOGIN])
    monkeypatch.setenv("CONDUCTOR_AGENT_TOKEN", sandbox.users[AGENT_LOGIN])
    monkeypatch.setenv("CONDUCTOR_WORKTREE_ROOT", str(tmp_path / "worktrees"))
    monkeypatch.setenv("CONDUCTOR_SALVAGE_DIR", str(tmp_path / "salvage"))
    monkeypatch.setenv("CONDUCTOR_ETAG_CACHE_DIR", str(tmp_path / "etags"))
    monkeypatch.setenv("CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS", "0")
    monkeypatch.setenv("CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES", "0")
    return make_pipeline_repo(sandbox, unique_repo_name(request.node.name), tmp_path)


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

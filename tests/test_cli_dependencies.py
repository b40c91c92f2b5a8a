"""`conductor plan` shows waiting items with their blockers, failed items and unphased ones."""
from __future__ import annotations

import json

import pytest

from conductor.actions.item_attempts import record_attempt
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.settings import GitHubSettings
from test_cli import conductor

P4 = "phase-4/new-ui-pages"


@pytest.mark.slow
def test_plan_lists_waiting_held_back_and_outside_items(sandbox, sandbox_repo):
    settings = GitHubSettings(api_url=sandbox.api_url, token=sandbox.admin_token)
    with GitHubGateway(settings, sandbox_repo) as gh:
        blocker = gh.create_issue("blocker", "", [P4])
        blocked = gh.create_issue("blocked", f"Depends on #{blocker} and other/repo#3", [P4])
        flaky = gh.create_issue("flaky", "", [P4])
        for k in range(3):
            record_attempt(gh, flaky, f"pass-{k}", "agent exited with status 1", limit=3)
        regression = gh.create_issue("regression", "", ["bug", "batch-02"])
        nowhere = gh.create_issue("on nothing", "Depends on #9999", [P4])
    env = {"GITHUB_TOKEN": sandbox.admin_token, "COLUMNS": "200"}
    result = conductor("plan", "--repo", sandbox_repo, "--github-url", sandbox.api_url, "--json", env=env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [(w["number"], w["blockers"]) for w in plan["waiting"]] == [(blocked, [blocker]), (nowhere, [])]
    assert plan["waiting"][1]["reason"] == "depends on #9999, which does not exist"
    assert [(h["number"], h["attempts"], h["last_reason"]) for h in plan["held_back"]] == [
        (flaky, 3, "agent exited with status 1")]
    assert [(o["number"], o["batch"]) for o in plan["outside_pipeline"]] == [(regression, "batch-02")]
    assert [d["items"] for d in plan["dispatches"]] == [[blocker]]
    assert any("other/repo#3" in p["message"] for p in plan["problems"])

    table = conductor("plan", "--repo", sandbox_repo, "--github-url", sandbox.api_url, env=env)
    assert table.returncode == 0, table.stderr
    for text in (f"#{blocked} on #{blocker}", f"#{nowhere} on #9999 (does not exist)", "needs a human", f"#{flaky} (3 failures)",
                 "(outside the pipeline)", f"#{regression} (batch-02)"):
        assert text in table.stdout, text

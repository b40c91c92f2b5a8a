"""Spend under control against the sandbox: spend recorded on GitHub and read back by anyone
(forged markers count for nothing), the per-day budget's clock, and real passes with the scripted
agent reporting known usage: a phase budget that fits two of three, a per-item cap that stops an
agent, a batch agent's spend shared by its items and its cap the sum of theirs, a fresh pass on
another PREFECT_HOME that reads the spend back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from conductor.actions.item_attempts import read_marker_index, read_spend, record_spend
from conductor.actions.snapshot import read_snapshot
from conductor.core import constants, planner, spend
from conductor.core.config import PipelineConfig
from conductor.core.models import LeafSpend
from conductor.core.settings import GitHubSettings, Settings
from conductor.edges.github_gateway import GitHubGateway
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, PipelineRepo, pipeline_for_test

UI = "phase-4/new-ui-pages"
DAY = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)


def gateway(sandbox, repo: str, login: str) -> GitHubGateway:
    return GitHubGateway(GitHubSettings(api_url=sandbox.api_url, token=sandbox.users[login], backoff_factor=0.05,
                                        seconds_between_requests=0, seconds_between_writes=0), repo)


def test_spend_on_github_is_read_back_by_anyone_and_forged_markers_count_for_nothing(sandbox, sandbox_repo):
    with sandbox.api(sandbox.users["admin"]) as c:
        for login in ("alice", "bob"):
            c.put(f"/repos/{sandbox_repo}/collaborators/{login}", json={"permission": "write"}).raise_for_status()
    with gateway(sandbox, sandbox_repo, "alice") as gh:
        one, two = (gh.create_issue(f"Page {n}", "", [UI, "batch-01"]) for n in (1, 2))
        leaf = LeafSpend(pass_id="p1", number=one, kind="k", phase=UI, cli="claude", cost_usd=6.0,
                         input_tokens=1000, output_tokens=100, at=DAY)
        assert record_spend(gh, leaf)
        assert not record_spend(gh, leaf)  # a re-run pass writes it once
    with gateway(sandbox, sandbox_repo, "bob") as forger:  # another login writes the very same marker
        forger.add_comment(two, spend.render_spend_comment(leaf.model_copy(update={"pass_id": "x", "number": two,
                                                                                  "cost_usd": 1000.0})))
    with gateway(sandbox, sandbox_repo, "alice") as gh:  # any machine, any pass: the same spend
        assert read_spend(read_marker_index(gh)) == [leaf]
        settings = Settings(pipeline=PipelineConfig(budget={"day_usd": 10, "estimate_usd": 5}))
        same_day = read_snapshot(gh, settings, now=DAY + timedelta(hours=1, minutes=59))
        next_day = read_snapshot(gh, settings, now=DAY + timedelta(hours=2))
    # $6 spent today + $5 estimated > $10: one waits on the same UTC day; the next day both fit
    held = planner.plan(same_day.state, settings)
    assert [n for d in held.dispatches for n in d.items] == [] and len(held.waiting) == 2
    assert held.waiting[0].reason.startswith("budget: today (2026-12-03 UTC) has spent $6.00 of $10.00")
    fresh = planner.plan(next_day.state, settings)
    assert [n for d in fresh.dispatches for n in d.items] == [one, two]


# -- real passes ----------------------------------------------------------------------------


@pytest.fixture
def pipe_with(sandbox, prefect_server, tmp_path, monkeypatch, request):
    """A pipeline repository whose passes run under `[budget]` = the budget given (and the
    other settings given as environment variables)."""
    return lambda budget, **env: pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name,
                                                   CONDUCTOR_BUDGET=json.dumps(budget), **env)


def spend_comments(pipe: PipelineRepo, number: int, login: str = CONDUCTOR_LOGIN) -> list[str]:
    return [c["body"] for c in pipe.call("GET", f"/issues/{number}/comments")
            if c["user"]["login"] == login and constants.SPEND_MARKER in c["body"]]


@pytest.mark.slow
def test_a_phase_budget_that_fits_two_of_three_dispatches_exactly_two(pipe_with):
    pipe = pipe_with({"phase_usd": 10, "estimate_usd": 4})
    numbers = [pipe.issue(f"Page {n}", UI, "batch-01") for n in range(3)]

    report, state = pipe.run("work", "--usage", "4,1000,100")

    assert state.is_completed()
    assert [n for d in report.plan.dispatches for n in d.items] == numbers[:2]
    assert all(o.ok for o in report.outcomes)
    assert [len(spend_comments(pipe, n)) for n in numbers] == [1, 1, 0]
    [waits] = report.plan.waiting
    assert (waits.number, waits.budget) == (numbers[2], True)
    assert waits.reason.startswith("budget: phase-4/new-ui-pages has spent $0.00 of $10.00 ($8.00 more admitted")
    after = report.final_plan  # read back from GitHub after the pass: $8 spent, the p90 of the two is $4
    waiting = {w.number: w.reason.split(" (raise")[0] for w in after.waiting if w.budget}
    assert waiting[numbers[2]] == \
        "budget: phase-4/new-ui-pages has spent $8.00 of $10.00; this issue is estimated at $4.00"
    assert len(waiting) == 3  # the two new PRs' reviews wait for the budget too
    assert not after.stuck
    reminder = pipe.issues(labels=constants.REMINDER_LABEL)[0]["body"]
    assert "### Waiting for a budget" in reminder
    assert "has spent \\$8\\.00 of \\$10\\.00; this issue is estimated at \\$4\\.00" in reminder
    assert "raise phase\\_usd under \\[budget\\] in conductor\\.toml" in reminder
    assert "- phase\\-4/new\\-ui\\-pages: \\$8\\.00 of \\$10\\.00\n" in reminder
    assert ["(spent: phase-4/new-ui-pages)", "", "", "", "", "", "$8.00 of $10.00"] in report.table_rows()
    dumped = json.loads(report.model_dump_json())  # the JSON report carries it
    assert {"scope": UI, "unit": "usd", "spent": 8.0, "limit": 10.0, "key": "phase_usd"} in \
        dumped["plan_after"]["budgets"]


@pytest.mark.slow
def test_a_batch_agents_spend_is_recorded_as_an_even_share_on_each_of_its_items(pipe_with):
    pipe = pipe_with({"phase_usd": 10}, CONDUCTOR_FAN_OUT="coordinator-agent")
    numbers = [pipe.issue(f"Page {n}", UI, "batch-01") for n in range(3)]

    report, state = pipe.run("work", "--usage", "3,3000,300")  # one agent for the three

    assert state.is_completed()
    [outcome] = report.outcomes
    assert outcome.ok and outcome.items == numbers
    for number in numbers:
        [comment] = spend_comments(pipe, number)
        assert "1,000 in / 100 out tokens, \\$1\\.0000, " in comment
        assert "(demo\\_agent): an even share of one batch agent's spend over 3 items." in comment
    after = report.final_plan  # read back from GitHub: the phase and the pipeline spent the agent's $3
    assert {"scope": UI, "unit": "usd", "spent": 3.0, "limit": 10.0, "key": "phase_usd"} in \
        [b.model_dump() for b in after.budgets]
    assert {"scope": "pipeline", "unit": "usd", "spent": 3.0, "limit": None, "key": "pipeline_usd"} in \
        [b.model_dump() for b in after.budgets]


@pytest.mark.slow
def test_a_per_item_cap_stops_an_agent_whose_streamed_usage_passes_it(pipe_with):
    pipe = pipe_with({"item_tokens": 2500})
    number = pipe.issue("Page", UI, "batch-01")

    report, state = pipe.run("work", "--stream-turns", "100", "--turn-tokens", "1000")

    assert state.is_completed()
    [outcome] = report.outcomes
    assert not outcome.ok and outcome.failures[0] == \
        f"issue #{number}: agent stopped by the conductor: usage passed the item's cap: 3,000 of 2,500 tokens"
    assert pipe.pulls() == []  # stopped before it could work
    [comment] = spend_comments(pipe, number)
    assert "Stopped: usage passed the item" in comment
    assert [w.number for w in report.final_plan.waiting if w.budget] == [number]  # its budget is spent


@pytest.mark.slow
def test_a_batch_agent_is_stopped_at_the_sum_of_its_items_caps(pipe_with):
    pipe = pipe_with({"item_tokens": 2500}, CONDUCTOR_FAN_OUT="coordinator-agent")
    numbers = [pipe.issue(f"Page {n}", UI, "batch-01") for n in range(2)]

    report, state = pipe.run("work", "--stream-turns", "100", "--turn-tokens", "1000")

    assert state.is_completed()
    [outcome] = report.outcomes
    assert not outcome.ok and pipe.pulls() == []  # stopped before it could work
    assert "agent stopped by the conductor: usage passed the cap of its 2 items: 6,000 of 5,000 tokens" in \
        outcome.failures[0]
    for number in numbers:  # 3,000 tokens each: both items' budgets are spent
        [comment] = spend_comments(pipe, number)
        assert "3,000 in / 0 out tokens" in comment and "Stopped: usage passed the cap of its 2 items" in comment
    assert [w.number for w in report.final_plan.waiting if w.budget] == numbers


@pytest.mark.slow
def test_a_fresh_pass_on_another_prefect_home_reads_the_spend_back(pipe_with, sandbox, tmp_path):
    pipe = pipe_with({"pipeline_usd": 100})
    first = pipe.issue("Page", UI, "batch-01")
    pipe.run("work", "--usage", "1.5,1000,100")
    with pipe.client(AGENT_LOGIN) as c:  # a forged marker claiming $1000: counts for nothing
        c.post(f"/repos/{pipe.full_name}/issues/{first}/comments", json={"body": spend.render_spend_comment(
            LeafSpend(pass_id="forged", number=first, cost_usd=1000.0, at=DAY))}).raise_for_status()
    second = pipe.issue("Other page", UI, "batch-01")

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
           "PREFECT_HOME": str(tmp_path / "another-prefect-home")}
    done = subprocess.run([sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name, "--github-url",
                           sandbox.api_url, "--repo-path", str(pipe.clone), "--json", "--dry-run",
                           "--log-file", str(tmp_path / "fresh.log")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    fresh = json.loads(done.stdout)
    assert {"scope": "pipeline", "unit": "usd", "spent": 1.5, "limit": 100.0, "key": "pipeline_usd"} in \
        fresh["plan"]["budgets"]
    assert second in [n for d in fresh["plan"]["dispatches"] for n in d["items"]]  # $1,000 forged: held nothing
    assert not [w for w in fresh["plan"]["waiting"] if w["budget"]]

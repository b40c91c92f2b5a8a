"""Per-item attempts at scale: a plan over 300 issues and 60 PRs reads every attempt marker
with one repository-wide comment listing, one page per 100 comments changed since the last
pass (counted at the sandbox), conditional so that an unchanged one costs no rate limit."""
from __future__ import annotations

import time

import pytest

from conductor.actions.item_attempts import record_attempt
from conductor.actions.snapshot import read_open_items, with_dispatch_facts
from conductor.core import planner
from conductor.core.config import PipelineConfig
from conductor.core.settings import GitHubSettings, Settings
from conductor.edges.github_gateway import GitHubGateway
from test_benchmarks import state_read

pytestmark = pytest.mark.slow
LISTING = "GET /repos/{owner}/{repo}/issues/comments"
PER_ITEM = "GET /repos/{owner}/{repo}/issues/{issue_number}/comments"


def comment_on(sandbox, repo: str, numbers: list[int], text: str) -> None:
    with sandbox.api(sandbox.token_of("bob")) as api:
        for n in numbers:
            assert api.post(f"/repos/{repo}/issues/{n}/comments", json={"body": f"{text} {n}"}).status_code == 201


def test_a_plan_at_300_issues_and_60_prs_reads_attempts_in_one_page_per_100_changed_comments(
        sandbox, sandbox_repo, tmp_path):
    config = PipelineConfig()
    rules = Settings(pipeline=config)
    issues = state_read.issue_specs(300, config.phase_names)
    state_read.fill_repository(sandbox, sandbox_repo, issues, state_read.pr_specs(60, issues),
                               config.integration_branch)
    settings = GitHubSettings(api_url=sandbox.api_url, token=sandbox.admin_token, seconds_between_requests=0,
                              seconds_between_writes=0, etag_cache_dir=tmp_path / "etags")

    def one_pass() -> tuple[dict[str, int], int, dict[int, int]]:
        sandbox.control.reset_counts()
        with GitHubGateway(settings, sandbox_repo) as gh:
            state = with_dispatch_facts(gh, read_open_items(gh, rules), rules)
            counts = sandbox.control.counts()
            return counts, gh.rate_points, {n: a.count for n, a in state.attempts.items()}

    with GitHubGateway(settings, sandbox_repo) as gh:  # two failed passes on the first item
        dispatched = sorted(n for d in planner.plan(read_open_items(gh, rules), rules).dispatches for n in d.items)
        assert len(dispatched) >= 3
        for k in range(2):
            record_attempt(gh, dispatched[0], f"pass-{k}", "no report", limit=3)
    comment_on(sandbox, sandbox_repo, list(range(1, 301)) * 2 + list(range(301, 341)), "chatter on")  # 640
    time.sleep(1.1)
    comment_on(sandbox, sandbox_repo, [1], "the newest before the first pass:")
    time.sleep(1.1)  # nothing else shares the newest comment's second

    counts, _, attempts = one_pass()
    assert counts[LISTING] == 7  # the first pass lists every comment: 643, 7 pages
    assert attempts[dispatched[0]] == 2 and set(attempts) == set(dispatched)
    assert counts[PER_ITEM] == 1  # the one item with markers, re-read whole

    comment_on(sandbox, sandbox_repo, list(range(2, 100)), "changed since:")
    time.sleep(1.1)
    comment_on(sandbox, sandbox_repo, [100], "changed since:")  # 99 + the newest one again
    time.sleep(1.1)  # the newest comment alone in its second (the next pass lists again what shares it)
    counts, _, attempts = one_pass()
    assert counts[LISTING] == 1 and attempts[dispatched[0]] == 2
    comment_on(sandbox, sandbox_repo, list(range(101, 301)) + [dispatched[1]], "more:")  # 201 + 1 more
    time.sleep(1.1)  # the attempt below is the newest comment, alone in its second (a listing
    # `since` that second lists again what shares it: a fast machine writes 100+ comments a second)
    with GitHubGateway(settings, sandbox_repo) as gh:
        record_attempt(gh, dispatched[2], "pass-9", "timeout", limit=3)
    counts, _, attempts = one_pass()
    assert counts[LISTING] == 3 and (attempts[dispatched[1]], attempts[dispatched[2]]) == (0, 1)

    counts, points, _ = one_pass()  # nothing changed: one page, at a new `since` (1 point)
    assert counts[LISTING] == 1 and points == 1
    counts, points, _ = one_pass()  # the same page again: answered 304, free
    assert counts[LISTING] == 1 and points == 0

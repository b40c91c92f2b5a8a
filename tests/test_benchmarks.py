"""The benchmark scripts: their pure parts by table, and a tiny-size smoke run of each
(real subprocess, real sandbox). Nothing here is timed: the figures are only parsed."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conductor.config import PipelineConfig
from conductor.models import Issue, PipelineState, PullRequest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
P1, P2, P4 = "phase-1/db-schema", "phase-2/core-api", "phase-4/new-ui-pages"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


state_read = load("bench_state_read")
bench_plan = load("bench_plan")


def snapshot(*items: Issue | PullRequest) -> PipelineState:
    return PipelineState(repo="octo/maestro", issues=[i for i in items if isinstance(i, Issue)],
                         pull_requests=[p for p in items if isinstance(p, PullRequest)])


def issues(first: int, count: int, *labels: str) -> list[Issue]:
    return [Issue(number=n, labels=list(labels)) for n in range(first, first + count)]


# -- seed_query_cost --------------------------------------------------------------------------
# (search, listing, item, active phases, number of wrong counts), worked out by hand from the
# seed's STEPS 2, 3, 4 and 7 with 7 phases.
SEED_COST_CASES = {
    # 7 counts + PR list; 7 recounts; nothing active; REMAINING_* both 0: no reminder body.
    "empty": (snapshot(), (14, 3, 0, [], 0)),
    # + 1 listing of P2; P2 active: 1 listing + 1 "closes #1" search; 1 issue view;
    # reminder body: 7 counts + gated list (search) + failed PR list (listing).
    "one issue in phase 2": (snapshot(Issue(number=1, labels=[P2])), (25, 5, 1, [P2], 0)),
    # P2 waits on P1; #1 is closed by an open PR, so not ready: no issue view.
    "issue closed by a PR": (snapshot(Issue(number=1, labels=[P1]), Issue(number=2, labels=[P2]),
                                      PullRequest(number=3, labels=[P1], body="Closes #1")),
                             (26, 5, 0, [P1], 0)),
    # 35 issues in P4: only 30 are listed, examined (30 searches, 30 views) and counted.
    "35 issues in one phase": (snapshot(*issues(1, 35, P4)), (54, 5, 30, [P4], 4)),
    # 51 PRs outside any phase: the --limit 50 PR listing loses one.
    "51 PRs": (snapshot(*[PullRequest(number=n) for n in range(1, 52)]), (22, 4, 0, [], 1)),
    # A PR closing a P1 issue without a phase label is never found by STEP 3.
    "unlabelled PR": (snapshot(Issue(number=1, labels=[P1]), PullRequest(number=2, body="Fixes #1")),
                      (25, 5, 0, [P1], 1)),
}


@pytest.mark.parametrize("state, expected", SEED_COST_CASES.values(), ids=SEED_COST_CASES.keys())
def test_seed_query_cost(state: PipelineState, expected: tuple) -> None:
    cost = state_read.seed_query_cost(state, PipelineConfig())
    search, listing, item, active, wrong = expected
    assert (cost["search"], cost["listing"], cost["item"], cost["active_phases"], len(cost["wrong"])) == (
        search, listing, item, active, wrong), cost
    assert cost["requests"] == search + listing + item
    assert cost["requests"] == sum(n for step in cost["by_step"].values() for n in step.values())


@pytest.mark.parametrize("wanted", [
    "STEP 2 count and listing of phase-4/new-ui-pages: sees 30 of 35",
    "STEP 3 issues examined for readiness in phase-4/new-ui-pages: sees 30 of 35",
    "STEP 7 REMAINING_ISSUES: sees 30 of 35",
    "STEP 7 reminder count of phase-4/new-ui-pages: sees 30 of 35",
])
def test_seed_query_cost_names_truncated_counts(wanted: str) -> None:
    cost = state_read.seed_query_cost(snapshot(*issues(1, 35, P4)), PipelineConfig())
    assert any(line.startswith(wanted) for line in cost["wrong"]), cost["wrong"]


# -- classify_server_counts ---------------------------------------------------------------------
COUNT_CASES = {
    "gateway read": ({"GET /repos/{owner}/{repo}/issues": 4, "GET /repos/{owner}/{repo}/pulls": 1,
                      "GET /repos/{owner}/{repo}/pulls/{pull_number}/files": 24},
                     {"listing": 5, "files": 24, "search": 0, "other": 0}),
    "per-issue gets": ({"GET /repos/{owner}/{repo}/issues": 1,
                        "GET /repos/{owner}/{repo}/issues/{issue_number}": 9},
                       {"listing": 1, "files": 0, "search": 0, "other": 9}),
    "search and unmatched": ({"GET /search/issues": 2, "GET <unmatched>": 1, "POST /repos/{owner}/{repo}/issues": 3},
                             {"listing": 0, "files": 0, "search": 2, "other": 4}),
}


@pytest.mark.parametrize("counts, expected", COUNT_CASES.values(), ids=COUNT_CASES.keys())
def test_classify_server_counts(counts: dict[str, int], expected: dict[str, int]) -> None:
    assert state_read.classify_server_counts(counts) == expected


@pytest.mark.parametrize(("issues", "prs", "pages"), [(0, 0, 2), (300, 60, 5), (2000, 300, 26), (100, 0, 2)])
def test_listing_budget_is_the_pages_of_the_two_listings(issues: int, prs: int, pages: int) -> None:
    assert state_read.listing_budget(issues, prs) == pages


def test_files_are_read_only_for_dispatchable_prs_at_2000_issues_and_300_prs() -> None:
    """The state of `bench_state_read.py --issues 2000 --prs 300`, planned offline: file
    listings go only to PRs that could be dispatched (no draft, claimed, waiting or gated)."""
    from conductor.planner import plan, prs_needing_files
    from conductor.models import PlanRules

    config = PipelineConfig()
    specs = state_read.issue_specs(2000, config.phase_names)
    prs = state_read.pr_specs(300, specs)
    state = PipelineState(
        repo="o/r",
        issues=[Issue(number=i + 1, labels=s["labels"], body=s["body"]) for i, s in enumerate(specs)],
        pull_requests=[PullRequest(number=2001 + j, labels=p["labels"], body=p["body"], draft=p["draft"],
                                   files=list(p["files"])) for j, p in enumerate(prs)])
    wanted = set(prs_needing_files(state, PlanRules(config=config)))
    decided = plan(state, PlanRules(config=config))
    pr_numbers = {p.number for p in state.pull_requests}
    dispatchable = {n for d in decided.dispatches for n in d.items} & pr_numbers
    gated_prs = {g.number for g in decided.gated if g.kind == "pr"}
    assert dispatchable <= wanted | gated_prs  # every PR dispatched either had its files read or is gated anyway
    assert wanted <= dispatchable | gated_prs | set(decided.deferred)  # none for a PR no rule could dispatch
    reasons = {g.number: g.reason for g in decided.gated}
    assert all(reasons[n].startswith("changes protected path") for n in wanted & gated_prs), \
        "files were read for a PR already gated by a label, a gated phase or a fork"
    assert len(wanted) == 75  # of 300 (117 before: every PR in an active phase, gated or not)


# -- builders -------------------------------------------------------------------------------------

@pytest.mark.parametrize("items, n_issues, n_prs", [(1, 1, 0), (10, 8, 2), (1000, 800, 200)])
def test_synthetic_state_size_and_mix(items: int, n_issues: int, n_prs: int) -> None:
    state = bench_plan.synthetic_state(items, PipelineConfig().phase_names)
    assert (len(state.issues), len(state.pull_requests)) == (n_issues, n_prs)
    numbers = [i.number for i in state.issues] + [p.number for p in state.pull_requests]
    assert sorted(numbers) == list(range(1, items + 1))


def test_pr_specs_link_issues_and_vary() -> None:
    specs = state_read.issue_specs(70, PipelineConfig().phase_names)
    prs = state_read.pr_specs(20, specs)
    assert [p["body"].split("\n")[0] for p in prs[:3]] == ["Closes #1", "Closes #4", "Closes #8"]
    assert len({p["branch"] for p in prs}) == 20
    assert sum(p["draft"] for p in prs) == 2
    assert sum(state_read.PROTECTED_FILE in p["files"] for p in prs) == 3
    assert sum(not p["labels"] for p in prs) == 5


# -- smoke runs -------------------------------------------------------------------------------------

def run_script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_bench_state_read_smoke() -> None:
    out = run_script("bench_state_read.py", "--issues", "5", "--prs", "2")
    client = int(re.search(r"client-side requests: (\d+)", out)[1])
    server = int(re.search(r"server-side requests: (\d+)", out)[1])
    assert client == server > 0, out
    assert re.search(r"listing requests: \d+ +file-listing requests: \d+ +search requests: 0", out), out
    assert re.search(r"read_state: 5 open issues, 2 open PRs in [0-9.]+ s wall", out), out
    assert re.search(r"^goal: .*: (PASS|FAIL)$", out, re.MULTILINE), out
    assert re.search(r"the seed's gh queries .*: \d+ requests = \d+ search", out), out


@pytest.mark.slow
def test_bench_plan_smoke() -> None:
    out = run_script("bench_plan.py", "--items", "200", "--repeat", "2")
    assert "= 200 items" in out, out
    for step in ("planner.plan", "planner.prs_needing_files", "PipelineState.model_validate_json"):
        assert re.search(rf"{re.escape(step)} +best +[0-9.]+ ms +median +[0-9.]+ ms", out), out
    assert re.search(r"^goal: plan 10,000 items under 1 s, .*: (PASS|FAIL)$", out, re.MULTILINE), out


@pytest.mark.parametrize("module, args", [
    (bench_plan, ["--items", "0"]),
    (bench_plan, ["--repeat", "0"]),
    (state_read, ["--issues", "-1"]),
])
def test_bad_sizes_exit_2(module: ModuleType, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        module.main(args)
    assert exc.value.code == 2

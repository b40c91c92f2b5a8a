"""The benchmark scripts: their pure parts by table, and a tiny-size smoke run of each
(real subprocess, real sandbox). Nothing here is timed: the figures are only parsed."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conductor.core.config import PipelineConfig
from conductor.core.models import Issue, PipelineState, PullRequest

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
                     {"listing": 5, "files": 24, "comments": 0, "search": 0, "other": 0}),
    "attempts": ({"GET /repos/{owner}/{repo}/issues/comments": 2,
                  "GET /repos/{owner}/{repo}/issues/{issue_number}/comments": 1},
                 {"listing": 0, "files": 0, "comments": 2, "search": 0, "other": 1}),
    "per-issue gets": ({"GET /repos/{owner}/{repo}/issues": 1,
                        "GET /repos/{owner}/{repo}/issues/{issue_number}": 9},
                       {"listing": 1, "files": 0, "comments": 0, "search": 0, "other": 9}),
    "search and unmatched": ({"GET /search/issues": 2, "GET <unmatched>": 1, "POST /repos/{owner}/{repo}/issues": 3},
                             {"listing": 0, "files": 0, "comments": 0, "search": 2, "other": 4}),
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
    from conductor.core.planner import plan, prs_needing_files
    from conductor.core.settings import Settings

    config = PipelineConfig()
    specs = state_read.issue_specs(2000, config.phase_names)
    prs = state_read.pr_specs(300, specs)
    state = PipelineState(
        repo="o/r",
        issues=[Issue(number=i + 1, labels=s["labels"], body=s["body"]) for i, s in enumerate(specs)],
        pull_requests=[PullRequest(number=2001 + j, labels=p["labels"], body=p["body"], draft=p["draft"],
                                   files=list(p["files"])) for j, p in enumerate(prs)])
    wanted = set(prs_needing_files(state, Settings(pipeline=config)))
    decided = plan(state, Settings(pipeline=config))
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
    out = run_script("bench_state_read.py", "--issues", "5", "--prs", "2", "--changed", "3")
    client = int(re.search(r"client-side requests: (\d+)", out)[1])
    server = int(re.search(r"server-side requests: (\d+)", out)[1])
    assert client == server > 0, out
    assert re.search(r"listing requests: \d+ +file-listing requests: \d+ +search requests: 0", out), out
    assert re.search(r"read_state: 5 open issues, 2 open PRs in [0-9.]+ s wall", out), out
    assert re.search(r"^goal: .*: (PASS|FAIL)$", out, re.MULTILINE), out
    assert re.search(r"3 comments changed since: 1 comment-listing page\(s\) \(goal <= 1: PASS\)", out), out
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


# -- bench_makespan: the critical path, the cron ticks, the goal ------------------------------------

makespan = load("bench_makespan")
Item = makespan.Item
CHAINS = {"p1": [], "p2": ["p1"], "p3": ["p2"], "q1": []}


def item(number: int, phase: str = "p1", files: tuple[str, ...] = (), depends_on: tuple[int, ...] = (),
         rework_rounds: int = 0) -> Item:
    return Item(number=number, phase=phase, files=frozenset(files), depends_on=list(depends_on),
                rework_rounds=rework_rounds)


def impl_review(*numbers: int) -> list[str]:
    return [step for n in numbers for step in (f"implement #{n}", f"review #{n}")]


def REBASED(n: int) -> list[str]:  # noqa: N802 - reads as a step list
    return [f"review #{n}", f"rebase #{n}", f"review #{n}"]


CRITICAL_PATH_CASES = {
    "one issue: implement, then review": ([item(1)], impl_review(1)),
    "independent issues of one phase run side by side": ([item(1), item(2), item(3)], impl_review(1)),
    "a phase waits for the reviews of the one it depends on": (
        [item(1, "p1"), item(2, "p2")], impl_review(1, 2)),
    "transitive: p3 waits for p1 even when p2 has no issue": (
        [item(1, "p1"), item(2, "p3")], impl_review(1, 2)),
    "Depends on #N: implement after N's review": ([item(1), item(2, depends_on=(1,))], impl_review(1, 2)),
    "a dependency on a number outside the pipeline is ignored": ([item(2, depends_on=(99,))], impl_review(2)),
    "a self-reference is ignored": ([item(2, depends_on=(2,))], impl_review(2)),
    "shared files: reviews one after the other, the second after a rebase": (
        [item(1, files=("a.py",)), item(2, files=("a.py", "b.py"))],
        ["implement #1", "review #1", *REBASED(2)]),
    "a line of three overlapping PRs": (
        [item(1, files=("a",)), item(2, files=("a",)), item(3, files=("a",))],
        ["implement #1", "review #1", *REBASED(2), *REBASED(3)]),
    "a rebase, then a rework round": (
        [item(1, files=("a",)), item(2, files=("a",), rework_rounds=1)],
        ["implement #1", "review #1", "review #2", "rebase #2", "review #2", "rework #2", "review #2"]),
    "shared files across phases do not chain the reviews": (
        [item(1, "p1", files=("a",)), item(2, "q1", files=("a",))], impl_review(1)),
    "the longest of two chains wins": (
        [item(1, "p1"), item(2, "p2"), item(3, "p3"), item(4, "q1"), item(5, "q1", depends_on=(4,))],
        impl_review(1, 2, 3)),
    "a rework round: review, rework, review": (
        [item(1, rework_rounds=1)], ["implement #1", "review #1", "rework #1", "review #1"]),
    "two rounds": ([item(1, rework_rounds=2)], ["implement #1", *["review #1", "rework #1"] * 2, "review #1"]),
    "a rework round makes a shorter chain the longest": (
        [item(1, "p1"), item(2, "p2"), item(3, "q1", rework_rounds=2)],
        ["implement #3", *["review #3", "rework #3"] * 2, "review #3"]),
    "the next phase waits for the merging review, after the round": (
        [item(1, "p1", rework_rounds=1), item(2, "p2")],
        ["implement #1", "review #1", "rework #1", "review #1", *impl_review(2)]),
    "no items: no steps": ([], []),
}


@pytest.mark.parametrize("items, expected", CRITICAL_PATH_CASES.values(), ids=CRITICAL_PATH_CASES)
def test_critical_path(items: list, expected: list[str]) -> None:
    assert makespan.critical_path(items, CHAINS) == expected


def test_critical_path_of_a_dependency_cycle_raises() -> None:
    with pytest.raises(ValueError, match="cycle"):
        makespan.critical_path([item(1, depends_on=(2,)), item(2, depends_on=(1,))], CHAINS)


def test_the_demo_pipelines_critical_path_is_eleven_leaves() -> None:
    """The sample pipeline as the sandbox numbers it (issues in file order): phase 1's two
    migrations share files, so their reviews chain and the second PR needs a rebase; then
    phase 2's #4, whose first review is graded down (a rework round), and phase 3."""
    pipeline = json.loads((ROOT / "conductor" / "sample_pipeline.json").read_text(encoding="utf-8"))
    issues = [{"number": n, "labels": [{"name": lab} for lab in i["labels"]], "body": i["body"]}
              for n, i in enumerate(pipeline["issues"], 1)]
    config = PipelineConfig()
    items = makespan.items_from_issues(issues, config.phase_names, "maintainer/sample-pipeline")
    assert [i.number for i in items] == list(range(1, 13))
    assert items[7].depends_on == [7] and items[0].files == items[1].files == {"migrations/", "app/models.py"}
    assert makespan.review_after(items) == {2: 1}
    chain = makespan.critical_path(items, {p.name: p.depends_on for p in config.phases})
    assert [i.number for i in items if i.rework_rounds] == [4]
    assert chain == ["implement #1", "review #1", *REBASED(2), "implement #4", "review #4", "rework #4",
                     "review #4", *impl_review(6)]


def test_items_from_issues_reads_phase_files_and_dependencies() -> None:
    issues = [
        {"number": 5, "labels": ["p2", "batch-01"], "body": "Depends on #3\n\nFiles: `a.py`, b.py"},
        {"number": 3, "labels": [{"name": "p1"}], "body": None},
        {"number": 4, "labels": ["bug", "batch-01"], "body": "no phase: outside the pipeline"},
    ]
    assert makespan.items_from_issues(issues, ["p1", "p2"], "o/r") == [
        item(3, "p1"), item(5, "p2", files=("a.py", "b.py"), depends_on=(3,))]


@pytest.mark.parametrize("now, t0, every, tick", [
    (0.0, 0.0, 30.0, 0.0),      # at t0: the first tick
    (12.5, 0.0, 30.0, 30.0),    # a pass ended mid-interval: the next tick
    (30.0, 0.0, 30.0, 30.0),    # exactly on a tick: that tick
    (61.0, 0.0, 30.0, 90.0),    # the pass ran over the 60 s tick: skipped
    (105.0, 100.0, 10.0, 110.0),
])
def test_next_tick(now: float, t0: float, every: float, tick: float) -> None:
    assert makespan.next_tick(now, t0, every) == pytest.approx(tick)


@pytest.mark.parametrize("seconds, ideal_s, verdict", [
    (94.0, 70.0, "PASS (94.0 s)"),    # 1.2 × 70 + 10 = 94: on the limit passes
    (94.1, 70.0, "FAIL (94.1 s)"),
    (10.0, 0.0, "PASS (10.0 s)"),     # D = 0: only the 10 s slack
    (None, 70.0, "not measured"),
])
def test_makespan_goal_line(seconds: float | None, ideal_s: float, verdict: str) -> None:
    line = makespan.goal_line("deployed on-change", seconds, ideal_s)
    assert line.startswith("goal: deployed on-change makespan <= 1.2 x critical path + 10 s")
    assert line.endswith(f": {verdict}")


def test_makespan_table_ratios_and_waiting() -> None:
    rows = [{"mode": "cron", "label": "cron T=30 s", "makespan_s": 140.0, "deliveries": None,
             "passes": [{"start": 0.0, "seconds": 20.0, "leaves": 4}, {"start": 120.0, "seconds": 20.0, "leaves": 2}]},
            {"mode": "event", "label": "event-driven", "error": "RuntimeError: stalled", "passes": []},
            {"mode": "deployed", "label": "deployed", "makespan_s": 105.0, "deliveries": 9,
             "passes": [{"start": 2.0, "seconds": 12.0}, {"start": 30.0, "seconds": 13.0}]}]
    lines = makespan.table(rows, 70.0).splitlines()
    assert lines[2].split() == ["ideal", "70.0", "1.00", "-", "-", "-", "-", "-"]
    assert lines[3].split() == ["cron", "T=30", "s", "140.0", "2.00", "2", "40.0", "100.0", "6", "-"]
    assert lines[4] == f"{'event-driven':<16} broke: RuntimeError: stalled"
    # served runs are counted from Prefect, their leaves are not known: "-", never 0
    assert lines[5].split() == ["deployed", "105.0", "1.50", "2", "25.0", "80.0", "-", "9"]


def test_the_deployed_modes_idle_is_the_planners_no_open_phased_item(sandbox) -> None:
    from shell.demo import SAMPLE_PIPELINE
    from github_sandbox.seed import seed_pipeline
    from conftest import unique_repo_name

    repo = seed_pipeline(sandbox.api_url, sandbox.admin_token, f"admin/{unique_repo_name('idle')}",
                         pipeline=SAMPLE_PIPELINE)
    assert not makespan._pipeline_idle(sandbox.api_url, sandbox.admin_token, repo)
    with sandbox.api() as client:
        issues = [i for i in client.get(f"/repos/{repo}/issues", params={"state": "open", "per_page": 100}).json()]
        for issue in issues:
            client.patch(f"/repos/{repo}/issues/{issue['number']}", json={"state": "closed"}).raise_for_status()
        # an open issue in no phase (the reminder, say) leaves the pipeline idle
        client.post(f"/repos/{repo}/issues", json={"title": "Pipeline status"}).raise_for_status()
    assert makespan._pipeline_idle(sandbox.api_url, sandbox.admin_token, repo)


@pytest.mark.parametrize("args", [["--modes", "hourly"], ["--modes", "event,event"], ["--modes", ""],
                                  ["--step", "-1"], ["--every", "0"]])
def test_bench_makespan_bad_options_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert makespan.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench_makespan: ") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_makespan_smoke() -> None:
    """Event mode with leaves that take no time: the pipeline reaches idle through real
    webhook deliveries, and the figures printed agree with each other. Times nothing."""
    proc = subprocess.run([sys.executable, str(BENCH / "bench_makespan.py"), "--step", "0", "--modes", "event"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-2000:]
    assert "critical path: 11 leaves x 0 s = 0.0 s" in out, out
    row = re.search(r"^event-driven +([0-9.]+) +\S+ +(\d+) +([0-9.]+) +([0-9.]+) +(\d+) +(\d+)$", out, re.MULTILINE)
    assert row, out
    total, passes, busy, waiting, leaves, deliveries = row.groups()
    assert float(busy) + float(waiting) == pytest.approx(float(total), abs=0.15)
    assert int(passes) >= 6 and int(leaves) >= 24 and int(deliveries) > 0  # 12 issues, 12 PRs
    assert re.search(r"^goal: event-driven makespan .*: (PASS|FAIL) \([0-9.]+ s\)$", out, re.MULTILINE), out


@pytest.mark.parametrize(("lasting", "elapsed", "wait"), [
    (10.0, 0.0, 10.0), (10.0, 3.5, 6.5), (10.0, 10.0, 0.0), (10.0, 12.0, 0.0), (0.0, 1.0, 0.0),
])
def test_a_lasting_agent_waits_out_only_the_rest(lasting: float, elapsed: float, wait: float) -> None:
    from shell.demo_agent import remaining

    assert remaining(lasting, elapsed) == pytest.approx(wait)


def test_a_lasting_agent_process_lasts_its_seconds_its_work_included(tmp_path: Path) -> None:
    """The benchmark's leaves: a real demo agent process, `--lasting 1.5`, with a report to
    write (its work) lasts 1.5 s from its start, not 1.5 s plus its work."""
    import os
    import subprocess
    import sys
    import time

    (tmp_path / "task").write_text("WORKFLOW=issue-to-pr\nISSUE_NUMBER=3\n", encoding="utf-8")
    env = dict(os.environ, CONDUCTOR_TASK_FILE=str(tmp_path / "task"), CONDUCTOR_REPORT_FILE=str(tmp_path / "r"))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "shell.demo_agent", "--mode", "garbage", "--lasting", "1.5"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    lasted = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r").read_text(encoding="utf-8").startswith("this is not json")
    assert lasted >= 1.5

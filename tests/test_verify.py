"""Artifact proof rules: every coordinator claim is checked against GitHub facts."""
from __future__ import annotations

import pytest

from conductor.core.models import Dispatch
from conductor.core.reports import AgentReport
from conductor.core.verify import (
    CoordinatorFailure,
    FailedPR,
    PullFacts,
    RunFacts,
    parse_pr_url,
    pr_numbers_to_check,
    verify,
    verify_issue_to_pr,
    verify_pr_review,
)

REPO = "owner/repo"
URL = "https://github.com/owner/repo/pull/{}"
OK_RUN = RunFacts(returncode=0)
ISSUES = Dispatch(kind="issue_to_pr", phase="phase-1/db", batch="batch-01", items=[12, 13])
REVIEWS = Dispatch(kind="pr_review", phase="phase-1/db", batch="batch-01", items=[50, 51])


def pr(number: int, **changes) -> PullFacts:
    facts = dict(
        number=number, repo_full_name=REPO, html_url=URL.format(number), state="open",
        head_ref=f"feat/{number}", head_repo_full_name=REPO, base_ref="main",
        linked_issues=[number - 28],  # PR 40 closes issue 12, PR 41 closes issue 13
        title=f"PR {number}",
    )
    return PullFacts(**(facts | changes))


def issues_report(*claims: tuple[int, str], status: str = "done", message: str = "") -> AgentReport:
    return AgentReport.model_validate({
        "workflow": "issue_to_pr", "status": status, "message": message,
        "issues": [{"issue": i, "pr_url": u} for i, u in claims],
    })


def reviews_report(*claims: tuple[int, str, bool], status: str = "done") -> AgentReport:
    return AgentReport.model_validate({
        "workflow": "pr_review", "status": status,
        "reviews": [{"pr": n, "grade": g, "merged": m} for n, g, m in claims],
    })


BOTH = issues_report((12, URL.format(40)), (13, URL.format(41)))
GOOD_PRS = {40: pr(40), 41: pr(41)}


# --- parse_pr_url -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/owner/repo/pull/40", ("owner/repo", 40)),
        ("https://github.com/owner/repo/pull/40/", ("owner/repo", 40)),
        ("https://github.com/owner/repo/pull/40#issuecomment-1", ("owner/repo", 40)),
        ("  https://github.com/Owner/Repo.js/pull/7  ", ("Owner/Repo.js", 7)),
        ("http://127.0.0.1:8765/owner/repo/pull/3", ("owner/repo", 3)),
        ("https://ghe.example.com/o-1/r_2/pull/9", ("o-1/r_2", 9)),
        ("https://github.com/owner/repo/issues/40", None),
        ("https://github.com/owner/repo/pull/40/files", None),
        ("https://github.com/owner/repo/pull/40?x=1", None),
        ("https://github.com/owner/repo/pull/0", None),
        ("https://github.com/owner/repo/pull/-1", None),
        ("https://github.com/owner/repo/pull/4x", None),
        ("https://github.com/owner/repo/pulls/40", None),
        ("https://api.github.com/repos/owner/repo/pulls/40", None),
        ("https://github.com/owner/pull/40", None),
        ("https://github.com/owner/repo//pull/40", None),
        ("https://github.com/owner/../pull/40", None),
        ("https://user:pw@github.com/owner/repo/pull/40", None),
        ("ftp://github.com/owner/repo/pull/40", None),
        ("javascript:alert(1)//github.com/owner/repo/pull/40", None),
        ("github.com/owner/repo/pull/40", None),
        ("http:/owner/repo/pull/40", None),
        ("https:///owner/repo/pull/40", None),
        ("/owner/repo/pull/40", None),
        ("#40", None),
        ("", None),
        ("http://[::1/owner/repo/pull/1", None),
    ],
)
def test_parse_pr_url(url, expected):
    assert parse_pr_url(url) == expected


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("http://127.0.0.1:8765/owner/repo/pull/3", "http://127.0.0.1:8765", ("owner/repo", 3)),
        ("https://github.com/owner/repo/pull/3", "http://127.0.0.1:8765", None),
        ("https://GitHub.com/owner/repo/pull/3", "https://github.com/", ("owner/repo", 3)),
        ("https://h.example/git/owner/repo/pull/3", "https://h.example/git", ("owner/repo", 3)),
        ("https://h.example/owner/repo/pull/3", "https://h.example/git", None),
    ],
)
def test_parse_pr_url_with_html_base(url, base, expected):
    assert parse_pr_url(url, base) == expected


# --- pr_numbers_to_check -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("dispatch", "report", "expected"),
    [
        (ISSUES, BOTH, [40, 41]),
        (ISSUES, issues_report((12, URL.format(40)), (13, URL.format(40))), [40]),
        (ISSUES, issues_report((12, "https://github.com/other/repo/pull/40")), []),
        (ISSUES, issues_report((99, URL.format(77))), []),
        (ISSUES, issues_report((12, "not a url")), []),
        (ISSUES, issues_report((12, "https://github.com/OWNER/REPO/pull/5")), [5]),
        (ISSUES, None, []),
        (ISSUES, reviews_report((50, "A", True)), []),
        (REVIEWS, reviews_report((51, "A", True), (50, "D", False), (99, "A", True)), [50, 51]),
    ],
)
def test_pr_numbers_to_check(dispatch, report, expected):
    assert pr_numbers_to_check(dispatch, report, repo=REPO) == expected


# --- verify_issue_to_pr ------------------------------------------------------------------

def _check(outcome, ok, failures, verified):
    assert outcome.ok is ok
    assert outcome.failures == failures
    assert outcome.verified_prs == verified
    assert (outcome.kind, outcome.phase, outcome.batch, outcome.items) == (
        "issue_to_pr", "phase-1/db", "batch-01", [12, 13])


ISSUE_CASES = {
    "happy path": (BOTH, OK_RUN, GOOD_PRS, True, [], [40, 41]),
    "sandbox URL, repo case differs": (
        issues_report((12, "http://127.0.0.1:9/Owner/Repo/pull/40"), (13, URL.format(41))),
        OK_RUN, GOOD_PRS, True, [], [40, 41]),
    "PR already merged": (BOTH, OK_RUN, {40: pr(40, state="closed", merged=True), 41: pr(41)},
                          True, [], [40, 41]),
    "one PR closes both issues": (
        issues_report((12, URL.format(40)), (13, URL.format(40))),
        OK_RUN, {40: pr(40, linked_issues=[12, 13])}, True, [], [40]),
    "crash without report": (
        None, RunFacts(returncode=1, report_error="report file not found"), {}, False,
        ["agent exited with status 1", "agent report unreadable: report file not found"], []),
    "crash with a valid report keeps verified PRs": (
        BOTH, RunFacts(returncode=3), GOOD_PRS, False, ["agent exited with status 3"], [40, 41]),
    "killed by a signal": (
        None, RunFacts(returncode=-9), {}, False,
        ["agent was killed by signal 9", "agent wrote no report"], []),
    "timeout": (
        None, RunFacts(timed_out=True, timeout_s=1800), {}, False,
        ["agent timed out after 1800 s", "agent wrote no report"], []),
    "unreadable report": (
        None, RunFacts(returncode=0, report_error="invalid JSON: line 1 column 2"), {}, False,
        ["agent report unreadable: invalid JSON: line 1 column 2"], []),
    "no report": (None, OK_RUN, {}, False, ["agent wrote no report"], []),
    "report of the other workflow": (
        reviews_report((50, "A", True)), OK_RUN, {}, False,
        ["agent report is for pr_review, expected issue_to_pr"], []),
    "done with no artifacts": (issues_report(), OK_RUN, {}, False,
                               ["reported done with no artifacts"], []),
    # blocked with a reason: listed as blocked item by item, not a failure (and not proved)
    "blocked": (issues_report(status="blocked", message="cannot\nresolve deps"), OK_RUN, {},
                False, [], []),
    "blocked without message": (issues_report(status="blocked"), OK_RUN, {}, False,
                                ["agent reported blocked: no message"], []),
    "failed without message": (issues_report(status="failed"), OK_RUN, {}, False,
                               ["agent reported failed: no message"], []),
    "claim for an issue not dispatched": (
        issues_report((12, URL.format(40)), (13, URL.format(41)), (99, URL.format(42))),
        OK_RUN, GOOD_PRS, False,
        ["claimed issue #99 was not dispatched to this coordinator"], [40, 41]),
    "PR URL of another repository": (
        issues_report((12, "https://github.com/other/repo/pull/40"), (13, URL.format(41))),
        OK_RUN, GOOD_PRS, False,
        ["issue #12: PR URL https://github.com/other/repo/pull/40 is not in owner/repo"], [41]),
    "not a PR URL": (
        issues_report((12, "https://github.com/owner/repo/issues/12"), (13, URL.format(41))),
        OK_RUN, GOOD_PRS, False,
        ["issue #12: https://github.com/owner/repo/issues/12 is not a pull request URL"], [41]),
    "PR from the default branch": (
        BOTH, OK_RUN, {40: pr(40, head_ref="main"), 41: pr(41)}, False,
        ["issue #12: PR #40 is opened from the default branch main"], [41]),
    "PR from a fork": (
        BOTH, OK_RUN, {40: pr(40, head_repo_full_name="evil/repo"), 41: pr(41)}, False,
        ["issue #12: PR #40 comes from evil/repo, not from a branch of owner/repo"], [41]),
    "PR whose head repository is gone": (
        BOTH, OK_RUN, {40: pr(40, head_repo_full_name=""), 41: pr(41)}, False,
        ["issue #12: PR #40 comes from a deleted repository, not from a branch of owner/repo"],
        [41]),
    "PR not linking the issue": (
        BOTH, OK_RUN, {40: pr(40, linked_issues=[13]), 41: pr(41)}, False,
        ["issue #12: PR #40 does not link issue #12 with a closing keyword"], [41]),
    "nonexistent PR": (
        BOTH, OK_RUN, {40: pr(40, exists=False), 41: pr(41)}, False,
        ["issue #12: PR #40 does not exist in owner/repo"], [41]),
    "PR not fetched": (BOTH, OK_RUN, {41: pr(41)}, False,
                       ["issue #12: PR #40 does not exist in owner/repo"], [41]),
    "PR closed without merge": (
        BOTH, OK_RUN, {40: pr(40, state="closed"), 41: pr(41)}, False,
        ["issue #12: PR #40 is closed without being merged"], [41]),
    "issue without a claim": (
        issues_report((12, URL.format(40))), OK_RUN, GOOD_PRS, False,
        ["issue #13: not done, no PR claimed"], [40]),
    "issue claimed twice": (
        issues_report((12, URL.format(40)), (13, URL.format(41)), (12, URL.format(41))),
        OK_RUN, GOOD_PRS, False, ["issue #12 is claimed more than once"], [40, 41]),
}


@pytest.mark.parametrize(
    ("report", "run", "prs", "ok", "failures", "verified"),
    list(ISSUE_CASES.values()), ids=list(ISSUE_CASES),
)
def test_verify_issue_to_pr(report, run, prs, ok, failures, verified):
    outcome = verify_issue_to_pr(ISSUES, report, run, prs, repo=REPO, default_branch="main")
    _check(outcome, ok, failures, verified)
    assert [r.number for r in outcome.results] == [12, 13]
    assert {r.pr for r in outcome.results if r.ok} == set(verified)
    for result in outcome.results:
        assert result.ok == (result.pr is not None)
        assert result.ok or result.reason


def test_item_results_name_the_proved_pr_and_the_reason():
    report = issues_report((12, URL.format(40)), (13, URL.format(41)))
    outcome = verify_issue_to_pr(
        ISSUES, report, OK_RUN, {40: pr(40), 41: pr(41, linked_issues=[])},
        repo=REPO, default_branch="main",
    )
    first, second = outcome.results
    assert (first.ok, first.pr, first.reason) == (True, 40, "")
    assert (second.ok, second.pr) == (False, None)
    assert second.reason == "PR #41 does not link issue #13 with a closing keyword"


def test_long_agent_message_is_shortened():
    report = issues_report(status="failed", message="x" * 4000)
    outcome = verify_issue_to_pr(ISSUES, report, OK_RUN, {}, repo=REPO, default_branch="main")
    assert len(outcome.failures[0]) < 400 and outcome.failures[0].endswith("…")
    blocked = verify_issue_to_pr(ISSUES, issues_report(status="blocked", message="y" * 4000), OK_RUN, {},
                                 repo=REPO, default_branch="main")
    assert [len(r.reason) < 400 and r.reason.endswith("…") for r in blocked.results] == [True, True]


# --- verify_pr_review --------------------------------------------------------------------

REVIEW_CASES = {
    "merged with grade A": (
        reviews_report((50, "A", True), (51, "B", True)),
        {50: pr(50, state="closed", merged=True), 51: pr(51, state="closed", merged=True)},
        True, [], [50, 51], [], []),
    "claimed merged but not": (
        reviews_report((50, "A", True), (51, "B", True)),
        {50: pr(50), 51: pr(51, state="closed", merged=True)},
        False, ["PR #50: claimed merged but GitHub says it is open and not merged"], [51], [], []),
    "claimed merged but closed": (
        reviews_report((50, "C", True), (51, "B", True)),
        {50: pr(50, state="closed"), 51: pr(51, state="closed", merged=True)},
        False, ["PR #50: claimed merged but GitHub says it is closed and not merged"], [51], [],
        []),
    "grade D stays open": (
        reviews_report((50, "D", False), (51, "A", True)),
        {50: pr(50), 51: pr(51, state="closed", merged=True)},
        True, [], [51], [FailedPR(number=50, grade="D", title="PR 50",
                                  reason="graded D by the reviewer; left open")], []),
    "grade F but merged on GitHub": (
        reviews_report((50, "F", False), (51, "A", True)),
        {50: pr(50, state="closed", merged=True), 51: pr(51, state="closed", merged=True)},
        False, ["PR #50: graded F but GitHub shows it merged"], [51], [], []),
    "grade D claimed merged": (
        reviews_report((50, "D", True), (51, "A", True)),
        {50: pr(50), 51: pr(51, state="closed", merged=True)},
        False, ["PR #50: claimed merged but GitHub says it is open and not merged"], [51], [], []),
    "grade D but closed": (
        reviews_report((50, "D", False), (51, "A", True)),
        {50: pr(50, state="closed"), 51: pr(51, state="closed", merged=True)},
        False, ["PR #50: graded D but closed; a rejected PR must stay open"], [51], [], []),
    # A or B means the reviewer merges (issue #13 item 7): not merged is a failure...
    "passing grade not merged is a failure": (
        reviews_report((50, "B", False), (51, "A", True)),
        {50: pr(50), 51: pr(51, state="closed", merged=True)},
        False, ["PR #50: graded B but not merged"], [51], [], []),
    # ...while C (fix, then grade again) left open is only worth a note
    "grade C not merged is a note": (
        reviews_report((50, "C", False), (51, "A", True)),
        {50: pr(50), 51: pr(51, state="closed", merged=True)},
        True, [], [51], [], ["PR #50 graded C but not merged"]),
    "merged although reported not merged": (
        reviews_report((50, "A", False), (51, "A", True)),
        {50: pr(50, state="closed", merged=True), 51: pr(51, state="closed", merged=True)},
        True, [], [50, 51], [], ["PR #50 is merged on GitHub although the report says not merged"]),
    "review of a PR not dispatched": (
        reviews_report((50, "A", True), (51, "A", True), (99, "A", True)),
        {50: pr(50, merged=True), 51: pr(51, merged=True), 99: pr(99, merged=True)},
        False, ["review for PR #99, which was not dispatched to this coordinator"], [50, 51], [],
        []),
    "nonexistent PR": (
        reviews_report((50, "A", True), (51, "A", True)),
        {50: pr(50, exists=False), 51: pr(51, merged=True)},
        False, ["PR #50 does not exist in owner/repo"], [51], [], []),
    "PR missing a review": (
        reviews_report((50, "A", True)), {50: pr(50, merged=True)},
        False, ["PR #51: not done, no review reported"], [50], [], []),
    "PR reviewed twice": (
        reviews_report((50, "A", True), (51, "A", True), (50, "D", False)),
        {50: pr(50, merged=True), 51: pr(51, merged=True)},
        False, ["PR #50 is reviewed more than once"], [50, 51], [], []),
    "done with no artifacts": (
        reviews_report(), {}, False, ["reported done with no artifacts"], [], [], []),
}


@pytest.mark.parametrize(
    ("report", "prs", "ok", "failures", "merged", "failed_prs", "notes"),
    list(REVIEW_CASES.values()), ids=list(REVIEW_CASES),
)
def test_verify_pr_review(report, prs, ok, failures, merged, failed_prs, notes):
    outcome = verify_pr_review(REVIEWS, report, OK_RUN, prs, repo=REPO)
    assert (outcome.ok, outcome.failures, outcome.merged_prs) == (ok, failures, merged)
    assert (outcome.failed_prs, outcome.notes) == (failed_prs, notes)
    assert [r.number for r in outcome.results] == [50, 51]
    assert outcome.verified_prs == []


def test_a_failing_grade_is_not_a_coordinator_failure_but_is_reported():
    outcome = verify_pr_review(
        REVIEWS, reviews_report((50, "F", False), (51, "D", False)), OK_RUN,
        {50: pr(50), 51: pr(51)}, repo=REPO,
    )
    assert outcome.ok and outcome.failure_records() == []
    assert [(p.number, p.grade) for p in outcome.failed_prs] == [(50, "F"), (51, "D")]
    assert all(r.ok and not r.merged for r in outcome.results)


# --- both kinds --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (RunFacts(returncode=2), "agent exited with status 2"),
        (RunFacts(timed_out=True, timeout_s=12.5), "agent timed out after 12.5 s"),
        (RunFacts(timed_out=True), "agent timed out"),
        (RunFacts(idle_timed_out=True, idle_timeout_s=600), "agent idle: no output for 600 s"),
        (RunFacts(idle_timed_out=True, idle_timeout_s=2.5), "agent idle: no output for 2.5 s"),
        (RunFacts(), "agent did not exit"),
    ],
)
@pytest.mark.parametrize("dispatch", [ISSUES, REVIEWS], ids=["issue_to_pr", "pr_review"])
def test_run_failures_for_both_kinds(dispatch, run, expected):
    outcome = verify(dispatch, None, run, {}, repo=REPO, default_branch="main")
    assert outcome.failures == [expected, "agent wrote no report"]
    assert not outcome.ok and not any(r.ok for r in outcome.results)


def test_coordinators_are_judged_independently():
    prs = GOOD_PRS | {50: pr(50, state="closed", merged=True), 51: pr(51, merged=True)}
    crashed = verify(ISSUES, None, RunFacts(returncode=1), prs, repo=REPO, default_branch="main")
    fine = verify(REVIEWS, reviews_report((50, "A", True), (51, "A", True)), OK_RUN, prs,
                  repo=REPO, default_branch="main")
    assert not crashed.ok and fine.ok and fine.merged_prs == [50, 51]


def test_failure_records_carry_the_coordinator():
    outcome = verify(ISSUES, None, RunFacts(returncode=1), {}, repo=REPO, default_branch="main")
    assert outcome.failure_records() == [
        CoordinatorFailure(kind="issue_to_pr", phase="phase-1/db", batch="batch-01", reason=r)
        for r in ["agent exited with status 1", "agent wrote no report"]
    ]


@pytest.mark.parametrize(
    ("function", "dispatch"),
    [(verify_issue_to_pr, REVIEWS), (verify_pr_review, ISSUES)],
)
def test_wrong_dispatch_kind_is_a_programming_error(function, dispatch):
    kwargs = {"repo": REPO} | ({"default_branch": "main"} if function is verify_issue_to_pr else {})
    with pytest.raises(ValueError, match="expected"):
        function(dispatch, None, OK_RUN, {}, **kwargs)

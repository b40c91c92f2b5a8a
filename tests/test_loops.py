"""The review loops (`conductor/core/loops.py`), pure: which PRs go to a rework or a rebase leaf,
which are held for a human, the markers the conductor keeps on GitHub, the two proofs and the
task files of the two kinds."""
from __future__ import annotations

from pathlib import Path

import pytest

from conductor.core import leaf as leaves
from conductor.core import loops, workflows
from conductor.core.config import PipelineConfig
from conductor.core.models import Dispatch, ItemAttempts, LoopConflict, LoopReview, PullRequest
from conductor.core.planner import prs_needing_mergeable
from conductor.core.render import plan_rows
from conductor.core.verify import ItemResult, CoordinatorOutcome, PullFacts, RunFacts
from test_planner import _no_conductor_env, b, issue, pr, rules, run, state  # noqa: F401 - fixture isolates the env

P4 = "phase-4/new-ui-pages"
H1, H2 = "1" * 40, "2" * 40
LOGIN = "alice"


def looped(number: int, *, head: str = H1, review: LoopReview | None = None, conflict: LoopConflict | None = None,
           mergeable: str | None = "clean", files: tuple[str, ...] | None = None, body: str = "") -> PullRequest:
    return pr(number, P4, b(1), closes=(1,), files=files, body=body).model_copy(update={
        "head_sha": head, "review": review, "conflict": conflict, "mergeable_state": mergeable})


def graded(grade: str = "D", head: str = H1, round_: int = 1) -> LoopReview:
    return LoopReview(grade=grade, head=head, round=round_, pass_id="p1", url="https://x/c/1", text="tests missing")


def kinds(p) -> list[tuple[str, list[int]]]:
    return [(d.kind, d.items) for d in p.dispatches]


# ── the planner ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("pull, expected_kind, held", [
    (looped(5), "pr_review", None),  # nothing recorded: reviewed
    (looped(5, review=graded("D")), "rework", None),  # graded down at its head: back to an implementer
    (looped(5, review=graded("C")), "rework", None),  # C left unfixed counts too
    (looped(5, review=graded("F", round_=2)), "rework", None),  # round 2 of 3
    (looped(5, review=graded("D"), head=H2), "pr_review", None),  # new commits since: reviewed again
    (looped(5, review=graded("D", round_=3)), None, "review"),  # rounds used up: held
    (looped(5, review=graded("D", round_=3), head=H2), "pr_review", None),  # a human pushed: reviewed
    (looped(5, mergeable="dirty"), "rebase", None),  # conflicts with its base: rebased first
    (looped(5, mergeable="unknown"), "pr_review", None),  # GitHub still computing: reviewed
    (looped(5, mergeable="dirty", review=graded("D")), "rework", None),  # the rework brings the base in
    (looped(5, mergeable="dirty", conflict=LoopConflict(head=H1, paths=["a.py"])), None, "conflict"),
    (looped(5, mergeable="dirty", conflict=LoopConflict(head=H2, paths=["a.py"])), "rebase", None),  # moved since
    (looped(5, head="", review=graded("D", head="")), "pr_review", None),  # no head known: never matched
])
def test_which_kind_takes_a_ready_pr_or_whether_it_is_held(pull, expected_kind, held):
    p = run(state(pull))
    assert kinds(p) == ([(expected_kind, [5])] if expected_kind else [])
    assert [h.why for h in p.held_back] == ([held] if held else [])


def test_a_dispatch_carries_the_head_and_the_review_its_leaf_needs():
    [d] = run(state(looped(5, review=graded("D")))).dispatches
    assert (d.heads, d.reviews) == ({5: H1}, {5: graded("D")})


def test_the_hold_after_the_rounds_names_the_grade_and_the_round_everywhere():
    p = run(state(looped(5, review=graded("F", round_=3))), PipelineConfig(item_attempt_limit=3))
    [h] = p.held_back
    assert (h.number, h.grade, h.round, h.last_reason) == (5, "F", 3, "graded F in review round 3 of 3")
    assert loops.held_line(h) == "graded F in 3 review rounds"
    assert ["(failed items)", "needs a human", "", "", "", "#5 (graded F in 3 review rounds)", ""] in plan_rows(p)


def test_the_cap_is_the_per_item_attempt_limit():
    pull = looped(5, review=graded("D", round_=2))
    assert kinds(run(state(pull), PipelineConfig(item_attempt_limit=3))) == [("rework", [5])]
    assert kinds(run(state(pull), PipelineConfig(item_attempt_limit=2))) == []


def test_an_unresolved_conflict_is_held_with_its_paths():
    p = run(state(looped(5, mergeable="dirty", conflict=LoopConflict(head=H1, paths=["app/models.py", "b.py"]))))
    [h] = p.held_back
    assert (h.why, h.conflicts) == ("conflict", ["app/models.py", "b.py"])
    assert h.last_reason == "its rebase could not resolve conflicts in app/models.py, b.py"
    assert loops.held_line(h) == "unresolved conflicts: app/models.py, b.py"


def test_failed_attempts_hold_a_looping_pr_like_any_item():
    st = state(looped(5, review=graded("D"))).model_copy(update={"attempts": {5: ItemAttempts(count=3)}})
    [h] = run(st).held_back
    assert h.why == "attempts"


def test_a_pr_that_merges_after_one_reviewed_this_pass_is_not_rebased_yet():
    # #6 changes the file #5 changes and conflicts with its base: it waits until #5 merged
    st = state(looped(5, files=("app/models.py",)), looped(6, mergeable="dirty", files=("app/models.py",)))
    p = run(st)
    assert kinds(p) == [("pr_review", [5])]
    assert [(w.number, w.blockers) for w in p.waiting] == [(6, [5])]
    # a stated order too
    st = state(looped(5), looped(6, mergeable="dirty", body="Merge after #5"))
    assert kinds(run(st)) == [("pr_review", [5])]
    # once #5 is merged (gone), #6 is rebased
    assert kinds(run(state(looped(6, mergeable="dirty", files=("app/models.py",))))) == [("rebase", [6])]


def test_mergeable_state_is_read_for_the_prs_the_plan_would_review_only():
    st = state(looped(5, mergeable=None), looped(6, mergeable=None, review=graded("D")), looped(7),
               looped(8, mergeable=None).model_copy(update={"draft": True}))
    assert prs_needing_mergeable(st, rules()) == [5]


def test_nothing_is_dispatched_twice_in_one_pass():
    st = state(issue(2, P4, b(1)), looped(5, review=graded("D")), looped(6, mergeable="dirty"), looped(7),
               looped(8, review=graded("C"), mergeable="dirty"))
    numbers = [n for d in run(st).dispatches for n in d.items]
    assert sorted(numbers) == [2, 5, 6, 7, 8] and len(numbers) == len(set(numbers))


# ── the markers ─────────────────────────────────────────────────────────────────


def test_review_and_conflict_comments_read_back_only_from_the_conductor():
    first = loops.render_review_comment("p1", "D", H1, 1, 3, "no tests <!-- --> @admin")
    second = loops.render_review_comment("p2", "C", H2, 2, 3, "still thin")
    conflict = loops.render_conflict_comment("p3", H2, ["a.py", "b `x`.py"])
    comments = [(LOGIN, first, "u1"), ("mallory", loops.render_review_comment("px", "F", H2, 9, 3, ""), "u9"),
                (LOGIN.upper(), second, "u2"), (LOGIN, conflict, "u3"), (LOGIN, "plain words", "u4")]
    review, found = loops.read_loops(comments, LOGIN)
    assert review == LoopReview(grade="C", head=H2, round=2, pass_id="p2", url="u2", text="still thin")
    assert found == LoopConflict(head=H2, paths=["a.py", "b `x`.py"], pass_id="p3")
    assert "<!-- -->" not in first.split("<!-- conductor:loop")[0]  # the reviewer's text cannot close the marker
    assert loops.read_loops([(LOGIN, first, "u1")], LOGIN)[0].text == "no tests <!-- --> @admin"
    assert loops.marker_pass(first) == ("review", "p1") and loops.marker_pass("x") is None


def test_a_review_comment_says_what_happens_next():
    assert "goes back to an implementer" in loops.render_review_comment("p", "D", H1, 2, 3, "")
    assert "held for a human" in loops.render_review_comment("p", "D", H1, 3, 3, "")


def test_what_a_pass_records():
    review = CoordinatorOutcome(kind="pr_review", phase=P4, items=[5, 6, 7, 8], results=[
        ItemResult(number=5, kind="pr", ok=True, grade="D", message="m"),
        ItemResult(number=6, kind="pr", ok=True, grade="A", merged=True),
        ItemResult(number=7, kind="pr", ok=True, grade="C"),  # C, not fixed and not merged
        ItemResult(number=8, kind="pr", ok=False, grade="D", reason="graded D but closed")])
    rebase = CoordinatorOutcome(kind="rebase", phase=P4, items=[9, 10], results=[
        ItemResult(number=9, kind="pr", ok=False, conflicts=["a.py"]),
        ItemResult(number=10, kind="pr", ok=False, reason="agent crashed")])
    assert [r.number for r in loops.graded_down([review, rebase])] == [5, 7]
    assert [r.number for r in loops.unresolved([review, rebase])] == [9]


@pytest.mark.parametrize("kind, review, expected", [
    ("rework", graded("D", round_=2), "rework 2 (review graded D)"),
    ("pr_review", graded("D", round_=2), "review 3 (after rework 2, last graded D)"),
    ("pr_review", None, ""),
    ("rebase", None, "rebase"),
])
def test_the_stage_of_a_pr_in_its_loop(kind, review, expected):
    assert loops.stage(kind, review) == expected


# ── the proofs ──────────────────────────────────────────────────────────────────


def facts(number: int = 5, **update) -> PullFacts:
    base = PullFacts(number=number, repo_full_name="o/r", html_url=f"https://x/o/r/pull/{number}", head_ref="agent/x",
                     head_repo_full_name="o/r", head_sha=H2, mergeable=True, mergeable_state="clean",
                     linked_issues=[1])
    return base.model_copy(update=update)


def prove(kind: str, report: dict | None, pr_facts: PullFacts, run_facts: RunFacts = RunFacts(returncode=0)):
    d = Dispatch(kind=kind, phase=P4, items=[5], heads={5: H1})
    return workflows.verify(d, workflows.read_report(report) if report else None, run_facts, {5: pr_facts},
                            repo="o/r", default_branch="main")


REWORKED = {"workflow": "rework", "status": "done", "pr": 5}
REBASED = {"workflow": "rebase", "status": "done", "pr": 5}


@pytest.mark.parametrize("kind, report, pr_facts, failures", [
    ("rework", REWORKED, facts(), []),
    ("rework", REWORKED, facts(head_sha=H1), ["PR #5: no new commits on agent/x"]),
    ("rework", REWORKED, facts(merged=True, state="closed"), ["PR #5: PR #5 is merged; it must stay open"]),
    ("rework", REWORKED, facts(state="closed"), ["PR #5: PR #5 is closed; it must stay open"]),
    ("rework", REWORKED, facts(linked_issues=[]),
     ["PR #5: no longer closes an issue (keep its closing keyword)"]),
    ("rework", REWORKED, facts(exists=False), ["PR #5: PR #5 does not exist"]),
    ("rework", {"workflow": "rework", "status": "done"}, facts(), ["reported done with no artifacts"]),
    ("rebase", REBASED, facts(), []),
    ("rebase", REBASED, facts(mergeable=None, mergeable_state="unknown"), []),  # GitHub still computing
    ("rebase", REBASED, facts(mergeable=False, mergeable_state="dirty"), ["PR #5: still conflicts with its base"]),
    ("rebase", REBASED, facts(head_sha=H1, mergeable=False), ["PR #5: no new commits on agent/x"]),
])
def test_the_proofs(kind, report, pr_facts, failures):
    outcome = prove(kind, report, pr_facts)
    assert (outcome.ok, outcome.failures) == (not failures, failures)


def test_an_unresolved_rebase_names_its_paths_and_a_blocked_one_is_no_failure():
    outcome = prove("rebase", {"workflow": "rebase", "status": "failed", "pr": 5, "conflicts": ["a.py", " "],
                               "message": "needs a decision"}, facts(head_sha=H1, mergeable=False))
    [result] = outcome.results
    assert (outcome.ok, result.conflicts, result.reason) == (False, ["a.py"], "could not resolve conflicts in a.py") \
        or pytest.fail(str(outcome))
    blocked = prove("rework", {"workflow": "rework", "status": "blocked", "message": "waiting"}, facts(head_sha=H1))
    assert (blocked.ok, blocked.failures, blocked.results[0].blocked) == (False, [], True)


def test_a_crashed_loop_leaf_is_a_failure():
    outcome = prove("rework", None, facts(head_sha=H1), RunFacts(returncode=3, report_error="the agent wrote no report"))
    assert not outcome.ok and outcome.failures[0] == "agent exited with status 3"


# ── the task files ──────────────────────────────────────────────────────────────


def task(kind: str, dispatch: Dispatch) -> dict[str, str | int]:
    item = leaves.PullItem(number=5, title="Implement #1", url="https://x/o/r/pull/5", head_ref="agent/issue-1",
                           closes=[1, 3], files=["a.py", "b.py"])
    return workflows.get(kind).leaf_task(workflows.LeafTask(
        repo="o/r", item=item, dispatch=dispatch, base="dev", worktree=Path("/w/pr-5-p"),
        report_path=Path("/w/pr-5-p/.agent-report.json"), prompt_path=Path("/p.md")), "https://api.github.com")


def test_the_rework_task_file_carries_the_issue_keys_and_the_review():
    values = task("rework", Dispatch(kind="rework", phase=P4, items=[5], attempts={5: 1}, heads={5: H1},
                                     reviews={5: graded("D", round_=2)}))
    assert values == {
        "WORKFLOW": "rework", "GH_REPO": "o/r", "GITHUB_API_URL": "https://api.github.com", "GH_HOST": "github.com",
        "PR_NUMBER": 5, "PR_TITLE": "Implement #1",
        "PR_URL": "https://x/o/r/pull/5", "PR_BRANCH": "agent/issue-1", "ISSUE_NUMBER": 1, "CLOSES_ISSUES": "1,3",
        "FILES_CHANGED": "a.py,b.py", "REVIEW_GRADE": "D", "REVIEW_ROUND": 2, "REVIEW_URL": "https://x/c/1",
        "REVIEW_TEXT": "tests missing", "REVIEWED_HEAD": H1, "ATTEMPT_N": 1, "REQUIRED_OUTPUT": "pushed_commits",
        "ON_BLOCK": "stop", "BASE": "dev", "WORKTREE": "/w/pr-5-p", "REPORT_PATH": "/w/pr-5-p/.agent-report.json",
        "PROMPT": "/p.md"}


def test_the_rebase_task_file():
    values = task("rebase", Dispatch(kind="rebase", phase=P4, items=[5], heads={5: H1}))
    assert list(values) == ["WORKFLOW", "GH_REPO", "GITHUB_API_URL", "GH_HOST", "PR_NUMBER", "PR_TITLE", "PR_URL",
                            "PR_BRANCH", "CLOSES_ISSUES", "FILES_CHANGED", "HEAD_SHA", "ATTEMPT_N", "REQUIRED_OUTPUT",
                            "ON_BLOCK", "BASE", "WORKTREE", "REPORT_PATH", "PROMPT"]
    assert (values["WORKFLOW"], values["HEAD_SHA"], values["REQUIRED_OUTPUT"]) == ("rebase", H1, "pushed_merge")


@pytest.mark.parametrize("kind", ["rework", "rebase"])
def test_both_kinds_ship_a_prompt_a_repository_may_override(kind):
    workflow = workflows.get(kind)
    shipped = workflow.shipped_prompt()
    assert shipped.source == "shipped" and f'"workflow": "{kind}"' in shipped.text
    assert "never open a new one" in shipped.text or "do not review" in shipped.text
    own = workflow.choose_prompt({kind: "docs/mine.md"}, lambda p: b"mine" if p == "docs/mine.md" else None)
    assert (own.source, own.path) == ("repository", "docs/mine.md")
    assert workflow.choose_prompt({}, lambda p: b"x" if p == workflow.repo_prompt else None).source == \
        "repository"

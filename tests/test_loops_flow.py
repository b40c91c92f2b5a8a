"""The review loops through real passes against the sandbox, with the scripted demo agent: a PR
graded D goes back to a rework leaf on its own branch and is reviewed again; one graded down past
the cap is held, labelled and listed with its grade; a PR that conflicts after its neighbour
merged is rebased by a rebase leaf, then reviewed and merged; an unresolvable one is held with
its paths. No pass dispatches an item twice."""
from __future__ import annotations

import pytest

from conductor.core import constants
from pipeline_support import PipelineRepo, pipeline_for_test

pytestmark = pytest.mark.slow

UI = "phase-4/new-ui-pages"


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    return pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name, CONDUCTOR_ITEM_ATTEMPT_LIMIT="2")


def open_pr(pipe: PipelineRepo, title: str, files: dict[str, str], body: str = "") -> tuple[int, int]:
    """An issue and a PR closing it from a branch of its own (made from dev)."""
    issue = pipe.issue(title, UI, "batch-01")
    branch = f"agent/issue-{issue}"
    pipe.sandbox.commit_files(pipe.full_name, branch, files, base="dev", message=title)
    pr = pipe.call("POST", "/pulls", json={"title": title, "head": branch, "base": "dev",
                                           "body": f"Closes #{issue}{body}"})["number"]
    return issue, pr


def one_pass(pipe: PipelineRepo, mode: str = "work"):
    report, state = pipe.run(mode)
    assert state.is_completed(), state.message
    numbers = [n for d in report.plan.dispatches for n in d.items]
    assert len(numbers) == len(set(numbers)), report.plan.dispatches  # nothing dispatched twice in a pass
    return report


def results(report) -> dict[int, tuple[str, object]]:
    return {r.number: (o.kind, r) for o in report.outcomes for r in o.results}


def reminder_body(pipe: PipelineRepo) -> str:
    [reminder] = pipe.issues(labels=constants.REMINDER_LABEL)
    return reminder["body"]


def test_a_pr_graded_d_is_reworked_on_its_branch_reviewed_again_and_merged(pipe: PipelineRepo):
    issue, pr = open_pr(pipe, "Page A", {"a.txt": "a\n"}, body="\n\ndemo:grade-d-once")

    first = one_pass(pipe)
    kind, review = results(first)[pr]
    assert (kind, review.ok, review.grade, review.merged) == ("pr_review", True, "D", False)
    [comment] = [c for c in pipe.call("GET", f"/issues/{pr}/comments") if constants.LOOP_MARKER in c["body"]]
    head = pipe.call("GET", f"/pulls/{pr}")["head"]["sha"]
    assert f"graded this PR D at `{head[:12]}` (review round 1 of 2)" in comment["body"]

    second = one_pass(pipe)
    kind, rework = results(second)[pr]
    assert (kind, rework.ok, rework.stage, rework.prompt_path) == (
        "rework", True, "rework 1 (review graded D)", "conductor/prompts/rework.md"), rework
    pull = pipe.call("GET", f"/pulls/{pr}")
    assert pull["state"] == "open" and pull["head"]["sha"] != head and pull["head"]["ref"] == f"agent/issue-{issue}"
    assert constants.STATUS_PR_OPEN not in pipe.labels_of(pr)
    assert "PR #%d (rework 1 (review graded D))" % pr in second.markdown().replace("\\", "").replace("\u200b", "")

    third = one_pass(pipe)
    kind, again = results(third)[pr]
    assert (kind, again.ok, again.grade, again.merged) == ("pr_review", True, "A", True)
    assert again.stage == "review 2 (after rework 1, last graded D)"
    assert [p["number"] for p in pipe.pulls("all")] == [pr]  # no second PR
    assert pipe.call("GET", f"/issues/{issue}")["state"] == "closed" and third.final_plan.idle


def test_a_pr_graded_down_past_the_cap_is_held_labelled_and_listed_with_its_grade(pipe: PipelineRepo):
    _, pr = open_pr(pipe, "Page B", {"b.txt": "b\n"})

    assert results(one_pass(pipe, "grade-d"))[pr][1].grade == "D"  # round 1 of 2
    assert results(one_pass(pipe, "grade-d"))[pr][0] == "rework"
    third = one_pass(pipe, "grade-d")  # round 2 of 2: held
    assert results(third)[pr][1].grade == "D"
    [held] = third.final_plan.held_back
    assert (held.number, held.why, held.grade, held.round) == (pr, "review", "D", 2)
    assert constants.NEEDS_HUMAN_LABEL in pipe.labels_of(pr)
    assert f"PR #{pr}: Page B — needs a human: graded D in 2 review rounds" in reminder_body(pipe)

    fourth = one_pass(pipe, "grade-d")
    assert fourth.plan.dispatches == [] and [h.number for h in fourth.plan.held_back] == [pr]
    assert pipe.call("GET", f"/pulls/{pr}")["state"] == "open"


def conflicting_pair(pipe: PipelineRepo) -> tuple[int, int]:
    pipe.sandbox.commit_files(pipe.full_name, "dev", {"shared.txt": "base line\n"}, base="dev", message="shared")
    _, first = open_pr(pipe, "Side A", {"shared.txt": "line from A\n"})
    _, second = open_pr(pipe, "Side B", {"shared.txt": "line from B\n"})
    return first, second


def test_after_the_first_merges_the_second_is_rebased_then_reviewed_and_merged(pipe: PipelineRepo):
    first, second = conflicting_pair(pipe)

    one = one_pass(pipe)
    assert one.plan.dispatches[0].merge_after == {second: first}
    got = results(one)
    assert got[first][1].merged and got[second][1].blocked  # it conflicts now: its review stops
    assert pipe.call("GET", f"/pulls/{second}")["mergeable_state"] == "dirty"

    two = one_pass(pipe)
    kind, rebase = results(two)[second]
    assert (kind, rebase.ok, rebase.stage, rebase.prompt_path) == (
        "rebase", True, "rebase", "conductor/prompts/rebase.md"), rebase
    assert pipe.call("GET", f"/pulls/{second}")["mergeable_state"] == "clean"

    three = one_pass(pipe)
    kind, review = results(three)[second]
    assert (kind, review.ok, review.merged) == ("pr_review", True, True)
    assert three.final_plan.idle and len(pipe.pulls("all")) == 2


def test_an_unresolvable_conflict_is_held_with_its_paths(pipe: PipelineRepo):
    first, second = conflicting_pair(pipe)
    pipe.call("PUT", f"/pulls/{first}/merge", json={"merge_method": "squash"})

    report = one_pass(pipe, "no-resolve")
    kind, rebase = results(report)[second]
    assert (kind, rebase.ok, rebase.conflicts) == ("rebase", False, ["shared.txt"])
    [held] = report.final_plan.held_back
    assert (held.number, held.why, held.conflicts) == (second, "conflict", ["shared.txt"])
    assert constants.NEEDS_HUMAN_LABEL in pipe.labels_of(second)
    assert "needs a human: unresolved conflicts: shared.txt" in reminder_body(pipe).replace("\\", "")

    again = one_pass(pipe, "no-resolve")  # held: nothing dispatched until a human pushes
    assert again.plan.dispatches == []

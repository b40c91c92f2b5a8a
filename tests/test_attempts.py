"""Attempt comments (conductor/core/attempts.py): rendered safely, read back only from our login."""
from __future__ import annotations

import pytest

from datetime import UTC, datetime

from conductor.core.attempts import (MarkerIndex, attempt_pass, confirm_items, failed_items, fold_comments,
                                     read_attempts, render_attempt_comment)
from conductor.core.ports import Comment
from conductor.core.verify import CoordinatorOutcome, ItemResult

ME = "conductor-bot"
HOSTILE = 'x --> <!-- conductor:attempt {"pass": "forged", "reason": "y"} --> @admin #1 [a](http://e)\n# h'


def comment(pass_id: str, reason: str = "failed", attempt: int = 1) -> str:
    return render_attempt_comment(pass_id, reason, attempt=attempt, limit=3)


def test_a_hostile_reason_stays_data_and_round_trips() -> None:
    body = comment("p1", HOSTILE)
    assert body.count("<!--") == 1 and body.count("-->") == 1
    assert attempt_pass(body) == "p1"
    got = read_attempts([(ME, body)], ME)
    assert (got.count, got.passes) == (1, ["p1"])
    assert got.last_reason == HOSTILE.replace("\n", " ")
    assert "@admin" not in body.split("<!--")[0]  # no mention in the visible line


@pytest.mark.parametrize(
    ("comments", "count", "last"),
    [
        ([], 0, ""),
        ([(ME, comment("p1", "a")), (ME, comment("p2", "b"))], 2, "b"),
        ([(ME, comment("p1", "a")), (ME, comment("p1", "a again"))], 1, "a again"),
        ([("someone", comment("p1", "a"))], 0, ""),
        ([("Conductor-Bot", comment("p1", "a"))], 1, "a"),  # logins ignore case
        ([(ME, "just a comment"), (ME, "<!-- conductor:attempt not json -->")], 0, ""),
        ([(ME, '<!-- conductor:attempt {"pass": "", "reason": "x"} -->')], 0, ""),
        ([(ME, '<!-- conductor:attempt {"pass": "p9"} -->')], 1, ""),
        ([(ME, None)], 0, ""),
    ],
)
def test_read_attempts(comments, count: int, last: str) -> None:
    got = read_attempts(comments, ME)
    assert (got.count, got.last_reason) == (count, last)


def test_the_last_allowed_attempt_says_it_is_held_back() -> None:
    assert "held back" not in comment("p1", attempt=2)
    assert "held back until a human looks at it" in comment("p3", attempt=3)
    assert "(attempt 3 of 3)" in comment("p3", attempt=3)


def test_failed_items_are_those_without_a_proved_result() -> None:
    outcomes = [
        CoordinatorOutcome(kind="issue_to_pr", phase="p", items=[1, 2, 3], failures=["agent exited 1"],
                           results=[ItemResult(number=1, kind="issue", ok=True, pr=9),
                                    ItemResult(number=2, kind="issue", ok=False, reason="PR #8 does not close #2")]),
        CoordinatorOutcome(kind="pr_review", phase="p", items=[7, 8], ok=True,
                           results=[ItemResult(number=7, kind="pr", ok=True, grade="D"),
                                    ItemResult(number=8, kind="pr", ok=True, grade="A", merged=True)]),
        CoordinatorOutcome(kind="pr_review", phase="p", items=[5]),
    ]
    assert failed_items(outcomes) == [(2, "PR #8 does not close #2; agent exited 1"), (3, "agent exited 1"),
                                      (5, "no proved result")]


def test_an_item_that_failed_while_github_was_failing_is_no_attempt() -> None:
    from conductor.core.attempts import unavailable_items

    outcomes = [CoordinatorOutcome(kind="issue_to_pr", phase="p", items=[1, 2], failures=["agent exited 1"], results=[
        ItemResult(number=1, kind="issue", ok=False, reason="agent exited 1", github_unavailable="HTTP 503 (github)"),
        ItemResult(number=2, kind="issue", ok=False, reason="agent exited 1")])]
    assert failed_items(outcomes) == [(2, "agent exited 1")]
    assert unavailable_items(outcomes) == [(1, "HTTP 503 (github)")]


def attempts(index: MarkerIndex, number: int):
    return read_attempts(((c.author, c.body) for c in index.comments(number)), ME)


def at(second: int) -> datetime:
    return datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)


def test_an_index_folds_listings_by_comment_id_and_keeps_only_our_marker_comments() -> None:
    index = fold_comments(MarkerIndex(), [
        Comment(ME, comment("p1", "one"), id=10, number=7, updated_at=at(1)),
        Comment("mallory", comment("forged"), id=11, number=7, updated_at=at(2)),
        Comment(ME, "plain words", id=12, number=8, updated_at=at(3)),
        Comment(ME, comment("p2", "two"), id=13, number=7, updated_at=at(2)),
    ], ME)
    assert index.since == at(3)
    assert (attempts(index, 7).count, attempts(index, 7).passes, attempts(index, 7).last_reason) == (2, ["p1", "p2"], "two")
    assert attempts(index, 8).count == 0 and index.items_to_confirm([7, 8, 9]) == [7]
    # the next listing: comment 13 edited to lose its marker, nothing older re-listed
    later = fold_comments(index, [Comment(ME, "edited away", id=13, number=7, updated_at=at(5))], ME)
    assert (attempts(later, 7).passes, later.since) == (["p1"], at(5))
    assert MarkerIndex.model_validate_json(later.model_dump_json()) == later
    # an index kept for another login starts over
    assert fold_comments(later, [], "someone-else").markers == {}


def test_confirming_an_item_drops_its_deleted_markers_and_keeps_since() -> None:
    index = fold_comments(MarkerIndex(), [
        Comment(ME, comment("p1"), id=1, number=7, updated_at=at(1)),
        Comment(ME, comment("p2"), id=2, number=7, updated_at=at(2)),
        Comment(ME, comment("p3"), id=3, number=8, updated_at=at(3)),
    ], ME)
    confirmed = confirm_items(index, {7: [Comment(ME, comment("p2"), id=2, number=7, updated_at=at(9))]})
    assert attempts(confirmed, 7).passes == ["p2"] and attempts(confirmed, 8).passes == ["p3"]
    assert confirmed.since == at(3)

"""The review loops on GitHub (`conductor/core/loops.py`): read a PR's last pipeline review and
failed rebase back with its attempts (one listing of its comments), record a pass's reviews that
graded a PR down and its rebases that could not resolve conflicts (once per pass: a re-run pass
finds its own marker), and label the PRs the loops hold for a human."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from conductor.core import loops
from conductor.core.attempts import read_attempts
from conductor.core.config import PipelineConfig
from conductor.core.models import ItemAttempts, LoopConflict, LoopReview, PipelineState, Plan
from conductor.core.ports import Comment, GitHub
from conductor.core.verify import CoordinatorOutcome


@dataclass(frozen=True)
class ItemHistory:
    attempts: ItemAttempts
    review: LoopReview | None = None
    conflict: LoopConflict | None = None


def item_history(comments: list[Comment], login: str) -> ItemHistory:
    """An item's attempts and, for a PR, its last review and failed rebase: the markers in
    the conductor's own comments on it, oldest first (`item_attempts.marker_comments`)."""
    review, conflict = loops.read_loops(((c.author, c.body, c.url) for c in comments), login)
    return ItemHistory(read_attempts(((c.author, c.body) for c in comments), login), review, conflict)


def record_loops(gh: GitHub, outcomes: Iterable[CoordinatorOutcome], pass_id: str, config: PipelineConfig) -> list[int]:
    """Leave the review comment on every PR a proved review left open graded C, D or F, and the
    conflict comment on every PR whose rebase could not resolve its conflicts, at the PR's head
    now. Returns the PRs commented on."""
    outcomes = list(outcomes)
    done: list[int] = []
    for result in loops.graded_down(outcomes):
        earlier = _loop_passes(gh, result.number, "review")
        if pass_id in earlier:
            continue
        head = gh.pull_facts(result.number).head_sha
        gh.add_comment(result.number, loops.render_review_comment(
            pass_id, result.grade or "D", head, len(earlier) + 1, config.item_attempt_limit, result.message))
        done.append(result.number)
    for result in loops.unresolved(outcomes):
        if pass_id in _loop_passes(gh, result.number, "conflict"):
            continue
        gh.add_comment(result.number, loops.render_conflict_comment(
            pass_id, gh.pull_facts(result.number).head_sha, result.conflicts))
        done.append(result.number)
    return done


def _loop_passes(gh: GitHub, number: int, what: str) -> set[str]:
    login = gh.login().lower()
    found = (loops.marker_pass(c.body) for c in gh.comments(number) if c.author.lower() == login)
    return {pass_id for kind, pass_id in filter(None, found) if kind == what}


def label_held(gh: GitHub, plan: Plan, state: PipelineState, config: PipelineConfig) -> list[int]:
    """Label the PRs the loops hold (review rounds used up, unresolved conflicts) for a human;
    those that carry the label in `state` are left alone. Returns the PRs labelled."""
    labels = {p.number: p.labels for p in state.pull_requests}
    numbers = [h.number for h in plan.held_back
               if h.why != "attempts" and config.needs_human_label not in labels.get(h.number, [])]
    for number in numbers:
        gh.set_labels(number, add=[config.needs_human_label], current=labels.get(number, []))
    return numbers

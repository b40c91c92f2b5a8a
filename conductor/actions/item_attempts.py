"""Per-item attempts and per-leaf spend on GitHub: read the conductor's own marker comments
(attempts, review loops, spend) with one listing of the repository's comments, and leave a
failed pass's attempt comment and each leaf's spend comment once (the rules are
`conductor/core/attempts.py` and `conductor/core/spend.py`)."""
from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

from conductor.core import spend
from conductor.core.attempts import MarkerIndex, attempt_pass, confirm_items, fold_comments, render_attempt_comment
from conductor.core.models import LeafSpend
from conductor.core.ports import Comment, GitHub

INDEX = "marker-index"


def read_marker_index(gh: GitHub) -> MarkerIndex:
    """The conductor's marker comments in the whole repository: the index kept by the last pass, with the
    comments updated since then folded in (one listing, one page per 100 comments; none
    kept: every comment). An unchanged listing answers 304 and costs no rate limit."""
    login = gh.login()
    try:
        kept = MarkerIndex.model_validate_json(gh.recall(INDEX) or "{}")
    except ValidationError:
        kept = MarkerIndex()
    since = kept.since if kept.login.lower() == login.lower() else None
    index = fold_comments(kept, gh.comments_since(since), login)
    gh.remember(INDEX, index.model_dump_json())
    return index


def marker_comments(gh: GitHub, index: MarkerIndex,
                    numbers: Iterable[int]) -> tuple[MarkerIndex, dict[int, list[Comment]]]:
    """The marker comments of `numbers` from `index`; an item with markers there is re-read
    whole first (one request each, 304 when unchanged): a human resets it by deleting
    comments, which no listing shows."""
    numbers = list(numbers)
    if confirm := index.items_to_confirm(numbers):
        index = confirm_items(index, {n: gh.comments(n) for n in confirm})
        gh.remember(INDEX, index.model_dump_json())
    return index, {n: index.comments(n) for n in numbers}


def record_attempt(gh: GitHub, number: int, pass_id: str, reason: str, *, limit: int) -> bool:
    """Leave the attempt comment of pass `pass_id` on item `number`, once: a pass that is re-run
    finds its own marker and writes nothing. True when it wrote one."""
    login = gh.login().lower()
    passes = {attempt_pass(c.body) for c in gh.comments(number) if c.author.lower() == login} - {None}
    if pass_id in passes:
        return False
    gh.add_comment(number, render_attempt_comment(pass_id, reason, attempt=len(passes) + 1, limit=limit))
    return True


def read_spend(index: MarkerIndex) -> list[LeafSpend]:
    """Every leaf's recorded spend: the spend markers of the conductor's own comments in the
    repository (`read_marker_index`; `conductor/core/spend.py`)."""
    return spend.read_spend(((index.login, body) for _, (_, body, _) in sorted(index.markers.items())), index.login)


def record_spend(gh: GitHub, leaf: LeafSpend) -> bool:
    """Leave the spend comment of one leaf on its item, once per (pass, item): a pass that is
    re-run finds its own marker and writes nothing. True when it wrote one."""
    mine = spend.read_spend(((c.author, c.body) for c in gh.comments(leaf.number)), gh.login())
    if any(s.pass_id == leaf.pass_id for s in mine):
        return False
    gh.add_comment(leaf.number, spend.render_spend_comment(leaf))
    return True

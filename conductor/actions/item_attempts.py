"""Per-item attempts and per-leaf spend on GitHub: read the conductor's own attempt markers on an
item and its spend markers in the repository, and leave a failed pass's attempt comment and each
leaf's spend comment once (the rules are `conductor/core/attempts.py` and `conductor/core/spend.py`)."""
from __future__ import annotations

from conductor.core import spend
from conductor.core.attempts import attempt_pass, read_attempts, render_attempt_comment
from conductor.core.models import ItemAttempts, LeafSpend
from conductor.core.ports import GitHub


def read_item_attempts(gh: GitHub, number: int) -> ItemAttempts:
    """The passes that dispatched item `number` without a proved result: the attempt markers
    in the conductor's own comments on it."""
    return read_attempts(((c.author, c.body) for c in gh.comments(number)), gh.login())


def record_attempt(gh: GitHub, number: int, pass_id: str, reason: str, *, limit: int) -> bool:
    """Leave the attempt comment of pass `pass_id` on item `number`, once: a pass that is re-run
    finds its own marker and writes nothing. True when it wrote one."""
    login = gh.login().lower()
    passes = {attempt_pass(c.body) for c in gh.comments(number) if c.author.lower() == login} - {None}
    if pass_id in passes:
        return False
    gh.add_comment(number, render_attempt_comment(pass_id, reason, attempt=len(passes) + 1, limit=limit))
    return True


def read_spend(gh: GitHub) -> list[LeafSpend]:
    """Every leaf's recorded spend: the spend markers of the conductor's own comments, from one
    listing of the repository's comments (`conductor/core/spend.py`)."""
    return spend.read_spend(((c.author, c.body) for c in gh.comments_since(None)), gh.login())


def record_spend(gh: GitHub, leaf: LeafSpend) -> bool:
    """Leave the spend comment of one leaf on its item, once per (pass, item): a pass that is
    re-run finds its own marker and writes nothing. True when it wrote one."""
    mine = spend.read_spend(((c.author, c.body) for c in gh.comments(leaf.number)), gh.login())
    if any(s.pass_id == leaf.pass_id for s in mine):
        return False
    gh.add_comment(leaf.number, spend.render_spend_comment(leaf))
    return True

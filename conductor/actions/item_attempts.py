"""Per-item attempts on GitHub: read the conductor's own attempt markers on an item, and leave
a failed pass's attempt comment once (the rules are `conductor/core/attempts.py`)."""
from __future__ import annotations

from conductor.core.attempts import attempt_pass, read_attempts, render_attempt_comment
from conductor.core.models import ItemAttempts
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

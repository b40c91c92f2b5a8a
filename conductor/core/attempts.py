"""Per-item attempts, kept on GitHub: the comment a pass leaves on an item it dispatched
without a proved result, and reading those comments back. Pure.

A pass that dispatched an item and could not prove a result for it (no PR, no verified
review, a crash, a timeout) comments once on the item: a line for humans and a hidden
marker `<!-- conductor:attempt {"pass": ID, "reason": TEXT} -->`. ATTEMPT_N of the item is
the number of distinct passes with such a marker *in a comment by the conductor's own
login* (anyone else's comment is ignored, so a marker cannot be forged), and the last
reason is that of the newest one. No local state: any machine reads the same count.
A human resets an item by deleting those comments. The count never feeds the pipeline
fingerprint (comments are not part of it), so failing again is no progress.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from conductor.core import markdown
from conductor.core.constants import ATTEMPT_MARKER, LOOP_MARKER, SPEND_MARKER
from conductor.core.models import ItemAttempts
from conductor.core.ports import Comment
from conductor.core.untrusted import json_object
from conductor.core.verify import CoordinatorOutcome

REASON_LIMIT = 300
_MARKERS = (ATTEMPT_MARKER, LOOP_MARKER, SPEND_MARKER)  # what the conductor's comments on items carry
_MARKER = re.compile(r"<!--\s*+" + re.escape(ATTEMPT_MARKER) + r"\s++(\{[^<>]*?\})\s*+-->")


def render_attempt_comment(pass_id: str, reason: str, *, attempt: int, limit: int) -> str:
    """The comment for a failed attempt (`attempt`: this one's number, from 1)."""
    reason = markdown.one_line(reason)[:REASON_LIMIT] or "no reason given"
    payload = json.dumps({"pass": pass_id, "reason": reason}, ensure_ascii=True)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e")  # never closes the comment
    held = " It is held back until a human looks at it." if attempt >= limit else ""
    return (f"Conductor pass {markdown.code(pass_id)} could not finish this item "
            f"(attempt {attempt} of {limit}): {markdown.escape(reason)}.{held}\n\n"
            f"<!-- {ATTEMPT_MARKER} {payload} -->\n")


def failed_items(outcomes: Iterable[CoordinatorOutcome]) -> list[tuple[int, str]]:
    """(item, reason) for every dispatched item whose result was not proved, in order: the
    items a pass leaves an attempt comment on. The reason is the item's own, then the
    coordinator's failures. A proved D/F grade is a result, not a failure; an item that
    failed while GitHub was failing (`unavailable_items`) is no attempt."""
    failed: list[tuple[int, str]] = []
    for outcome in outcomes:
        results = {r.number: r for r in outcome.results}
        for number in outcome.items:
            result = results.get(number)
            if result is not None and (result.ok or result.github_unavailable):
                continue
            parts = [result.reason] if result is not None and result.reason else []
            parts += [f for f in outcome.failures if f not in parts]  # why the whole run failed
            failed.append((number, "; ".join(parts) or "no proved result"))
    return failed


def unavailable_items(outcomes: Iterable[CoordinatorOutcome]) -> list[tuple[int, str]]:
    """(item, evidence) for every dispatched item not proved while GitHub was failing
    (`conductor/core/outages.py`): retried next pass, no attempt charged."""
    return [(r.number, r.github_unavailable) for outcome in outcomes for r in outcome.results
            if not r.ok and r.github_unavailable and r.number in outcome.items]


def attempt_pass(body: str | None) -> str | None:
    """The pass id in an attempt comment's marker, or None."""
    found = _parse(body)
    return found[0] if found else None


def read_attempts(comments: Iterable[tuple[str, str | None]], login: str) -> ItemAttempts:
    """ItemAttempts from an item's comments, oldest first, as (author login, body) pairs."""
    passes: list[str] = []
    last_reason = ""
    for author, body in comments:
        if author.lower() != login.lower():
            continue
        found = _parse(body)
        if found is None:
            continue
        pass_id, reason = found
        if pass_id not in passes:
            passes.append(pass_id)
        last_reason = reason
    return ItemAttempts(count=len(passes), last_reason=last_reason, passes=passes)


class MarkerIndex(BaseModel):
    """The conductor's own marker comments of a whole repository (attempts, review loops),
    folded from its comment listings: kept between passes so that each pass lists only the
    comments updated since `since`.

    Derived data only: lost, it is rebuilt from one full listing. A deleted comment never
    shows in a listing, so an item with markers here is re-read on its own before they are
    trusted (`items_to_confirm`)."""

    login: str = Field("", description="Whose markers count (the conductor's own login).")
    since: datetime | None = Field(None, description="The newest `updated_at` folded in.")
    markers: dict[int, tuple[int, str, str]] = Field(
        default_factory=dict, description="Comment id -> (item number, body, URL).")

    def comments(self, number: int) -> list[Comment]:
        """Item `number`'s marker comments, oldest first."""
        return [Comment(author=self.login, body=body, id=cid, number=n, url=url)
                for cid, (n, body, url) in sorted(self.markers.items()) if n == number]

    def items_to_confirm(self, numbers: Iterable[int]) -> list[int]:
        """Those of `numbers` with markers here (a human may have deleted them)."""
        marked = {n for n, _, _ in self.markers.values()}
        return sorted(set(numbers) & marked)


def fold_comments(index: MarkerIndex, comments: Iterable[Comment], login: str) -> MarkerIndex:
    """`index` with a listing's `comments` folded in (an index of another login starts over),
    `since` moved to the newest of them."""
    same = index.login.lower() == login.lower()
    comments = list(comments)
    stamps = [c.updated_at for c in comments if c.updated_at is not None]
    since = index.since if same else None
    return MarkerIndex(login=login, since=max([*stamps, *([since] if since else [])], default=None),
                       markers=_fold(index.markers if same else {}, comments, login))


def confirm_items(index: MarkerIndex, comments: dict[int, list[Comment]]) -> MarkerIndex:
    """`index` with the markers of each item in `comments` replaced by those of its comments,
    read whole (`since` stays: these reads are no listing)."""
    kept = {cid: m for cid, m in index.markers.items() if m[0] not in comments}
    folded = _fold(kept, (c for item in comments.values() for c in item), index.login)
    return index.model_copy(update={"markers": folded})


def _fold(markers: dict[int, tuple[int, str, str]], comments: Iterable[Comment],
          login: str) -> dict[int, tuple[int, str, str]]:
    """A comment by `login` carrying a conductor marker is kept (by id); any other drops what
    its id held."""
    markers = dict(markers)
    for c in comments:
        if c.author.lower() == login.lower() and any(f"{m} " in (c.body or "") for m in _MARKERS):
            markers[c.id] = (c.number, c.body, c.url)
        else:
            markers.pop(c.id, None)
    return markers


def _parse(body: str | None) -> tuple[str, str] | None:
    matches = list(_MARKER.finditer(body or ""))
    if not matches:
        return None
    data = json_object(matches[-1].group(1))
    if data is None or not isinstance(data.get("pass"), str) or not data["pass"]:
        return None
    reason = data.get("reason")
    return data["pass"], reason if isinstance(reason, str) else ""

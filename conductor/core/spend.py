"""Spend under control: what leaves cost, recorded on GitHub and summed, and the budgets of
`[budget]` that admit or hold what a pass would dispatch. Pure.

Recording: every leaf whose agent reported usage leaves one comment on its item, a line for
humans and a hidden marker `<!-- conductor:spend {...} -->` (pass, item, kind, phase, batch, CLI,
model, cost, tokens, turns, seconds, when). Only markers in comments by the conductor's own
login count (anyone else's is ignored, so spend cannot be forged or erased by others); one per
(pass, item). Any pass on any machine reads the same spend.

Budgets (`[budget]` in conductor.toml, each optional): `pipeline_*`, `phase_*` (one number for
every phase, or a table per phase), `item_*` and `day_*` (the UTC day), each in `_usd` and in
`_tokens` (input plus output tokens, for CLIs that report no cost). `estimate_usd` and
`estimate_tokens` are the estimate of a leaf of a kind never recorded.

Admission: a leaf is estimated at the p90 of the recorded leaves of its kind and CLI (any CLI
when that one has none), else the configured estimate (none: it reserves nothing). Ready items
are taken in plan order; one is admitted when, for every budget that applies to it, what was
spent plus the estimates already admitted this pass leaves room, and room for its own estimate;
it then reserves that estimate against each of them. The rest wait with the reason. What each
budget has left after the pass's reservations is shared evenly by the leaves admitted against
it: a leaf's cap is its estimate plus its share, the least over its budgets (the caps of one
pass's leaves in one scope never sum to more than that scope's room).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conductor.core import markdown
from conductor.core.constants import SPEND_MARKER
from conductor.core.models import BudgetLine, ItemCap, LeafSpend
from conductor.core.untrusted import json_object
from conductor.core.usage import Usage, describe, shares
from conductor.core.verify import CoordinatorOutcome

UNITS = ("usd", "tokens")
SCOPES = ("pipeline", "phase", "item", "day")
BUDGET_KEYS = tuple(f"{scope}_{unit}" for scope in SCOPES for unit in UNITS) + ("estimate_usd", "estimate_tokens")
_MARKER = re.compile(r"<!--\s*+" + re.escape(SPEND_MARKER) + r"\s++(\{[^<>]*?\})\s*+-->")


# ── the budget table ──────────────────────────────────────────────────────────


def check_budget(budget: dict[str, Any], phases: Sequence[str]) -> dict[str, Any]:
    """`[budget]` as written, or a ValueError naming the bad key and the fix."""
    for key, value in budget.items():
        if key not in BUDGET_KEYS:
            raise ValueError(f"[budget] has unknown key {key!r}; use one of {', '.join(BUDGET_KEYS)}")
        per_phase = value if key.startswith("phase_") and isinstance(value, dict) else {"": value}
        for phase, amount in per_phase.items():
            where = f"[budget] {key}" + (f".{phase}" if phase else "")
            if phase and phase not in phases:
                raise ValueError(f"{where} names unknown phase {phase!r}; use one of {', '.join(phases)}")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount >= 0:
                raise ValueError(f"{where} must be a number of 0 or more, got {amount!r}"
                                 + ("; or a table of phase = number" if key.startswith("phase_") else ""))
    return budget


def limit(budget: dict[str, Any], scope: str, unit: str, phase: str = "") -> float | None:
    """The budget of `scope` in `unit` (None: none set); `phase` for the phase scope."""
    value = budget.get(f"{scope}_{unit}")
    if isinstance(value, dict):
        value = value.get(phase)
    return None if value is None else float(value)


# ── recording ─────────────────────────────────────────────────────────────────


def leaf_spends(outcomes: Iterable[CoordinatorOutcome], pass_id: str, cli: str, now: datetime) -> list[LeafSpend]:
    """The spend to record for every dispatched item whose agent reported usage, dated when
    its leaf ended (`now` when that is unknown). One batch agent (fan_out = "coordinator-agent":
    the outcome's usage, none per item) is recorded as an even share on each of its items, so
    the sums per item, phase and pipeline stay right."""
    found = []
    for o in outcomes:
        leaves = [(r.number, r.usage, r.ended_at) for r in o.results if r.usage is not None and r.number in o.items]
        batch = not leaves and o.usage is not None and bool(o.items)
        if batch:
            leaves = [(n, part, None) for n, part in zip(o.items, shares(o.usage, len(o.items)), strict=True)]
        share_of = len(o.items) if batch else 1
        for number, u, ended_at in leaves:
            found.append(LeafSpend(
                pass_id=pass_id, number=number, kind=o.kind, phase=o.phase, batch=o.batch, cli=cli,
                model=u.model or "", cost_usd=u.cost_usd, input_tokens=u.input_tokens,
                output_tokens=u.output_tokens, turns=u.turns,
                seconds=u.duration_ms / 1000 if u.duration_ms is not None else None,
                at=datetime.fromtimestamp(ended_at, UTC) if ended_at else now, stopped=u.stopped, share_of=share_of))
    return found


def render_spend_comment(spend: LeafSpend) -> str:
    """The comment that records one leaf's spend on its item."""
    payload = json.dumps(spend.model_dump(mode="json", exclude_defaults=True) | {"pass_id": spend.pass_id,
                                                                                  "number": spend.number},
                         ensure_ascii=True, sort_keys=True)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e")  # never closes the comment
    stopped = f" Stopped: {markdown.escape(markdown.one_line(spend.stopped))}." if spend.stopped else ""
    shared = f": an even share of one batch agent's spend over {spend.share_of} items" if spend.share_of > 1 else ""
    return (f"Conductor pass {markdown.code(spend.pass_id)} spent {markdown.escape(describe_leaf(spend))} "
            f"on this item ({markdown.escape(spend.cli or 'agent')}){shared}.{stopped}\n\n"
            f"<!-- {SPEND_MARKER} {payload} -->\n")


def describe_leaf(spend: LeafSpend) -> str:
    """`1,000 in / 50 out tokens, $0.0100, 6 turns, 12.3 s`, as the pass table shows a leaf."""
    seconds = spend.seconds
    return describe(Usage(input_tokens=spend.input_tokens, output_tokens=spend.output_tokens, cost_usd=spend.cost_usd,
                          turns=spend.turns, duration_ms=None if seconds is None else round(seconds * 1000)))


def parse_spend(body: str | None) -> LeafSpend | None:
    """The spend in a comment's marker (the last one), or None."""
    matches = list(_MARKER.finditer(body or ""))
    data = json_object(matches[-1].group(1)) if matches else None
    if data is None:
        return None
    try:
        return LeafSpend.model_validate(data)
    except ValueError:
        return None


def read_spend(comments: Iterable[tuple[str, str | None]], login: str) -> list[LeafSpend]:
    """Every leaf's spend from the repository's comments as (author login, body) pairs: only
    markers by `login` (the conductor's own) count, one per (pass, item)."""
    found: dict[tuple[str, int], LeafSpend] = {}
    for author, body in comments:
        if author.lower() == login.lower() and (spend := parse_spend(body)) is not None:
            found.setdefault((spend.pass_id, spend.number), spend)
    return sorted(found.values(), key=lambda s: (s.at, s.number))


# ── sums ──────────────────────────────────────────────────────────────────────


def amount(records: Iterable[LeafSpend], unit: str) -> float:
    """USD (unknown costs count 0) or tokens, summed."""
    return sum((r.cost_usd or 0.0) if unit == "usd" else r.tokens for r in records)


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


@dataclass(frozen=True)
class _Scope:
    """One budget that applies to an item: its name, key and which records it sums."""

    scope: str
    name: str
    key: str
    counts: Callable[[LeafSpend], bool]


def _scopes(number: int, phase: str, today: str | None) -> list[_Scope]:
    scopes = [_Scope("pipeline", "pipeline", "pipeline", lambda r: True),
              _Scope("phase", phase, "phase", lambda r: r.phase == phase),
              _Scope("item", f"#{number}", "item", lambda r: r.number == number)]
    if today is not None:
        scopes.append(_Scope("day", f"today ({today} UTC)", "day", lambda r: day_of(r.at) == today))
    return scopes


def budget_lines(records: Sequence[LeafSpend], budget: dict[str, Any], phases: Sequence[str],
                 today: str | None) -> list[BudgetLine]:
    """Spend of the pipeline, of each phase that spent or has a budget, and of today, in USD
    (and in tokens where there is a token budget or no cost was reported), each with its budget."""
    out: list[BudgetLine] = []
    groups = [("pipeline", "pipeline", list(records), "")]
    groups += [(p, "phase", [r for r in records if r.phase == p], p) for p in phases]
    if today is not None:
        groups.append((f"today ({today} UTC)", "day", [r for r in records if day_of(r.at) == today], ""))
    for name, scope, members, phase in groups:
        for unit in UNITS:
            cap = limit(budget, scope, unit, phase)
            shown = cap is not None or (members and (unit == "usd" or any(r.cost_usd is None for r in members)))
            if shown:
                out.append(BudgetLine(scope=name, unit=unit, spent=round(amount(members, unit), 6), limit=cap,
                                      key=f"{scope}_{unit}"))
    return out


# ── admission ─────────────────────────────────────────────────────────────────


def p90(values: Sequence[float]) -> float:
    """The 90th percentile, nearest rank (the value 90 % of them do not exceed)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def estimate(records: Sequence[LeafSpend], kind: str, cli: str, budget: dict[str, Any], unit: str) -> float | None:
    """A leaf's estimate in `unit`: the p90 of the recorded leaves of its kind and CLI (of its
    kind alone when that CLI has none; costs only where reported), else `estimate_<unit>`;
    None when neither is known (the leaf has no estimate yet)."""
    def known(r: LeafSpend) -> bool:
        return r.kind == kind and (unit == "tokens" or r.cost_usd is not None)

    same = [r for r in records if known(r) and r.cli == cli] or [r for r in records if known(r)]
    if same:
        return p90([amount([r], unit) for r in same])
    configured = budget.get(f"estimate_{unit}")
    return None if configured is None else float(configured)


@dataclass(frozen=True)
class Candidate:
    number: int
    kind: str
    phase: str
    noun: str  # "issue", "PR": how the reason names it
    after: int | None = None  # the PR it merges after: it waits while that one waits for its budget


@dataclass
class Admission:
    admitted: list[int]
    held: dict[int, str]  # item -> why it waits
    caps: dict[int, ItemCap]


@dataclass
class _Room:
    """One budget in one unit as a pass admits leaves against it."""

    scope: _Scope
    unit: str
    limit: float
    spent: float
    reserved: float = 0.0  # the estimates of the leaves this pass admitted against it
    leaves: int = 0  # how many

    @property
    def left(self) -> float:
        return self.limit - self.spent - self.reserved

    def refuses(self, cost: float | None, noun: str) -> str:
        """Why a leaf estimated at `cost` does not fit ('' when it does): no room left after this
        pass's reservations, or not room enough for its estimate."""
        if self.left > 0 and self.left >= (cost or 0.0):
            return ""
        unit = self.unit
        admitted = f" ({_amount(self.reserved, unit)} more admitted this pass)" if self.reserved else ""
        costs = f"is estimated at {_amount(cost, unit)}" if cost is not None else "has no estimate yet"
        return (f"budget: {self.scope.name} has spent {_amount(self.spent, unit)} of {_amount(self.limit, unit)}"
                f"{admitted}; this {noun} {costs} (raise {self.scope.key}_{unit} under [budget] in conductor.toml)")


def admit(candidates: Sequence[Candidate], records: Sequence[LeafSpend], budget: dict[str, Any],
          cli: str, today: str | None) -> Admission:
    """Which of `candidates` (in plan order, each after the PR it merges after) fit every budget
    that applies to them, and each admitted leaf's cap. An admitted leaf reserves its estimate
    against each of its budgets, so a later one sees only the room those reservations leave; a
    PR merging after one that waits for its budget waits too, reserving nothing. What a budget
    has left after all of this pass's reservations is shared evenly by the leaves admitted
    against it: a leaf's cap is its estimate plus its share, the least over its budgets, so the
    caps of one pass's leaves in one scope sum to at most that scope's room."""
    if not any(k in budget for k in BUDGET_KEYS if not k.startswith("estimate_")):
        return Admission([c.number for c in candidates], {}, {})
    result = Admission([], {}, {})
    rooms: dict[tuple[str, str], _Room] = {}  # (scope name, unit) -> its room
    applies: dict[int, list[_Room]] = {}
    estimates: dict[int, dict[str, float | None]] = {}
    for c in candidates:
        est = {unit: estimate(records, c.kind, cli, budget, unit) for unit in UNITS}
        mine = []
        for s in _scopes(c.number, c.phase, today):
            for unit in UNITS:
                cap = limit(budget, s.scope, unit, c.phase)
                if cap is not None:
                    spent = amount([r for r in records if s.counts(r)], unit)
                    mine.append(rooms.setdefault((s.name, unit), _Room(s, unit, cap, spent)))
        reason = next((why for room in mine if (why := room.refuses(est[room.unit], c.noun))), "")
        if c.after in result.held:
            reason = f"merges after PR #{c.after}, which waits for its budget"
        if reason:
            result.held[c.number] = reason
            continue
        result.admitted.append(c.number)
        for room in mine:
            room.reserved += est[room.unit] or 0.0
            room.leaves += 1
        applies[c.number], estimates[c.number] = mine, est
    for number, mine in applies.items():
        cap = {unit: min((r.left / r.leaves + (estimates[number][unit] or 0.0) for r in mine if r.unit == unit),
                         default=None) for unit in UNITS}
        if mine:
            result.caps[number] = ItemCap(usd=round_down(cap["usd"], 4), tokens=round_down(cap["tokens"], 0))
    return result


def round_down(value: float | None, places: int) -> float | None:
    """`value` rounded down to `places` decimals: a cap never rounds up past the room it is given."""
    return None if value is None else math.floor(value * 10**places + 1e-6) / 10**places


def joint_cap(caps: Sequence[ItemCap | None]) -> ItemCap | None:
    """The cap of one agent working items of these caps (a leaf, or a batch agent of
    fan_out = "coordinator-agent"): their sum in each unit every one is capped in; None when
    one of them has no cap."""
    if not caps or any(c is None for c in caps):
        return None
    usds, tokens = [c.usd for c in caps], [c.tokens for c in caps]
    return ItemCap(usd=None if None in usds else round(sum(usds), 4), tokens=None if None in tokens else sum(tokens))


def over_cap(cap: ItemCap | None, usd_spent: float | None, tokens: int, items: int = 1) -> str:
    """Why streamed usage passes the cap of an agent working `items` items ('' while it does not)."""
    if cap is None:
        return ""
    whose = "the item's cap" if items == 1 else f"the cap of its {items} items"
    if cap.usd is not None and usd_spent is not None and usd_spent > cap.usd:
        return f"usage passed {whose}: {usd(usd_spent)} of {usd(cap.usd)}"
    if cap.tokens is not None and tokens > cap.tokens:
        return f"usage passed {whose}: {tokens:,} of {cap.tokens:,} tokens"
    return ""


def spent_text(lines: Sequence[BudgetLine]) -> str:
    """One scope's spend against its budgets: `$41.20 of $50.00; 12,000 tokens`."""
    return "; ".join(_amount(b.spent, b.unit) + (f" of {_amount(b.limit, b.unit)}" if b.limit is not None else "")
                     + (" (reached)" if b.reached else "") for b in lines)


def by_scope(lines: Sequence[BudgetLine]) -> dict[str, list[BudgetLine]]:
    """The budget lines grouped by scope, in order."""
    scopes: dict[str, list[BudgetLine]] = {}
    for b in lines:
        scopes.setdefault(b.scope, []).append(b)
    return scopes


def usd(value: float) -> str:
    return f"${value:,.2f}"


def _amount(value: float, unit: str) -> str:
    return usd(value) if unit == "usd" else f"{value:,.0f} tokens"

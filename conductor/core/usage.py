"""Cost and effort of one agent run, read from what its CLI prints (pure).

Each CLI ends its JSON output with figures of its own:

* Claude Code (`--output-format json` or `stream-json`): the `{"type": "result", ...}` object
  with `total_cost_usd`, `usage` (input, cache and output tokens), `num_turns`, `duration_ms`;
* Codex (`exec --json`): a `{"type": "turn.completed", "usage": {...}}` event per turn, added up
  (no cost: Codex does not report one);
* Gemini CLI (`--output-format stream-json`): the `{"type": "result", "stats": {...}}` event
  (`input_tokens`, `output_tokens`, `duration_ms`, `tool_calls`); with `--output-format json`,
  the final object's `stats.models.<model>.tokens` (`prompt`, `candidates`).

`UsageMeter` is fed every output line (it keeps only the running figures) and answers a
`Usage`, or None when the output carried no figures (a plain-text agent). While Claude Code
streams, its `assistant` events' per-message usage is summed (a lower bound, no cost) until its
result event says the total; Codex's turns add up as they come: what a spend cap is held to.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from conductor.core.untrusted import json_object


class Usage(BaseModel):
    """Tokens, cost and effort of one agent run (None: the CLI did not say)."""

    input_tokens: int = Field(0, ge=0, description="Prompt tokens, cached ones included.")
    output_tokens: int = Field(0, ge=0)
    cost_usd: float | None = Field(None, ge=0, description="As the CLI computed it.")
    turns: int | None = Field(None, ge=0)
    duration_ms: int | None = Field(None, ge=0)
    model: str | None = Field(None, description="The model the CLI named (its start event, or its stats).")
    stopped: str = Field("", description="Why the conductor stopped the agent (its spend cap), if it did.")

    def __add__(self, other: Usage) -> Usage:
        def both(a: float | int | None, b: float | int | None):
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(input_tokens=self.input_tokens + other.input_tokens,
                     output_tokens=self.output_tokens + other.output_tokens,
                     cost_usd=both(self.cost_usd, other.cost_usd), turns=both(self.turns, other.turns),
                     duration_ms=both(self.duration_ms, other.duration_ms), model=self.model or other.model)


def total(usages: Iterable[Usage | None]) -> Usage | None:
    """The sum of the known figures; None when none is known."""
    known = [u for u in usages if u is not None]
    if not known:
        return None
    result = known[0]
    for usage in known[1:]:
        result = result + usage
    return result


def shares(usage: Usage, n: int) -> list[Usage]:
    """`usage` split evenly over `n` items: tokens, turns and milliseconds in whole units (the
    first ones take what does not divide), USD to the last one's rounding; they sum to `usage`."""
    def split(value: int | None) -> list[int | None]:
        return [None] * n if value is None else [value // n + (i < value % n) for i in range(n)]

    cost = None if usage.cost_usd is None else [round(usage.cost_usd / n, 6)] * (n - 1)
    costs = [None] * n if cost is None else [*cost, max(round(usage.cost_usd - sum(cost), 6), 0.0)]
    return [usage.model_copy(update={"input_tokens": i, "output_tokens": o, "turns": t, "duration_ms": d,
                                     "cost_usd": c})
            for i, o, t, d, c in zip(split(usage.input_tokens), split(usage.output_tokens), split(usage.turns),
                                     split(usage.duration_ms), costs, strict=True)]


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _claude(event: dict[str, Any]) -> Usage:
    usage = event.get("usage") or {}
    tokens_in = sum(_int(usage.get(k)) for k in
                    ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    cost = event.get("total_cost_usd")
    models = [str(name)[:100] for name in event.get("modelUsage") or {}] if isinstance(event.get("modelUsage"), dict) else []
    return Usage(input_tokens=tokens_in, output_tokens=_int(usage.get("output_tokens")), model=models[0] if models else None,
                 cost_usd=float(cost) if isinstance(cost, (int, float)) else None,
                 turns=_int(event["num_turns"]) if "num_turns" in event else None,
                 duration_ms=_int(event["duration_ms"]) if "duration_ms" in event else None)


def _gemini(stats: dict[str, Any]) -> Usage:
    if "input_tokens" in stats or "output_tokens" in stats:  # stream-json result event
        tokens_in, tokens_out = _int(stats.get("input_tokens")), _int(stats.get("output_tokens"))
    else:  # json output: per model
        models = (stats.get("models") or {}).values()
        tokens_in = sum(_int((m.get("tokens") or {}).get("prompt")) for m in models)
        tokens_out = sum(_int((m.get("tokens") or {}).get("candidates")) for m in models)
    names = [str(name)[:100] for name in (stats.get("models") or {})]
    return Usage(input_tokens=tokens_in, output_tokens=tokens_out, model=names[0] if names else None,
                 turns=_int(stats["tool_calls"]) + 1 if "tool_calls" in stats else None,
                 duration_ms=_int(stats["duration_ms"]) if "duration_ms" in stats else None)


class UsageMeter:
    """Feed it each output line; `usage` is what the last figures said."""

    def __init__(self) -> None:
        self._final: Usage | None = None
        self._codex: Usage | None = None
        self._model: str | None = None
        self._messages: dict[str, Usage] = {}  # Claude Code: each message's usage, while it streams

    def feed(self, line: str) -> None:
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            return
        event = json_object(line)
        if event is None:
            return
        kind = event.get("type")
        if kind in ("system", "init") and isinstance(event.get("model"), str):  # Claude Code, Gemini CLI
            self._model = event["model"][:100]
        if kind == "result" and isinstance(event.get("stats"), dict):
            self._final = _gemini(event["stats"])
        elif kind == "result" and ("total_cost_usd" in event or "usage" in event):
            self._final = _claude(event)
        elif kind == "assistant" and isinstance(message := event.get("message"), dict) \
                and isinstance(message.get("usage"), dict):  # one event per content block: keyed by message
            self._messages[str(message.get("id", len(self._messages)))] = _claude({"usage": message["usage"]})
        elif kind == "turn.completed" and isinstance(event.get("usage"), dict):
            usage = event["usage"]
            turn = Usage(input_tokens=_int(usage.get("input_tokens")),
                         output_tokens=_int(usage.get("output_tokens")), turns=1)
            self._codex = turn if self._codex is None else self._codex + turn
        elif kind is None and isinstance(event.get("stats"), dict) and "response" in event:
            self._final = _gemini(event["stats"])  # gemini --output-format json

    @property
    def usage(self) -> Usage | None:
        usage = self._final or self._codex or total(self._messages.values())
        if usage is None or usage.model or not self._model:
            return usage
        return usage.model_copy(update={"model": self._model})


def describe(usage: Usage | None) -> str:
    """One cell: `1,000 in / 50 out tokens, $0.0100, 6 turns, 12.3 s`; `-` when unknown."""
    if usage is None:
        return "-"
    parts = [f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens"]
    if usage.cost_usd is not None:
        parts.append(f"${usage.cost_usd:.4f}")
    if usage.turns is not None:
        parts.append(f"{usage.turns} turns")
    if usage.duration_ms is not None:
        parts.append(f"{usage.duration_ms / 1000:.1f} s")
    return ", ".join(parts)

"""conductor.core.usage on real output captured from the CLIs (tests/data/agent_outputs/, each
a run against the scripted model: two model answers of 1000 input / 50 output tokens), and
on the shapes each CLI documents."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conductor.core.usage import Usage, UsageMeter, describe, total

OUTPUTS = Path(__file__).parent / "data" / "agent_outputs"


def parse_usage(lines: list[str]) -> Usage | None:
    """The figures a meter fed `lines` one by one ends with (as a leaf's output reader feeds it)."""
    meter = UsageMeter()
    for line in lines:
        meter.feed(line)
    return meter.usage


@pytest.mark.parametrize(("file", "expected"), [
    ("claude-2.1.332-stream-json.jsonl",
     Usage(input_tokens=2000, output_tokens=100, cost_usd=0.01, turns=2, duration_ms=4662,
           model="claude-opus-5-5")),
    ("codex-0.171.0-exec-json.jsonl", Usage(input_tokens=2000, output_tokens=100, turns=1)),
    ("gemini-0.61.0-stream-json.jsonl",
     Usage(input_tokens=3000, output_tokens=150, turns=2, duration_ms=2675, model="scripted")),
])
def test_figures_from_real_cli_output(file: str, expected: Usage) -> None:
    lines = (OUTPUTS / file).read_text(encoding="utf-8").splitlines()
    assert parse_usage(lines) == expected


CLAUDE_JSON = {"type": "result", "subtype": "success", "total_cost_usd": 0.25, "num_turns": 7,
               "duration_ms": 61000, "usage": {"input_tokens": 100, "cache_creation_input_tokens": 20,
                                               "cache_read_input_tokens": 30, "output_tokens": 400}}
GEMINI_JSON = {"response": "done", "stats": {"models": {
    "gemini-pro": {"api": {"totalRequests": 3}, "tokens": {"prompt": 900, "candidates": 60, "total": 960}},
    "gemini-flash": {"api": {"totalRequests": 1}, "tokens": {"prompt": 100, "candidates": 5, "total": 105}}}}}


@pytest.mark.parametrize(("lines", "expected"), [
    ([json.dumps(CLAUDE_JSON)],  # --output-format json: cache tokens count as input
     Usage(input_tokens=150, output_tokens=400, cost_usd=0.25, turns=7, duration_ms=61000)),
    ([json.dumps(GEMINI_JSON)], Usage(input_tokens=1000, output_tokens=65, model="gemini-pro")),
    ([json.dumps({"type": "system", "subtype": "init", "model": "m-1"}), json.dumps(CLAUDE_JSON)],
     Usage(input_tokens=150, output_tokens=400, cost_usd=0.25, turns=7, duration_ms=61000, model="m-1")),
    ([json.dumps({"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 1}})] * 3,
     Usage(input_tokens=30, output_tokens=3, turns=3)),
    (["plain text", "{not json}", "[1, 2]", '{"type": "assistant"}'], None),
    ([], None),
    # the last result wins (a resumed session prints a new total)
    ([json.dumps({**CLAUDE_JSON, "total_cost_usd": 0.1}), json.dumps(CLAUDE_JSON)],
     Usage(input_tokens=150, output_tokens=400, cost_usd=0.25, turns=7, duration_ms=61000)),
    ([json.dumps({"type": "result", "usage": {"input_tokens": "many"}, "total_cost_usd": "free"})],
     Usage()),
])
def test_shapes(lines: list[str], expected: Usage | None) -> None:
    assert parse_usage(lines) == expected


def test_claudes_usage_adds_up_while_it_streams() -> None:
    lines = (OUTPUTS / "claude-2.1.332-stream-json.jsonl").read_text(encoding="utf-8").splitlines()
    streamed = parse_usage(lines[:-1])  # before its result event: per message, each counted once
    assert streamed == Usage(input_tokens=2000, output_tokens=2, model="claude-opus-5-5")
    message = json.dumps({"type": "assistant", "message": {"id": "m", "usage": {"input_tokens": 7}}})
    assert parse_usage([message, message]) == Usage(input_tokens=7)  # one event per content block


def test_meter_is_fed_line_by_line() -> None:
    meter = UsageMeter()
    assert meter.usage is None
    meter.feed(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 5, "output_tokens": 2}}))
    assert meter.usage == Usage(input_tokens=5, output_tokens=2, turns=1)


def test_totals_and_description() -> None:
    a = Usage(input_tokens=1000, output_tokens=50, cost_usd=0.5, turns=3, duration_ms=1500)
    b = Usage(input_tokens=10, output_tokens=5)
    assert total([a, None, b]) == Usage(input_tokens=1010, output_tokens=55, cost_usd=0.5, turns=3,
                                        duration_ms=1500)
    assert total([None, None]) is None and total([]) is None
    assert describe(a) == "1,000 in / 50 out tokens, $0.5000, 3 turns, 1.5 s"
    assert describe(b) == "10 in / 5 out tokens"
    assert describe(None) == "-"


def test_verified_presets_name_the_pinned_cli_versions() -> None:
    from conductor.core.presets import PRESETS

    pins = json.loads((Path(__file__).parent / "agent_clis.json").read_text())
    for name, preset in PRESETS.items():
        if preset.verified:
            assert preset.verified == f"{pins[name]['package']} {pins[name]['version']}"

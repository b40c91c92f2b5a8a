"""benchmarks/bench_fleet.py: its pure parts by table (nothing is timed here)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fleet.py"
_spec = importlib.util.spec_from_file_location("bench_fleet", SCRIPT)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize(("leaves", "workers", "slots", "duration", "expected"), [
    (24, 1, 6, 20.0, 80.0),  # four waves
    (24, 2, 6, 20.0, 40.0),  # two
    (25, 2, 6, 20.0, 60.0),  # a leaf left over is a wave of its own
    (1, 1, 6, 3.0, 3.0),
])
def test_ideal_counts_the_waves_the_slots_allow(leaves, workers, slots, duration, expected):
    assert bench.ideal(leaves, workers, slots, duration) == expected


def test_overhead_per_leaf_is_what_the_makespan_adds_to_the_ideal_spread_over_the_leaves():
    assert bench.overhead_per_leaf(92.0, 24, 1, 6, 20.0) == pytest.approx(0.5)
    assert bench.overhead_per_leaf(40.0, 24, 2, 6, 20.0) == 0.0


@pytest.mark.parametrize(("one", "two", "overheads", "expected"), [
    (90.0, 45.0, [0.4, 0.2], "two workers / one: 0.50 (goal <= 0.6: PASS); worst overhead per leaf 0.400 s "
                             "(goal <= 0.5 s: PASS)"),
    (90.0, 60.0, [0.4, 0.6], "two workers / one: 0.67 (goal <= 0.6: FAIL); worst overhead per leaf 0.600 s "
                             "(goal <= 0.5 s: FAIL)"),
])
def test_verdict(one, two, overheads, expected):
    assert bench.verdict(one, two, overheads) == expected


def test_makespan_runs_from_the_first_creation_to_the_last_end():
    runs = [{"created": "2026-12-03T10:00:00Z", "end_time": "2026-12-03T10:00:30.5+00:00"},
            {"created": "2026-12-03T10:00:02Z", "end_time": "2026-12-03T10:01:00Z"}]
    assert bench.makespan(runs) == pytest.approx(60.0)

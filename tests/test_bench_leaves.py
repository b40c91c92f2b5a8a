"""benchmarks/bench_leaves.py: its pure parts by table (nothing is timed here)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_leaves.py"
_spec = importlib.util.spec_from_file_location("bench_leaves", SCRIPT)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize(("dispatch", "sleep", "leaves", "expected"), [
    (6.6, 3.0, 24, 0.15),
    (3.0, 3.0, 24, 0.0),
    (4.0, 3.0, 1, 1.0),
    (27.0, 3.0, 24, 1.0),
])
def test_overhead_per_leaf(dispatch, sleep, leaves, expected):
    assert bench.overhead_per_leaf(dispatch, sleep, leaves) == pytest.approx(expected)


@pytest.mark.parametrize(("row", "verdict"), [
    ({"leaves": 24, "dispatch_s": 5.0}, "PASS (0.083 s)"),
    ({"leaves": 24, "dispatch_s": 9.0}, "FAIL (0.250 s)"),
    ({"leaves": 12, "dispatch_s": 5.0}, "not measured"),
    (None, "not measured"),
])
def test_goal_line(row, verdict):
    assert bench.goal_line(row, 3.0).endswith(verdict) or verdict in bench.goal_line(row, 3.0)

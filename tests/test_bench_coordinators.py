"""benchmarks/bench_coordinators.py: its pure parts by table, its bad input, and one tiny
run against the embedded server (real sandbox, real passes). Nothing is timed: the
printed figures are only parsed and checked against each other."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_coordinators.py"

_spec = importlib.util.spec_from_file_location("bench_coordinators", SCRIPT)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize(("text", "expected"), [
    ("1,4,12", [1, 4, 12]),
    ("12", [12]),
    (" 3 , 1 ,", [3, 1]),
    ("99", [99]),
])
def test_parse_ks(text, expected):
    assert bench.parse_ks(text) == expected


@pytest.mark.parametrize("text", ["", "0", "100", "1,1", "a", "1.5", "-2"])
def test_parse_ks_refuses(text):
    with pytest.raises(bench.BenchInputError, match="--k"):
        bench.parse_ks(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("embedded", ["embedded"]),
    ("postgres,embedded", ["postgres", "embedded"]),
    ("embedded, sqlite, postgres", ["embedded", "sqlite", "postgres"]),
])
def test_parse_servers(text, expected):
    assert bench.parse_servers(text) == expected


@pytest.mark.parametrize("text", ["", "mysql", "embedded,embedded", "embedded,Sqlite"])
def test_parse_servers_refuses(text):
    with pytest.raises(bench.BenchInputError, match="--servers"):
        bench.parse_servers(text)


@pytest.mark.parametrize(("dispatch", "sleep", "k", "expected"), [
    (3.9, 3.0, 12, 0.075),   # the PostgreSQL figure measured earlier
    (16.2, 3.0, 12, 1.1),    # stock SQLite: the subflows serialize
    (4.0, 3.0, 1, 1.0),
    (3.0, 3.0, 4, 0.0),
])
def test_overhead_per_coordinator(dispatch, sleep, k, expected):
    assert bench.overhead_per_coordinator(dispatch, sleep, k) == pytest.approx(expected)


def row(server: str, k: int, dispatch: float) -> dict:
    return {"server": server, "k": k, "dispatch_s": dispatch}


@pytest.mark.parametrize(("rows", "verdict"), [
    ([row("embedded", 12, 5.0)], "PASS (0.167 s)"),
    ([row("embedded", 12, 7.0)], "FAIL (0.333 s)"),
    ([row("embedded", 12, 6.6)], "FAIL (0.300 s)"),      # the goal is strictly under 0.3 s
    ([row("sqlite", 12, 4.0), row("embedded", 4, 4.0)], "not measured"),
    ([], "not measured"),
])
def test_goal_line_judges_only_embedded_at_12(rows, verdict):
    line = bench.goal_line(rows, 3.0)
    assert line.startswith("goal: embedded, K=12, overhead per coordinator < 0.3 s: ")
    assert line.endswith(verdict) if "(" in verdict else verdict in line


@pytest.mark.parametrize("args", [["--k", "0"], ["--k", "x"], ["--servers", "mysql"], ["--sleep", "-1"]])
def test_bad_input_is_one_line_and_exit_2(args):
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("bench_coordinators: ") and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


NUMBER = r"\s+(-?[\d.]+)"
ROW = re.compile(r"^embedded" + NUMBER * 11 + r"$", re.MULTILINE)


@pytest.mark.slow
def test_tiny_run_on_the_embedded_server_prints_consistent_figures():
    sleep = 0.2
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--k", "2", "--sleep", str(sleep), "--servers", "embedded", "--no-warmup"],
        capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {int(m[0]): [float(x) for x in m[1:]] for m in ROW.findall(done.stdout)}
    assert sorted(rows) == [2], done.stdout
    for k, (pass_s, dispatch, overhead, started, agent, finish, cpu, child_cpu, retries, ended) in rows.items():
        assert ended == k  # Prefect holds K finished coordinator subflows of the pass
        assert sleep <= agent <= dispatch <= pass_s  # each agent slept; the dispatch is part of the pass
        assert started < dispatch and finish < dispatch and 0 < cpu and 0 < child_cpu and retries >= 0
        assert overhead == pytest.approx((dispatch - sleep) / k, abs=0.006)  # dispatch is printed to 0.01 s
    assert "goal: embedded, K=12, overhead per coordinator < 0.3 s: not measured" in done.stdout
    assert not re.search(r"^(sqlite|postgres) ", done.stdout, re.MULTILINE)  # only the server asked for

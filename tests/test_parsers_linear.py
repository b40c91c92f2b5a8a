"""Every parser of untrusted text (issue and PR bodies, markers, agent output) on the
pathological bodies of `benchmarks/bench_parsers.py`, at GitHub's cap of 65,536 characters.

Not a benchmark: each parse must end within a generous bound of 1 s of CPU time (they take
at most about 0.1 s; CPU time, so the other test runs sharing the machine do not count). The
former `Files:` pattern took 149 s of CPU on 65,536 newlines, over a hundred times the
bound; a parser that raises on them (nested brackets once raised RecursionError
from `json.loads`) fails too."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from conductor.core.constants import GITHUB_BODY_LIMIT

_spec = importlib.util.spec_from_file_location(
    "bench_parsers", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_parsers.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

BOUND_S = 1.0
KINDS = list(bench.pathological("Files:", 64))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("parser", list(bench.PARSERS))
def test_each_parser_reads_each_pathological_body_in_linear_time(parser: str, kind: str) -> None:
    parse, lead = bench.PARSERS[parser]
    body = bench.pathological(lead, GITHUB_BODY_LIMIT)[kind]
    assert len(body) == GITHUB_BODY_LIMIT
    start = time.process_time()
    parse(body)
    assert time.process_time() - start < BOUND_S


def test_the_normal_body_is_parsed_and_found_where_a_reader_expects() -> None:
    ownership, lead = bench.PARSERS["Files: (leaf.ownership)"]
    body = bench.normal(lead)
    assert len(body) == GITHUB_BODY_LIMIT
    assert ownership(body).paths == ["#3", "app/ui/settings.py"]


@pytest.mark.parametrize(("figures", "verdict"), [
    ([("p", "k", 0.01, 3.0, 4.1)], "PASS"),
    ([("p", "k", 0.01, 3.0, 4.1), ("p", "j", 0.5, 101.0, 4.0)], "FAIL"),
    ([("p", "k", 0.01, 3.0, 16.0)], "FAIL"),
])
def test_the_goal_line_fails_on_one_bad_ratio_or_growth(figures, verdict, capsys, monkeypatch) -> None:
    monkeypatch.setattr(bench, "measure", lambda size, repeat: figures)
    assert bench.main(["--size", "64", "--repeat", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith(verdict)


def test_bad_options_exit_2_before_measuring(monkeypatch) -> None:
    monkeypatch.setattr(bench, "measure", lambda size, repeat: pytest.fail("measured"))
    assert bench.main(["--size", "10"]) == 2

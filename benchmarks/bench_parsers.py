"""Benchmark: does every parser of untrusted text run in time linear in its input?

    .venv/bin/python benchmarks/bench_parsers.py [--size 65536] [--repeat 5]

Every parser the conductor runs over issue and PR text or agent output (`PARSERS`) is timed
on a table of pathological bodies (`pathological`: blank lines, runs of spaces and tabs, `#`
runs, nested brackets, one long line, only newlines, the parser's own keyword repeated), each
`--size` characters (GitHub's cap on a body, 65,536, by default), and on a normal body of the
same size (`normal`: prose, then the keyword's line at the end). The figures: the ratio of
the two (CPU time, `time.process_time`, best of `--repeat` samples each, so other
processes on the machine count little; a normal body faster than 1 ms
counts as 1 ms, so no ratio is taken to the clock's noise), and the growth: the time at
`--size` over the time at a quarter of it (4 for a linear parser, 16 for a quadratic one;
the same 1 ms floor applies).
No network, no sandbox.

Goal: every ratio at most `GOAL_RATIO` and every growth at most `GOAL_GROWTH`. A backtracking
pattern breaks both by orders of magnitude: the former `Files:` pattern took about 40 s on
40,000 newlines, a ratio in the tens of thousands.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from pydantic import ValidationError

from conductor.core import markdown
from conductor.core.attempts import read_attempts
from conductor.core.constants import GITHUB_BODY_LIMIT
from conductor.core.dependencies import issue_dependencies, merge_after_references
from conductor.core.leaf import ownership
from conductor.core.linking import linked_issues
from conductor.core.reminder import is_stuck_issue, parse_reminder
from conductor.core.reports import AgentReport
from conductor.core.taskfile import parse_key_values, render_task_file
from conductor.core.usage import UsageMeter
from conductor.core.verify import parse_pr_url

REPO = "octo/maestro"
LOGIN = "conductor-bot"
GOAL_RATIO = 25.0
GOAL_GROWTH = 6.0
FLOOR = 0.001  # seconds: a normal body parsed faster than this counts as this (no ratio to noise)


def _report(text: str) -> object:
    try:
        return AgentReport.model_validate_json(text)
    except ValidationError:
        return None


def _usage(text: str) -> object:
    meter = UsageMeter()
    for line in text.split("\n"):
        meter.feed(line)
    return meter.usage


def _task_file(text: str) -> object:
    return parse_key_values(render_task_file({"ISSUE_TITLE": text, "FILE_OWNERSHIP": text}))


# name -> (the parser over one body, the keyword that makes it start matching)
PARSERS: dict[str, tuple[Callable[[str], object], str]] = {
    "Files: (leaf.ownership)": (ownership, "Files:"),
    "closing keywords (linking)": (lambda t: linked_issues(t, REPO), "Fixes"),
    "Depends on (dependencies)": (lambda t: issue_dependencies(t, REPO), "Depends on"),
    "Merge after (dependencies)": (lambda t: merge_after_references(t, REPO), "Merge after"),
    "reminder marker": (parse_reminder, "<!-- conductor:reminder"),
    "stuck marker": (is_stuck_issue, "<!-- conductor:stuck"),
    "attempt marker": (lambda t: read_attempts([(LOGIN, t)], LOGIN), "<!-- conductor:attempt"),
    "agent report (reports)": (_report, '{"workflow": "pr-review", "message":'),
    "agent usage lines (usage)": (_usage, '{"type": "result", "usage":'),
    "PR URL (verify)": (parse_pr_url, "https://github.com/octo/maestro/pull/"),
    "markdown.escape": (markdown.escape, "@"),
    "task file write + read": (_task_file, "KEY="),
}


def _fill(lead: str, unit: str, size: int, tail: str = "") -> str:
    body = lead + unit * ((size - len(lead) - len(tail)) // len(unit) + 1)
    return body[:size - len(tail)] + tail


def pathological(lead: str, size: int = GITHUB_BODY_LIMIT) -> dict[str, str]:
    """The hostile bodies for a parser whose keyword is `lead`, each `size` characters."""
    depth = (size - len(lead) - 12) // 2
    return {
        "blank lines": _fill("", "\n", size, "The end."),
        "keyword, blank lines": _fill(lead, "\n", size, "The end."),
        "keyword, spaces": _fill(lead, " ", size, "x"),
        "keyword, tabs": _fill(lead, "\t", size, "x"),
        "keyword, # run": _fill(lead + " ", "#", size),
        "nested brackets": _fill(lead + ' {"a":' + "[" * depth + "]" * depth, "}", size),
        "nested brackets, -->": _fill(lead + ' {"a":' + "[" * depth + "]" * depth, "}", size, " -->"),
        "one long line": _fill(lead + " ", "a", size),
        "newlines only": "\n" * size,
        "keyword repeated": _fill("", lead + " a.", size),
        "spaced lines": _fill("", " \n\t", size),
    }


def normal(lead: str, size: int = GITHUB_BODY_LIMIT) -> str:
    """A plain body of `size` characters: prose and a list, then the keyword's line at the
    end (so the parser reads all of it)."""
    prose = ("The page lists each user's settings with a short description and a toggle; "
             "saving writes them through the API and shows a confirmation.\n"
             "- keep the layout of the dashboard\n- test it with ten demo users\n\n")
    return _fill("Implement the settings page.\n\n", prose, size, f"\n{lead} #3 `app/ui/settings.py`\n")


def seconds(parse: Callable[[str], object], text: str, repeat: int, floor: float = 0.005) -> float:
    """The best time of one call over `repeat` samples; a sample repeats the call until it
    lasts `floor` seconds, so fast parsers are timed above the clock's noise."""
    loops, elapsed = 1, 0.0
    while True:
        start = time.process_time()
        for _ in range(loops):
            parse(text)
        elapsed = time.process_time() - start
        if elapsed >= floor:
            break
        loops *= 2
    times = [elapsed / loops]
    for _ in range(repeat - 1):
        start = time.process_time()
        for _ in range(loops):
            parse(text)
        times.append((time.process_time() - start) / loops)
    return min(times)


def measure(size: int, repeat: int) -> list[tuple[str, str, float, float, float]]:
    """(parser, input, seconds, ratio to the normal body, growth from size/4 to size)."""
    rows = []
    for name, (parse, lead) in PARSERS.items():
        plain = max(seconds(parse, normal(lead, size), repeat), FLOOR)
        quarters = pathological(lead, size // 4)
        for kind, text in pathological(lead, size).items():
            took = seconds(parse, text, repeat)
            quarter = seconds(parse, quarters[kind], repeat)
            rows.append((name, kind, took, took / plain, max(took, FLOOR) / max(quarter, FLOOR / 4)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=GITHUB_BODY_LIMIT, help="characters per body")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the best counts)")
    args = parser.parse_args(argv)
    if args.size < 64 or args.repeat < 1:
        print("error: --size must be at least 64 and --repeat at least 1; pass larger values", file=sys.stderr)
        return 2
    rows = measure(args.size, args.repeat)
    print(f"{'parser':<28} {'input':<22} {'ms':>8} {'x normal':>9} {'growth':>7}")
    for name, kind, took, ratio, growth in rows:
        print(f"{name:<28} {kind:<22} {took * 1000:8.2f} {ratio:9.1f} {growth:7.2f}")
    worst_ratio = max(rows, key=lambda r: r[3])
    worst_growth = max(rows, key=lambda r: r[4])
    ok = worst_ratio[3] <= GOAL_RATIO and worst_growth[4] <= GOAL_GROWTH
    print(f"\nworst ratio {worst_ratio[3]:.1f} ({worst_ratio[0]}, {worst_ratio[1]}); "
          f"worst growth {worst_growth[4]:.2f} ({worst_growth[0]}, {worst_growth[1]})")
    print(f"goal: every ratio <= {GOAL_RATIO:g} and every growth <= {GOAL_GROWTH:g} at {args.size:,} "
          f"characters: {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the terminal shows during a pass: short decision lines, never engine noise or tracebacks."""
from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from shell.progress import ProgressHandler, route_logs, start_logging


def shown(name: str, level: int, message: str, **extra: str) -> str:
    out = io.StringIO()
    handler = ProgressHandler(Console(file=out, width=200, color_system=None))
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    handler.handle(record)
    return out.getvalue()


@pytest.mark.parametrize(("name", "level", "message", "extra", "expected"), [
    ("prefect.task_runs", logging.INFO, "4 open issues, 0 open PRs, 2 requests", {"task_run_name": "read state-026"},
     "read state 4 open issues, 0 open PRs, 2 requests\n"),
    ("prefect.flow_runs", logging.INFO, "Finished in state Completed()", {}, ""),
    ("prefect.flow_runs", logging.INFO, "View at http://127.0.0.1:1/runs/flow-run/x", {}, ""),
    ("prefect.flow_runs", logging.INFO, "Beginning flow run 'x' for flow 'conductor'", {}, ""),
    ("prefect.task_runs", logging.ERROR, "coordinator failed: boom\nTraceback (most recent call last):\n  ...",
     {"task_run_name": "run agent-1ab"}, "run agent coordinator failed: boom\n"),
    ("conductor.edges.github_gateway", logging.INFO, "read 3 pages", {}, ""),
    ("conductor.edges.github_gateway", logging.WARNING, "GitHub unreachable, retry 2/6 in 4.0 s", {},
     "GitHub unreachable, retry 2/6 in 4.0 s\n"),
    ("prefect.task_runs", logging.INFO, "title [bold]not markup[/bold]", {}, "title [bold]not markup[/bold]\n"),
])
def test_progress_lines(name, level, message, extra, expected):
    assert shown(name, level, message, **extra) == expected


def test_prefect_console_output_goes_to_the_log_file(tmp_path):
    root = logging.getLogger()
    stream = logging.StreamHandler(io.StringIO())
    root.addHandler(stream)
    saved = list(root.handlers)
    try:
        log = tmp_path / "run.log"
        start_logging(log, None)
        route_logs(log, None)
        assert stream not in root.handlers
        logging.getLogger("prefect.flow_runs").warning("a line for the file")
        for h in root.handlers:
            h.flush()
        assert "a line for the file" in log.read_text()
    finally:
        for h in list(root.handlers):
            if h not in saved or isinstance(h, logging.FileHandler):
                root.removeHandler(h)
                h.close()
        for h in saved:
            if h not in root.handlers and not isinstance(h, logging.FileHandler):
                root.addHandler(h)

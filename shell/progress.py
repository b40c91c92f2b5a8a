"""What a person sees while a pass runs: progress lines on stderr, Prefect's own output in a file.

`route_logs` takes Prefect's console handler off the terminal and writes every log line
and traceback (Prefect's, the flow's, the GitHub gateway's) to a log file instead. The
terminal gets `ProgressHandler`'s short lines: what the pass and its coordinators log
as decisions (the same lines the Prefect UI shows), and GitHub retries, one line each.
"""
from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

# The engine's own bookkeeping lines: in the log file, not on the terminal.
_ENGINE_NOISE = re.compile(
    r"^(Beginning (flow|subflow) run|View at |Finished in state|Created (task|subflow|flow) run|"
    r"Executing |Running |Submitting |Encountered exception|Received non-final state|"
    r"Process for flow run|Opening process|Downloading flow code)")
_PREFECT_WATCHED = ("prefect.flow_runs", "prefect.task_runs")


def default_log_file(log_dir: Path | None = None) -> Path:
    folder = log_dir or Path.home() / ".conductor" / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"run-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}.log"


class ProgressHandler(logging.Handler):
    """One short line per decision or warning; never a traceback."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call must not break the pass
            return
        if record.name.startswith("conductor") and record.levelno < logging.WARNING:
            return
        if _ENGINE_NOISE.match(message):
            return
        first = message.strip().splitlines()[0] if message.strip() else ""
        if not first:
            return
        where = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None) or ""
        where = re.sub(r"-[0-9a-f]{3}$", "", str(where))
        style = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "red"}.get(record.levelno, "")
        prefix = f"[dim]{escape(str(where))}[/dim] " if where else ""
        text = escape(first[:300])
        self.console.print(f"{prefix}[{style}]{text}[/{style}]" if style else f"{prefix}{text}",
                           highlight=False, soft_wrap=True)


def _file_handler(log_file: Path) -> logging.FileHandler:
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == Path(log_file).resolve():
            return handler
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    return handler


def start_logging(log_file: Path, console: Console | None) -> None:
    """From the first line on: every log record to `log_file`; the conductor's own warnings
    (GitHub retries) also as short lines on `console`."""
    _file_handler(log_file)
    logger = logging.getLogger("conductor")
    logger.setLevel(logging.INFO)
    if console is not None and not any(isinstance(h, ProgressHandler) for h in logger.handlers):
        logger.addHandler(ProgressHandler(console))


def route_logs(log_file: Path, console: Console | None) -> None:
    """Once Prefect has configured its logging: its console output to `log_file` instead,
    and its flow and task runs' lines as short progress lines on `console`."""
    file_handler = _file_handler(log_file)
    root = logging.getLogger()
    for name in ("", "uvicorn", "fastapi", "prefect._internal"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        if name and file_handler not in logger.handlers:
            logger.addHandler(file_handler)
    if file_handler not in root.handlers:
        root.addHandler(file_handler)
    if console is not None:
        for name in _PREFECT_WATCHED:
            logger = logging.getLogger(name)
            if not any(isinstance(h, ProgressHandler) for h in logger.handlers):
                logger.addHandler(ProgressHandler(console))

"""Run the agent command of one coordinator: the only module that starts subprocesses.

The command is an argument list (never a shell) started in its own session, so the
whole process group can be signalled: on timeout the agent and everything it spawned
get SIGTERM, a short grace, then SIGKILL. When the agent exits on its own, anything it
left running in its group is stopped the same way, so no coordinator leaves orphans.
Output (stdout and stderr merged) is read in the calling thread with a selector, split
into lines, redacted, and handed to `on_line` in that same thread, which keeps Prefect's
run context available to the callback and cannot deadlock on a full pipe. POSIX only.

A process that leaves the group (setsid) and keeps the output pipe open cannot be
reached; after SIGKILL the output is drained for at most one more second.
"""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from conductor.errors import ConductorError

PLACEHOLDERS = ("task_file", "report_file", "worktree", "prompt_file", "workflow")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")

# Credentials of the conductor itself; the caller passes the agent's own via `extra`.
DEFAULT_DROPPED_ENV = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "PREFECT_API_KEY",
    "CONDUCTOR_GITHUB_TOKEN",
)
REDACTED = "***"
TAIL_LINES = 50
_CHUNK = 65536
_MAX_LINE = 65536  # a longer line without a newline is emitted in pieces
_POLL_S = 0.1
_FINAL_DRAIN_S = 1.0


class AgentCommandError(ConductorError):
    """The agent command is missing, empty or cannot start."""


class AgentRun(BaseModel):
    """How a run ended. `returncode` is None on timeout, negative if killed by a signal."""

    model_config = ConfigDict(frozen=True)

    returncode: int | None
    timed_out: bool
    duration_s: float
    output_tail: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each non-empty secret with `***` (longest first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def agent_environment(
    base: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    drop: Iterable[str] = DEFAULT_DROPPED_ENV,
) -> dict[str, str]:
    """The complete child environment: `base` minus `drop` (any case), then `extra`."""
    dropped = {name.upper() for name in drop}
    env = {k: v for k, v in base.items() if k.upper() not in dropped}
    env.update(extra or {})
    return env


def expand_command(template: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Fill `{task_file}`, `{report_file}`, `{worktree}`, `{prompt_file}`, `{workflow}`.

    One pass per argument, so a value is never re-scanned and never split; unknown
    `{x}` stays as it is. A known placeholder without a value is an error.
    """
    if not template:
        raise AgentCommandError(
            "agent command is empty; set agent_command in conductor.toml or choose a preset"
        )

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise AgentCommandError(
                f"agent command uses {{{name}}} but no value was given; "
                f"remove it from agent_command or use one of {', '.join(PLACEHOLDERS)}"
            )
        return str(values[name])

    return [_PLACEHOLDER.sub(fill, arg) for arg in template]


class _Lines:
    """Turns byte chunks into redacted text lines, keeps a tail, calls `on_line`."""

    def __init__(self, on_line: Callable[[str], None], secrets: Sequence[str]) -> None:
        self._on_line = on_line
        self._secrets = [s for s in secrets if s]
        self._buffer = b""
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            self._emit(raw)
        while len(self._buffer) >= _MAX_LINE:
            self._emit(self._buffer[:_MAX_LINE])
            self._buffer = self._buffer[_MAX_LINE:]

    def flush(self) -> None:
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = b""

    def _emit(self, raw: bytes) -> None:
        line = redact(raw.decode("utf-8", errors="replace").rstrip("\r"), self._secrets)
        self.tail.append(line)
        self._on_line(line)


class _Output:
    """The merged stdout/stderr pipe, read with a selector in the calling thread."""

    def __init__(self, proc: subprocess.Popen[bytes], lines: _Lines) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._pipe = proc.stdout
        self._lines = lines
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self.closed = False

    def read(self, wait_s: float) -> None:
        """Wait up to `wait_s` for output and consume what is there."""
        if self.closed or not self._selector.select(max(wait_s, 0.0)):
            return
        chunk = os.read(self._fd, _CHUNK)
        if chunk:
            self._lines.feed(chunk)
        else:
            self.closed = True
            self._lines.flush()

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.closed and (left := deadline - time.monotonic()) > 0:
            self.read(min(left, _POLL_S))

    def close(self) -> None:
        try:
            self._lines.flush()
        finally:
            self._selector.close()
            self._pipe.close()


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the agent exited, without reaping it (its pid keeps the group id reserved)."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(proc: subprocess.Popen[bytes], output: _Output, grace: float) -> None:
    """SIGTERM the group, wait for the pipe to close up to `grace`, SIGKILL, reap."""
    try:
        _signal_group(proc, signal.SIGTERM)
        output.drain(grace)
    finally:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    output.drain(_FINAL_DRAIN_S)


def stop_orphan(pid: int, inside: Path, grace: float = 3.0) -> bool:
    """Stop the process group of an agent a dead pass left running in `inside`.

    Only a live process whose working directory is inside `inside` is touched (a pid
    read from disk may have been reused). Returns whether one was stopped."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
    except OSError:
        return False
    if not cwd.is_relative_to(Path(inside).resolve()):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except (ProcessLookupError, PermissionError):
                return True
            time.sleep(0.05)
    return True


def _start(argv: Sequence[str], cwd: Path, env: Mapping[str, str], secrets: Sequence[str]
           ) -> subprocess.Popen[bytes]:
    name = redact(argv[0], secrets)
    if not cwd.is_dir():
        raise AgentCommandError(
            f"agent working directory {cwd} does not exist; create the worktree before dispatching"
        )
    try:
        return subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), shell=False, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
    except FileNotFoundError:
        raise AgentCommandError(
            f"agent command {name!r} not found on PATH; install it or fix agent_command in conductor.toml"
        ) from None
    except PermissionError:
        raise AgentCommandError(
            f"agent command {name!r} is not executable; fix its permissions or agent_command in conductor.toml"
        ) from None
    except OSError as exc:
        raise AgentCommandError(
            f"agent command {name!r} could not start ({exc.strerror}); fix agent_command in conductor.toml"
        ) from None


def run_agent(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: Callable[[str], None],
    secrets: Sequence[str] = (),
    kill_grace: float = 3.0,
    on_start: Callable[[int], None] | None = None,
) -> AgentRun:
    """Run `argv` in `cwd` with exactly `env`, stream redacted lines to `on_line`, enforce `timeout`."""
    if not argv:
        raise AgentCommandError(
            "agent command is empty; set agent_command in conductor.toml or choose a preset"
        )
    if timeout <= 0:
        raise AgentCommandError(f"agent timeout must be positive, got {timeout}; set a positive timeout")
    lines = _Lines(on_line, secrets)
    started = time.monotonic()
    proc = _start(argv, Path(cwd), env, secrets)
    if on_start is not None:
        on_start(proc.pid)
    deadline = started + timeout
    timed_out = False
    output = _Output(proc, lines)
    try:
        while not _exited(proc):
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if output.closed:
                time.sleep(min(left, _POLL_S))
            else:
                output.read(min(left, _POLL_S))
    finally:
        try:
            _stop_group(proc, output, kill_grace)
        finally:
            output.close()
    return AgentRun(
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
        output_tail=list(lines.tail),
    )

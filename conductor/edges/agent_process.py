"""Run the agent command of one coordinator: the only module that starts subprocesses.

The command is an argument list (never a shell) started in its own session, so the
whole process group can be signalled: on timeout the agent and everything it spawned
get SIGTERM, a short grace, then SIGKILL. When the agent exits on its own, anything it
left running in its group is stopped the same way, so no coordinator leaves orphans.
Output (stdout and stderr merged) is read in the calling thread with a selector, split
into lines, redacted (`conductor.core.redaction`, the agent-output door), and handed to
`on_line` in that same thread, which keeps Prefect's run context available to the callback
and cannot deadlock on a full pipe. POSIX only.

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

from conductor.core.errors import ConductorError
from conductor.core.github_urls import PUBLIC_API_URL, gh_host, web_url_of
from conductor.core.redaction import Redactor, basic_credential

PLACEHOLDERS = ("task_file", "report_file", "worktree", "prompt_file", "workflow",
                "git_dir", "git_common_dir")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")

# Credentials (and the host they belong to) of the conductor itself; the caller passes
# the agent's own via `extra` (see `agent_github_env`), which is never dropped.
DEFAULT_DROPPED_ENV = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "GH_HOST",
    "PREFECT_API_KEY",
    "CONDUCTOR_GITHUB_TOKEN",
    "CONDUCTOR_AGENT_TOKEN",
    "CONDUCTOR_WEBHOOK_SECRET",
)
# git asks this helper for the agent's credential; it reads the token from the agent's
# environment when git runs it, so the token is never written to a file or a git config.
GIT_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; echo username=x-access-token; echo "password=$GH_TOKEN"; }; f'
)
TAIL_LINES = 50
_CHUNK = 65536
_MAX_LINE = 65536  # a longer line without a newline is emitted in pieces
_POLL_S = 0.1
_FINAL_DRAIN_S = 1.0


class AgentCommandError(ConductorError):
    """The agent command is missing, empty or cannot start."""


class AgentRun(BaseModel):
    """How a run ended. `returncode` is None when it was stopped (total or idle timeout),
    negative if killed by a signal."""

    model_config = ConfigDict(frozen=True)

    returncode: int | None
    timed_out: bool
    duration_s: float
    output_tail: list[str]
    idle_timed_out: bool = False
    stopped: str = ""  # why `stop_when` stopped it

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.idle_timed_out and not self.stopped


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


# git runs this when no credential helper answered (an agent CLI may reset the helpers, as
# Gemini CLI's shell does): it prints the agent's token from its environment.
GIT_ASKPASS_SCRIPT = """#!/bin/sh
# Written by the conductor: answers git's prompts with the agent's token from its environment.
case "$1" in
  Username*) echo x-access-token ;;
  *) printf '%s\\n' "$GH_TOKEN" ;;
esac
"""


def write_askpass(folder: Path) -> Path:
    """The askpass script (no secret in it) in `folder`, executable by its owner only."""
    path = Path(folder) / "conductor-git-askpass"
    path.write_text(GIT_ASKPASS_SCRIPT, encoding="utf-8")
    path.chmod(0o700)
    return path


def ca_env(ca_bundle: Path | None) -> dict[str, str]:
    """What makes every client an agent runs trust `ca_bundle` (CONDUCTOR_CA_BUNDLE): Go's `gh`
    and OpenSSL (SSL_CERT_FILE), Python requests, Node (NODE_EXTRA_CA_CERTS), git
    (GIT_SSL_CAINFO, which outranks any http.sslCAInfo, so a machine-wide value cannot win)."""
    if ca_bundle is None:
        return {}
    path = str(ca_bundle)
    return {"SSL_CERT_FILE": path, "REQUESTS_CA_BUNDLE": path, "NODE_EXTRA_CA_CERTS": path,
            "GIT_SSL_CAINFO": path}


def agent_github_env(api_url: str, token: str | None, askpass: Path | None = None,
                     ca_bundle: Path | None = None) -> dict[str, str]:
    """What the agent needs to reach GitHub with its own token, on any host.

    `gh` reads GH_TOKEN/GITHUB_TOKEN only for github.com; for any other host it reads
    GH_ENTERPRISE_TOKEN and needs GH_HOST (GH_REPO carries no host). `git push` gets the
    token from a credential helper set through git's environment config (GIT_CONFIG_*),
    scoped to the host's URL and replacing any helper the clone has, so the agent pushes as
    itself and nothing is written anywhere; `askpass` (see `write_askpass`) answers when an
    agent CLI resets the helpers. `ca_bundle` (CONDUCTOR_CA_BUNDLE): the CA every client
    trusts (`ca_env`, and git's http.sslCAInfo for the host). Without a token: only the CA."""
    if not token:
        return ca_env(ca_bundle)
    env = {"GH_TOKEN": token, "GITHUB_TOKEN": token, "GIT_TERMINAL_PROMPT": "0", **ca_env(ca_bundle)}
    web = web_url_of(api_url)
    if api_url.rstrip("/") != PUBLIC_API_URL:
        env.update({"GH_ENTERPRISE_TOKEN": token, "GITHUB_ENTERPRISE_TOKEN": token,
                    "GH_HOST": gh_host(api_url)})
    key = f"credential.{web}.helper"
    env.update({"GIT_CONFIG_COUNT": "4" if ca_bundle else "3",
                "GIT_CONFIG_KEY_0": key, "GIT_CONFIG_VALUE_0": "",  # empty: drop the clone's helpers
                "GIT_CONFIG_KEY_1": key, "GIT_CONFIG_VALUE_1": GIT_CREDENTIAL_HELPER,
                # an agent CLI may drop every helper and askpass for its commands (Gemini CLI
                # does): the header, in the environment only, still carries the token
                "GIT_CONFIG_KEY_2": f"http.{web}/.extraHeader",
                "GIT_CONFIG_VALUE_2": f"Authorization: Basic {basic_credential(token)}"})
    if ca_bundle is not None:
        env.update({"GIT_CONFIG_KEY_3": f"http.{web}/.sslCAInfo", "GIT_CONFIG_VALUE_3": str(ca_bundle)})
    if askpass is not None:
        env["GIT_ASKPASS"] = str(askpass)
    return env


def expand_command(template: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Fill `{task_file}`, `{report_file}`, `{worktree}`, `{prompt_file}`, `{workflow}`,
    `{git_dir}` (the worktree's own git directory) and `{git_common_dir}` (the clone's).

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
    """Turns byte chunks into redacted text lines, keeps a tail, calls `on_line`.

    Redaction happens before any cut: a line is redacted whole, and a line longer than
    `_MAX_LINE` is cut only where no secret (complete, or begun and still arriving) is
    split (`Redactor.safe_cut`), so no secret survives a chunk boundary, a partial write
    or a long-line cut."""

    def __init__(self, on_line: Callable[[str], None], redactor: Redactor,
                 on_output: Callable[[], None] | None = None) -> None:
        self._on_line = on_line
        self._on_output = on_output
        self._redactor = redactor
        self._buffer = b""
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, chunk: bytes) -> None:
        if chunk and self._on_output is not None:
            self._on_output()
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            self._emit(raw)
        while len(self._buffer) >= _MAX_LINE:
            cut = self._redactor.safe_cut(self._buffer, _MAX_LINE)
            self._emit(self._buffer[:cut])
            self._buffer = self._buffer[cut:]

    def flush(self) -> None:
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = b""

    def _emit(self, raw: bytes) -> None:
        line = self._redactor.bytes(raw).decode("utf-8", errors="replace").rstrip("\r")
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


def process_started(pid: int) -> str | None:
    """When process `pid` of this machine started (clock ticks after boot, `/proc/<pid>/stat`),
    or None when it is dead (gone, or a zombie): with its pid, it names one process, since a
    pid may be reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name, in parentheses, may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


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


def _start(argv: Sequence[str], cwd: Path, env: Mapping[str, str], redactor: Redactor
           ) -> subprocess.Popen[bytes]:
    name = redactor.text(argv[0])
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
    redactor: Redactor | None = None,
    kill_grace: float = 3.0,
    on_start: Callable[[int], None] | None = None,
    idle_timeout: float | None = None,
    stop_when: Callable[[], str] | None = None,
) -> AgentRun:
    """Run `argv` in `cwd` with exactly `env`, stream lines redacted by `redactor` (none:
    nothing to redact) to `on_line`, enforce `timeout` (total seconds) and `idle_timeout`
    (seconds without a byte of output, None for none): either stops the whole process group.
    So does `stop_when` answering a reason (asked after each read of output)."""
    if not argv:
        raise AgentCommandError(
            "agent command is empty; set agent_command in conductor.toml or choose a preset"
        )
    if timeout <= 0:
        raise AgentCommandError(f"agent timeout must be positive, got {timeout}; set a positive timeout")
    if idle_timeout is not None and idle_timeout <= 0:
        raise AgentCommandError(
            f"agent idle timeout must be positive, got {idle_timeout}; set a positive agent_idle_timeout")
    redactor = redactor if redactor is not None else Redactor(())
    last_output = [time.monotonic()]
    lines = _Lines(on_line, redactor, on_output=lambda: last_output.__setitem__(0, time.monotonic()))
    started = time.monotonic()
    proc = _start(argv, Path(cwd), env, redactor)
    if on_start is not None:
        on_start(proc.pid)
    deadline = started + timeout
    timed_out = idle = False
    stopped = ""
    output = _Output(proc, lines)
    try:
        while not _exited(proc):
            if stop_when is not None and (stopped := stop_when()):
                break
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                timed_out = True
                break
            if idle_timeout is not None:
                quiet_left = last_output[0] + idle_timeout - now
                if quiet_left <= 0:
                    idle = True
                    break
                left = min(left, quiet_left)
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
        returncode=None if timed_out or idle or stopped else proc.returncode,
        timed_out=timed_out,
        idle_timed_out=idle,
        stopped=stopped,
        duration_s=round(time.monotonic() - started, 3),
        output_tail=list(lines.tail),
    )

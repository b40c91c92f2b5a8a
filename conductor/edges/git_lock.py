"""The pass lock's I/O: a compare-and-swap on a git ref of the repository, over git itself.

`GitRefLock` implements `passlock.LockStore` with a private bare repository in a temporary
directory (never the user's clone) and three git commands against the remote:

- read: `git fetch URL +REF:refs/conductor/seen` (absent: "couldn't find remote ref"), then
  `git cat-file commit` for the lease in its message;
- swap: `git commit-tree` of the empty tree with the lease as message, then
  `git push --force-with-lease=REF:EXPECTED URL SHA:REF` (EXPECTED empty: the ref must not
  exist). The server's receive-pack checks the old value under its ref lock, so of two
  swaps from the same expected value exactly one lands; the other is rejected ("stale info");
- delete: `git push --force-with-lease=REF:EXPECTED URL :REF`.

The token travels in an `http.extraHeader` set through `GIT_CONFIG_*` environment
variables: never in an argument list, a URL, a config file or a log line.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from conductor.core.constants import LOCK_REF
from conductor.core.errors import ConductorError
from conductor.core.passlock import Lease, LockState, PassLock
from conductor.core.settings import process_environment

_SEEN = "refs/conductor/seen"
_EMPTY_TREE_INPUT = b""

__all__ = ["GitRefLock", "LockError", "holder_name", "pass_lock"]


class LockError(ConductorError):
    """The lock ref could not be read or written (not a lost race: a fault)."""


class GitRefLock:
    """`passlock.LockStore` over `git` against `url` (the repository's clone URL)."""

    def __init__(self, url: str, token: SecretStr | None, *, ref: str = LOCK_REF,
                 timeout: float = 60.0, ca_bundle: Path | None = None) -> None:
        self.url = url
        self.ca_bundle = ca_bundle
        self.ref = ref
        self.timeout = timeout
        self._token = token
        self._dir = Path(tempfile.mkdtemp(prefix="conductor-lock-"))
        self._git("init", "-q", "--bare", str(self._dir), cwd=None, what="git init")

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> GitRefLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ LockStore
    def read(self) -> LockState | None:
        done = self._run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--force",
                         self.url, f"+{self.ref}:{_SEEN}")
        if done.returncode != 0:
            if "couldn't find remote ref" in done.stderr.lower():
                return None
            raise LockError(f"cannot read the conductor lock {self.ref}: {_last_line(done.stderr)}")
        sha = self._git("rev-parse", "--verify", _SEEN, what="git rev-parse").strip()
        message = self._git("log", "-1", "--format=%B", sha, what="git log")
        return LockState(sha=sha, lease=Lease.from_message(message))

    def swap(self, expected: str | None, lease: Lease | None) -> str | None:
        lease_arg = f"--force-with-lease={self.ref}:{expected or ''}"
        if lease is None:
            source, new = "", ""
        else:
            tree = self._git("hash-object", "-t", "tree", "-w", "--stdin", what="git hash-object",
                             stdin=_EMPTY_TREE_INPUT).strip()
            new = self._git("commit-tree", tree, "-m", lease.to_message(), what="git commit-tree").strip()
            source = new
        done = self._run("push", "--porcelain", "--no-verify", lease_arg, self.url, f"{source}:{self.ref}")
        if done.returncode == 0:
            return new
        # Rejected: the lease was stale (the client saw the ref move), or the server's ref
        # transaction failed its old-value check (a racing push landed first), or a fault.
        # Which one, the ref itself says: if it no longer points where it was expected, the
        # swap lost; if it still does, the push failed for another reason.
        now = self.read()
        if (now.sha if now else None) != (expected or None):
            return None
        raise LockError(f"cannot write the conductor lock {self.ref}: "
                        f"{_last_line(done.stderr or done.stdout)}; the token needs write access")

    # ------------------------------------------------------------------ git
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in process_environment().items() if not k.startswith("GIT_")}
        env.update({
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": "conductor", "GIT_AUTHOR_EMAIL": "conductor@localhost",
            "GIT_COMMITTER_NAME": "conductor", "GIT_COMMITTER_EMAIL": "conductor@localhost",
        })
        config = [("credential.helper", ""), ("protocol.version", "2")]
        if self.ca_bundle is not None:  # CONDUCTOR_CA_BUNDLE (every GIT_* of the machine was dropped above)
            config.append(("http.sslCAInfo", str(self.ca_bundle)))
        if self._token is not None:
            basic = base64.b64encode(f"x-access-token:{self._token.get_secret_value()}".encode()).decode()
            config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def _run(self, *args: str, cwd: Path | None | bool = True,
             stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        where = ["-C", str(self._dir)] if cwd is True else []
        try:
            done = subprocess.run(["git", *where, *args], env=self._env(), capture_output=True,
                                  input=stdin.decode() if stdin is not None else None, text=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise LockError(f"git {args[0]} for the conductor lock timed out after {self.timeout:g} s; "
                            "check the network and the repository's URL") from None
        return done

    def _git(self, *args: str, what: str, cwd: Path | None | bool = True, stdin: bytes | None = None) -> str:
        done = self._run(*args, cwd=cwd, stdin=stdin)
        if done.returncode != 0:
            raise LockError(f"{what} for the conductor lock failed: {_last_line(done.stderr)}")
        return done.stdout


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@contextmanager
def pass_lock(url: str, token: SecretStr | None, *, pass_id: str, holder: str, lease_seconds: float,
              renew_every: float | None = None, on_lost: Callable[[], None] | None = None,
              ca_bundle: Path | None = None) -> Iterator[PassLock]:
    """`with pass_lock(...) as lock:` — `lock.held` says whether this pass holds the
    repository's lock on GitHub (else `lock.other` is who does). Renewed while the block
    runs, released after it; a fault reading or writing the ref raises `LockError`;
    `on_lost` is called once if the lease is found taken over."""
    with GitRefLock(url, token, ca_bundle=ca_bundle) as store:
        lock = PassLock(store, pass_id=pass_id, holder=holder, lease_seconds=lease_seconds,
                        holder_dead=holder_dead, on_lost=on_lost)
        with lock.hold(renew_every) as held:
            yield held


def holder_name(login: str) -> str:
    """Who a lock belongs to, as other passes see it: LOGIN@HOST (pid N)."""
    return f"{login}@{socket.gethostname()} (pid {os.getpid()})"


_HOLDER = re.compile(r"^(?P<login>[^@]*)@(?P<host>.+) \(pid (?P<pid>\d+)\)$")


def holder_dead(lease: Lease) -> bool:
    """Whether the lease's holder is a process on this machine that no longer runs (a
    killed pass): then its lock need not wait for the lease to expire."""
    match = _HOLDER.match(lease.holder)
    if not match or match["host"] != socket.gethostname():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

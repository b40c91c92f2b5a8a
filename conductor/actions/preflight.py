"""Checks a pass's inputs before anything is written and before Prefect runs the pass.

Each check raises a `ConductorError` with one line naming the problem and the fix:
the agent command resolves (argv[0] on PATH), the token is valid (one GET /user), the
repository is visible to it, and the local clone is a clone of that repository.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from conductor.edges import worktrees
from conductor.core.errors import ConductorError
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.settings import GitHubSettings, Settings


@dataclass(frozen=True)
class Checked:
    login: str
    default_branch: str


def check_agent_command(argv: list[str], dry_run: bool) -> None:
    if dry_run:
        return
    if not argv:
        raise ConductorError("no agent command: pass --agent-command or --agent-preset, "
                             "or set CONDUCTOR_AGENT_COMMAND / CONDUCTOR_AGENT_PRESET")
    program = argv[0]
    if os.sep in program:
        if not (Path(program).is_file() and os.access(program, os.X_OK)):
            raise ConductorError(f"agent command {program!r} is not an executable file; fix --agent-command")
    elif shutil.which(program) is None:
        raise ConductorError(f"agent command {program!r} is not on PATH; install it or give its full path "
                             "in --agent-command")


def _slug_of(url: str) -> str | None:
    """OWNER/NAME at the end of a git URL (https, ssh, scp-like or a local path)."""
    match = re.search(r"([^/:]+)/([^/:]+?)(?:\.git)?/*$", url.strip())
    return f"{match.group(1)}/{match.group(2)}".lower() if match else None


def check_clone(repo_path: Path, repo: str) -> None:
    remotes = worktrees.remote_urls(repo_path)  # "not a git repository" is a WorktreeError (one line)
    urls = [u for us in remotes.values() for u in us]
    if not any(_slug_of(u) == repo.lower() for u in urls):
        shown = ", ".join(urls) or "no remote"
        raise ConductorError(f"{repo_path} is not a clone of {repo} (its remotes: {shown}); "
                             f"pass --repo-path to a clone of {repo}")


def check_github(settings: GitHubSettings, repo: str) -> Checked:
    """One GET /user (the token), one GET /repos/OWNER/NAME (visibility). Reads only."""
    with GitHubGateway(settings, repo) as gh:
        login = gh.login()
        return Checked(login=login, default_branch=gh.default_branch())


def check_inputs(settings: Settings) -> Checked:
    """Everything: the agent, then the token (`settings.github`, with its token) and
    repository, then the clone of it. Raises on the first problem; writes nothing."""
    check_agent_command(settings.run.agent_command, settings.run.dry_run)
    checked = check_github(settings.github, settings.run.repo)
    if not settings.run.dry_run:
        check_clone(settings.run.repo_path, settings.run.repo)
    return checked

"""User errors: each carries a one-line message naming the problem and the fix.

The CLI prints the message of any `ConductorError` and exits with status 2;
nothing else in the program should turn a user's mistake into a traceback.
"""
from __future__ import annotations


class ConductorError(Exception):
    """A mistake in the user's input (config, task file, arguments): exit 2, no traceback."""


class ConfigError(ConductorError):
    """`conductor.toml` or a `CONDUCTOR_*` environment variable is invalid."""


class TaskFileError(ConductorError):
    """The `.agent-task` file is missing or malformed."""


class GitHubError(ConductorError):
    """GitHub refused or could not be reached; the message says what to do."""

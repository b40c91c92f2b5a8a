"""Command-line arguments shared by the conductor's commands (`plan`, `snapshot`, `run`)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

REPO_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")



def repo_slug(value: str) -> str:
    if not REPO_SLUG.match(value) or value.endswith((".git",)) or "/." in value:
        raise argparse.ArgumentTypeError(f"invalid repository {value!r}: use OWNER/NAME, e.g. octo/widgets")
    return value


def add_github_args(parser: argparse.ArgumentParser, *, required_repo: bool) -> None:
    parser.add_argument("--repo", type=repo_slug, required=required_repo,
                        help="OWNER/NAME of the repository (default: GH_REPO of the task file)")
    parser.add_argument("--github-url", default=None,
                        help="REST API base URL (GitHub Enterprise: https://HOST/api/v3; "
                             "the sandbox: http://127.0.0.1:PORT/api/v3). Default: $CONDUCTOR_GITHUB_URL "
                             "or https://api.github.com. The token comes from $GITHUB_TOKEN.")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-file", type=Path, default=None,
                        help="the conductor's .agent-task file (GH_REPO, PHASE_FILTER, caps, ATTEMPT_N)")
    parser.add_argument("--config", type=Path, default=None,
                        help="pipeline config (TOML: phases, gates, labels); default: ./conductor.toml if present")

"""Where the conductor's secrets come from. Never a flow parameter, never logged.

The GitHub token: `GITHUB_TOKEN`/`GH_TOKEN` in the environment, else the Prefect
Secret block named by `CONDUCTOR_GITHUB_TOKEN_BLOCK` (default `github-token`), else the
prefect-github `GitHubCredentials` block named by `CONDUCTOR_GITHUB_CREDENTIALS_BLOCK`
(default `github-credentials`).
The agent's own token (optional, least privilege): `CONDUCTOR_AGENT_TOKEN`, else the
Secret block named by `CONDUCTOR_AGENT_TOKEN_BLOCK` when that is set.
"""
from __future__ import annotations

import os

from pydantic import SecretStr

from conductor.core.settings import GitHubSettings, RunSettings


def _secret_block(name: str) -> str | None:
    if not name:
        return None
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()
    except Exception:  # noqa: BLE001 - no such block, or no Prefect API to ask: no token from here
        return None
    return str(value) if value else None


def _credentials_block(name: str) -> str | None:
    """The token of a prefect-github `GitHubCredentials` block (the `github-block` extra)."""
    if not name:
        return None
    try:
        from prefect_github import GitHubCredentials
    except ImportError:
        return None
    try:
        block = GitHubCredentials.load(name)
    except Exception:  # noqa: BLE001 - no such block, or no Prefect API to ask
        return None
    return block.token.get_secret_value() if block.token else None


def github_settings(api_url: str | None = None) -> GitHubSettings:
    """GITHUB_TOKEN/GH_TOKEN, else the Secret block `github-token`, else the `GitHubCredentials`
    block `github-credentials` (names: CONDUCTOR_GITHUB_TOKEN_BLOCK, CONDUCTOR_GITHUB_CREDENTIALS_BLOCK)."""
    settings = GitHubSettings.from_env(api_url)
    if settings.token is None:
        value = (_secret_block(os.environ.get("CONDUCTOR_GITHUB_TOKEN_BLOCK", "github-token"))
                 or _credentials_block(os.environ.get("CONDUCTOR_GITHUB_CREDENTIALS_BLOCK", "github-credentials")))
        if value:
            settings = settings.model_copy(update={"token": SecretStr(value)})
    return settings


def agent_token() -> str | None:
    token = RunSettings().agent_token
    if token is not None:
        return token.get_secret_value()
    return _secret_block(os.environ.get("CONDUCTOR_AGENT_TOKEN_BLOCK", ""))

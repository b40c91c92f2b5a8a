"""Where the conductor's secrets come from. Never a flow parameter, never logged.

The GitHub token: `GITHUB_TOKEN`/`GH_TOKEN` in the environment, else the Prefect
Secret block named by `CONDUCTOR_GITHUB_TOKEN_BLOCK` (default `github-token`), else the
prefect-github `GitHubCredentials` block named by `CONDUCTOR_GITHUB_CREDENTIALS_BLOCK`
(default `github-credentials`).
The agent's own token (optional, least privilege): `CONDUCTOR_AGENT_TOKEN`, else the
Secret block named by `CONDUCTOR_AGENT_TOKEN_BLOCK` when that is set.
The webhook secret: `CONDUCTOR_WEBHOOK_SECRET`, else the Secret block named by
`CONDUCTOR_WEBHOOK_SECRET_BLOCK` (default `github-webhook-secret`).
`redactor` holds every one of them (and `PREFECT_API_KEY`): the agent-output door.
"""
from __future__ import annotations

import os

from pydantic import SecretStr

from conductor.core.redaction import Redactor
from conductor.core.settings import GitHubSettings, RunSettings, Settings



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


def with_token(settings: GitHubSettings) -> GitHubSettings:
    """`settings` with its token: GITHUB_TOKEN/GH_TOKEN (the settings tree read it), else the
    Secret block `token_block`, else the `GitHubCredentials` block `credentials_block`."""
    if settings.token is None:
        value = _secret_block(settings.token_block) or _credentials_block(settings.credentials_block)
        if value:
            settings = settings.model_copy(update={"token": SecretStr(value)})
    return settings


def agent_token(run: RunSettings) -> str | None:
    """CONDUCTOR_AGENT_TOKEN, else the Secret block CONDUCTOR_AGENT_TOKEN_BLOCK names."""
    if run.agent_token is not None:
        return run.agent_token.get_secret_value()
    return _secret_block(run.agent_token_block)


def webhook_secret(github: GitHubSettings) -> SecretStr | None:
    """CONDUCTOR_WEBHOOK_SECRET, else the Secret block `webhook_secret_block`; None when neither."""
    value = (github.webhook_secret.get_secret_value() if github.webhook_secret
             else _secret_block(github.webhook_secret_block))
    return SecretStr(value) if value else None


def redactor(settings: Settings) -> Redactor:
    """Every secret this machine knows (the conductor's token, the agent's, the webhook
    secret, the Prefect API key), for what an agent says to pass before it goes anywhere."""
    token = with_token(settings.github).token
    webhook = webhook_secret(settings.github)
    return Redactor([token.get_secret_value() if token else None, agent_token(settings.run),
                     webhook.get_secret_value() if webhook else None, os.environ.get("PREFECT_API_KEY")])

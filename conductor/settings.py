"""Process settings read from the environment (pydantic-settings).

The GitHub token lives here as a `SecretStr`, read from `GITHUB_TOKEN` (or `GH_TOKEN`):
never a flow parameter, never logged. Pipeline rules (phases, gates) live in
`conductor.config.PipelineConfig` instead; this module is about *how to reach* things.
"""
from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "https://api.github.com"


class GitHubSettings(BaseSettings):
    """How to talk to GitHub (or GitHub Enterprise, or the sandbox)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    api_url: str = Field(
        DEFAULT_API_URL,
        validation_alias=AliasChoices("CONDUCTOR_GITHUB_URL", "GITHUB_API_URL", "api_url"),
        description="REST API base URL: https://api.github.com, https://HOST/api/v3 for "
        "GitHub Enterprise Server, or the sandbox's http://127.0.0.1:PORT/api/v3.",
    )
    token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GITHUB_TOKEN", "GH_TOKEN", "token"),
        description="Token the conductor uses. Never a flow parameter, never logged.",
    )
    timeout: float = Field(
        30.0, validation_alias=AliasChoices("CONDUCTOR_GITHUB_TIMEOUT", "timeout"), gt=0,
        description="Seconds before one HTTP request to GitHub is abandoned.",
    )
    retries: int = Field(
        6, validation_alias=AliasChoices("CONDUCTOR_GITHUB_RETRIES", "retries"), ge=0,
        description="Retries of idempotent requests on 5xx, 429 and secondary rate limits. "
        "POST is never retried blindly: creations are made idempotent by looking first.",
    )
    backoff_factor: float = Field(
        1.0, validation_alias=AliasChoices("CONDUCTOR_GITHUB_BACKOFF", "backoff_factor"), ge=0,
        description="Exponential back-off factor (seconds) between retries without Retry-After.",
    )
    seconds_between_requests: float = Field(
        0.25, validation_alias=AliasChoices("CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS",
                                            "seconds_between_requests"), ge=0,
        description="Minimum pause between requests (GitHub's guidance; 0 for the sandbox).",
    )
    seconds_between_writes: float = Field(
        1.0, validation_alias=AliasChoices("CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES",
                                           "seconds_between_writes"), ge=0,
        description="Minimum pause between writes, to stay clear of secondary rate limits.",
    )

    @field_validator("api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"GitHub API URL {value!r} must start with http:// or https://")
        return value

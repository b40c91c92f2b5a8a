"""Process settings read from the environment (pydantic-settings).

The GitHub token lives here as a `SecretStr`, read from `GITHUB_TOKEN` (or `GH_TOKEN`):
never a flow parameter, never logged. Pipeline rules (phases, gates) live in
`conductor.core.config.PipelineConfig` instead; this module is about *how to reach* things.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conductor.core import workflows
from conductor.core.errors import ConfigError

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

    conditional_reads: bool = Field(
        True, validation_alias=AliasChoices("CONDUCTOR_CONDITIONAL_READS", "conditional_reads"),
        description="Send If-None-Match with ETags kept across passes; GitHub's 304 costs no rate limit.",
    )
    etag_cache_dir: Path | None = Field(
        None, validation_alias=AliasChoices("CONDUCTOR_ETAG_CACHE_DIR", "etag_cache_dir"),
        description="Where ETags and bodies are kept (default: $PREFECT_HOME/conductor-http-cache).",
    )

    @classmethod
    def from_env(cls, api_url: str | None = None) -> GitHubSettings:
        """The environment's settings, with `api_url` (a flag or flow parameter) winning when given."""
        return cls(api_url=api_url) if api_url else cls()

    @field_validator("api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"GitHub API URL {value!r} must start with http:// or https://")
        return value


class RunSettings(BaseSettings):
    """Where a pass works on this machine (env prefix CONDUCTOR_). What a pass is asked to
    do (repository, caps, agent command, reminder mode) is `conductor.core.parameters`."""

    model_config = SettingsConfigDict(env_prefix="CONDUCTOR_", extra="ignore")

    repo_path: Path = Field(
        Path("."), description="Local clone of the target repository (fetched before each worktree); "
        "a coordinator deployment on another machine uses its own.")
    worktree_root: Path | None = Field(
        None, description="Where coordinator worktrees are made. Default: "
        "~/.conductor/worktrees/<name of repo_path>.")
    salvage_dir: Path | None = Field(
        None, description="Where uncommitted or unpushed work of orphaned worktrees is saved. "
        "Default: ~/.conductor/salvage/<name of repo_path>.")
    agent_slots: int = Field(
        12, ge=1, description="Leaf agents running at once on this deployment: the Prefect global "
        "concurrency limit `agent-slots` (set to this value at each pass).")
    agent_idle_timeout: float = Field(
        600.0, gt=0, description="Seconds an agent may print nothing before it is stopped "
        "(\"agent idle: no output for N s\"), whole process group; separate from agent_timeout. "
        "An agent CLI whose model stops answering often prints nothing until the total timeout.")
    agent_token: SecretStr | None = Field(
        None, description="A token of the agent's own, given to it as GH_TOKEN/GITHUB_TOKEN. "
        "Unset by default: the agent never receives the conductor's token.")
    dispatch: Literal["subflow", "deployment"] = Field(
        "subflow", description="subflow: coordinators run in this process, as concurrent subflows. "
        "deployment: each runs as a flow run of its deployment (run_deployment) on the workers of "
        "its work pool, on other machines; the pass waits and proves every claim itself.")
    coordinator_deployments: dict[str, str] = Field(
        default_factory=lambda: {w.kind: f"{w.name}/agents" for w in workflows.registered()},
        description="With dispatch=deployment: the deployment (FLOW/NAME) of each coordinator kind.")
    guard_wait: float = Field(
        120.0, ge=0, description="Seconds a pass waits for another pass over the same repository "
        "to finish before it gives up without dispatching (a killed pass frees its slot within 60 s).")
    lock_lease: float | None = Field(
        None, gt=0, description="Seconds the pass lock on GitHub (refs/conductor/lock) is leased "
        "for; a live pass renews it every third of that, a killed pass's lock is taken over once "
        "it expires. Default: agent_timeout + 300 (a few minutes beyond the agent timeout).")
    lock: bool = Field(
        True, description="Take the pass lock on GitHub, so passes exclude each other whatever "
        "Prefect server or machine runs them (off: only the Prefect concurrency slot).")
    lock_margin: float | None = Field(
        None, gt=0, description="Seconds of its lease a pass must have left to write to GitHub; "
        "with less it renews the lease first, and once another pass took the lock over it writes "
        "nothing more. Default: a tenth of the lease, at most 60 s.")

    def resolved_lock_lease(self, agent_timeout: float) -> float:
        return self.lock_lease or agent_timeout + 300.0

    def resolved_lock_margin(self, lease: float) -> float:
        margin = self.lock_margin or min(60.0, lease / 10)
        if margin >= lease / 3:  # the lease is renewed every third of it: a write would never be allowed
            raise ConfigError(f"CONDUCTOR_LOCK_MARGIN ({margin:g} s) must be less than a third of the lock "
                              f"lease ({lease:g} s); lower it or raise CONDUCTOR_LOCK_LEASE")
        return margin

    def resolved_worktree_root(self) -> Path:
        return (self.worktree_root or Path.home() / ".conductor" / "worktrees" / self._repo_name()).resolve()

    def resolved_salvage_dir(self) -> Path:
        return (self.salvage_dir or Path.home() / ".conductor" / "salvage" / self._repo_name()).resolve()

    def _repo_name(self) -> str:
        return self.repo_path.resolve().name or "repo"

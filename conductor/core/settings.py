"""The settings tree: every setting of the conductor, and the one loader that reads them.

Sections: `github` (how to reach GitHub), `run` (where a pass works on this machine),
`webhooks` (the receiver), `prefect` (the Prefect variables the conductor reads),
`pipeline` (`conductor.core.config.PipelineConfig`: phases, gates, labels) and `pass`
(`conductor.core.parameters.ResolvedParameters`: what one pass is asked to do). Each field is
described once, with its default and its environment name (`CONDUCTOR_` + its name unless
an alias says otherwise).

`load_settings` is the one loader: flag > task file > environment > conductor.toml >
default, into one frozen `Settings` with the source of every value (`conductor config
show`). This module and the secrets resolver (`tasks/secrets.py`) are the only ones that
read the environment; child processes inherit it through `process_environment()`.
Tokens are `SecretStr`: never a flow parameter, never logged, masked when shown.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from conductor.core.config import PipelineConfig, load_pipeline_config, load_run_table, pipeline_keys
from conductor.core.parameters import PassParameters, ResolvedParameters, resolve_parameters
from conductor.core.taskfile import read_task_file

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
    ca_bundle: Path | None = Field(
        None, validation_alias=AliasChoices("CONDUCTOR_CA_BUNDLE", "ca_bundle"),
        description="PEM file of the certificate authorities to trust for GitHub (GitHub Enterprise "
        "Server with a private CA, the sandbox's DATA/tls/ca.pem): PyGithub, the conductor's git "
        "(the pass lock's too) and every agent (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, "
        "git's http.sslCAInfo) use it. None: the system's.",
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
    etag_cache_dir: Path = Field(
        default_factory=lambda: PrefectSettings().home / "conductor-http-cache",
        validation_alias=AliasChoices("CONDUCTOR_ETAG_CACHE_DIR", "etag_cache_dir"),
        description="Where ETags and bodies are kept (default: $PREFECT_HOME/conductor-http-cache).",
    )
    token_block: str = Field(
        "github-token", validation_alias=AliasChoices("CONDUCTOR_GITHUB_TOKEN_BLOCK", "token_block"),
        description="Prefect Secret block holding the token when GITHUB_TOKEN/GH_TOKEN is unset.")
    credentials_block: str = Field(
        "github-credentials",
        validation_alias=AliasChoices("CONDUCTOR_GITHUB_CREDENTIALS_BLOCK", "credentials_block"),
        description="prefect-github GitHubCredentials block tried after the Secret block.")

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
    agent_token_block: str = Field(
        "", description="Prefect Secret block holding the agent's token when CONDUCTOR_AGENT_TOKEN is unset.")
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


class WebhookSettings(BaseSettings):
    """The webhook receiver (`conductor webhooks serve`), env prefix CONDUCTOR_WEBHOOK_."""

    model_config = SettingsConfigDict(env_prefix="CONDUCTOR_WEBHOOK_", extra="ignore")

    secret: SecretStr | None = Field(
        None, description="The hook's secret on GitHub (else the Prefect Secret block secret_block).")
    secret_block: str = Field(
        "github-webhook-secret", description="Prefect Secret block holding the hook's secret.")
    ignore_logins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated logins whose events start no pass "
        "(besides the conductor's own login).")

    @field_validator("ignore_logins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [x.strip() for x in value.split(",") if x.strip()] if isinstance(value, str) else value


class PrefectSettings(BaseSettings):
    """The Prefect variables the conductor itself reads (env prefix PREFECT_)."""

    model_config = SettingsConfigDict(env_prefix="PREFECT_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".prefect",
                       description="Prefect's home: the embedded server's database, the ETag cache.")
    api_url: str | None = Field(
        None, description="A Prefect server to run on; unset: `conductor run` starts an embedded one.")
    ui_url: str | None = Field(None, description="The Prefect UI's address (default: api_url without /api).")

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class AgentEnvironment(BaseSettings):
    """What the conductor gives an agent process in its environment (read by the demo agent;
    an agent CLI reads the same names)."""

    model_config = SettingsConfigDict(extra="ignore")

    task_file: Path = Field(validation_alias="CONDUCTOR_TASK_FILE", description="The agent's .agent-task.")
    report_file: Path = Field(validation_alias="CONDUCTOR_REPORT_FILE", description="Where it writes its report.")
    token: SecretStr | None = Field(None, validation_alias="GH_TOKEN", description="The agent's own token, if any.")
    api_url: str = Field("", validation_alias="GITHUB_API_URL", description="GitHub's REST API base URL.")


SECTIONS: dict[str, type[BaseModel]] = {
    "github": GitHubSettings, "run": RunSettings, "webhooks": WebhookSettings, "prefect": PrefectSettings,
    "pipeline": PipelineConfig, "pass": ResolvedParameters,
}


class Settings(BaseModel):
    """Every setting, decided once (`load_settings`), with where each value came from."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    github: GitHubSettings
    run: RunSettings
    webhooks: WebhookSettings
    prefect: PrefectSettings
    pipeline: PipelineConfig
    pass_: ResolvedParameters = Field(alias="pass")
    sources: dict[str, str] = Field(default_factory=dict,
                                    description="section.field -> flag, task file, env, toml or default.")

    def rows(self) -> list[tuple[str, str, str]]:
        """(section.field, value, source) of every setting; secrets show as set or unset, never their value."""
        rows = []
        for section in SECTIONS:
            model = getattr(self, "pass_" if section == "pass" else section)
            for name in type(model).model_fields:
                key = f"{section}.{name}"
                if key in _NOT_SHOWN:
                    continue
                rows.append((key, _shown(getattr(model, name)), self.sources.get(key, "default")))
        return rows


# The pass's own copies of settings shown in their sections (run.repo_path, github.api_url).
_NOT_SHOWN = {"pass.sources", "pass.repo_path", "pass.github_url"}


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def env_names(section: type[BaseModel], name: str) -> list[str]:
    """The environment variables that set `name` of a pydantic-settings section, highest first."""
    field = section.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [a for a in alias.choices if isinstance(a, str) and a.isupper()]
    prefix = section.model_config.get("env_prefix", "") if issubclass(section, BaseSettings) else ""
    return [f"{prefix}{name}".upper()] if prefix else []


def process_environment() -> dict[str, str]:
    """This process's environment, for the child processes it starts (agents, git, the
    Prefect server) to inherit; no setting is read from it outside this module."""
    return dict(os.environ)


@contextmanager
def scoped_environ(updates: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, with None, unset) environment variables, and put every one back after."""
    saved = {key: os.environ.get(key) for key in updates}
    try:
        _put(updates)
        yield
    finally:
        _put(saved)


def _put(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def load_settings(params: PassParameters | None = None, *,
                  env: Mapping[str, str] | None = None) -> Settings:
    """The one loader: read the task file and conductor.toml `params` name and decide every
    setting, flag > task file > environment > conductor.toml > default.

    `env` stands in for the process environment in the pass's own parameters (tests); the
    other sections read the process environment (pydantic-settings). Reads files, talks to no
    service; a bad value is a one-line `ConductorError` or a pydantic `ValidationError`."""
    params = params or PassParameters()
    env = dict(os.environ) if env is None else env
    task = read_task_file(Path(params.task_file)) if params.task_file else None
    config_path = Path(params.config_file) if params.config_file else None
    resolved = resolve_parameters(params, task=task, env=env, run_table=load_run_table(config_path),
                                  config_origin=str(config_path or "conductor.toml"))
    github = GitHubSettings.from_env(resolved.github_url)
    values: dict[str, Any] = {
        "github": github, "run": RunSettings(repo_path=resolved.repo_path), "webhooks": WebhookSettings(),
        "prefect": PrefectSettings(), "pipeline": load_pipeline_config(config_path), "pass": resolved,
    }
    sources = {f"pass.{name}": source for name, source in resolved.sources.items()}
    sources["github.api_url"] = (sources["pass.github_url"] if resolved.github_url
                                 else _env_or_default(GitHubSettings, "api_url", env))
    sources["run.repo_path"] = sources["pass.repo_path"]
    for section in ("github", "run", "webhooks", "prefect"):
        for name in SECTIONS[section].model_fields:
            sources.setdefault(f"{section}.{name}", _env_or_default(SECTIONS[section], name, env))
    in_toml = pipeline_keys(config_path)
    for name in PipelineConfig.model_fields:
        var = f"CONDUCTOR_{name.upper()}"
        env_set = any(key.upper() == var or key.upper().startswith(var + "__") for key in env)
        sources[f"pipeline.{name}"] = "env" if env_set else "toml" if name in in_toml else "default"
    return Settings(**values, sources=sources)


def _env_or_default(section: type[BaseModel], name: str, env: Mapping[str, str]) -> str:
    return "env" if any(env.get(var) for var in env_names(section, name)) else "default"

"""The settings tree: every setting of the conductor, and the one loader that decides them.

One pydantic-settings root, `Settings`, with three sections (plain models):

- `github` (`GitHubSettings`): how to reach GitHub, and the webhook receiver;
- `run` (`RunSettings`): what a pass is asked to do and where it works on this machine;
- `pipeline` (`conductor.core.config.PipelineConfig`): phases, gates and labels.

Each field is described once, with its default once. Its environment name is derived once
(`env_names`): `CONDUCTOR_` + its name, unless its metadata names others (`GITHUB_TOKEN`,
`PREFECT_HOME`, ...). Its flag (`flag`), flow parameter (`param`) and task-file key
(`task_key`) are metadata of the same field, so the flow, the CLI and the task file cannot
drift from the tree.

`load_settings` is the one loader: flag > task file > environment > conductor.toml >
default, into one frozen `Settings` that knows where each value came from (`conductor config
show`). conductor.toml's top-level keys are the pipeline, its `[run]` and `[github]` tables the
other sections. This module and the secrets resolver (`tasks/secrets.py`) are the only ones
that read the environment; child processes inherit it through `process_environment()`.
Secrets are `SecretStr` fields excluded from every dump: a `Settings` can travel to a
coordinator or a flow run's parameters without them, and each machine resolves its own.
"""
from __future__ import annotations

import json
import os
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from conductor.core import constants
from conductor.core.config import PipelineConfig
from conductor.core.errors import ConductorError, ConfigError
from conductor.core.presets import get_preset
from conductor.core.taskfile import REPO_SLUG_RE, read_task_file

ENV_PREFIX = "CONDUCTOR_"
DEFAULT_API_URL = "https://api.github.com"
SOURCES = ("flag", "task file", "env", "toml")  # highest first; "default" below them all


def _meta(*, env: list[str] | None = None, flag: str | None = None, param: str | None = None,
          task_key: str | None = None, layered: bool = True) -> dict[str, Any]:
    """A field's names outside the tree. `layered`: read from the environment and conductor.toml
    (off for what only a flag or a task file may say: the attempt, a dry run, which files)."""
    return {"env": env, "flag": flag, "param": param, "task_key": task_key, "layered": layered}


class GitHubSettings(BaseModel):
    """How to talk to GitHub (or GitHub Enterprise, or the sandbox), and its webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_url: str = Field(
        DEFAULT_API_URL, description="REST API base URL: https://api.github.com, https://HOST/api/v3 for "
        "GitHub Enterprise Server, or the sandbox's http://127.0.0.1:PORT/api/v3.",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_URL", "GITHUB_API_URL"], flag="--github-url",
                                param="github_url"))
    token: SecretStr | None = Field(
        None, exclude=True, description="Token the conductor uses (else the Prefect blocks below). "
        "Never a flow parameter, never logged, never dumped.",
        json_schema_extra=_meta(env=["GITHUB_TOKEN", "GH_TOKEN"]))
    ca_bundle: Path | None = Field(
        None, description="PEM file of the certificate authorities to trust for GitHub (GitHub Enterprise "
        "Server with a private CA, the sandbox's DATA/tls/ca.pem): PyGithub, the conductor's git "
        "(the pass lock's too) and every agent (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, "
        "git's http.sslCAInfo) use it. None: the system's.")
    timeout: float = Field(
        30.0, gt=0, description="Seconds before one HTTP request to GitHub is abandoned.",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_TIMEOUT"]))
    retries: int = Field(
        6, ge=0, description="Retries of idempotent requests on 5xx, 429 and secondary rate limits. "
        "POST is never retried blindly: creations are made idempotent by looking first.",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_RETRIES"]))
    backoff_factor: float = Field(
        1.0, ge=0, description="Exponential back-off factor (seconds) between retries without Retry-After.",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_BACKOFF"]))
    seconds_between_requests: float = Field(
        0.25, ge=0, description="Minimum pause between requests (GitHub's guidance; 0 for the sandbox).",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS"]))
    seconds_between_writes: float = Field(
        1.0, ge=0, description="Minimum pause between writes, to stay clear of secondary rate limits.",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES"]))
    conditional_reads: bool = Field(
        True, description="Send If-None-Match with ETags kept across passes; GitHub's 304 costs no rate limit.")
    etag_cache_dir: Path | None = Field(
        None, description="Where ETags and bodies are kept (default: $PREFECT_HOME/conductor-http-cache; "
        "unset outside a loaded tree: no conditional reads).")
    token_block: str = Field(
        "github-token", description="Prefect Secret block holding the token when GITHUB_TOKEN/GH_TOKEN is unset.",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_TOKEN_BLOCK"]))
    credentials_block: str = Field(
        "github-credentials", description="prefect-github GitHubCredentials block tried after the Secret block.",
        json_schema_extra=_meta(env=["CONDUCTOR_GITHUB_CREDENTIALS_BLOCK"]))
    webhook_secret: SecretStr | None = Field(
        None, exclude=True, description="The hook's secret on GitHub (else the Prefect Secret block "
        "webhook_secret_block). Never dumped.")
    webhook_secret_block: str = Field(
        "github-webhook-secret", description="Prefect Secret block holding the hook's secret.")
    webhook_ignore_logins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated logins whose events start no pass "
        "(besides the conductor's own login).")

    @field_validator("api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"GitHub API URL {value!r} must start with http:// or https://")
        return value

    @field_validator("webhook_ignore_logins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [x.strip() for x in value.split(",") if x.strip()] if isinstance(value, str) else value


class RunSettings(BaseModel):
    """What a pass is asked to do (repository, caps, agent, reminder) and where it works on
    this machine (clone, worktrees, agents, lock, Prefect)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # -- what a pass is asked to do ---------------------------------------------------
    repo: str = Field(
        "", pattern=REPO_SLUG_RE, description="OWNER/NAME of the repository (task file: GH_REPO; "
        "env: CONDUCTOR_REPO); empty when none was given (a pass refuses to start).",
        json_schema_extra=_meta(flag="--repo", task_key="GH_REPO"))
    phase_filter: str = Field(
        "", description="Dispatch only this phase (task file: PHASE_FILTER); empty for all.",
        json_schema_extra=_meta(flag="--phase-filter", task_key="PHASE_FILTER"))
    max_issues_per_dispatch: int = Field(
        constants.MAX_PER_DISPATCH, ge=1, description="Cap on issues dispatched per pass "
        "(task file: MAX_ISSUES_PER_DISPATCH).",
        json_schema_extra=_meta(flag="--max-issues", task_key="MAX_ISSUES_PER_DISPATCH"))
    max_prs_per_dispatch: int = Field(
        constants.MAX_PER_DISPATCH, ge=1, description="Cap on PRs dispatched per pass "
        "(task file: MAX_PRS_PER_DISPATCH).",
        json_schema_extra=_meta(flag="--max-prs", task_key="MAX_PRS_PER_DISPATCH"))
    attempt: int | None = Field(
        None, ge=0, description="Override the attempt counter (task file: ATTEMPT_N when > 0); "
        "otherwise it is read back from the last reminder's marker.",
        json_schema_extra=_meta(flag="--attempt", task_key="ATTEMPT_N", layered=False))
    dry_run: bool = Field(
        False, description="Write nothing anywhere (GitHub, worktrees); report what would be done.",
        json_schema_extra=_meta(flag="--dry-run", layered=False))
    reminder_mode: Literal["recreate", "update"] = Field(
        "recreate", description="recreate: close stale reminders and open a new one (the seed); "
        "update: edit one reminder in place.", json_schema_extra=_meta(flag="--reminder-mode"))
    task_file: str | None = Field(
        None, description="The conductor's .agent-task file (GH_REPO, PHASE_FILTER, caps, ATTEMPT_N).",
        json_schema_extra=_meta(flag="--task-file", layered=False))
    config_file: str | None = Field(
        None, description="Pipeline config (TOML: phases, gates, labels, [run] and [github] tables); "
        "default ./conductor.toml when present.", json_schema_extra=_meta(flag="--config", layered=False))
    agent_command: list[str] = Field(
        default_factory=list, description="The agent's argv: a JSON list or a command line, with "
        "{task_file} {report_file} {worktree} {prompt_file} {workflow} placeholders (env: a JSON list).",
        json_schema_extra=_meta(flag="--agent-command"))
    agent_preset: str | None = Field(
        None, description="A shipped agent command (claude, codex, cursor, gemini, generic), used when "
        "no agent command is given at the same or a higher level.",
        json_schema_extra=_meta(flag="--agent-preset"))
    agent_timeout: float = Field(
        constants.AGENT_TIMEOUT, gt=0, description="Seconds before an agent is killed.",
        json_schema_extra=_meta(flag="--agent-timeout"))
    rerun_hint: str | None = Field(
        None, description="The command the reminder tells a human to run next (default: how this pass "
        "was started).", json_schema_extra=_meta(param="rerun_hint", layered=False))
    event_id: str | None = Field(
        None, description="The Prefect event that started this run (set by the `on-change` trigger): a "
        "pass that began after the server received it read GitHub after it, so this run makes none "
        "(tasks/guard.py).", json_schema_extra=_meta(param="event_id", layered=False))

    # -- where a pass works on this machine ---------------------------------------------
    repo_path: Path = Field(
        Path("."), description="Local clone of the target repository (fetched before each worktree); "
        "a coordinator deployment on another machine uses its own.",
        json_schema_extra=_meta(flag="--repo-path"))
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
        None, exclude=True, description="A token of the agent's own, given to it as GH_TOKEN/GITHUB_TOKEN. "
        "Unset by default: the agent never receives the conductor's token. Never dumped.")
    agent_token_block: str = Field(
        "", description="Prefect Secret block holding the agent's token when CONDUCTOR_AGENT_TOKEN is unset.")
    dispatch: Literal["subflow", "deployment"] = Field(
        "subflow", description="Where leaves run (fan_out = \"leaf\"). subflow: in this process, as "
        "task runs of their coordinator subflows. deployment: each leaf is a flow run of its kind's "
        "deployment `leaf/<kind>` (run_deployment, idempotency key: pass and item) on the workers of "
        "the `conductor-agents` pool, on other machines; each worker clones and runs the agent, the "
        "pass waits, reads every leaf's report (an artifact) and proves every claim itself.")
    guard_wait: float = Field(
        120.0, ge=0, description="Seconds a pass waits for another pass over the same repository "
        "to finish before it gives up without dispatching (a killed pass frees its slot within 60 s).")
    chain_passes: int = Field(
        1, ge=1, description="Most passes one deployed run makes back to back, holding its slot: "
        "after a pass that left work ready or during whose re-read an event arrived, the next one "
        "starts at once in the same process (no trigger, queue or process start between them). "
        "1 (default): one pass a run; prefect.yaml's `on-change` deployment sets 20.")
    lock: bool = Field(
        True, description="Take the pass lock on GitHub, so passes exclude each other whatever "
        "Prefect server or machine runs them (off: only the Prefect concurrency slot).")
    lock_lease: float | None = Field(
        None, gt=0, description="Seconds the pass lock on GitHub (refs/conductor/lock) is leased "
        "for; a live pass renews it every third of that, a killed pass's lock is taken over once "
        "it expires. Default: agent_timeout + 300 (a few minutes beyond the agent timeout).")
    lock_margin: float | None = Field(
        None, gt=0, description="Seconds of its lease a pass must have left to write to GitHub; "
        "with less it renews the lease first, and once another pass took the lock over it writes "
        "nothing more. Default: a tenth of the lease, at most 60 s.")
    prefect_home: Path = Field(
        Path("~/.prefect"), description="Prefect's home: the embedded server's database, the ETag cache.",
        json_schema_extra=_meta(env=["PREFECT_HOME"]))
    prefect_api_url: str | None = Field(
        None, description="A Prefect server to run on; unset: `conductor run` starts an embedded one.",
        json_schema_extra=_meta(env=["PREFECT_API_URL"]))
    prefect_ui_url: str | None = Field(
        None, description="The Prefect UI's address (default: prefect_api_url without /api).",
        json_schema_extra=_meta(env=["PREFECT_UI_URL"]))

    @field_validator("prefect_home", "repo_path")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # -- what follows from them -----------------------------------------------------------

    def lock_lease_seconds(self) -> float:
        return self.lock_lease or self.agent_timeout + 300.0

    def lock_margin_seconds(self) -> float:
        lease = self.lock_lease_seconds()
        margin = self.lock_margin or min(60.0, lease / 10)
        if margin >= lease / 3:  # the lease is renewed every third of it: a write would never be allowed
            raise ConfigError(f"CONDUCTOR_LOCK_MARGIN ({margin:g} s) must be less than a third of the lock "
                              f"lease ({lease:g} s); lower it or raise CONDUCTOR_LOCK_LEASE")
        return margin

    def resolved_worktree_root(self) -> Path:
        return (self.worktree_root or Path.home() / ".conductor" / "worktrees" / self._repo_name()).resolve()

    def clone_of(self, repo: str) -> Path:
        """A worker's clone of OWNER/NAME (leaves on workers): ~/.conductor/clones/OWNER/NAME."""
        return Path.home() / ".conductor" / "clones" / repo

    def resolved_salvage_dir(self) -> Path:
        return (self.salvage_dir or Path.home() / ".conductor" / "salvage" / self._repo_name()).resolve()

    def conductor_worktree(self) -> Path | None:
        """The conductor's own worktree, when its task file lives there (the seed's self-destruct)."""
        root = self.resolved_worktree_root()
        if self.task_file and Path(self.task_file).resolve().parent == root / "conductor":
            return root / "conductor"
        return None

    def _repo_name(self) -> str:
        return self.repo_path.resolve().name or "repo"


# What differs by machine: a coordinator on another worker keeps its own (`Settings.on_this_machine`).
MACHINE_FIELDS = ("repo_path", "worktree_root", "salvage_dir", "agent_slots", "agent_idle_timeout", "agent_token",
                  "agent_token_block", "prefect_home", "prefect_api_url", "prefect_ui_url")
SECTIONS: dict[str, type[BaseModel]] = {"github": GitHubSettings, "run": RunSettings, "pipeline": PipelineConfig}


class Settings(BaseSettings):
    """Every setting, decided once (`load_settings`), with where each value came from. Holds
    secrets only in fields excluded from dumps; frozen."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    github: GitHubSettings = Field(default_factory=GitHubSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    sources: dict[str, str] = Field(default_factory=dict,
                                    description="section.field -> flag, task file, env, toml or default.")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any, *_: Any,
                                   **__: Any) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvSource(settings_cls), _TomlSource(settings_cls)

    # -- views ------------------------------------------------------------------------

    def require_repo(self) -> Settings:
        """These settings, refusing a pass without a repository (one line naming every way)."""
        if not self.run.repo:
            raise ConductorError("no repository given: pass --repo OWNER/NAME, set GH_REPO in the task file "
                                 "or CONDUCTOR_REPO")
        return self

    def given_attempt(self) -> int:
        """The attempt this pass was given (flag or ATTEMPT_N), 0 when none."""
        return self.run.attempt or 0

    def on_this_machine(self, local: Settings) -> Settings:
        """These settings with `local`'s for where work happens on this machine (clone,
        worktrees, agent slots and token, Prefect) and its GitHub token: a coordinator on
        another worker gets the pass's settings without their secrets or paths."""
        return self.model_copy(update={
            "run": self.run.model_copy(update={n: getattr(local.run, n) for n in MACHINE_FIELDS}),
            "github": self.github.model_copy(update={"token": local.github.token,
                                                     "etag_cache_dir": local.github.etag_cache_dir})})

    def with_run(self, **update: Any) -> Settings:
        return self.model_copy(update={"run": self.run.model_copy(update=update)})

    def rows(self) -> list[tuple[str, str, str]]:
        """(section.field, value, source) of every setting; secrets show as set or unset, never their value."""
        return [(f"{section}.{name}", _shown(getattr(getattr(self, section), name)),
                 self.sources.get(f"{section}.{name}", "default"))
                for section, model in SECTIONS.items() for name in model.model_fields]


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


# -- field metadata ------------------------------------------------------------------------


def meta(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return {**_meta(), **(extra if isinstance(extra, dict) else {})}


def env_names(section: str, name: str) -> list[str]:
    """The environment variables that set `section.name`, highest first (none if not layered)."""
    info = meta(SECTIONS[section].model_fields[name])
    if not info["layered"]:
        return []
    return list(info["env"] or [f"{ENV_PREFIX}{name.upper()}"])


def flag_fields() -> dict[str, tuple[str, str, FieldInfo]]:
    """Flow parameter name -> (section, field, field info), for every field a flag or the flow sets."""
    found = {}
    for section in ("run", "github"):
        for name, field in SECTIONS[section].model_fields.items():
            info = meta(field)
            if info["flag"] or info["param"]:
                found[info["param"] or name] = (section, name, field)
    return found


def _parameter(field: FieldInfo) -> tuple[Any, Any]:
    """A flow parameter of a setting: optional (None: not given here), a path as text."""
    annotation = str if field.annotation is Path else field.annotation
    optional = bool if annotation is bool else annotation | None
    return optional, FieldInfo.merge_field_infos(field, default=False if field.annotation is bool else None,
                                                  default_factory=None)


# The flow's parameters and `conductor run`'s flags: the fields above that have one, None
# meaning "not given here" (the next source decides). Built from the tree, so they cannot drift.
PassParameters = create_model(
    "PassParameters", __config__=ConfigDict(extra="forbid"),
    **{param: _parameter(field) for param, (_, _, field) in flag_fields().items()})


# -- the sources ---------------------------------------------------------------------------


class _Load(BaseModel):
    """The environment's and conductor.toml's layers a `load_settings` call decided once (its
    sources hand them to pydantic-settings instead of reading them again)."""

    env: dict[str, dict[str, Any]]
    toml: dict[str, dict[str, Any]]


_LOADING: ContextVar[_Load | None] = ContextVar("conductor_settings_load", default=None)


def _decoded(field: FieldInfo) -> bool:
    """Whether an environment string for this field is JSON (lists, dicts, models; not NoDecode)."""
    if any(m is NoDecode or isinstance(m, NoDecode) for m in field.metadata):
        return False
    annotation = field.annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    first = next(a for a in typing.get_args(annotation) if a is not type(None)) if union else annotation
    base = typing.get_origin(first) or first
    return base in (list, dict) or (isinstance(base, type) and issubclass(base, BaseModel))


def env_layer(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The settings the environment gives (empty values are unset), JSON decoded where the field
    holds a list or a table; a bad value is one line naming its variable."""
    upper = {key.upper(): value for key, value in env.items() if value}
    layer: dict[str, dict[str, Any]] = {}
    for section, model in SECTIONS.items():
        for name, field in model.model_fields.items():
            var = next((v for v in env_names(section, name) if v in upper), None)
            if var is None:
                continue
            raw: Any = upper[var]
            if _decoded(field):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError as exc:
                    kind = "list" if typing.get_origin(field.annotation) is list else "value"
                    raise ConfigError(f"{var} is not a JSON {kind} ({exc.msg}); {section}.{name} values must "
                                      f"be JSON, e.g. {var}='[\"a\", \"b\"]'") from None
            layer.setdefault(section, {})[name] = raw
    return _with_preset(layer)


def toml_layer(data: Mapping[str, Any], origin: str) -> dict[str, dict[str, Any]]:
    """conductor.toml as sections: its top-level keys are the pipeline, `[run]` and `[github]`
    the others (only settings the environment may also set)."""
    pipeline = {k: v for k, v in data.items() if k not in ("run", "github")}
    layer: dict[str, dict[str, Any]] = {"pipeline": pipeline} if pipeline else {}
    for section in ("run", "github"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: {section} must be a table ([{section}]); fix the file")
        if section == "run" and "github_url" in table:  # [run] github_url: the flag's name, kept
            layer["github"] = {"api_url": table["github_url"], **layer.get("github", {})}
            table = {k: v for k, v in table.items() if k != "github_url"}
        known = [n for n, f in SECTIONS[section].model_fields.items() if meta(f)["layered"] and not f.exclude]
        if unknown := sorted(set(table) - set(known)):
            raise ConfigError(f"{origin} [{section}]: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")
        if table:
            layer[section] = {**layer.get(section, {}), **table}
    return _with_preset(layer)


class _EnvSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        load = _LOADING.get()
        return load.env if load else env_layer(os.environ)


class _TomlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        load = _LOADING.get()
        return load.toml if load else {}


# -- the loader ------------------------------------------------------------------------------


def load_settings(flags: Mapping[str, Any] | BaseModel | None = None, *,
                  env: Mapping[str, str] | None = None) -> Settings:
    """The one loader: read the task file and conductor.toml the flags name (or ./conductor.toml)
    and decide every setting, flag > task file > environment > conductor.toml > default.

    `flags` are flow parameters (`PassParameters`, or their dict); `env` stands in for the
    process environment (tests). Reads files, talks to no service; a bad value is one
    `ConfigError` line naming it and where it came from."""
    given = flags.model_dump() if isinstance(flags, BaseModel) else dict(flags or {})
    env = dict(os.environ) if env is None else dict(env)
    layers: dict[str, dict[str, dict[str, Any]]] = {"flag": _flag_layer(given)}
    task_file = layers["flag"].get("run", {}).get("task_file")
    layers["task file"] = _task_layer(Path(task_file)) if task_file else {}
    layers["env"] = env_layer(env)
    config_file = layers["flag"].get("run", {}).get("config_file")
    path = Path(config_file) if config_file else _default_config()
    origin = str(path or constants.CONFIG_FILE_NAME)
    toml = _read_toml(path) if path else {}
    layers["toml"] = toml_layer(toml, origin)
    sources = {f"{section}.{name}": source for source in reversed(SOURCES)
               for section, values in layers[source].items() for name in values}
    if "run.agent_command" in sources and layers[sources["run.agent_command"]].get("run", {}).get("agent_preset"):
        src = sources["run.agent_command"]
        sources["run.agent_command"] = f"{src} (preset {layers[src]['run']['agent_preset']})"
    init = _merge(layers["task file"], layers["flag"])
    token = _LOADING.set(_Load(env=layers["env"], toml=layers["toml"]))
    try:
        settings = Settings(**init, sources=sources)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, sources, origin)) from None
    finally:
        _LOADING.reset(token)
    if settings.github.etag_cache_dir is None:
        github = settings.github.model_copy(update={"etag_cache_dir": settings.run.prefect_home / "conductor-http-cache"})
        settings = settings.model_copy(update={"github": github})
    return settings


def _flag_layer(given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    fields = flag_fields()
    for param, value in given.items():
        if param not in fields:
            raise ConfigError(f"unknown parameter {param!r}; known parameters: {', '.join(fields)}")
        if value is None or value is False:
            continue
        section, name, _ = fields[param]
        layer.setdefault(section, {})[name] = value
    return _with_preset(layer)


def _task_layer(path: Path) -> dict[str, dict[str, Any]]:
    """The settings a task file holds: only keys it really has, ATTEMPT_N only when > 0."""
    task = read_task_file(path)
    values = {}
    for name, field in RunSettings.model_fields.items():
        key = meta(field)["task_key"]
        if key and key in task.model_fields_set:
            value = getattr(task, key)
            if value != "" and not (key == "ATTEMPT_N" and value == 0):
                values[name] = value
    return {"run": values} if values else {}


def _with_preset(layer: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A preset at one level is the agent command of that level, unless it names one itself
    (a preset loses to a command at the same or a higher level)."""
    run = layer.get("run", {})
    if run.get("agent_preset") and not run.get("agent_command"):
        run["agent_command"] = get_preset(run["agent_preset"])
    return layer


def _merge(low: Mapping[str, dict[str, Any]], high: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s: {**low.get(s, {}), **high.get(s, {})} for s in {*low, *high}}


def _one_line(exc: ValidationError, sources: Mapping[str, str], origin: str) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc[:2])
    source = sources.get(key, "default")
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and loc and loc[0] in SECTIONS:
        msg = f"unknown setting; known settings: {', '.join(SECTIONS[loc[0]].model_fields)}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if source == "env" and len(loc) >= 2:
        var = env_names(loc[0], loc[1])[0]
        return f"{var}={str(err.get('input'))[:60]!r}: {msg}; fix that environment variable{more}"
    if source == "toml" and loc and loc[0] in ("run", "github"):
        return f"{origin} [{loc[0]}] {'.'.join(loc[1:])}: {msg}; fix that value{more}"
    where = {"toml": origin, "default": origin}.get(source, source)
    return f"invalid configuration in {where}: {'.'.join(loc)}: {msg}{more}"


def _default_config() -> Path | None:
    default = Path(constants.CONFIG_FILE_NAME)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; create it or drop --config") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}; check the path and its permissions") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the syntax") from None


# -- the environment, for child processes -----------------------------------------------------


def process_environment() -> dict[str, str]:
    """This process's environment, for the child processes it starts (agents, git, the
    Prefect server) to inherit, and for an agent to read what the conductor gave it; no
    setting is read from it outside this module."""
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

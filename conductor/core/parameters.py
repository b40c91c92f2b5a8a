"""What a pass is asked to do: one model for the flow's parameters, `conductor run`'s flags
and input resolution.

`PassParameters` is the conductor flow's signature (field for field), and `conductor run`
builds its flags from the same fields (`cli_flag`, the description as help). Each value
is resolved once, by `resolve_parameters`, in this order of precedence:

    flag (the parameter) > task file > environment (CONDUCTOR_*) > conductor.toml [run] > default

Pure: the task file, the environment and the `[run]` table are given to it; it reads
nothing and talks to no service. No secret is a parameter: tokens live in `GitHubSettings`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conductor.core import constants
from conductor.core.errors import ConductorError
from conductor.core.presets import get_preset
from conductor.core.taskfile import REPO_SLUG_RE, TaskFile

ENV_PREFIX = "CONDUCTOR_"


def _meta(*, flag: str | None = None, task_key: str | None = None, layered: bool = True) -> dict[str, Any]:
    return {"cli_flag": flag, "task_key": task_key, "layered": layered}


class PassParameters(BaseModel):
    """The parameters of one conductor pass. None means "not given here": the next source
    in the order of precedence decides (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    repo: str | None = Field(
        None, pattern=REPO_SLUG_RE,
        description="OWNER/NAME of the repository (task file: GH_REPO; env: CONDUCTOR_REPO).",
        json_schema_extra=_meta(flag="--repo", task_key="GH_REPO"))
    phase_filter: str | None = Field(
        None, description="Dispatch only this phase (task file: PHASE_FILTER).",
        json_schema_extra=_meta(flag="--phase-filter", task_key="PHASE_FILTER"))
    max_issues_per_dispatch: int | None = Field(
        None, ge=1, description="Cap on issues dispatched per pass (task file: MAX_ISSUES_PER_DISPATCH; default "
        f"{constants.MAX_PER_DISPATCH}).",
        json_schema_extra=_meta(flag="--max-issues", task_key="MAX_ISSUES_PER_DISPATCH"))
    max_prs_per_dispatch: int | None = Field(
        None, ge=1, description="Cap on PRs dispatched per pass (task file: MAX_PRS_PER_DISPATCH; default "
        f"{constants.MAX_PER_DISPATCH}).",
        json_schema_extra=_meta(flag="--max-prs", task_key="MAX_PRS_PER_DISPATCH"))
    attempt: int | None = Field(
        None, ge=0, description="Override the attempt counter (task file: ATTEMPT_N when > 0); "
        "otherwise it is read back from the last reminder's marker.",
        json_schema_extra=_meta(flag="--attempt", task_key="ATTEMPT_N", layered=False))
    dry_run: bool = Field(
        False, description="Write nothing anywhere (GitHub, worktrees); report what would be done.",
        json_schema_extra=_meta(flag="--dry-run", layered=False))
    reminder_mode: Literal["recreate", "update"] | None = Field(
        None, description="recreate: close stale reminders and open a new one (the seed); update: edit "
        "one reminder in place. Env: CONDUCTOR_REMINDER_MODE; default recreate.",
        json_schema_extra=_meta(flag="--reminder-mode"))
    task_file: str | None = Field(
        None, description="The conductor's .agent-task file (GH_REPO, PHASE_FILTER, caps, ATTEMPT_N).",
        json_schema_extra=_meta(flag="--task-file", layered=False))
    config_file: str | None = Field(
        None, description="Pipeline config (TOML: phases, gates, labels, a [run] table); "
        "default ./conductor.toml when present.",
        json_schema_extra=_meta(flag="--config", layered=False))
    repo_path: str | None = Field(
        None, description="Local clone of the repository (env: CONDUCTOR_REPO_PATH; default .).",
        json_schema_extra=_meta(flag="--repo-path"))
    github_url: str | None = Field(
        None, description="REST API base URL: https://HOST/api/v3 for GitHub Enterprise, the sandbox's "
        "http://127.0.0.1:PORT/api/v3 (env: CONDUCTOR_GITHUB_URL; default https://api.github.com).",
        json_schema_extra=_meta(flag="--github-url"))
    agent_command: list[str] | None = Field(
        None, description="The agent's argv: a JSON list or a command line, with {task_file} {report_file} "
        "{worktree} {prompt_file} {workflow} placeholders (env: CONDUCTOR_AGENT_COMMAND, a JSON list).",
        json_schema_extra=_meta(flag="--agent-command"))
    agent_preset: str | None = Field(
        None, description="A shipped agent command (claude, codex, cursor, gemini, generic), used when "
        "no agent command is given at the same or a higher level (env: CONDUCTOR_AGENT_PRESET).",
        json_schema_extra=_meta(flag="--agent-preset"))
    agent_timeout: float | None = Field(
        None, gt=0, description="Seconds before an agent is killed (env: CONDUCTOR_AGENT_TIMEOUT; default "
        f"{constants.AGENT_TIMEOUT:.0f}).",
        json_schema_extra=_meta(flag="--agent-timeout"))
    rerun_hint: str | None = Field(
        None, description="The command the reminder tells a human to run next (default: how this pass "
        "was started).", json_schema_extra=_meta(layered=False))
    event_id: str | None = Field(
        None, description="The Prefect event that started this run (set by the `on-change` trigger): a "
        "pass that began after the server received it read GitHub after it, so this run makes none "
        "(tasks/guard.py).", json_schema_extra=_meta(layered=False))


DEFAULTS: dict[str, Any] = {
    "repo": "", "phase_filter": "", "max_issues_per_dispatch": constants.MAX_PER_DISPATCH,
    "max_prs_per_dispatch": constants.MAX_PER_DISPATCH, "reminder_mode": "recreate", "repo_path": ".",
    "agent_timeout": constants.AGENT_TIMEOUT,
}


class ResolvedParameters(BaseModel):
    """Every parameter decided: what the pass runs with."""

    model_config = ConfigDict(frozen=True)

    repo: str = Field("", description="OWNER/NAME; empty when none was given (a pass refuses to start).")
    phase_filter: str = ""
    max_issues_per_dispatch: int = constants.MAX_PER_DISPATCH
    max_prs_per_dispatch: int = constants.MAX_PER_DISPATCH
    attempt: int | None = None
    dry_run: bool = False
    reminder_mode: Literal["recreate", "update"] = "recreate"
    task_file: str | None = None
    config_file: str | None = None
    repo_path: Path = Path(".")
    github_url: str | None = None
    agent_command: list[str] = Field(default_factory=list)
    agent_timeout: float = constants.AGENT_TIMEOUT
    rerun_hint: str | None = None
    sources: dict[str, str] = Field(default_factory=dict, description="Where each value came from.")


def field_meta(name: str) -> dict[str, Any]:
    extra = PassParameters.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _from_env(name: str, raw: str) -> Any:
    """An environment string as the field's value; a bad one is one line naming the variable."""
    var = env_name(name)
    value: Any = raw
    if name == "agent_command":
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConductorError(f"{var} is not a JSON list ({exc.msg}); write e.g. "
                                 f"{var}='[\"my-agent\", \"{{task_file}}\"]'") from None
    try:
        return PassParameters.model_validate({name: value}).model_dump()[name]
    except ValidationError as exc:
        raise ConductorError(f"{var}={raw[:60]!r}: {exc.errors()[0]['msg']}; fix that environment variable") from None


def _from_toml(name: str, value: Any, origin: str) -> Any:
    try:
        return PassParameters.model_validate({name: value}).model_dump()[name]
    except ValidationError as exc:
        raise ConductorError(f"{origin} [run] {name}: {exc.errors()[0]['msg']}; fix that value") from None


def resolve_parameters(params: PassParameters, *, task: TaskFile | None = None,
                       env: Mapping[str, str] | None = None, run_table: Mapping[str, Any] | None = None,
                       config_origin: str = "conductor.toml") -> ResolvedParameters:
    """Decide every parameter: flag > task file > environment > conductor.toml [run] > default.

    `task` is the parsed task file (only the keys it really holds count, and ATTEMPT_N
    only when > 0), `env` the environment, `run_table` the `[run]` table of conductor.toml.
    The agent preset is resolved here, once: a preset at one level loses to a command at
    the same or a higher level."""
    env = env or {}
    run_table = dict(run_table or {})
    unknown = sorted(set(run_table) - {n for n in PassParameters.model_fields if field_meta(n)["layered"]})
    if unknown:
        raise ConductorError(f"{config_origin} [run]: unknown key {unknown[0]!r}; known keys: "
                             + ", ".join(n for n in PassParameters.model_fields if field_meta(n)["layered"]))
    in_file = task.model_fields_set if task is not None else set()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in PassParameters.model_fields:
        meta = field_meta(name)
        layers: list[tuple[str, Any]] = [("flag", getattr(params, name))]
        key = meta["task_key"]
        if task is not None and key and key in in_file:
            file_value = getattr(task, key)
            if not (key == "ATTEMPT_N" and file_value == 0) and file_value != "":
                layers.append(("task file", file_value))
        if meta["layered"]:
            if env.get(env_name(name)):
                layers.append(("env", _from_env(name, env[env_name(name)])))
            if name in run_table:
                layers.append(("toml", _from_toml(name, run_table[name], config_origin)))
        if name in DEFAULTS:
            layers.append(("default", DEFAULTS[name]))
        for source, value in layers:
            if value is not None and value is not False:
                values[name], sources[name] = value, source
                break
        else:
            values[name] = getattr(params, name)
    values["agent_command"] = _agent_command(params, task, env, run_table, config_origin, sources)
    values.pop("agent_preset", None)
    return ResolvedParameters(**values, sources=sources)


def _agent_command(params: PassParameters, task: TaskFile | None, env: Mapping[str, str],
                   run_table: Mapping[str, Any], origin: str, sources: dict[str, str]) -> list[str]:
    """The agent argv from the highest level that names a command or a preset."""
    levels = [
        ("flag", params.agent_command, params.agent_preset),
        ("env",
         _from_env("agent_command", env[env_name("agent_command")]) if env.get(env_name("agent_command")) else None,
         env.get(env_name("agent_preset")) or None),
        ("toml",
         _from_toml("agent_command", run_table["agent_command"], origin) if run_table.get("agent_command") else None,
         run_table.get("agent_preset")),
    ]
    for source, command, preset in levels:
        if command:
            sources["agent_command"] = source
            return list(command)
        if preset:
            sources["agent_command"] = f"{source} (preset {preset})"
            return get_preset(preset)
    return []

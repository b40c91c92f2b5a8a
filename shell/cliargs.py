"""Command-line pieces every `conductor` command shares: flags, their parsers, one-line errors.

The flags of `conductor run` are built from the settings tree's fields that have one
(`conductor.core.settings.flag_fields`; their descriptions are the help), and read back into
`PassParameters`, the flow's parameters, so the flow, the CLI and the settings cannot drift.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import typing
from pathlib import Path

from pydantic import ValidationError

from conductor.core.errors import ConductorError

REPO_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


class UsageError(ConductorError):
    """Bad command-line input."""


def repo_slug(value: str) -> str:
    if not REPO_SLUG.match(value) or value.endswith((".git",)) or "/." in value:
        raise argparse.ArgumentTypeError(f"invalid repository {value!r}: use OWNER/NAME, e.g. octo/widgets")
    return value


def agent_command(value: str) -> list[str]:
    """A JSON list, or a command line split like a shell would (but never run by one)."""
    value = value.strip()
    if value.startswith("["):
        try:
            argv = json.loads(value)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"--agent-command is not a JSON list: {exc.msg}") from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise argparse.ArgumentTypeError("--agent-command JSON must be a list of strings")
        return argv
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--agent-command cannot be split: {exc}") from None


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "input"
    return f"{where}: {err.get('msg', 'invalid value')}"


def add_parameter_flags(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """One flag per settings field that has one (all, or those whose parameter is in `names`);
    the destination is the flow parameter's name, the help the field's description."""
    from conductor.core.settings import PassParameters, flag_fields, meta

    for name, (_, _, setting) in flag_fields().items():
        flag = meta(setting)["flag"]
        if not flag or (names is not None and name not in names):
            continue
        field = PassParameters.model_fields[name]
        kwargs: dict[str, typing.Any] = {"dest": name, "default": None, "help": field.description}
        args = typing.get_args(field.annotation)
        base = next((a for a in args if a is not type(None)), field.annotation)
        if field.annotation is bool:
            kwargs.update(action="store_true", default=False)
        elif name == "repo":
            kwargs["type"] = repo_slug
        elif name == "agent_command":
            kwargs["type"] = agent_command
        elif name in {"task_file", "config_file", "repo_path"}:
            kwargs["type"] = Path
        elif typing.get_origin(base) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(base))
        elif base in (int, float):
            kwargs["type"] = base
        parser.add_argument(flag, **kwargs)


def parameters_from_args(args: argparse.Namespace):
    """The `PassParameters` a command line gave (None for every flag not given)."""
    from conductor.core.settings import PassParameters

    values = {}
    for name in PassParameters.model_fields:
        if hasattr(args, name):
            value = getattr(args, name)
            values[name] = str(value) if isinstance(value, Path) else value
    return PassParameters(**values)


def add_github_args(parser: argparse.ArgumentParser) -> None:
    add_parameter_flags(parser, ["repo", "github_url"])


def add_config_args(parser: argparse.ArgumentParser) -> None:
    add_parameter_flags(parser, ["task_file", "config_file"])

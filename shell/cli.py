"""The `conductor` command line: thin argument parsing around the core.

Every user error (a `ConductorError`, a bad file, an unreachable GitHub) ends as one
line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from shell.cliargs import (
    UsageError,
    add_config_args,
    add_github_args,
    add_parameter_flags,
    first_error,
    parameters_from_args,
)
from conductor.core.errors import ConductorError

def _load(args: argparse.Namespace, repo: str | None = None):
    """The settings (repository, pipeline config, phase filter, caps, attempt), decided exactly
    as a pass decides them (`conductor.core.settings.load_settings`)."""
    from conductor.core.settings import load_settings

    params = parameters_from_args(args)
    if repo and not params.repo:
        params = params.model_copy(update={"repo": repo})
    return load_settings(params).require_repo()  # a bad value: one line from main()


def _read_state_file(path: Path):
    from conductor.core.models import PipelineState

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"state file {path} does not exist; write one with `conductor snapshot --repo OWNER/NAME --out {path}`") from None
    except OSError as exc:
        raise UsageError(f"cannot read state file {path}: {exc.strerror}; check its permissions") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"state file {path} is not valid JSON (line {exc.lineno}: {exc.msg}); "
                         "regenerate it with `conductor snapshot`") from None
    try:
        return PipelineState.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"state file {path} does not match the snapshot format ({first_error(exc)}); "
                         "regenerate it with `conductor snapshot`") from None


def cmd_plan(args: argparse.Namespace) -> int:
    from conductor.core.planner import plan as make_plan
    from conductor.core.render import plan_table

    state = _read_state_file(args.state_file) if args.state_file else None
    settings = _load(args, repo=state.repo if state else None)
    if state is None:
        from conductor.edges.github_gateway import GitHubGateway
        from conductor.actions.snapshot import read_snapshot

        with GitHubGateway(settings.github, settings.run.repo) as gh:
            state = read_snapshot(gh, settings).state
    result = make_plan(state, settings, settings.given_attempt())
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        Console().print(plan_table(result))
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from conductor.edges.github_gateway import GitHubGateway
    from conductor.core.planner import plan as make_plan
    from conductor.actions.snapshot import read_snapshot

    settings = _load(args)
    with GitHubGateway(settings.github, settings.run.repo) as gh:
        state = read_snapshot(gh, settings).state
    text = json.dumps(state.model_dump(mode="json"), indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        counted = make_plan(state, settings, settings.given_attempt())  # the same counts `conductor plan` shows
        print(f"wrote {args.out}: {counted.open_issues} open issues, {counted.open_prs} open PRs in the "
              f"pipeline ({state.api_requests} requests)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Every setting, its value and where it came from (flag, task file, env, toml, default);
    secrets only as set or unset."""
    from conductor.core.settings import load_settings

    rows = load_settings(parameters_from_args(args)).rows()
    if args.json:
        print(json.dumps([{"setting": k, "value": v, "source": s} for k, v, s in rows], indent=2))
    else:
        width = max(len(k) for k, _, _ in rows)
        for key, value, source in rows:
            print(f"{key:<{width}}  {value or '-'}  ({source})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conductor", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plan", help="what may advance right now? (reads GitHub or a snapshot)")
    add_github_args(p)
    add_config_args(p)
    p.add_argument("--state-file", type=Path, default=None, help="plan offline from a `conductor snapshot` file")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("snapshot", help="write the pipeline state in the format --state-file reads")
    add_github_args(p)
    add_config_args(p)
    p.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("config", help="the settings a pass would run with")
    show = p.add_subparsers(dest="config_command", metavar="{show}", required=True).add_parser(
        "show", help="every setting, its value and its source (flag, task file, env, toml, default)")
    add_parameter_flags(show)
    show.add_argument("--json", action="store_true", help="print the settings as JSON")
    show.set_defaults(func=cmd_config_show)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from functools import partial

    from shell.demo import SAMPLE_PIPELINE
    from shell.demo import register as demo_register
    from conductor.core.presets import register as presets_register
    from shell.run_cli import register as run_register
    from deployments.webhooks import register as webhooks_register
    from github_sandbox.cli import register as register_sandbox

    from shell.status_cli import register as status_register

    sandbox_register = partial(register_sandbox, default_pipeline=SAMPLE_PIPELINE)
    return [sandbox_register, run_register, status_register, demo_register, webhooks_register,
            presets_register]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except ConductorError as exc:
        print(f"conductor: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a setting from the environment or a flag
        print(f"conductor: error: invalid setting {first_error(exc)}; fix that environment variable or flag",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conductor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

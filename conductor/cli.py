"""The `conductor` command line: thin argument parsing around the core.

Every user error (a `ConductorError`, a bad file, an unreachable GitHub) ends as one
line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from conductor.errors import ConductorError

REPO_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


class UsageError(ConductorError):
    """Bad command-line input."""


def _repo_slug(value: str) -> str:
    if not REPO_SLUG.match(value) or value.endswith((".git",)) or "/." in value:
        raise argparse.ArgumentTypeError(f"invalid repository {value!r}: use OWNER/NAME, e.g. octo/widgets")
    return value


def _add_github_args(parser: argparse.ArgumentParser, *, required_repo: bool) -> None:
    parser.add_argument("--repo", type=_repo_slug, required=required_repo,
                        help="OWNER/NAME of the repository (default: GH_REPO of the task file)")
    parser.add_argument("--github-url", default=None,
                        help="REST API base URL (GitHub Enterprise: https://HOST/api/v3; "
                             "the sandbox: http://127.0.0.1:PORT/api/v3). Default: $CONDUCTOR_GITHUB_URL "
                             "or https://api.github.com. The token comes from $GITHUB_TOKEN.")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-file", type=Path, default=None,
                        help="the conductor's .agent-task file (GH_REPO, PHASE_FILTER, caps, ATTEMPT_N)")
    parser.add_argument("--config", type=Path, default=None,
                        help="pipeline config (TOML: phases, gates, labels); default: ./conductor.toml if present")


def _github_settings(args: argparse.Namespace):
    from conductor.settings import GitHubSettings

    return GitHubSettings.from_env(args.github_url)  # a bad value: one line from main()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "input"
    return f"{where}: {err.get('msg', 'invalid value')}"


def _load_inputs(args: argparse.Namespace):
    from conductor.config import load_pipeline_config
    from conductor.taskfile import TaskFile, read_task_file

    config = load_pipeline_config(args.config)  # None: ./conductor.toml when there is one
    task = read_task_file(args.task_file) if args.task_file else TaskFile()
    return config, task


def _read_state_file(path: Path):
    from conductor.models import PipelineState

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
        raise UsageError(f"state file {path} does not match the snapshot format ({_first_error(exc)}); "
                         "regenerate it with `conductor snapshot`") from None


def _resolve_repo(args: argparse.Namespace, task) -> str:
    repo = args.repo or task.GH_REPO
    if not repo:
        raise UsageError("no repository given: pass --repo OWNER/NAME or set GH_REPO in the task file")
    return repo


def cmd_plan(args: argparse.Namespace) -> int:
    from conductor.planner import plan as make_plan
    from conductor.planner import prs_needing_files
    from conductor.render import plan_table

    config, task = _load_inputs(args)
    if args.state_file:
        state = _read_state_file(args.state_file)
    else:
        from conductor.github_gateway import GitHubGateway

        repo = _resolve_repo(args, task)
        with GitHubGateway(_github_settings(args), repo) as gh:
            state = gh.read_state(lambda s: prs_needing_files(s, config, task))
    result = make_plan(state, config, task)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        Console().print(plan_table(result))
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from conductor.github_gateway import GitHubGateway
    from conductor.planner import prs_needing_files

    config, task = _load_inputs(args)
    repo = _resolve_repo(args, task)
    with GitHubGateway(_github_settings(args), repo) as gh:
        state = gh.read_state(lambda s: prs_needing_files(s, config, task))
    text = json.dumps(state.model_dump(mode="json"), indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({len(state.issues)} issues, {len(state.pull_requests)} PRs, "
              f"{state.api_requests} requests)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conductor", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plan", help="what may advance right now? (reads GitHub or a snapshot)")
    _add_github_args(p, required_repo=False)
    _add_config_args(p)
    p.add_argument("--state-file", type=Path, default=None, help="plan offline from a `conductor snapshot` file")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("snapshot", help="write the pipeline state in the format --state-file reads")
    _add_github_args(p, required_repo=False)
    _add_config_args(p)
    p.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    p.set_defaults(func=cmd_snapshot)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from functools import partial

    from conductor.demo import SAMPLE_PIPELINE
    from conductor.demo import register as demo_register
    from conductor.run_cli import register as run_register
    from github_sandbox.cli import register as register_sandbox

    sandbox_register = partial(register_sandbox, default_pipeline=SAMPLE_PIPELINE)
    return [sandbox_register, run_register, demo_register]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConductorError as exc:
        print(f"conductor: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a setting from the environment or a flag
        print(f"conductor: error: invalid setting {_first_error(exc)}; fix that environment variable or flag",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conductor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

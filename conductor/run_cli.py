"""`conductor run` and `conductor setup`: one pass through Prefect, and the seed's setup step.

Prefect is imported only here, after PREFECT_API_URL is settled: when it is not set,
the embedded server (`conductor.prefect_server`) is started for the pass and stopped after.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conductor.errors import ConductorError


@contextmanager
def prefect_api(ephemeral_home: bool = False) -> Iterator[str]:
    """Use PREFECT_API_URL when set; else run the embedded server for the duration."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from conductor.prefect_server import drain_prefect_workers, embedded_server

    with tempfile.TemporaryDirectory(prefix="conductor-prefect-") as tmp:
        home = tmp if ephemeral_home else os.environ.get("PREFECT_HOME")
        if home:
            os.environ["PREFECT_HOME"] = home
        with embedded_server(prefect_home=home) as url:
            os.environ["PREFECT_API_URL"] = url
            try:
                yield url
            finally:
                drain_prefect_workers()
                os.environ.pop("PREFECT_API_URL", None)


def run_pass(**parameters: Any):
    """Run the conductor flow once; returns (report, state). The report is None when the
    pass was skipped because another pass over the repository held its slot."""
    from flows.conductor import conductor

    state = conductor(**parameters, return_state=True)
    if state.is_cancelled():
        return None, state
    report = state.result(raise_on_failure=False)
    if isinstance(report, BaseException):
        raise ConductorError(f"the conductor pass failed: {report}") from None
    return report, state


def _agent_command(value: str) -> list[str]:
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


def _check_inputs(parameters: dict[str, Any]) -> None:
    from conductor.passes import resolve_inputs
    from conductor.settings import GitHubSettings

    settings = GitHubSettings.from_env(parameters["github_url"])
    inputs = resolve_inputs(api_url=settings.api_url, **{k: v for k, v in parameters.items() if k != "github_url"})
    if not inputs.dry_run and not inputs.agent_command:
        raise ConductorError("no agent command: pass --agent-command or --agent-preset, "
                             "or set CONDUCTOR_AGENT_COMMAND / CONDUCTOR_AGENT_PRESET")


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from conductor.render import plan_table

    parameters = {
        "repo": args.repo, "phase_filter": args.phase_filter,
        "max_issues_per_dispatch": args.max_issues, "max_prs_per_dispatch": args.max_prs,
        "attempt": args.attempt, "dry_run": args.dry_run, "reminder_mode": args.reminder_mode,
        "task_file": str(args.task_file) if args.task_file else None,
        "config_file": str(args.config) if args.config else None,
        "repo_path": str(args.repo_path) if args.repo_path else None,
        "github_url": args.github_url, "agent_command": args.agent_command,
        "agent_timeout": args.agent_timeout,
    }
    if args.agent_preset and not args.agent_command:
        from conductor.presets import get_preset

        parameters["agent_command"] = get_preset(args.agent_preset)
    _check_inputs(parameters)  # bad input fails here, in a second, not after Prefect starts
    with prefect_api(ephemeral_home=args.dry_run):
        report, state = run_pass(**parameters)
    if report is None:
        print(f"conductor: {state.message}", file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        console = Console()
        console.print(plan_table(report.final_plan, dispatches=report.plan.dispatches))
        for failure in report.failures:
            console.print(f"[red]failure[/red] {failure}", markup=True, highlight=False)
        if report.reminder and report.reminder.number:
            console.print(f"reminder #{report.reminder.number}: {report.reminder.action}")
    if state.is_failed():
        print(f"conductor: {state.message}", file=sys.stderr)
        return 1
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from conductor import worktrees
    from conductor.config import load_pipeline_config
    from conductor.settings import RunSettings
    from conductor.taskfile import TaskFile

    settings = RunSettings(**({"repo_path": args.repo_path} if args.repo_path else {}))
    config = load_pipeline_config(args.config)
    root = settings.resolved_worktree_root()
    path = root / "conductor"
    if path.exists():
        raise ConductorError(f"conductor worktree already exists — remove it first or re-use: "
                             f"git worktree remove --force {path} && git worktree prune")
    worktrees.fetch(settings.repo_path)
    sha = worktrees.integration_tip(settings.repo_path, config.integration_branch)
    created = worktrees.create_worktree(settings.repo_path, root, "conductor", sha)
    task = TaskFile(GH_REPO=args.repo or "")
    (created / ".agent-task").write_text(task.render(), encoding="utf-8")
    print(f"conductor worktree ready: {created}")
    print(f"run a pass with: conductor run --task-file {created / '.agent-task'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from conductor.cli_args import add_config_args, add_github_args

    p = sub.add_parser("run", help="one conductor pass (a Prefect flow run)")
    add_github_args(p, required_repo=False)
    add_config_args(p)
    p.add_argument("--phase-filter", default=None, help="dispatch only this phase")
    p.add_argument("--max-issues", type=int, default=None, help="cap on issues dispatched (default 12)")
    p.add_argument("--max-prs", type=int, default=None, help="cap on PRs dispatched (default 12)")
    p.add_argument("--attempt", type=int, default=None, help="override ATTEMPT_N (read back from GitHub otherwise)")
    p.add_argument("--dry-run", action="store_true", help="write nothing anywhere; print what would be done")
    p.add_argument("--reminder-mode", choices=["recreate", "update"], default=None)
    p.add_argument("--repo-path", type=Path, default=None, help="local clone of the repository (default: .)")
    p.add_argument("--agent-command", type=_agent_command, default=None,
                   help="agent argv: a JSON list or a command line, with {task_file} {report_file} "
                        "{worktree} {prompt_file} {workflow} placeholders")
    p.add_argument("--agent-preset", default=None, help="claude, codex, cursor, gemini or generic")
    p.add_argument("--agent-timeout", type=float, default=None, help="seconds before an agent is killed")
    p.add_argument("--json", action="store_true", help="print the pass report as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("setup", help="create the conductor worktree and its .agent-task (seed: Setup)")
    p.add_argument("--repo", default=None, help="OWNER/NAME written as GH_REPO")
    p.add_argument("--repo-path", type=Path, default=None, help="local clone (default: .)")
    p.add_argument("--config", type=Path, default=None)
    p.set_defaults(func=cmd_setup)

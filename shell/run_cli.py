"""`conductor run` and `conductor setup`: one pass through Prefect, and the seed's setup step.

`conductor run` checks every input before anything is written and before the pass
starts (`conductor.actions.preflight`), while the embedded Prefect server starts beside it.
Prefect is imported only after PREFECT_API_URL is settled. Its own log lines and
tracebacks go to a log file; the terminal gets progress lines and one line per error.

Exit status: 0 every claim proved (or the pipeline is idle, or another pass holds the
repository: skipped), 1 a coordinator failed, the pipeline is stuck or the pass broke, 2 bad
input or GitHub unreachable. A pass that exits non-zero ends stderr with one line saying why
and where to look (the log file, the Prefect flow run); with --json every pass that started
prints a report on stdout (`StandInReport`, with `skipped` or `error`, when it gave none).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from shell.cliargs import add_parameter_flags, parameters_from_args
from conductor.core.errors import ConductorError
from conductor.core.settings import RunSettings, scoped_environ

EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT = 0, 1, 2


class PrefectAPI:
    """PREFECT_API_URL when set; else the embedded server, started at once and waited for
    only when needed (`url()`), so inputs are checked while it starts."""

    def __init__(self, run: RunSettings, ephemeral_home: bool = False,
                 log_file: Path | None = None) -> None:
        self._run = run
        self._given = run.prefect_api_url or None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server = None
        self._url: str | None = self._given
        self._env: Any = None
        if self._given is None:
            from shell.prefect_server import EmbeddedServer

            if ephemeral_home:
                self._tmp = tempfile.TemporaryDirectory(prefix="conductor-prefect-")
            home = self._tmp.name if self._tmp else run.prefect_home
            self._server = EmbeddedServer(prefect_home=home, log_file=log_file).start()

    @property
    def embedded(self) -> bool:
        return self._server is not None

    def url(self) -> str:
        """Wait for the server; from here on PREFECT_API_URL (and PREFECT_HOME) point at it."""
        if self._url is None or self._env is None:
            if self._server is not None:
                self._url = self._server.wait_ready()
                self._env = scoped_environ({"PREFECT_API_URL": self._url,
                                            "PREFECT_HOME": str(self._server.home)})
            else:
                self._env = scoped_environ({})
            self._env.__enter__()
        assert self._url is not None
        return self._url

    def run_reference(self, flow_run_id: object) -> str:
        """Where a person finds a flow run: its page on the user's server, or its id and the
        PREFECT_HOME of the embedded server (stopped after the pass; `prefect server start`
        there shows it)."""
        if self._server is None:
            from shell.status_cli import flow_run_link

            return f"Prefect flow run {flow_run_link(self._run, self._url or '', flow_run_id)}"
        return f"Prefect flow run {flow_run_id} (PREFECT_HOME={self._server.home})"

    def close(self, drain: bool = True) -> None:
        from shell.prefect_server import drain_prefect_workers

        try:
            if drain and self._server is not None and self._env is not None:
                drain_prefect_workers()
        finally:
            if self._server is not None:
                self._server.stop()
            if self._env is not None:
                self._env.__exit__(None, None, None)
                self._env = None
            if self._tmp is not None:
                self._tmp.cleanup()

    def __enter__(self) -> PrefectAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=exc[0] is None)


def run_pass(params: Any = None, **parameters: Any):
    """Run the conductor flow once; returns (report, state). The report is None when the
    pass was skipped because another pass over the repository held its slot."""
    from flows.pipeline_pass import conductor

    from conductor.core.settings import PassParameters

    params = params or PassParameters(**parameters)
    state = conductor(**params.model_dump(exclude_none=True), return_state=True)
    if state.is_cancelled():
        return None, state
    report = state.result(raise_on_failure=False)
    if report is None and state.is_failed():  # e.g. the lock could not be read (TLS, network)
        raise ConductorError(state.message or "the conductor pass failed")
    if isinstance(report, BaseException):
        if isinstance(report, ConductorError):
            raise report
        raise ConductorError(f"the conductor pass failed: {report}") from None
    return report, state


def exit_code(report: Any) -> int:
    """0 every claim proved or idle; 1 a coordinator failed or the pipeline is stuck."""
    if report is None:
        return EXIT_OK
    plan = report.plan
    if plan.stuck or report.failures:
        return EXIT_FAILURES
    return EXIT_OK


def rerun_command(argv: list[str]) -> str:
    """The exact command that started this pass, for the reminder's "what to do next"."""
    return shlex.join(["conductor", *argv])


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from shell.progress import default_log_file, route_logs, start_logging

    err = Console(stderr=True, highlight=False)
    # On a terminal the first line comes at once; the server starts while inputs are checked.
    status = err.status("checking inputs, starting Prefect…") if err.is_terminal else None
    if status:
        status.start()
    params = parameters_from_args(args)
    if params.rerun_hint is None and getattr(args, "argv", None) is not None:
        params = params.model_copy(update={"rerun_hint": rerun_command(args.argv)})
    log_file = args.log_file or default_log_file()
    start_logging(log_file, err)
    try:
        from conductor.core.passes import StandInReport
        from conductor.core.settings import load_settings

        settings = load_settings(params).require_repo()
    except BaseException:
        if status:
            status.stop()
        raise
    api = PrefectAPI(settings.run, ephemeral_home=params.dry_run, log_file=log_file)
    try:
        from conductor.actions.preflight import check_agent_command, check_inputs
        from conductor.core.render import pass_table

        check_agent_command(settings.run.agent_command, settings.run.dry_run)  # local: before asking any server
        if settings.github.token is None:  # only a Prefect block can hold it: ask the server
            api.url()
            from tasks.secrets import with_token

            settings = settings.model_copy(update={"github": with_token(settings.github)})
        checked = check_inputs(settings)
        if status:
            status.update(f"inputs checked (token of {checked.login}); starting Prefect…")
        api.url()
    except BaseException:
        if status:
            status.stop()
        api.close(drain=False)
        raise
    if status:
        status.stop()
    err.print(f"[bold]DRY RUN, nothing written[/bold] — {settings.run.repo}" if settings.run.dry_run
              else f"conductor pass over {settings.run.repo} as {checked.login}")
    err.print(f"[dim]Prefect log: {log_file}[/dim]")
    try:
        import flows.pipeline_pass  # noqa: F401  (Prefect configures its logging; route_logs redirects it)

        route_logs(log_file, None if args.json else err)
        report, state = run_pass(params)
    except ConductorError as exc:
        api.close(drain=False)
        message = f"{exc} (details: {log_file})"
        _end(args.json, StandInReport(repo=settings.run.repo, dry_run=settings.run.dry_run, error=message))
        raise ConductorError(message) from None
    except Exception as exc:  # a bug, not the user's input: the traceback is in the log file
        import logging

        logging.getLogger("conductor").exception("the pass failed")
        api.close(drain=False)
        message = (f"the pass failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                   f"(traceback: {log_file})")
        _end(args.json, StandInReport(repo=settings.run.repo, dry_run=settings.run.dry_run, error=message),
             f"conductor: error: {message}")
        return EXIT_FAILURES
    where = f"details: {log_file} and {api.run_reference(state.state_details.flow_run_id)}"
    api.close()
    if report is None:
        _end(args.json, StandInReport(repo=settings.run.repo, dry_run=settings.run.dry_run, skipped=state.message),
             f"conductor: {state.message}")
        return EXIT_OK
    if not args.json:
        Console(soft_wrap=False).print(pass_table(report))
        for failure in report.failures:
            err.print(f"[red]failed[/red] {escape(failure)}", markup=True, highlight=False)
    code = exit_code(report)
    _end(args.json, report, f"conductor: {report.why_failed()} — {where}" if code else None)
    return code


def _end(as_json: bool, report: Any, last_line: str | None = None) -> None:
    """How every pass ends: with --json its report on stdout (a `StandInReport` when it gave
    none); then, if given, one line on stderr saying why, after which no progress line comes."""
    from shell.progress import stop_progress

    stop_progress()
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2), flush=True)
    if last_line:
        print(last_line, file=sys.stderr, flush=True)


def cmd_setup(args: argparse.Namespace) -> int:
    from conductor.edges import worktrees
    from conductor.core.settings import load_settings
    from conductor.core.taskfile import TaskFile

    loaded = load_settings({"repo": args.repo, "repo_path": args.repo_path and str(args.repo_path),
                            "config_file": args.config and str(args.config)})
    settings, config = loaded.run, loaded.pipeline
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
    command = ["conductor", "run", "--task-file", str(created / ".agent-task"),
               "--repo-path", str(settings.repo_path.resolve())]
    if not loaded.run.agent_command:
        command += ["--agent-preset", "claude"]
    if args.github_url:
        command += ["--github-url", args.github_url]
    print("run a pass with (GITHUB_TOKEN set; another --agent-preset or --agent-command if not claude):")
    print("  " + shlex.join(command))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="one conductor pass (a Prefect flow run)",
                       description="One conductor pass. Exit status: 0 every claim proved (or idle), "
                                   "1 a coordinator failed or the pipeline is stuck, 2 bad input or "
                                   "GitHub unreachable.")
    add_parameter_flags(p)
    p.add_argument("--json", action="store_true", help="print the pass report as JSON (nothing else on stdout)")
    p.add_argument("--log-file", type=Path, default=None,
                   help="where Prefect's log lines and tracebacks go (default ~/.conductor/logs/run-TIME.log)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("setup", help="create the conductor worktree and its .agent-task (seed: Setup)")
    p.add_argument("--repo", default=None, help="OWNER/NAME written as GH_REPO")
    p.add_argument("--repo-path", type=Path, default=None, help="local clone (default: .)")
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--github-url", default=None, help="REST API base URL, repeated in the suggested command")
    p.set_defaults(func=cmd_setup)

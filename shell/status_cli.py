"""`conductor status --repo OWNER/NAME`: where the pipeline stands, in one screen.

The open reminder (its number, attempt and fingerprint from its marker, when it was
written, what it asks), the last pass in Prefect when PREFECT_API_URL reaches a server
(name, state, when, link), and the plan as it would be made now. Reads only.
"""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from shell.cliargs import add_config_args, add_github_args, parameters_from_args

if TYPE_CHECKING:
    from conductor.core.settings import RunSettings


def flow_run_link(run: RunSettings, api_url: str, run_id: object) -> str:
    """A flow run's page in the Prefect UI of the server at `api_url` (PREFECT_UI_URL if set)."""
    ui = run.prefect_ui_url or api_url.removesuffix("/api")
    return f"{ui}/runs/flow-run/{run_id}"


def last_pass(repo: str, run_settings: RunSettings) -> dict[str, Any] | None:
    """The newest `conductor` flow run over `repo` on the Prefect server at PREFECT_API_URL."""
    api_url = run_settings.prefect_api_url
    if not api_url:
        return None
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName
        from prefect.client.schemas.sorting import FlowRunSort

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["conductor"])),
                                         sort=FlowRunSort.START_TIME_DESC, limit=50)
    except Exception as exc:  # noqa: BLE001 - status reports what it can reach
        return {"error": f"Prefect at {api_url} not reachable ({type(exc).__name__})"}
    for run in runs:
        if run.parameters.get("repo") == repo or run.name.startswith(f"{repo} "):
            return {"name": run.name, "state": run.state_name,
                    "when": (run.start_time or run.expected_start_time).isoformat() if (run.start_time or run.expected_start_time) else None,
                    "link": flow_run_link(run_settings, api_url, run.id)}
    return {"error": f"no conductor pass over {repo} on the Prefect server at {api_url}"}


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from conductor.core import planner
    from conductor.edges.github_gateway import GitHubGateway
    from conductor.core.render import plan_table
    from conductor.core.settings import load_settings
    from conductor.actions.snapshot import read_snapshot

    settings = load_settings(parameters_from_args(args)).require_repo()
    with GitHubGateway(settings.github, settings.run.repo) as gh:
        snapshot = read_snapshot(gh, settings)
    previous = snapshot.previous
    attempt = previous.state.attempt if previous.state else 0
    plan = planner.plan(snapshot.state, settings, attempt)
    reminder = None
    if previous.newest:
        reminder = {"number": previous.newest, "open_reminders": previous.reminders,
                    "attempt": previous.state.attempt if previous.state else None,
                    "fingerprint": previous.state.fingerprint if previous.state else None,
                    "written": previous.state.generated_at.isoformat() if previous.state else None,
                    "next": _what_next(previous.newest_body)}
    prefect = last_pass(settings.run.repo, settings.run)
    if args.json:
        print(json.dumps({"repo": settings.run.repo, "reminder": reminder, "last_pass": prefect,
                          "plan": plan.model_dump(mode="json")}, indent=2))
        return 0
    console = Console()
    if reminder:
        console.print(f"reminder #{reminder['number']}: attempt {reminder['attempt']}, written {reminder['written']}"
                      + (f"; next: {reminder['next']}" if reminder["next"] else ""), highlight=False)
    else:
        console.print("no open reminder", highlight=False)
    if prefect and "error" not in prefect:
        console.print(f"last pass: {prefect['name']} — {prefect['state']} at {prefect['when']} — {prefect['link']}",
                      highlight=False)
    elif prefect:
        console.print(f"last pass: {prefect['error']}", highlight=False)
    else:
        console.print("last pass: set PREFECT_API_URL to see it", highlight=False)
    console.print(plan_table(plan, title=f"Pipeline now — {settings.run.repo}"))
    return 0


def _what_next(body: str | None) -> str | None:
    """The command under the reminder's "What to do next"."""
    if not body:
        return None
    lines = body.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("### What to do next") and i + 1 < len(lines):
            return lines[i + 1].strip().removeprefix("Re-run the conductor:").strip().strip("`") or None
    return None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the open reminder, the last pass in Prefect and the plan now")
    add_github_args(p)
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_status)

"""`conductor demo`: the whole product on a safe stand-in, start to finish.

Starts the sandbox with the bundled sample pipeline, clones it, and runs conductor
passes (real Prefect flow runs on the embedded server) with the scripted local agent
(`shell.demo_agent`) until the pipeline is idle. Between passes a maintainer
approves the gated items, as a person would. Three users play their parts:
`maintainer` (owns the repository), `conductor-bot` (the conductor's token, write
access) and `demo-agent` (the agents' own token, write access).
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from conductor.core.errors import ConductorError

REPO_NAME = "sample-pipeline"
SAMPLE_PIPELINE = Path(__file__).resolve().parents[1] / "conductor" / "sample_pipeline.json"


class DemoResult(BaseModel):
    passes: int
    idle: bool
    merged_prs: int
    open_issues: int
    open_reminders: int
    failures: list[str] = Field(default_factory=list)
    worktrees_left: int = 0
    leaves: int = Field(0, description="Leaf agents run (one per dispatched issue or PR), all passes.")
    items: list[dict[str, Any]] = Field(
        default_factory=list, description="Per-item results of every pass (the summary's Items table).")


def _all(client: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    items, page = [], 1
    while True:
        batch = client.get(path, params={**params, "per_page": 100, "page": page}).json()
        items.extend(batch)
        if len(batch) < 100:
            return items
        page += 1


def run_demo(workdir: Path, *, max_passes: int = 16, echo: Any = print) -> DemoResult:
    from conductor.edges import worktrees
    from conductor.core.passes import ITEM_HEADERS, PassReport, item_rows
    from conductor.core.render import pass_table
    from shell.run_cli import PrefectAPI, run_pass
    from conductor.core.settings import load_settings, scoped_environ
    from github_sandbox.seed import seed_pipeline
    from github_sandbox.testing import running_sandbox

    echo("starting the sandbox GitHub with the sample pipeline…")
    tokens = {login: "sbx_" + secrets.token_hex(16) for login in ("maintainer", "conductor-bot", "demo-agent")}
    with running_sandbox(workdir / "sandbox", users=tokens) as sandbox:
        repo = f"maintainer/{REPO_NAME}"
        seed_pipeline(sandbox.api_url, tokens["maintainer"], repo, pipeline=SAMPLE_PIPELINE)
        with sandbox.api(tokens["maintainer"]) as admin:
            for login in ("conductor-bot", "demo-agent"):
                admin.put(f"/repos/{repo}/collaborators/{login}", json={"permission": "write"}).raise_for_status()
        clone = workdir / "clone"
        worktrees.clone(f"{sandbox.base_url}/{repo}.git", clone)
        # The process's identity on this machine for the passes (the token is never a flow
        # parameter), put back as it was when the demo ends.
        machine = {
            "GITHUB_TOKEN": tokens["conductor-bot"],
            "CONDUCTOR_AGENT_TOKEN": tokens["demo-agent"],
            "CONDUCTOR_WORKTREE_ROOT": str(workdir / "worktrees"),
            "CONDUCTOR_SALVAGE_DIR": str(workdir / "salvage"),
            "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
            "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0",
        }
        failures: list[str] = []
        items: list[dict[str, Any]] = []
        passes, idle, leaves = 0, False, 0
        echo("starting Prefect (embedded server)…")
        with scoped_environ(machine), PrefectAPI(load_settings().run, ephemeral_home=True) as api:
            api.url()
            for passes in range(1, max_passes + 1):
                echo(f"pass {passes}: running…")
                report, _state = run_pass(
                    repo=repo, github_url=sandbox.api_url, repo_path=str(clone), rerun_hint="conductor demo",
                    agent_command=[sys.executable, "-m", "shell.demo_agent"], agent_timeout=120)
                assert isinstance(report, PassReport)
                table = pass_table(report)
                table.title = f"Pass {passes} — {repo}"
                echo(table)
                failures += report.failures
                rows = item_rows(report.outcomes)
                items += [{"pass": passes, **dict(zip(ITEM_HEADERS, row, strict=True))} for row in rows]
                leaves += sum(1 for o in report.outcomes for r in o.results if r.worktree)
                idle = report.final_plan.idle
                if idle or passes == max_passes:
                    break
                with sandbox.api(tokens["maintainer"]) as admin:
                    for gated in report.final_plan.gated:
                        if not gated.approved:
                            echo(f"maintainer approves #{gated.number} ({gated.reason})")
                            admin.post(f"/repos/{repo}/issues/{gated.number}/labels",
                                       json={"labels": ["conductor/approved"]}).raise_for_status()
        with sandbox.api(tokens["maintainer"]) as client:
            pulls = _all(client, f"/repos/{repo}/pulls", state="closed")
            issues = [i for i in _all(client, f"/repos/{repo}/issues", state="open") if "pull_request" not in i]
            reminders = _all(client, f"/repos/{repo}/issues", state="open", labels="conductor-reminder")
        left = [w for w in worktrees.list_worktrees(clone) if Path(w.path) != clone.resolve()]
        return DemoResult(passes=passes, idle=idle, merged_prs=sum(1 for p in pulls if p.get("merged_at")),
                          open_issues=len(issues), open_reminders=len(reminders), failures=failures,
                          worktrees_left=len(left), leaves=leaves, items=items)


def cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from conductor.core.settings import process_environment, scoped_environ

    if args.max_passes < 1:
        raise ConductorError(f"--max-passes {args.max_passes}: give 1 or more")
    console = Console(stderr=args.json, width=None if sys.stderr.isatty() else 110)
    # The tables are the demo's output: keep Prefect's per-task lines off the terminal (they
    # still reach the server, as every run's logs do).
    level = process_environment().get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    quiet = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": level}
    with tempfile.TemporaryDirectory(prefix="conductor-demo-") as tmp, scoped_environ(quiet):
        result = run_demo(Path(tmp), max_passes=args.max_passes, echo=console.print)
    if args.json:
        print(json.dumps(result.model_dump(mode="json")))
    else:
        console.print(f"passes {result.passes}, idle {result.idle}, merged PRs {result.merged_prs}, "
                      f"open issues {result.open_issues}, open reminders {result.open_reminders}, "
                      f"failures {len(result.failures)}")
    if not result.idle:
        print(f"conductor demo: stopped after {result.passes} passes: not idle", file=sys.stderr)
    return 0 if result.idle and not result.failures else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the sandbox, its sample pipeline and a scripted agent, pass after pass")
    p.add_argument("--json", action="store_true", help="end with one JSON object (the table goes to stderr)")
    p.add_argument("--max-passes", type=int, default=16, help="stop after this many passes")
    p.set_defaults(func=cmd_demo)

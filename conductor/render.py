"""The pipeline state table, for the terminal (rich) and for markdown artifacts.

`plan_rows` is the single source of the table's content; the two renderers only format it.
"""
from __future__ import annotations

from rich.table import Table

from conductor.models import Dispatch, Plan

HEADERS = ["Phase", "State", "Issues", "PRs", "Dispatched", "Gated", "Agent cost"]


def plan_rows(plan: Plan, dispatches: list[Dispatch] | None = None,
              costs: dict[str, str] | None = None) -> list[list[str]]:
    """One row per phase. `dispatches` (default: the plan's own) fills "Dispatched", so a
    report can show the state after a pass beside what the pass dispatched; `costs`
    (phase -> text) fills "Agent cost" (what this pass's agents in that phase reported)."""
    costs = costs or {}
    dispatched: dict[str, list[str]] = {}
    for d in plan.dispatches if dispatches is None else dispatches:
        label = "issue→PR" if d.kind == "issue_to_pr" else "review"
        items = ", ".join(f"#{n}" for n in d.items)
        dispatched.setdefault(d.phase, []).append(f"{label} {d.batch or '(no batch)'}: {items}")
    gated_numbers = {g.number for g in plan.gated if not g.approved}
    rows = []
    for phase in plan.phases:
        state = phase.state
        if phase.state == "waiting" and phase.waiting_on:
            state = "waiting on " + ", ".join(phase.waiting_on)
        rows.append([
            phase.name,
            state,
            str(phase.open_issues),
            str(phase.open_prs),
            "; ".join(dispatched.get(phase.name, [])) or "-",
            "-",
            costs.get(phase.name, "-"),
        ])
    if gated_numbers:
        rows.append(["(gated items)", "needs approval", "", "", "",
                     ", ".join(f"#{n}" for n in sorted(gated_numbers)), ""])
    if "(pass)" in costs:
        rows.append(["(this pass, all agents)", "", "", "", "", "", costs["(pass)"]])
    return rows


def summary_line(plan: Plan) -> str:
    if plan.stuck:
        return f"STUCK: ATTEMPT_N={plan.attempt} > 3, nothing dispatched"
    if plan.idle:
        return "idle: no open issue or PR belongs to any phase"
    n_items = sum(len(d.items) for d in plan.dispatches)
    return (f"{plan.open_issues} open issues, {plan.open_prs} open PRs; "
            f"{len(plan.dispatches)} coordinators for {n_items} items; "
            f"{sum(1 for g in plan.gated if not g.approved)} gated; attempt {plan.attempt}")


def plan_table(plan: Plan, title: str | None = None, dispatches: list[Dispatch] | None = None) -> Table:
    table = Table(title=title or f"Pipeline state — {plan.repo}", caption=summary_line(plan))
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    for row in plan_rows(plan, dispatches):
        table.add_row(*row)
    return table

"""The pipeline state table, for the terminal (rich) and for markdown artifacts.

`plan_rows` is the single source of the table's content; the two renderers only format it.
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from conductor.core import loops, spend, workflows
from conductor.core.constants import ANTI_LOOP_LIMIT
from conductor.core.models import Dispatch, Plan

HEADERS = ["Phase", "State", "Issues", "PRs", "Dispatched", "Gated", "Agent cost"]


def plan_rows(plan: Plan, dispatches: list[Dispatch] | None = None,
              costs: dict[str, str] | None = None) -> list[list[str]]:
    """One row per phase. `dispatches` (default: the plan's own) fills "Dispatched", so a
    report can show the state after a pass beside what the pass dispatched; `costs`
    (phase -> text) fills "Agent cost" (what this pass's agents in that phase reported)."""
    costs = costs or {}
    dispatched: dict[str, list[str]] = {}
    for d in plan.dispatches if dispatches is None else dispatches:
        label = workflows.get(d.kind).label
        items = ", ".join(f"#{n}" + (f" after #{d.merge_after[n]}" if n in d.merge_after else "")
                          for n in d.items)
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
    if waiting := [w for w in plan.waiting if not w.budget]:
        rows.append(["(waiting items)", "wait for open items", "", "", "",
                     ", ".join(f"#{w.number} on " + _blockers(w.blockers, w.native_blockers, w.not_issues)
                               for w in waiting), ""])
    if held := [w.number for w in plan.waiting if w.budget]:
        rows.append(["(over budget)", "wait for a budget", "", "", "", ", ".join(f"#{n}" for n in held), ""])
    if plan.held_back:
        rows.append(["(failed items)", "needs a human", "", "", "",
                     ", ".join(f"#{h.number} ({loops.held_line(h)})" for h in plan.held_back), ""])
    if plan.outside_pipeline:
        rows.append(["(outside the pipeline)", "batch label, no phase label", "", "", "",
                     ", ".join(f"#{o.number} ({o.batch}" + (f", dispatched in {o.placed_in})" if o.placed_in
                                                            else ")") for o in plan.outside_pipeline), ""])
    if plan.problems:
        numbered = sorted({p.number for p in plan.problems if p.number})
        rows.append(["(problems)", "see the reminder or --json", "", "", "",
                     ", ".join(f"#{n}" for n in numbered) or "(not about one item)", ""])
    if "(pass)" in costs:
        rows.append(["(this pass, all agents)", "", "", "", "", "", costs["(pass)"]])
    for scope, lines in spend.by_scope(plan.budgets).items():
        rows.append([f"(spent: {scope})", "budget reached" if any(b.reached for b in lines) else "", "", "", "",
                     "", spend.spent_text(lines)])
    return rows


def _blockers(numbers: list[int], native: int, not_issues: list[str]) -> str:
    parts = [f"#{n}" for n in numbers] + not_issues
    if native:
        parts.append(f"{native} native blocker{'s' if native > 1 else ''}")
    return " and ".join(parts)


def summary_line(plan: Plan) -> str:
    if plan.stuck:
        return f"STUCK: ATTEMPT_N={plan.attempt} > {ANTI_LOOP_LIMIT}, nothing dispatched"
    if plan.idle:
        return "idle: no open issue or PR belongs to any phase"
    n_items = sum(len(d.items) for d in plan.dispatches)
    extra = "".join(f"; {n} {what}" for n, what in (
        (len(plan.waiting), "waiting"), (len(plan.held_back), "need a human"),
        (len(plan.outside_pipeline), "outside the pipeline")) if n)
    return (f"{plan.open_issues} open issues, {plan.open_prs} open PRs; "
            f"{len(plan.dispatches)} coordinators for {n_items} items; "
            f"{sum(1 for g in plan.gated if not g.approved)} gated{extra}; attempt {plan.attempt}")


def rows_table(rows: list[list[str]], title: str, caption: str, dry_run: bool = False) -> Table:
    """A table whose cells fold (wrap at any character when they must), never cut."""
    headers = [("Would dispatch" if dry_run and h == "Dispatched" else h) for h in HEADERS]
    table = Table(title=title, caption=caption, caption_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold", no_wrap=False, min_width=min(len(header), 8))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # cells are data, never console markup
    return table


def plan_table(plan: Plan, title: str | None = None, dispatches: list[Dispatch] | None = None,
               caption: str | None = None, dry_run: bool = False) -> Table:
    return rows_table(plan_rows(plan, dispatches), title or f"Pipeline state — {plan.repo}",
                      caption or summary_line(plan), dry_run=dry_run)


def pass_table(report) -> Table:  # a conductor.core.passes.PassReport (imported there, not here)
    """The table after a pass, captioned with what the pass did."""
    title = ("DRY RUN, nothing written — " if report.dry_run else "") + f"Pipeline state — {report.repo}"
    return rows_table(report.table_rows(), title, report.summary(), dry_run=report.dry_run)

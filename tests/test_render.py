"""The pipeline state table and the pass summary show waiting, held-back and unphased items."""
from __future__ import annotations

from rich.console import Console

from conductor.core.models import Dispatch, HeldItem, OutsideItem, PhaseStatus, Plan, WaitingItem
from conductor.core.passes import PassReport
from conductor.core.render import plan_rows, plan_table, summary_line

HOSTILE = "[bold red]boom[/] | <!-- x --> @admin"


def make_plan() -> Plan:
    return Plan(
        repo="octo/maestro", open_issues=4, open_prs=2,
        phases=[PhaseStatus(name="phase-4/new-ui-pages", open_issues=4, open_prs=2, state="active")],
        dispatches=[Dispatch(kind="pr_review", phase="phase-4/new-ui-pages", batch="batch-1",
                             items=[10, 11, 12], merge_after={11: 10})],
        waiting=[WaitingItem(number=2, kind="issue", title=HOSTILE, blockers=[1], native_blockers=2,
                             reason="depends on #1 (open)")],
        held_back=[HeldItem(number=3, kind="issue", title="flaky", attempts=3, last_reason=HOSTILE)],
        outside_pipeline=[OutsideItem(number=9, title="regression", batch="batch-2")],
    )


def test_rows_show_chains_waiting_held_back_and_outside() -> None:
    rows = plan_rows(make_plan())
    assert rows[0][4] == "review batch-1: #10, #11 after #10, #12"
    assert rows[1:] == [
        ["(waiting items)", "wait for open items", "", "", "", "#2 on #1 and 2 native blockers", ""],
        ["(failed items)", "needs a human", "", "", "", "#3 (3 failures)", ""],
        ["(outside the pipeline)", "batch label, no phase label", "", "", "", "#9 (batch-2)", ""],
    ]
    assert summary_line(make_plan()).endswith(
        "0 gated; 1 waiting; 1 need a human; 1 outside the pipeline; attempt 0")


def test_terminal_table_prints_cells_as_data() -> None:
    plan = make_plan()
    plan.phases[0].name = "[red]x[/red]"
    console = Console(record=True, width=200)
    console.print(plan_table(plan))
    assert "[red]x[/red]" in console.export_text()


def test_pass_summary_lists_them_with_escaped_reasons() -> None:
    text = PassReport(repo="octo/maestro", dry_run=False, attempt=0, plan=make_plan()).markdown()
    assert "## Waiting for other items" in text and "## Needs a human (failed too often)" in text
    assert "## Outside the pipeline (batch label, no phase label)" in text
    assert "<!--" not in text and "[bold red]" not in text
    assert "| \\#\u200b3 | flaky | 3 | \\[bold red\\]boom\\[/\\] \\| &lt;\\!\\-\\- x \\-\\-&gt; @\u200badmin |" in text

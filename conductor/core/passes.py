"""What one conductor pass gives back (`PassReport`, or `StandInReport` when it gave none).

What it takes in is the settings tree (`conductor.core.settings.load_settings`).
"""
from __future__ import annotations


from pydantic import BaseModel, Field

from conductor.core import constants, loops, markdown
from conductor.core.facts import FinishedIssue, OrphanCleanup, ReminderResult, Snapshot
from conductor.core.models import Plan
from conductor.core.render import HEADERS, plan_rows
from conductor.core.usage import Usage, describe
from conductor.core.usage import total as usage_total
from conductor.core.verify import CoordinatorOutcome


class StandInReport(BaseModel):
    """What `conductor run --json` prints for a pass that gave no `PassReport`: skipped
    because another pass holds the repository (exit 0), or broken (exit 1 or 2)."""

    repo: str
    dry_run: bool
    skipped: str | None = Field(None, description="Why nothing was done: another pass holds the lock.")
    error: str | None = Field(None, description="Why the pass broke, and where its details are.")


ITEM_HEADERS = ["Item", "Result", "PR", "Grade", "Merged", "Attempt", "Merge after", "Prompt", "Seconds",
                "Agent cost"]


def item_rows(outcomes: list[CoordinatorOutcome]) -> list[list[str]]:
    """One row per dispatched issue or PR: its proved (or not) result, the prompt its leaf
    followed (path @ blob sha) and how long its leaf took."""
    rows = []
    for outcome in outcomes:
        for r in outcome.results:
            label = (f"issue #{r.number}" if r.kind == "issue" else f"PR #{r.number}") + (
                f" ({r.stage})" if r.stage else "")
            result = "proved" if r.ok else ("blocked: " if r.blocked and not r.reason.startswith("blocked")
                                            else "") + (r.reason or "not proved")
            prompt = f"{r.prompt_path} @ {r.prompt_sha[:12]}" if r.prompt_path and r.prompt_sha else "-"
            took = f"{r.ended_at - r.started_at:.1f}" if r.started_at and r.ended_at else "-"
            rows.append([label, result, f"#{r.pr}" if r.pr else "-", r.grade or "-",
                         "yes" if r.merged else "no", str(r.attempt),
                         f"#{r.merge_after}" if r.merge_after else "-", prompt, took, describe(r.usage)])
    return rows


def approved_gates(plan: Plan, snapshot: Snapshot) -> dict[int, str]:
    """Gated items this pass let through, and who approved each."""
    return {g.number: snapshot.approvals[g.number] for g in plan.gated
            if g.approved and g.number in snapshot.approvals}


class PassReport(BaseModel):
    """The flow's result: the pipeline state table and everything the pass did."""

    repo: str
    dry_run: bool
    attempt: int
    plan: Plan = Field(description="The plan this pass dispatched.")
    plan_after: Plan | None = Field(None, description="The pipeline after the coordinators ran.")
    approvals: dict[int, str] = Field(default_factory=dict)
    closed_reminders: list[int] = Field(default_factory=list)
    released_claims: list[int] = Field(default_factory=list, description="Items whose stale status labels were taken off.")
    not_ours: list[str] = Field(default_factory=list, description="Issues with the conductor's labels "
                                "that it did not write (never closed, never read).")
    refused_approvals: list[str] = Field(default_factory=list, description="Approvals that count for nothing, and why.")
    finished: list[FinishedIssue] = Field(default_factory=list, description="Issues closed as fixed by a merged PR.")
    skipped_claimed: list[int] = Field(default_factory=list, description="Items another pass claimed since the snapshot.")
    orphans: list[OrphanCleanup] = Field(default_factory=list)
    outcomes: list[CoordinatorOutcome] = Field(default_factory=list)
    reminder: ReminderResult | None = None
    api_requests: int = 0
    rate_points: int = Field(0, description="GitHub rate-limit points the pass spent (X-RateLimit-* headers; "
                                            "a 304 to a conditional read costs none).")
    self_destructed: str | None = None

    @property
    def failures(self) -> list[str]:
        return [f"{o.kind} {o.phase} {o.batch or '(no batch)'}: {reason}"
                for o in self.outcomes for reason in o.failures]

    @property
    def final_plan(self) -> Plan:
        return self.plan_after or self.plan

    @property
    def more_work(self) -> bool:
        """Work became ready during this pass that it did not dispatch (`MORE_WORK_EVENT`)."""
        return bool(self.plan_after and self.plan_after.dispatches and not self.dry_run)

    def item_counts(self) -> tuple[int, int]:
        """(proved, failed) over every dispatched item."""
        proved = failed = 0
        for o in self.outcomes:
            if o.results:
                ok = sum(1 for r in o.results if r.ok)
                proved, failed = proved + ok, failed + len(o.items) - ok
            elif o.ok:
                proved += len(o.items)
            else:
                failed += len(o.items)
        return proved, failed

    def summary(self) -> str:
        """What the pass did, then what remains: "dispatched 4 groups (9 items): 7 proved,
        2 failed; 2 gated; reminder #13 updated — 5 open issues, 3 open PRs remain"."""
        plan = self.plan
        if plan.stuck:
            done = f"STUCK: attempt {plan.attempt} > {constants.ANTI_LOOP_LIMIT}, nothing dispatched"
        else:
            groups, items = len(plan.dispatches), sum(len(d.items) for d in plan.dispatches)
            what = f"{groups} group{'s' * (groups != 1)} ({items} item{'s' * (items != 1)})"
            if self.dry_run:
                done = f"DRY RUN: would dispatch {what}"
            elif groups:
                proved, failed = self.item_counts()
                done = f"dispatched {what}: {proved} proved, {failed} failed"
            else:
                done = "dispatched nothing"
        gated = sum(1 for g in self.final_plan.gated if not g.approved)
        parts = [done, f"{gated} gated"]
        if self.reminder and self.reminder.number and self.reminder.action != "none":
            parts.append(f"reminder #{self.reminder.number} {self.reminder.action}")
        elif self.reminder and self.reminder.action.startswith("would-"):
            parts.append(f"reminder {self.reminder.action.replace('-', ' ')}")
        if self.reminder and self.reminder.stuck_issue:
            parts.append(f"stuck issue #{self.reminder.stuck_issue}")
        after = self.final_plan
        remains = ("pipeline idle" if after.idle else
                   f"{after.open_issues} open issues, {after.open_prs} open PRs remain")
        return "; ".join(parts) + " — " + remains

    def why_failed(self, limit: int = 160) -> str:
        """Why this pass exits 1, in one line ("" when it does not): the stuck pipeline,
        then each failed group's items and its first reason (agent text: one line, cut)."""
        parts = []
        if self.plan.stuck:
            issue = self.reminder.stuck_issue if self.reminder else None
            parts.append(f"the pipeline is stuck: attempt {self.plan.attempt} > {constants.ANTI_LOOP_LIMIT}, "
                         "nothing dispatched" + (f", see issue #{issue}" if issue else ""))
        for o in self.outcomes:
            if not o.failures:
                continue
            failed = [r.number for r in o.results if not r.ok and not r.blocked] or o.items
            reason = markdown.one_line(o.failures[0])
            reason = reason if len(reason) <= limit else reason[:limit - 1] + "…"
            more = f" (and {len(o.failures) - 1} more)" if len(o.failures) > 1 else ""
            parts.append(f"{', '.join(f'#{n}' for n in failed)} failed "
                         f"({o.kind} {o.phase} {o.batch or '(no batch)'}): {reason}{more}")
        return "; ".join(parts)

    def table_rows(self) -> list[list[str]]:
        """The pipeline state table: the state after the pass, with what it dispatched."""
        return plan_rows(self.final_plan, self.plan.dispatches, costs=self.costs())

    def costs(self) -> dict[str, str]:
        """Agent cost per phase, and the pass's total under "(pass)" (none when no agent
        reported any)."""
        by_phase: dict[str, list[Usage | None]] = {}
        for o in self.outcomes:
            by_phase.setdefault(o.phase, []).append(o.usage)
        costs = {phase: describe(usage_total(u)) for phase, u in by_phase.items() if usage_total(u)}
        if costs:
            costs["(pass)"] = describe(usage_total(o.usage for o in self.outcomes))
        return costs

    def markdown(self) -> str:
        plan = self.final_plan
        lines = [f"# Conductor pass — {markdown.escape(self.repo)}",
                 "", markdown.escape(self.summary()), "",
                 f"GitHub: {self.api_requests} requests, {self.rate_points} rate-limit points spent.", "",
                 markdown.table(HEADERS, self.table_rows()), ""]
        if plan.waiting:
            lines += ["## Waiting for other items", "", markdown.table(
                ["Item", "Title", "Waits for", "Why"],
                [[f"#{w.number}", w.title, ", ".join([f"#{n}" for n in w.blockers] + w.not_issues) or "-", w.reason]
                 for w in plan.waiting]), ""]
        if plan.held_back:
            lines += ["## Needs a human (failed too often)", "", markdown.table(
                ["Item", "Title", "Failed attempts", "Last reason"],
                [[f"#{h.number}", h.title, str(h.attempts) if h.why == "attempts" else loops.held_line(h),
                  h.last_reason] for h in plan.held_back]), ""]
        if plan.outside_pipeline:
            lines += ["## Outside the pipeline (batch label, no phase label)", "", markdown.table(
                ["Issue", "Title", "Batch", "Dispatched in"],
                [[f"#{o.number}", o.title, o.batch, o.placed_in or "-"] for o in plan.outside_pipeline]), ""]
        if self.outcomes:
            lines += ["## Coordinators", "", markdown.table(
                ["Kind", "Phase", "Batch", "Items", "Result", "Agent cost"],
                [[o.kind, o.phase, o.batch or "-", ", ".join(f"#{n}" for n in o.items),
                  "ok" if o.ok else "; ".join(o.failures), describe(o.usage)] for o in self.outcomes]), ""]
            spent = usage_total(o.usage for o in self.outcomes)
            if spent is not None:
                lines += [f"Agents this pass: {markdown.escape(describe(spent))}", ""]
        items = [r for o in self.outcomes for r in o.results]
        if items:
            lines += ["## Items", "", markdown.table(ITEM_HEADERS, item_rows(self.outcomes)), ""]
        if self.approvals:
            lines += ["## Approved gated items", "",
                      *[f"- #{n}: approved by {markdown.code(who)}" for n, who in sorted(self.approvals.items())], ""]
        if self.finished:
            lines += ["## Closed: fixed by a merged PR", "",
                      *[f"- #{f.issue}: Fixed by PR #{f.pr}." for f in self.finished], ""]
        notes = [*self.not_ours, *self.refused_approvals,
                 *[f"#{n} was claimed by another pass since the snapshot: skipped" for n in self.skipped_claimed]]
        if notes:
            lines += ["## Not trusted", "", *[f"- {markdown.escape(line)}" for line in notes], ""]
        if self.reminder and self.reminder.error:
            lines.append(f"Reminder not written: {markdown.escape(self.reminder.error)}")
        if self.reminder and self.reminder.number:
            lines.append(f"Reminder: #{self.reminder.number} ({self.reminder.action})")
        if self.reminder and self.reminder.stuck_issue:
            lines.append(f"Stuck issue: #{self.reminder.stuck_issue}")
        if plan.idle:
            lines.append(markdown.escape(constants.IDLE_MESSAGE.splitlines()[0]))
        return "\n".join(lines) + "\n"

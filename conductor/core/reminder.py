"""The reminder and stuck issues (seed steps 0 and 7): render a body, parse it back.

Renovate-dashboard style: the body is for humans, and ends with a hidden marker holding
the anti-loop state (attempt counter and pipeline fingerprint) for the next run. Every
untrusted string goes through `markdown.escape`, so `<!--` never appears in text we did
not write and the marker cannot be forged by an issue title or an agent message.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conductor.core import loops, markdown, spend
from conductor.core.constants import (
    APPROVAL_LABEL,
    REMINDER_LABEL,
    REMINDER_MARKER,
    STATUS_IN_PROGRESS,
    STATUS_PR_OPEN,
    STUCK_CAUSES,
    STUCK_LABEL,
    STUCK_MARKER,
)
from conductor.core.errors import ConductorError
from conductor.core.models import PipelineState, Plan
from conductor.core.untrusted import json_object
from conductor.core.verify import CoordinatorFailure, FailedPR

HEADING = "## Pipeline Status — "
REASON_LIMIT = 500  # characters of a failure reason shown in the reminder

_MARKER = re.compile(r"<!--\s*+" + re.escape(REMINDER_MARKER) + r"\s++(\{[^<>]*?\})\s*+-->")
_STUCK = re.compile(r"<!--\s*+" + re.escape(STUCK_MARKER) + r"\s*+-->")
_HEADING_LINE = re.compile(r"^" + re.escape(HEADING) + r".*$", re.MULTILINE)
_GENERATED_AT = re.compile(r'("generated_at"\s*+:\s*+)"[^"]*+"')


class ReminderState(BaseModel):
    """The anti-loop state carried from one conductor run to the next."""

    model_config = ConfigDict(extra="ignore")

    attempt: int = Field(ge=0)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{1,64}$")
    generated_at: datetime
    unavailable_passes: int = Field(
        0, ge=0, description="Passes in a row, up to this one, in which items failed while GitHub was failing.")

    @field_validator("generated_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Progress(BaseModel):
    """This pass's fingerprint of the pipeline and its ATTEMPT_N."""

    fingerprint: str
    attempt: int = Field(ge=0)


def fingerprint(
    state: PipelineState,
    *,
    ignore_labels: Iterable[str] = (REMINDER_LABEL, STUCK_LABEL),
    status_labels: Iterable[str] = (STATUS_IN_PROGRESS, STATUS_PR_OPEN),
) -> str:
    """A stable hash (16 hex chars) of what counts as pipeline progress.

    Counted: the open issue numbers with their labels, the open PR numbers with their
    labels and draft flag. So a new PR, a merged or closed one, a closed issue, a label a
    human added (an approval, a fixed phase label) or a PR leaving draft is progress.
    Not counted: items carrying an `ignore_labels` label (the conductor's own reminder and
    stuck issues, which change every run) and the `status_labels` (the conductor's own
    bookkeeping): a pass that only marks items in progress and produces nothing is no
    progress. Titles and bodies are ignored. Independent of the order of items and labels.
    """
    ignored = set(ignore_labels)
    status = set(status_labels)

    def labels(names: list[str]) -> list[str]:
        return sorted(set(names) - status)

    canonical = {
        "issues": sorted(
            [i.number, labels(i.labels)] for i in state.issues if ignored.isdisjoint(i.labels)
        ),
        "prs": sorted(
            [p.number, labels(p.labels), p.draft]
            for p in state.pull_requests
            if ignored.isdisjoint(p.labels)
        ),
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def progress(state: PipelineState, previous: ReminderState | None, *, ignore_labels: Iterable[str],
             status_labels: Iterable[str], override: int | None = None, waiting: bool = False) -> Progress:
    """This pass's fingerprint and ATTEMPT_N (+1 when the pipeline is where the last pass left it
    and there is work to dispatch; `waiting`: nothing is, so the count holds)."""
    fp = fingerprint(state, ignore_labels=ignore_labels, status_labels=status_labels)
    return Progress(fingerprint=fp, attempt=next_attempt(previous, fp, override, waiting=waiting))


def next_attempt(
    previous: ReminderState | None, current_fingerprint: str, override: int | None = None, *,
    waiting: bool = False,
) -> int:
    """ATTEMPT_N for this run: the override, else +1 when nothing progressed, else 0. A pipeline
    `waiting` (nothing dispatchable: every item gated, held or waiting for another) is no loop:
    where it was, its count holds, so a pass over it writes nothing."""
    if override is not None:
        if override < 0:
            raise ConductorError(
                f"attempt override must be 0 or more, got {override}; pass 0 or leave it unset"
            )
        return override
    if previous is None or previous.fingerprint != current_fingerprint:
        return 0
    return previous.attempt if waiting else previous.attempt + 1


def reminder_title(now: datetime) -> str:
    return f"⏰ Conductor reminder — pipeline incomplete ({_utc(now):%Y-%m-%d})"


def stuck_title(attempt: int) -> str:
    return f"⚠️ Conductor stuck: ATTEMPT_N={attempt} — needs human intervention"


def render_reminder(
    plan: Plan,
    *,
    attempt: int,
    fingerprint: str,
    now: datetime,
    failures: Iterable[CoordinatorFailure] = (),
    failed_prs: Iterable[FailedPR] = (),
    unavailable: Iterable[tuple[int, str]] = (),
    unavailable_passes: int = 0,
    rerun_hint: str,
    approval_label: str = APPROVAL_LABEL,
    approvals: Mapping[int, str] | None = None,
) -> str:
    """The reminder issue body (seed step 7) ending with the state marker.

    `approvals` (item number -> login) are the verified approvals of gated items: the
    reminder says who approved what. `unavailable` (item, evidence): items not proved while
    GitHub was failing, retried by the next pass with no attempt charged;
    `unavailable_passes`: how many passes in a row that happened (kept in the marker,
    `unavailable_streak`), reported as GitHub's outage, never as the items' fault.

    `rerun_hint` is the command that re-runs the conductor (for example
    `prefect deployment run 'conductor/default'`); it is shown verbatim in a code span.
    """
    now = _utc(now)
    state = ReminderState(attempt=attempt, fingerprint=fingerprint, generated_at=now)
    unavailable = list(unavailable)
    outage_note = (f"GitHub was unavailable in {unavailable_passes} pass{'es' if unavailable_passes > 1 else ''} in a row: the items "
                   "below failed on GitHub's 5xx/429 answers, not by their own fault; each pass retries them."
                   if unavailable_passes else "")
    marker = json.dumps(
        {
            "attempt": state.attempt,
            "fingerprint": state.fingerprint,
            "generated_at": now.replace(microsecond=0).isoformat(),
            **({"unavailable_passes": unavailable_passes} if unavailable_passes else {}),
        }
    )
    sections = [
        f"{HEADING}{now:%Y-%m-%d %H:%M} UTC\n\n"
        f"**Open issues:** {plan.open_issues}\n"
        f"**Open PRs:** {plan.open_prs}\n"
        f"**Conductor run:** attempt {attempt}",
        f"### What to do next\nRe-run the conductor: {markdown.code(rerun_hint)}",
        _section("### Open issues by phase", _phase_lines(plan)),
        _gated_section(plan, approval_label),
        _approved_section(plan, approvals or {}),
        *_held_sections(plan),
        _section(
            "### Failed PRs (D/F grade — not merged, needs human review)",
            [_failed_pr_line(pr) for pr in failed_prs],
        ),
        _section("### Failed coordinators", [_failure_line(f) for f in failures]),
        _section("### GitHub unavailable (retried next pass, no attempt charged)",
                 ([outage_note, ""] if outage_note else [])
                 + [f"- #{n}: {markdown.escape(why, max_length=REASON_LIMIT)}" for n, why in unavailable]),
        _problems_section(plan),
        _section("### Spend (agents, as recorded on GitHub)", [
            f"- {markdown.escape(scope)}: {markdown.escape(spend.spent_text(lines))}"
            for scope, lines in spend.by_scope(plan.budgets).items()]),
        f"<!-- {REMINDER_MARKER} {marker} -->",
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def unavailable_streak(previous: ReminderState | None, unavailable_now: bool) -> int:
    """Passes in a row in which items failed while GitHub was failing, this one included."""
    return (previous.unavailable_passes if previous else 0) + 1 if unavailable_now else 0


def parse_reminder(body: str | None) -> ReminderState | None:
    """The state in the last reminder marker of `body`; None if absent or unreadable."""
    if not body:
        return None
    matches = list(_MARKER.finditer(body))
    if not matches:
        return None
    data = json_object(matches[-1].group(1))
    if data is None:
        return None
    try:
        return ReminderState.model_validate(data)
    except (ValueError, TypeError, ValidationError):
        return None


def body_changed(old: str | None, new: str) -> bool:
    """Whether `new` differs from `old` other than by its generation time."""
    return old is None or _normalise(old) != _normalise(new)


def render_stuck(
    attempt: int,
    repo: str,
    plan: Plan,
    *,
    reminder_label: str = REMINDER_LABEL,
    approval_label: str = APPROVAL_LABEL,
) -> str:
    """The stuck issue body (seed step 0 anti-loop guard), found again by its marker."""
    command = shlex.join(["gh", "issue", "list", "--repo", repo, "--label", reminder_label,
                          "--state", "open"])
    sections = [
        f"The pipeline conductor has run {attempt} times without advancing.\n\n"
        "Possible causes:\n" + "\n".join(f"- {cause}" for cause in STUCK_CAUSES),
        f"Open reminders: {markdown.code(command)}",
        _section("### Open issues by phase", _phase_lines(plan)),
        _gated_section(plan, approval_label),
        *_held_sections(plan),
        _problems_section(plan),
        "### What to do next\nFix the cause, then close this issue. The attempt counter "
        "restarts as soon as the pipeline state changes (an issue or PR opened, closed, "
        "relabelled) or when the conductor is run with the attempt reset to 0.",
        f"<!-- {STUCK_MARKER} -->",
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def is_stuck_issue(body: str | None) -> bool:
    return bool(body) and _STUCK.search(body) is not None


def _phase_lines(plan: Plan) -> list[str]:
    return [
        f"- {markdown.escape(p.name)}: {_count(p.open_issues, 'open issue')}, "
        f"{_count(p.open_prs, 'open PR')}"
        for p in plan.phases
        if p.open_issues or p.open_prs
    ]


def _gated_section(plan: Plan, approval_label: str) -> str:
    lines = [
        f"- {'Issue' if g.kind == 'issue' else 'PR'} #{g.number}: "
        f"{markdown.escape(g.title) or '(no title)'} — {markdown.escape(g.reason)}"
        for g in plan.gated
        if not g.approved
    ]
    if not lines:
        return ""
    hint = (
        f"To approve an item, a maintainer (write, maintain or admin permission) adds the "
        f"label {markdown.code(approval_label)} to it, then re-runs the conductor."
    )
    return _section(
        "### Gated items (require human sign-off before conductor can proceed)",
        [hint, ""] + lines,
    )


def _approved_section(plan: Plan, approvals: Mapping[int, str]) -> str:
    kinds = {g.number: g.kind for g in plan.gated}
    lines = [
        f"- {'PR' if kinds.get(number) == 'pr' else 'Issue'} #{number}: approved by "
        f"{markdown.code(login)}"
        for number, login in sorted(approvals.items())
    ]
    return _section("### Approved gated items", lines)


def _held_sections(plan: Plan) -> list[str]:
    """Items the pass left alone for a reason other than a gate: waiting for other items,
    failed too often, or outside the pipeline."""
    def item(kind: str, number: int, title: str) -> str:
        return f"- {'Issue' if kind == 'issue' else 'PR'} #{number}: {markdown.escape(title) or '(no title)'}"

    waiting = [f"{item(w.kind, w.number, w.title)} — {markdown.escape(w.reason, max_length=REASON_LIMIT)}"
               for w in plan.waiting if not w.budget]
    over = [f"{item(w.kind, w.number, w.title)} — {markdown.escape(w.reason, max_length=REASON_LIMIT)}"
            for w in plan.waiting if w.budget]
    over_hint = ("A budget reached is not stuck: these wait until the budget is raised (its key under "
                 "`[budget]` in conductor.toml), or, for `day_*`, until the next UTC day.")
    held = [f"{item(h.kind, h.number, h.title)} — needs a human: "
            + (f"failed {h.attempts} times" if h.why == "attempts" else markdown.escape(loops.held_line(h)))
            + f" (last reason: {markdown.escape(h.last_reason or 'none recorded', max_length=REASON_LIMIT)})"
            for h in plan.held_back]
    outside = [f"{item('issue', o.number, o.title)} — {markdown.escape(o.batch)}"
               + (f", dispatched in {markdown.escape(o.placed_in)}" if o.placed_in else "")
               for o in plan.outside_pipeline]
    hint = ("The conductor's comments on these items say why each attempt failed; delete them "
            "to let the conductor try again.")
    return [
        _section("### Waiting for other items (dependencies, merge order)", waiting),
        _section("### Waiting for a budget", [over_hint, ""] + over if over else []),
        _section("### Needs a human (failed too often)", [hint, ""] + held if held else []),
        _section("### Outside the pipeline (batch label, no phase label)", outside),
    ]


def _problems_section(plan: Plan) -> str:
    lines = []
    for problem in plan.problems:
        where = f"#{problem.number}: " if problem.number else ""
        lines.append(f"- {where}{markdown.escape(problem.message, max_length=REASON_LIMIT)}")
    return _section("### Problems found while planning", lines)


def _failed_pr_line(pr: FailedPR) -> str:
    parts = [markdown.escape(pr.title), markdown.escape(pr.reason, max_length=REASON_LIMIT)]
    details = " — ".join(part for part in parts if part)
    return f"- PR #{pr.number} (grade {pr.grade})" + (f": {details}" if details else "")


def _failure_line(failure: CoordinatorFailure) -> str:
    where = ", ".join(
        markdown.escape(part) for part in (failure.kind, failure.phase, failure.batch) if part
    )
    return f"- {where}: {markdown.escape(failure.reason, max_length=REASON_LIMIT)}"


def _section(heading: str, lines: list[str]) -> str:
    return f"{heading}\n" + "\n".join(lines) if lines else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC)


def _normalise(body: str) -> str:
    body = body.replace("\r\n", "\n").strip()
    body = _HEADING_LINE.sub(HEADING.rstrip(), body)
    return _MARKER.sub(lambda m: _GENERATED_AT.sub(r'\1""', m.group(0)), body)

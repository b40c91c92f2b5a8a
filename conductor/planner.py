"""`plan`: from a snapshot of open issues and PRs, decide what to dispatch. Pure.

The rules (each has a test in tests/test_planner.py):

- An item's phase is its one label equal to a configured phase. An item with two
  phase labels, or with a `phase-` label that is not configured, is a problem: it is
  never dispatched, but it counts as open in every configured phase it names (so
  those phases stay incomplete) and it keeps the pipeline from being idle.
- A PR without a phase label takes the phase of the open issues its body closes
  (`linking.linked_issues`) if they agree, else it is a problem. Its batch: its own
  `batch-NN` label, else that of its linked issues in the same phase if they agree,
  else none. An item with several batch labels is reported and grouped under the lowest.
- A phase is complete when it has no open issue and no open PR; active when it has
  some and every phase it depends on, transitively, is complete; else waiting.
- `phase_filter` (the task file's PHASE_FILTER) restricts dispatch to that phase and never overrides dependencies. An
  unknown PHASE_FILTER is a problem and nothing is dispatched (a typo must not widen
  the scope of a run).
- Ready issue: in an active phase, without the in-progress label, not closed by any
  open PR (drafts included). Ready PR: not a draft, in an active phase, without the
  pr-open label. PRs in no phase are outside the pipeline.
- Gates (reasons joined with "; "): a gate label (on the item, or for a PR on an issue
  it closes), a gated phase, a protected path changed, a head in a fork. Only items that
  are otherwise ready are listed in `gated` (an in-progress or waiting item is not);
  an approved one is listed with approved=True and dispatched.
- Caps: lowest batch number first, then lowest item number, items without a batch
  last; the rest go to `deferred`. `attempt` (ATTEMPT_N) > ANTI_LOOP_LIMIT: stuck, nothing is
  dispatched, everything else is still computed for the report.
- One dispatch per (kind, phase, batch), ordered by kind, phase order, batch number.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from conductor.config import PipelineConfig
from conductor.constants import ANTI_LOOP_LIMIT
from conductor.linking import linked_issues
from conductor.models import (
    Dispatch,
    DispatchKind,
    GatedItem,
    Issue,
    ItemKind,
    PhaseStatus,
    PipelineState,
    Plan,
    Problem,
    PullRequest,
)
from conductor.models import PlanRules

__all__ = ["PlanRules", "plan", "prs_needing_files"]


@dataclass
class _Item:
    """An open issue or PR with what the planner derived from it."""

    kind: ItemKind
    src: Issue | PullRequest
    phases: list[str]
    batch: str | None
    blocked: bool  # a problem keeps it from being dispatched
    links: list[int] = field(default_factory=list)  # PRs: open issues it closes

    @property
    def number(self) -> int:
        return self.src.number


@dataclass
class _Analysis:
    """Everything the planner knows before looking at changed files."""

    items: list[_Item]
    problems: list[Problem]
    phases: list[PhaseStatus]
    dispatchable_phases: set[str]
    linked: set[int]  # issue numbers closed by some open PR
    issue_by_number: dict[int, Issue]
    order: list[str]
    unknown_phase_items: bool


def _batch_rank(config: PipelineConfig, batch: str | None) -> float:
    """Sort key of a batch: its number; no batch sorts last."""
    number = config.batch_number(batch) if batch else None
    return math.inf if number is None else number


def _agreed(values: Sequence[str | None]) -> str | None:
    distinct = {v for v in values if v is not None}
    return distinct.pop() if len(distinct) == 1 else None


def _read_labels(
    kind: str, number: int, labels: list[str], config: PipelineConfig
) -> tuple[list[str], str | None, list[Problem]]:
    """Phases, batch and label problems of one item."""
    phases = config.phase_of(labels)
    batches = config.batch_labels(labels)
    unknown = config.unknown_phase_labels(labels)
    problems = []
    if len(phases) > 1:
        problems.append(f"{kind} #{number} has several phase labels ({', '.join(phases)}); "
                        "keep exactly one")
    if unknown:
        problems.append(f"{kind} #{number} has label(s) {', '.join(unknown)} that are not "
                        "configured phases; fix the label or add the phase to conductor.toml")
    if len(batches) > 1:
        problems.append(f"{kind} #{number} has several batch labels ({', '.join(batches)}); "
                        f"grouped under {batches[0]}, keep exactly one")
    return phases, (batches[0] if batches else None), [Problem(number=number, message=m) for m in problems]


def _items(state: PipelineState, config: PipelineConfig, order: list[str]) -> tuple[list[_Item], list[Problem]]:
    """Every open issue and PR with its phases, batch and links; PRs inherit from linked issues."""
    problems: list[Problem] = []
    pr_numbers = {pr.number for pr in state.pull_requests}
    items: list[_Item] = []
    for issue in state.issues:
        if issue.number in pr_numbers:
            continue
        phases, batch, found = _read_labels("issue", issue.number, issue.labels, config)
        problems += found
        blocked = len(phases) > 1 or bool(config.unknown_phase_labels(issue.labels))
        items.append(_Item("issue", issue, phases, batch, blocked))

    issue_items = {it.number: it for it in items}
    for pr in state.pull_requests:
        links = [n for n in linked_issues(pr.body, state.repo) if n in issue_items]
        phases, batch, found = _read_labels("PR", pr.number, pr.labels, config)
        problems += found
        unknown = bool(config.unknown_phase_labels(pr.labels))
        blocked = len(phases) > 1 or unknown
        if not phases and not unknown:
            phases = [p for p in order if any(p in issue_items[n].phases for n in links)]
            if len(phases) > 1:
                problems.append(Problem(number=pr.number, message=(
                    f"PR #{pr.number} has no phase label and closes issues in several phases "
                    f"({', '.join(phases)}); label the PR with one phase")))
                blocked = True
        if batch is None:  # from linked issues of the same phase, if they agree
            batch = _agreed([issue_items[n].batch for n in links if issue_items[n].phases == phases])
        items.append(_Item("pr", pr, phases, batch, blocked, links))
    return items, problems


def _phase_statuses(items: list[_Item], config: PipelineConfig, order: list[str]) -> list[PhaseStatus]:
    counts = {name: [0, 0] for name in order}
    for it in items:
        for p in it.phases:
            counts[p][0 if it.kind == "issue" else 1] += 1
    complete = {p for p, (issues, prs) in counts.items() if issues == 0 and prs == 0}
    statuses: list[PhaseStatus] = []
    for name in order:
        deps = config.dependencies_closure(name)
        waiting_on = [] if name in complete else [p for p in order if p in deps and p not in complete]
        statuses.append(PhaseStatus(
            name=name, open_issues=counts[name][0], open_prs=counts[name][1],
            state="complete" if name in complete else "waiting" if waiting_on else "active",
            waiting_on=waiting_on))
    return statuses


def _analyse(state: PipelineState, config: PipelineConfig, rules: PlanRules) -> _Analysis:
    order = config.topological_order()
    items, problems = _items(state, config, order)
    statuses = _phase_statuses(items, config, order)
    dispatchable = {s.name for s in statuses if s.state == "active"}
    if rules.phase_filter:
        if rules.phase_filter not in order:
            problems.append(Problem(message=(
                f"PHASE_FILTER={rules.phase_filter} is not a configured phase; nothing dispatched. "
                f"Use one of: {', '.join(order)}, or leave it empty")))
            dispatchable = set()
        else:
            dispatchable &= {rules.phase_filter}
    return _Analysis(
        items=items,
        problems=problems,
        phases=statuses,
        dispatchable_phases=dispatchable,
        linked={n for it in items for n in it.links},
        issue_by_number={it.number: it.src for it in items if isinstance(it.src, Issue)},
        order=order,
        unknown_phase_items=any(config.unknown_phase_labels(it.src.labels) for it in items),
    )


def _candidate(it: _Item, a: _Analysis, config: PipelineConfig) -> bool:
    """Ready but for the gates (changed files are not needed to decide this)."""
    if it.blocked or len(it.phases) != 1 or it.phases[0] not in a.dispatchable_phases:
        return False
    if isinstance(it.src, PullRequest):
        return not it.src.draft and config.status_pr_open not in it.src.labels
    return config.status_in_progress not in it.src.labels and it.number not in a.linked


def _gate_reasons(it: _Item, a: _Analysis, config: PipelineConfig) -> list[str]:
    reasons = [f"label {lb}" for lb in config.gate_labels if lb in it.src.labels]
    if it.kind == "pr":
        for n in it.links:
            reasons += [f"label {lb} (from issue #{n})" for lb in config.gate_labels
                        if lb in a.issue_by_number[n].labels and lb not in it.src.labels]
    if it.phases[0] in config.gated_phases:
        reasons.append(f"phase {it.phases[0]} is gated")
    if isinstance(it.src, PullRequest):
        protected = config.protected_matches(it.src.files)
        if protected:
            s = "s" if len(protected) > 1 else ""
            reasons.append(f"changes protected path{s} {', '.join(protected)}")
        if it.src.fork and config.gate_forks:
            reasons.append("head is in a fork")
    return reasons


def prs_needing_files(state: PipelineState, rules: PlanRules) -> list[int]:
    """PRs that could be dispatched, whose changed files decide the protected-path gate.

    Empty when no protected paths are configured (the files would not change the plan).
    """
    config = rules.config
    if not config.protected_paths:
        return []
    a = _analyse(state, config, rules)
    return sorted(it.number for it in a.items if it.kind == "pr" and _candidate(it, a, config))


def plan(state: PipelineState, rules: PlanRules) -> Plan:
    """The decision record of one conductor pass: the only entry to the planner."""
    config = rules.config
    a = _analyse(state, config, rules)
    stuck = rules.attempt > ANTI_LOOP_LIMIT
    approved = set(state.approved)
    gated: list[GatedItem] = []
    ready: dict[ItemKind, list[_Item]] = {"issue": [], "pr": []}
    for it in a.items:
        if not _candidate(it, a, config):
            continue
        reasons = _gate_reasons(it, a, config)
        if reasons:
            ok = it.number in approved
            gated.append(GatedItem(number=it.number, kind=it.kind, title=it.src.title,
                                   reason="; ".join(reasons), approved=ok))
            if not ok:
                continue
        ready[it.kind].append(it)

    def priority(it: _Item) -> tuple[float, int]:
        return (_batch_rank(config, it.batch), it.number)

    chosen: list[_Item] = []
    deferred: list[int] = []
    caps = {"issue": rules.max_issues_per_dispatch, "pr": rules.max_prs_per_dispatch}
    if not stuck:
        for kind in ("issue", "pr"):
            queue = sorted(ready[kind], key=priority)
            chosen += queue[: caps[kind]]
            deferred += [it.number for it in queue[caps[kind]:]]

    kinds: dict[ItemKind, DispatchKind] = {"issue": "issue_to_pr", "pr": "pr_review"}
    groups: dict[tuple[DispatchKind, str, str | None], list[int]] = {}
    for it in chosen:
        groups.setdefault((kinds[it.kind], it.phases[0], it.batch), []).append(it.number)
    phase_rank = {p: i for i, p in enumerate(a.order)}

    def group_order(key: tuple[DispatchKind, str, str | None]) -> tuple[str, int, float, str]:
        kind, phase, batch = key
        return (kind, phase_rank[phase], _batch_rank(config, batch), batch or "")

    dispatches = [Dispatch(kind=k[0], phase=k[1], batch=k[2], items=sorted(groups[k]))
                  for k in sorted(groups, key=group_order)]

    in_pipeline = [it for it in a.items if it.phases]
    return Plan(
        repo=state.repo,
        active_phases=[s.name for s in a.phases if s.state == "active"],
        dispatches=dispatches,
        gated=sorted(gated, key=lambda g: g.number),
        problems=sorted(a.problems, key=lambda p: (p.number or 0, p.message)),
        phases=a.phases,
        idle=not in_pipeline and not a.unknown_phase_items,
        stuck=stuck,
        attempt=rules.attempt,
        open_issues=sum(1 for it in in_pipeline if it.kind == "issue"),
        open_prs=sum(1 for it in in_pipeline if it.kind == "pr"),
        deferred=deferred,
        api_requests=state.api_requests,
    )

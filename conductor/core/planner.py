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
- Issues with a batch label and no phase label (regression issues) are listed in
  `outside_pipeline`. `unphased_batch_issues = "report"`: nothing more (they do not keep
  the pipeline from being idle). `"lowest-active-phase"`: they join the first active phase
  in dependency order (computed without them), and PRs closing them inherit it; with no
  active phase they are only reported.
- Dependencies (`conductor/core/dependencies.py`): an otherwise ready issue waits, listed in
  `waiting` with its blockers, while its body names (`Depends on`, `Blocked by`,
  `Requires`) an open issue of this repository, or while GitHub's native
  `issue_dependencies_summary.blocked_by` is above 0. It is held the same way, with the
  reason (`WaitingItem.not_issues`), while it names what is no issue it can wait for: a
  number with nothing under it ("depends on #9999, which does not exist"), a pull request,
  or another repository's issue (also a problem: never followed). What GitHub has under a
  number that is not an open item comes from `state.named`; a number not there counts as a
  closed issue (`dependencies_needing_lookup` names those to look up). A cycle among open
  issues is a problem naming its members (they all keep waiting; nothing loops). A
  dispatched issue's named numbers (all closed issues by then) go to `Dispatch.depends_on`
  (DEPENDS_ON).
- Gates (reasons joined with "; "): a gate label (on the item, or for a PR on an issue
  it closes), a gated phase, a protected path changed, a head in a fork. Only items that
  are otherwise ready are listed in `gated` (an in-progress or waiting item is not);
  an approved one is listed with approved=True and dispatched.
- Per-item attempts (`state.attempts`, read back from the conductor's own attempt markers
  on GitHub): an item dispatched `item_attempt_limit` (3) times without a proved result is
  held back (`held_back`, with the last reason): it needs a human. Otherwise its count
  goes to `Dispatch.attempts` (ATTEMPT_N, 0 for a first try).
- Review loops (`conductor/core/loops.py`): a ready PR whose last pipeline review graded its
  current head C (unfixed), D or F goes to a `rework` leaf, unless it was graded down
  `item_attempt_limit` times: then it is held back with its last grade. A ready PR whose
  `mergeable_state` is `dirty` goes to a `rebase` leaf (read, one request each, for the PRs the
  plan would review: `prs_needing_mergeable`), unless its last rebase could not resolve its
  conflicts at its current head: then it is held back with the conflicting paths. A PR's
  dispatch carries its head (`Dispatch.heads`) and its last review (`Dispatch.reviews`).
- Caps: lowest batch number first, then lowest item number, items without a batch
  last; the rest go to `deferred`. `attempt` (ATTEMPT_N) > ANTI_LOOP_LIMIT: stuck, nothing is
  dispatched, everything else is still computed for the report.
- Budgets (`[budget]`, `conductor/core/spend.py`): of the items chosen after the caps, in
  order (a PR after the one it merges after), only those whose estimate fits what every budget
  that applies (pipeline, phase, item, UTC day of `state.read_at`; USD and tokens) has left
  after `state.spend` and the estimates admitted before them are dispatched, each with its cap
  (`Dispatch.caps`: its estimate plus an even share of what is left); the others wait
  (`waiting`, "budget: ..."), and so do PRs chained after one of them, reserving nothing. A
  budget that holds everything ready is not stuck. `Plan.budgets`: the spend so far per scope
  against its budget.
- Kinds (`conductor.core.workflows`): a ready item goes to the first registered kind of its item
  (issue or PR) whose `takes` accepts it, else to its item's default kind (every issue is
  turned into a PR, every PR reviewed). One dispatch per (kind, phase, batch), ordered by
  kind, phase order, batch number.
- Merge order, among the PRs chosen for review (after the human gates and the caps):
  a PR whose body says `Merge after #N` / `Depends on PR #N` (N an open PR), or that
  changes a file an earlier chosen PR also changes (dispatch order), is chained after it
  (`Dispatch.merge_after`, MERGE_AFTER: its review starts when that one's has ended);
  independent PRs stay parallel. Overlapping PRs form one line, each after the one before.
  A chain never crosses dispatch groups: a PR that would follow a PR of another group this
  pass (two batches touching one file, or a stated order across phases) waits for a later
  pass, listed in `waiting`; so does a PR naming an open PR not reviewed in this pass, and
  every PR of a stated-order cycle (also a problem). A waiting PR frees its cap slot for
  the next PR in line.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from conductor.core import loops, presets, spend, workflows
from conductor.core.config import PipelineConfig
from conductor.core.settings import Settings
from conductor.core.constants import ANTI_LOOP_LIMIT
from conductor.core.dependencies import ChainedPR, References, find_cycles, issue_dependencies, \
    merge_after_references, merge_chains
from conductor.core.leaf import ownership
from conductor.core.linking import linked_issues
from conductor.core.models import (
    Dispatch,
    DispatchKind,
    GatedItem,
    HeldItem,
    Issue,
    ItemKind,
    OutsideItem,
    PhaseStatus,
    PipelineState,
    Plan,
    Problem,
    PullRequest,
    WaitingItem,
)

__all__ = ["dependencies_needing_lookup", "items_needing_attempts", "plan", "prs_needing_files",
           "prs_needing_mergeable"]


@dataclass
class _Item:
    """An open issue or PR with what the planner derived from it."""

    kind: ItemKind
    src: Issue | PullRequest
    phases: list[str]
    batch: str | None
    blocked: bool  # a problem keeps it from being dispatched
    links: list[int] = field(default_factory=list)  # PRs: open issues it closes
    unphased: bool = False  # an issue with a batch label and no phase label

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
    outside: list[OutsideItem] = field(default_factory=list)


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


def _items(state: PipelineState, config: PipelineConfig, order: list[str],
           place_unphased: str | None = None) -> tuple[list[_Item], list[Problem]]:
    """Every open issue and PR with its phases, batch and links; PRs inherit from linked
    issues. `place_unphased`: the phase unphased batch issues join."""
    problems: list[Problem] = []
    pr_numbers = {pr.number for pr in state.pull_requests}
    items: list[_Item] = []
    for issue in state.issues:
        if issue.number in pr_numbers:
            continue
        phases, batch, found = _read_labels("issue", issue.number, issue.labels, config)
        problems += found
        unknown = bool(config.unknown_phase_labels(issue.labels))
        unphased = not phases and not unknown and batch is not None
        if unphased and place_unphased:
            phases = [place_unphased]
        items.append(_Item("issue", issue, phases, batch, len(phases) > 1 or unknown, unphased=unphased))

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


def _analyse(state: PipelineState, config: PipelineConfig, phase_filter: str) -> _Analysis:
    order = config.topological_order()
    items, problems = _items(state, config, order)
    statuses = _phase_statuses(items, config, order)
    placed = None
    unphased = [it for it in items if it.unphased]
    if unphased and config.unphased_batch_issues == "lowest-active-phase":
        placed = next((s.name for s in statuses if s.state == "active"), None)
        if placed:
            items, problems = _items(state, config, order, place_unphased=placed)
            statuses = _phase_statuses(items, config, order)
    outside = [OutsideItem(number=it.number, title=it.src.title, batch=it.batch or "", placed_in=placed)
               for it in unphased]
    dispatchable = {s.name for s in statuses if s.state == "active"}
    if phase_filter:
        if phase_filter not in order:
            problems.append(Problem(message=(
                f"PHASE_FILTER={phase_filter} is not a configured phase; nothing dispatched. "
                f"Use one of: {', '.join(order)}, or leave it empty")))
            dispatchable = set()
        else:
            dispatchable &= {phase_filter}
    return _Analysis(
        items=items,
        problems=problems,
        phases=statuses,
        dispatchable_phases=dispatchable,
        linked={n for it in items for n in it.links},
        issue_by_number={it.number: it.src for it in items if isinstance(it.src, Issue)},
        order=order,
        unknown_phase_items=any(config.unknown_phase_labels(it.src.labels) for it in items),
        outside=outside,
    )


def _candidate(it: _Item, a: _Analysis, config: PipelineConfig) -> bool:
    """Ready but for the gates (changed files are not needed to decide this)."""
    if it.blocked or len(it.phases) != 1 or it.phases[0] not in a.dispatchable_phases:
        return False
    if isinstance(it.src, PullRequest):
        return not it.src.draft and config.status_pr_open not in it.src.labels
    return config.status_in_progress not in it.src.labels and it.number not in a.linked


def _gate_reasons(it: _Item, a: _Analysis, config: PipelineConfig, files: bool = True) -> list[str]:
    reasons = [f"label {lb}" for lb in config.gate_labels if lb in it.src.labels]
    if it.kind == "pr":
        for n in it.links:
            reasons += [f"label {lb} (from issue #{n})" for lb in config.gate_labels
                        if lb in a.issue_by_number[n].labels and lb not in it.src.labels]
    if it.phases[0] in config.gated_phases:
        reasons.append(f"phase {it.phases[0]} is gated")
    if isinstance(it.src, PullRequest):
        protected = config.protected_matches(it.src.files) if files else []
        if protected:
            s = "s" if len(protected) > 1 else ""
            reasons.append(f"changes protected path{s} {', '.join(protected)}")
        if it.src.fork and config.gate_forks:
            reasons.append("head is in a fork")
    return reasons


def prs_needing_files(state: PipelineState, settings: Settings) -> list[int]:
    """PRs that could be dispatched, whose changed files decide the protected-path gate and
    the merge order (file overlap). The one place that decides which PRs' files are read:
    in an active (or the filtered) phase, not drafts, not claimed, and not already gated by
    a label, a gated phase or a fork, unless they carry the approval label (an approved one
    is dispatched, and its files decide its merge order).

    Empty when the files would not change the plan: no protected paths configured and at
    most one such PR (nothing to overlap with).
    """
    config = settings.pipeline
    a = _analyse(state, config, settings.run.phase_filter)
    numbers = sorted(it.number for it in a.items
                     if it.kind == "pr" and _candidate(it, a, config)
                     and (config.approval_label in it.src.labels or not _gate_reasons(it, a, config, files=False)))
    return numbers if config.protected_paths or len(numbers) > 1 else []


def items_needing_attempts(state: PipelineState, settings: Settings) -> list[int]:
    """Items the plan would dispatch whose attempts are not read yet (`state.attempts`).

    The reader calls it again after each read: an item held back frees a place that the
    next item in line takes, and that one's attempts are read in turn."""
    p = plan(state, settings)
    return sorted(n for d in p.dispatches for n in d.items if n not in state.attempts)


def prs_needing_mergeable(state: PipelineState, settings: Settings) -> list[int]:
    """PRs the plan would review whose `mergeable_state` is not read yet: a `dirty` one is
    rebased first. The reader calls it again after each read (a PR sent to a rebase keeps its
    place; the plan changes only its kind)."""
    unread = {pr.number for pr in state.pull_requests if pr.mergeable_state is None}
    return sorted(n for d in plan(state, settings).dispatches if d.kind == workflows.PR_REVIEW.kind
                  for n in d.items if n in unread)


def dependencies_needing_lookup(state: PipelineState, settings: Settings) -> list[int]:
    """Numbers that issues the plan would dispatch say they depend on, that are no open item
    and whose kind is not known yet (`state.named`): the snapshot looks each up once.

    The reader calls it again after each lookup: an issue held for what it names frees a
    place that the next issue in line takes, whose numbers are looked up in turn."""
    p = plan(state, settings)
    known = {i.number for i in state.issues} | {pr.number for pr in state.pull_requests} | state.named.keys()
    return sorted({m for d in p.dispatches for named in d.depends_on.values() for m in named} - known)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass
class _Hold:
    """What an issue's `Depends on` names that keeps it from being dispatched."""

    blockers: list[int] = field(default_factory=list)  # open issues
    pulls: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def not_issues(self) -> list[str]:
        return ([f"#{n} (a pull request)" for n in self.pulls] + [f"#{n} (does not exist)" for n in self.missing]
                + [f"{ref} (another repository)" for ref in self.foreign])

    def reason(self, native: int) -> str:
        def refs(numbers: list[int]) -> str:
            return ", ".join(f"#{n}" for n in numbers)

        parts = []
        if self.blockers:
            parts.append(f"depends on {refs(self.blockers)} (open)")
        if self.missing:
            parts.append(f"depends on {refs(self.missing)}, which "
                         + ("does not exist" if len(self.missing) == 1 else "do not exist"))
        if self.pulls:
            parts.append(f"depends on {refs(self.pulls)}, which "
                         + ("is a pull request, not an issue" if len(self.pulls) == 1
                            else "are pull requests, not issues"))
        if self.foreign:
            parts.append(f"depends on {', '.join(self.foreign)} in another repository, which the "
                         "conductor cannot check")
        if native:
            parts.append(f"blocked by {_count(native, 'open issue')} (GitHub issue dependencies)")
        return "; ".join(parts)


def _hold(number: int, refs: References, state: PipelineState) -> _Hold:
    """Sort what issue `number` names by what GitHub has under each number."""
    open_prs = {p.number for p in state.pull_requests}
    open_issues = {i.number for i in state.issues} - open_prs
    hold = _Hold(foreign=list(refs.foreign))
    for n in refs.numbers:
        kind = ("pull_request" if n in open_prs else "open_issue" if n in open_issues
                else state.named.get(n, "closed_issue"))
        if n == number or kind == "closed_issue":
            continue
        {"open_issue": hold.blockers, "pull_request": hold.pulls, "missing": hold.missing}[kind].append(n)
    return hold


def _issue_dependencies(state: PipelineState, a: _Analysis) -> tuple[dict[int, References], list[Problem]]:
    """What every open issue names, and the problems: other repositories, cycles."""
    refs = {it.number: issue_dependencies(it.src.body, state.repo) for it in a.items if it.kind == "issue"}
    in_pipeline = {it.number for it in a.items if it.kind == "issue" and it.phases}
    problems = [
        Problem(number=n, message=(
            f"issue #{n} depends on {ref} in another repository; not followed (the conductor "
            "reads only this repository): it is held until that reference is removed"))
        for n in sorted(in_pipeline) for ref in refs[n].foreign
    ]
    graph = {n: [d for d in r.numbers if d in refs and d != n] for n, r in refs.items()}
    for cycle in find_cycles(graph):
        if in_pipeline.isdisjoint(cycle):
            continue
        members = ", ".join(f"#{n}" for n in cycle)
        problems.append(Problem(number=cycle[0], message=(
            f"dependency cycle between issues {members}: none of them can start; "
            "remove one of their 'Depends on' lines")))
    return refs, problems


def _ownership_problems(a: _Analysis) -> list[Problem]:
    """Paths an issue in the pipeline names under `Files:` that are absolute or leave the
    repository: left out of its FILE_OWNERSHIP (`leaf.ownership`), reported on the issue."""
    return [
        Problem(number=it.number, message=(
            f"issue #{it.number} names {_shown(path)} under Files:, a path outside the repository "
            "(absolute or with '..'); left out of FILE_OWNERSHIP: name paths inside the repository"))
        for it in a.items if it.kind == "issue" and it.phases
        for path in ownership(it.src.body).refused
    ]


def _shown(path: str, limit: int = 80) -> str:
    return path if len(path) <= limit else path[:limit - 1] + "…"


def plan(state: PipelineState, settings: Settings, attempt: int = 0) -> Plan:
    """The decision record of one conductor pass: the only entry to the planner."""
    config = settings.pipeline
    a = _analyse(state, config, settings.run.phase_filter)
    stuck = attempt > ANTI_LOOP_LIMIT
    approved = set(state.approved)
    open_prs = {p.number for p in state.pull_requests}
    refs, dep_problems = _issue_dependencies(state, a)
    problems = a.problems + dep_problems + _ownership_problems(a)
    gated: list[GatedItem] = []
    waiting: list[WaitingItem] = []
    held: list[HeldItem] = []
    ready: dict[ItemKind, list[_Item]] = {"issue": [], "pr": []}
    for it in a.items:
        if not _candidate(it, a, config):
            continue
        if isinstance(it.src, Issue):
            hold = _hold(it.number, refs[it.number], state)
            if hold.blockers or hold.not_issues() or it.src.native_blockers:
                waiting.append(WaitingItem(
                    number=it.number, kind="issue", title=it.src.title, blockers=hold.blockers,
                    native_blockers=it.src.native_blockers, not_issues=hold.not_issues(),
                    reason=hold.reason(it.src.native_blockers)))
                continue
        reasons = _gate_reasons(it, a, config)
        if reasons:
            ok = it.number in approved
            gated.append(GatedItem(number=it.number, kind=it.kind, title=it.src.title,
                                   reason="; ".join(reasons), approved=ok))
            if not ok:
                continue
        tried = state.attempts.get(it.number)
        if tried is not None and tried.count >= config.item_attempt_limit:
            held.append(HeldItem(number=it.number, kind=it.kind, title=it.src.title,
                                 attempts=tried.count, last_reason=tried.last_reason))
            continue
        looped = loops.hold(it.src, config.item_attempt_limit, tried.count if tried else 0) \
            if isinstance(it.src, PullRequest) else None
        if looped is not None:
            held.append(looped)
            continue
        ready[it.kind].append(it)

    phase_rank = {p: i for i, p in enumerate(a.order)}

    def priority(it: _Item) -> tuple[float, int]:
        return (_batch_rank(config, it.batch), it.number)

    def group_key(it: _Item) -> tuple[DispatchKind, str, str | None]:
        return (workflows.kind_of(it.src), it.phases[0], it.batch)

    def group_order(key: tuple[DispatchKind, str, str | None]) -> tuple[str, int, float, str]:
        kind, phase, batch = key
        return (kind, phase_rank[phase], _batch_rank(config, batch), batch or "")

    caps = {"issue": settings.run.max_issues_per_dispatch, "pr": settings.run.max_prs_per_dispatch}
    queue = sorted(ready["issue"], key=priority)
    chosen = queue[: caps["issue"]]
    deferred = [it.number for it in queue[caps["issue"]:]]
    prs, merge_after, pr_waiting, pr_deferred = _order_prs(
        ready["pr"], caps["pr"], priority, group_key, group_order, open_prs, state.repo)
    today = spend.day_of(state.read_at) if state.read_at else None
    admission = spend.admit(
        [spend.Candidate(it.number, workflows.kind_of(it.src), it.phases[0], "issue" if it.kind == "issue" else "PR",
                         merge_after.get(it.number)) for it in chosen + _blockers_first(prs, merge_after)],
        state.spend, config.budget, presets.cli_name(settings.run.agent_command), today)
    budget_waiting = [WaitingItem(number=it.number, kind=it.kind, title=it.src.title, reason=admission.held[it.number],
                                  budget=True) for it in chosen + prs if it.number in admission.held]
    # A budget reached holds the pipeline without it being stuck: nothing to count against it.
    stuck = stuck and not (budget_waiting and not admission.admitted)
    if stuck:
        chosen, deferred, merge_after = [], [], {}
    else:
        chosen = [it for it in chosen + prs if it.number not in {w.number for w in budget_waiting}]
        deferred += pr_deferred
        waiting += pr_waiting.items + budget_waiting
        problems += pr_waiting.problems

    groups: dict[tuple[DispatchKind, str, str | None], list[_Item]] = {}
    for it in chosen:
        groups.setdefault(group_key(it), []).append(it)

    def dispatch(key: tuple[DispatchKind, str, str | None]) -> Dispatch:
        members = sorted(groups[key], key=lambda it: it.number)
        numbers = [it.number for it in members]
        return Dispatch(
            kind=key[0], phase=key[1], batch=key[2], items=numbers,
            merge_after={n: merge_after[n] for n in numbers if n in merge_after},
            depends_on={n: list(refs[n].numbers) for n in numbers if workflows.get(key[0]).item == "issue"},
            attempts={n: state.attempts[n].count if n in state.attempts else 0 for n in numbers},
            caps={n: admission.caps[n] for n in numbers if n in admission.caps},
            heads={it.number: it.src.head_sha for it in members
                   if isinstance(it.src, PullRequest) and it.src.head_sha},
            reviews={it.number: it.src.review for it in members
                     if isinstance(it.src, PullRequest) and it.src.review is not None},
        )

    dispatches = [dispatch(k) for k in sorted(groups, key=group_order)]

    in_pipeline = [it for it in a.items if it.phases]
    return Plan(
        repo=state.repo,
        active_phases=[s.name for s in a.phases if s.state == "active"],
        dispatches=dispatches,
        gated=sorted(gated, key=lambda g: g.number),
        problems=sorted(problems, key=lambda p: (p.number or 0, p.message)),
        phases=a.phases,
        idle=not in_pipeline and not a.unknown_phase_items,
        stuck=stuck,
        attempt=attempt,
        open_issues=sum(1 for it in in_pipeline if it.kind == "issue"),
        open_prs=sum(1 for it in in_pipeline if it.kind == "pr"),
        deferred=deferred,
        waiting=sorted(waiting, key=lambda w: w.number),
        held_back=sorted(held, key=lambda h: h.number),
        outside_pipeline=sorted(a.outside, key=lambda o: o.number),
        budgets=spend.budget_lines(state.spend, config.budget, a.order, today),
        api_requests=state.api_requests,
    )


def _blockers_first(prs: list[_Item], merge_after: dict[int, int]) -> list[_Item]:
    """`prs` in their order, except that each comes after the PR it merges after."""
    by_number = {it.number: it for it in prs}
    ordered: dict[int, _Item] = {}

    def place(it: _Item) -> None:
        if it.number not in ordered:
            if (first := merge_after.get(it.number)) in by_number:
                place(by_number[first])
            ordered[it.number] = it

    for it in prs:
        place(it)
    return list(ordered.values())


@dataclass
class _PRWaiting:
    items: list[WaitingItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _order_prs(ready: list[_Item], cap: int, priority, group_key, group_order, open_prs: set[int],
               repo: str) -> tuple[list[_Item], dict[int, int], _PRWaiting, list[int]]:
    """The PRs to review (capped), their merge chains, the PRs that wait, the deferred ones.

    A PR that waits frees its place for the next one in line, so this repeats until no new
    PR waits (the waiting set only grows: it ends)."""
    after = {it.number: [n for n in merge_after_references(it.src.body, repo).numbers if n in open_prs]
             for it in ready}
    by_number = {it.number: it for it in ready}
    excluded: dict[int, int] = {}
    cycles: list[list[int]] = []
    while True:
        queue = sorted((it for it in ready if it.number not in excluded), key=priority)
        chosen = queue[:cap]
        keys = sorted({group_key(it) for it in chosen}, key=group_order)
        index = {k: i for i, k in enumerate(keys)}
        in_order = sorted(chosen, key=lambda it: (index[group_key(it)], it.number))
        chains = merge_chains(
            [ChainedPR(number=it.number, group=index[group_key(it)], files=it.src.files,
                       after=after[it.number]) for it in in_order],
            open_prs)
        cycles += [c for c in chains.cycles if c not in cycles]
        new = {n: b for n, b in chains.waiting.items() if n not in excluded}
        if not new:
            break
        excluded.update(new)
    reviewed = {it.number for it in chosen} - set(chains.waiting)
    in_cycle: dict[int, list[int]] = {}
    out = _PRWaiting()
    for cycle in sorted(cycles):
        members = ", ".join(f"#{n}" for n in cycle)
        out.problems.append(Problem(number=cycle[0], message=(
            f"merge-order cycle between PRs {members}: none of them is reviewed; "
            "remove one of their 'Merge after' lines")))
        in_cycle.update({n: cycle for n in cycle})
    for number, blocker in sorted({**excluded, **chains.waiting}.items()):
        it = by_number[number]
        if number in in_cycle:
            reason = "in a merge-order cycle (" + ", ".join(f"#{n}" for n in in_cycle[number]) + ")"
        elif blocker in reviewed:
            reason = (f"merges after PR #{blocker}, reviewed in another batch or phase this pass; "
                      "a later pass reviews it")
        else:
            reason = f"merges after PR #{blocker} (open), not reviewed in this pass"
        out.items.append(WaitingItem(number=number, kind="pr", title=it.src.title, blockers=[blocker],
                                     reason=reason))
    final = [it for it in chosen if it.number in reviewed]
    deferred = [it.number for it in queue[cap:]]
    return final, chains.merge_after, out, deferred

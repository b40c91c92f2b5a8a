"""One read of the pipeline (seed steps "anti-loop guard" and "read state"): one snapshot.

Open issues and PRs (changed files only for PRs that could be dispatched; issues a merged PR
finished left out), the approvals people made (and those that count for nothing), what GitHub
has under the numbers the issues the plan would dispatch depend on (a closed issue, a PR,
nothing), every leaf's recorded spend and the per-item attempts of the items the plan
would dispatch (one listing of the repository's comments changed since the last pass),
and the previous pass's reminders and marker. The plan is made from this alone,
and the re-plan after dispatch reads a new snapshot through this same function.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from conductor.core import planner
from conductor.actions.approvals import check_approvals, with_approvals
from conductor.core.facts import Snapshot
from conductor.actions.finished_issues import find_finished, without_finished
from conductor.actions.item_attempts import marker_comments, read_marker_index, read_spend
from conductor.actions.loop_records import item_history
from conductor.core.models import PipelineState
from conductor.core.settings import Settings
from conductor.core.ports import GitHub
from conductor.actions.previous_run import read_previous_run


def read_open_items(gh: GitHub, settings: Settings) -> PipelineState:
    """Every open issue and PR, with changed files for the PRs the plan could dispatch only
    (`planner.prs_needing_files`: one listing each)."""
    start = gh.requests_made
    state = gh.read_state()
    files = {number: gh.pull_files(number) for number in planner.prs_needing_files(state, settings)}
    return state.model_copy(update={"api_requests": gh.requests_made - start, "pull_requests": [
        p.model_copy(update={"files": files[p.number]}) if p.number in files else p for p in state.pull_requests]})


def with_dispatch_facts(gh: GitHub, state: PipelineState, settings: Settings,
                        now: datetime | None = None) -> PipelineState:
    """`state` with every leaf's recorded spend as of `now` (the budgets' day) and the per-item
    attempts of the items the plan would dispatch (and, from the same comments, a PR's last
    review and failed rebase: `conductor/core/loops.py`), all from one listing of the
    repository's comments changed since the last pass (`read_marker_index`); with what GitHub
    has under the numbers the issues the plan would dispatch depend on (when not open items)
    and the `mergeable_state` of the PRs it would review: one request each. A number that is
    no closed issue holds its issue, and reading attempts may hold an item back; either lets the next in line in, whose numbers
    and attempts are read in turn, until nothing the plan would dispatch is unread."""
    start = gh.requests_made
    index = read_marker_index(gh)
    state = state.model_copy(update={"spend": read_spend(index), "read_at": now or datetime.now(UTC)})
    while True:
        if names := planner.dependencies_needing_lookup(state, settings):
            state = state.model_copy(update={"named": {**state.named, **{n: gh.number_kind(n) for n in names}}})
        elif unread := planner.items_needing_attempts(state, settings):
            index, found = marker_comments(gh, index, unread)
            history = {n: item_history(found[n], index.login) for n in unread}
            state = state.model_copy(update={
                "attempts": {**state.attempts, **{n: h.attempts for n, h in history.items()}},
                "pull_requests": [p.model_copy(update={"review": history[p.number].review,
                                                       "conflict": history[p.number].conflict})
                                  if p.number in history else p for p in state.pull_requests]})
        elif unread := planner.prs_needing_mergeable(state, settings):
            merge = {n: gh.pull_facts(n).mergeable_state for n in unread}
            state = state.model_copy(update={"pull_requests": [
                p.model_copy(update={"mergeable_state": merge[p.number]}) if p.number in merge else p
                for p in state.pull_requests]})
        else:
            break
    return state.model_copy(update={"api_requests": state.api_requests + gh.requests_made - start})


def read_snapshot(gh: GitHub, settings: Settings, not_people: Iterable[str] = (),
                  now: datetime | None = None) -> Snapshot:
    """`not_people`: logins whose approvals never count (the agent token's); the
    conductor's own login is always among them. `now`: the clock (the budgets' UTC day)."""
    start = gh.requests_made
    state = read_open_items(gh, settings)
    # Issues a PR merged into the integration branch closes are done: not planned again.
    finished = find_finished(gh, state, settings.pipeline)
    state = without_finished(state, finished)
    check = check_approvals(gh, state, settings.pipeline, not_people={gh.login(), *not_people})
    approvals = check.approved
    state = with_approvals(state, check)
    state = with_dispatch_facts(gh, state, settings, now)  # approvals known: what the plan would dispatch
    previous = read_previous_run(gh, settings.pipeline)
    state = state.model_copy(update={"api_requests": gh.requests_made - start})
    return Snapshot(state=state, previous=previous, approvals=approvals,
                    refused_approvals=check.refused, finished=finished)

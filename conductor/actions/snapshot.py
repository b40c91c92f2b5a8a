"""One read of the pipeline (seed steps "anti-loop guard" and "read state"): one snapshot.

Open issues and PRs (changed files only for PRs that could be dispatched; issues a merged PR
finished left out), the approvals people made (and those that count for nothing), what GitHub
has under the numbers the issues the plan would dispatch depend on (a closed issue, a PR,
nothing), the per-item attempts of the items the plan would dispatch (one listing of
the repository's comments), and the previous
pass's reminders and marker. The plan is made from this alone,
and the re-plan after dispatch reads a new snapshot through this same function.
"""
from __future__ import annotations

from collections.abc import Iterable

from conductor.core import planner
from conductor.actions.approvals import check_approvals, with_approvals
from conductor.core.facts import Snapshot
from conductor.actions.finished_issues import find_finished, without_finished
from conductor.actions.item_attempts import item_attempts, read_attempt_index
from conductor.core.models import PipelineState, PlanRules
from conductor.core.ports import GitHub
from conductor.actions.previous_run import read_previous_run


def read_open_items(gh: GitHub, rules: PlanRules) -> PipelineState:
    """Every open issue and PR, with changed files for the PRs the plan could dispatch only
    (`planner.prs_needing_files`: one listing each)."""
    start = gh.requests_made
    state = gh.read_state()
    files = {number: gh.pull_files(number) for number in planner.prs_needing_files(state, rules)}
    return state.model_copy(update={"api_requests": gh.requests_made - start, "pull_requests": [
        p.model_copy(update={"files": files[p.number]}) if p.number in files else p for p in state.pull_requests]})


def with_dispatch_facts(gh: GitHub, state: PipelineState, rules: PlanRules) -> PipelineState:
    """`state` with what GitHub has under the numbers the issues the plan would dispatch
    depend on (when not open items), and with the per-item attempts of the items the plan
    would dispatch (one listing of the comments changed since the last pass). A number
    that is no closed issue holds its issue, and reading attempts may hold an item back; either lets the next in line in, whose numbers
    and attempts are read in turn, until nothing the plan would dispatch is unread."""
    start = gh.requests_made
    index = None
    while True:
        if names := planner.dependencies_needing_lookup(state, rules):
            state = state.model_copy(update={"named": {**state.named, **{n: gh.number_kind(n) for n in names}}})
        elif unread := planner.items_needing_attempts(state, rules):
            index, read = item_attempts(gh, index or read_attempt_index(gh), unread)
            state = state.model_copy(update={"attempts": {**state.attempts, **read}})
        else:
            break
    return state.model_copy(update={"api_requests": state.api_requests + gh.requests_made - start})


def read_snapshot(gh: GitHub, rules: PlanRules, not_people: Iterable[str] = ()) -> Snapshot:
    """`not_people`: logins whose approvals never count (the agent token's); the
    conductor's own login is always among them."""
    start = gh.requests_made
    state = read_open_items(gh, rules)
    # Issues a PR merged into the integration branch closes are done: not planned again.
    finished = find_finished(gh, state, rules.config)
    state = without_finished(state, finished)
    check = check_approvals(gh, state, rules.config, not_people={gh.login(), *not_people})
    approvals = check.approved
    state = with_approvals(state, check)
    state = with_dispatch_facts(gh, state, rules)  # approvals known: what the plan would dispatch
    previous = read_previous_run(gh, rules.config)
    state = state.model_copy(update={"api_requests": gh.requests_made - start})
    return Snapshot(state=state, previous=previous, approvals=approvals,
                    refused_approvals=check.refused, finished=finished)

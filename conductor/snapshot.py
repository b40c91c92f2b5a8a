"""One read of the pipeline (seed steps "anti-loop guard" and "read state"): one snapshot.

Open issues and PRs (changed files only for PRs that could be dispatched), the verified
approvals, the per-item attempts of the items the plan would dispatch, and the previous
pass's reminders and marker. The plan is made from this alone,
and the re-plan after dispatch reads a new snapshot through this same function.
"""
from __future__ import annotations

from conductor import housekeeping, planner
from conductor.facts import Snapshot
from conductor.models import PlanRules
from conductor.ports import GitHub


def read_snapshot(gh: GitHub, rules: PlanRules) -> Snapshot:
    start = gh.requests_made
    state = gh.read_state(lambda s: planner.prs_needing_files(s, rules))
    approvals = housekeeping.verified_approvals(gh, state, rules.config)
    state = state.model_copy(update={"approved": sorted(approvals)})
    # Per-item attempts, for the items the plan would dispatch (approvals known): reading one
    # may hold it back and let the next in line in, whose attempts are read in turn.
    attempts = dict(state.attempts)
    while unread := sorted(set(planner.items_needing_attempts(state, rules)) - attempts.keys()):
        for number in unread:
            attempts[number] = gh.read_attempts(number)
        state = state.model_copy(update={"attempts": dict(attempts)})
    previous = housekeeping.read_previous_run(gh, rules.config)
    state = state.model_copy(update={"api_requests": gh.requests_made - start})
    return Snapshot(state=state, previous=previous, approvals=approvals)

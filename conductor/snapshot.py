"""One read of the pipeline (seed steps "anti-loop guard" and "read state"): one snapshot.

Open issues and PRs (changed files only for PRs that could be dispatched), the previous
pass's reminders and marker, and the verified approvals. The plan is made from this alone,
and the re-plan after dispatch reads a new snapshot through this same function.
"""
from __future__ import annotations

from conductor import housekeeping, planner
from conductor.facts import Snapshot
from conductor.models import PlanRules
from conductor.ports import GitHub


def read_snapshot(gh: GitHub, rules: PlanRules) -> Snapshot:
    state = gh.read_state(lambda s: planner.prs_needing_files(s, rules))
    previous = housekeeping.read_previous_run(gh, rules.config)
    approvals = housekeeping.verified_approvals(gh, state, rules.config)
    return Snapshot(state=state.model_copy(update={"approved": sorted(approvals)}),
                    previous=previous, approvals=approvals)

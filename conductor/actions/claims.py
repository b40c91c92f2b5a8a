"""Claims: the status labels a dead pass left (taken off), and a re-read before claiming.

No coordinator of the conductor runs between passes (the pass lock sees to that), so a
status label the conductor added and that is still there when a pass starts was left by a
pass that died; taking it off makes the item ready again, unless the item's leaf still runs
on a worker (CONDUCTOR_DISPATCH=deployment): that claim stays until the run ends. Labels anyone else added (a
person running an agent by hand) stay.

`release_stale_claims` returns the facts (number -> labels taken off); `without_claims` folds them
into a *new* snapshot: the one it was given is never changed.

Before a pass claims the items it dispatches, `claimed_since` re-reads their labels and
`without_items` leaves out any another pass claimed meanwhile (re-read, then claim).
"""
from __future__ import annotations

from collections.abc import Collection

from conductor.core import workflows
from conductor.core.config import PipelineConfig
from conductor.core.ports import GitHub
from conductor.core.models import PipelineState, Plan


Released = dict[int, list[str]]  # item number -> the status labels taken off it


def release_stale_claims(gh: GitHub, state: PipelineState, config: PipelineConfig,
                         dry_run: bool, keep: Collection[int] = ()) -> Released:
    """Take off the status labels the conductor's own login added (in a dry run: say which),
    except on the items in `keep` (their leaf runs on workers may still be alive).
    Returns number -> labels; the state given is not changed."""
    login = gh.login()
    released: Released = {}
    for item in [*state.issues, *state.pull_requests]:
        if item.number in keep:
            continue
        for label in (config.status_in_progress, config.status_pr_open):
            if label in item.labels and gh.last_labeler(item.number, label) == login:
                if not dry_run:
                    gh.set_labels(item.number, remove=[label], current=item.labels)
                released.setdefault(item.number, []).append(label)
    return released


def without_claims(state: PipelineState, released: Released) -> PipelineState:
    """A new snapshot: `state` with the released labels off their items."""
    return state.without_labels(released)


def claimed_since(gh: GitHub, plan: Plan, config: PipelineConfig) -> list[int]:
    """Re-read, just before claiming, the labels of every item the plan dispatches (one
    request each): those that carry a claim label now were claimed by another pass after
    the snapshot was read, and must be skipped."""
    claimed = []
    for dispatch in plan.dispatches:
        label = getattr(config, workflows.get(dispatch.kind).status)
        for number in dispatch.items:
            if label in gh.labels_of(number):
                claimed.append(number)
    return sorted(claimed)


def without_items(plan: Plan, numbers: list[int]) -> Plan:
    """A new plan whose dispatches leave `numbers` out (a dispatch left empty is dropped)."""
    skip = set(numbers)
    if not skip:
        return plan
    dispatches = [d.model_copy(update={"items": [n for n in d.items if n not in skip]}) for d in plan.dispatches]
    return plan.model_copy(update={"dispatches": [d for d in dispatches if d.items]})

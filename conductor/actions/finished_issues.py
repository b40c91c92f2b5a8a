"""A merged PR finishes its issues (issue #11 item 5).

Closing keywords close issues only on merges into the default branch; in the seed's pipeline
PRs merge into the integration branch (`dev`) and the reviewer closes the issue itself. When
that close failed, the issue stayed open with a merged PR, and every pass dispatched it again.

So each pass reads the PRs merged into the integration branch that close still-open pipeline
issues, in one bounded listing (closed PRs, most recently updated first, until one is older
than the oldest open pipeline issue: a PR updated before an issue existed cannot have been
merged for it). Those issues are done for planning (`without_finished` drops them from a new
snapshot, so they are never dispatched again) and are closed with the canonical reviewer's
comment "Fixed by PR #N." (`close_finished`). `PipelineConfig.close_merged_issues` turns it off.
"""
from __future__ import annotations

import logging

from conductor.core.config import PipelineConfig
from conductor.core.errors import ConductorError
from conductor.core.facts import FinishedIssue
from conductor.core.ports import GitHub
from conductor.core.ports import MergedPull
from conductor.core.linking import linked_issues
from conductor.core.models import PipelineState

log = logging.getLogger(__name__)


def finished_by(pulls: list[MergedPull], state: PipelineState, config: PipelineConfig) -> list[FinishedIssue]:
    """Which open pipeline issues `pulls` finish. Pure: merged, into the integration
    branch, linking the issue with a closing keyword; the lowest PR number wins."""
    open_pipeline = {i.number for i in state.issues if config.phase_of(i.labels)}
    found: dict[int, int] = {}
    for pr in pulls:
        if not pr.merged or pr.base_ref != config.integration_branch:
            continue
        for number in linked_issues(pr.body, state.repo):
            if number in open_pipeline:
                found[number] = min(found.get(number, pr.number), pr.number)
    return [FinishedIssue(issue=n, pr=p) for n, p in sorted(found.items())]


def find_finished(gh: GitHub, state: PipelineState, config: PipelineConfig) -> list[FinishedIssue]:
    """One bounded listing of closed PRs (none when off or no pipeline issue is open)."""
    if not config.close_merged_issues:
        return []
    dates = [i.created_at for i in state.issues if config.phase_of(i.labels) and i.created_at]
    if not dates:
        return []
    return finished_by(gh.closed_pulls_since(min(dates)), state, config)


def without_finished(state: PipelineState, finished: list[FinishedIssue]) -> PipelineState:
    """A new snapshot without the finished issues: done for planning."""
    if not finished:
        return state
    done = {f.issue for f in finished}
    return state.model_copy(update={"issues": [i for i in state.issues if i.number not in done]})


def close_finished(gh: GitHub, finished: list[FinishedIssue], dry_run: bool) -> list[FinishedIssue]:
    """Close each finished issue with "Fixed by PR #N." (safe to repeat). Returns those closed;
    one whose close fails stays open, is still never dispatched, and is tried next pass."""
    closed = []
    for item in finished:
        if not dry_run:
            try:
                gh.close_with_comment(item.issue, item.comment, state_reason="completed")
            except ConductorError as exc:
                log.warning("could not close issue #%d finished by PR #%d (%s); the next pass will",
                            item.issue, item.pr, exc)
                continue
        closed.append(item)
    return closed

"""One read of the pipeline (`conductor.actions.snapshot.read_snapshot`) and the claims fold, against
the sandbox gateway over real HTTP: no Prefect pass needed."""
from __future__ import annotations

import pytest

from conductor.actions import claims
from conductor.core import constants, planner
from conductor.core.config import PipelineConfig
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.settings import Settings
from conductor.core.settings import GitHubSettings
from conductor.actions.snapshot import read_snapshot

UI = "phase-4/new-ui-pages"


def _gateway(sandbox, repo: str, login: str = "admin") -> GitHubGateway:
    settings = GitHubSettings(api_url=sandbox.api_url, token=sandbox.users[login], backoff_factor=0.05,
                              seconds_between_requests=0, seconds_between_writes=0)
    return GitHubGateway(settings, repo)


@pytest.fixture
def gh(sandbox, sandbox_repo):
    with _gateway(sandbox, sandbox_repo) as gateway:
        yield gateway


def test_the_snapshot_holds_approvals_with_their_approver_and_the_plan_lets_them_through(gh, sandbox):
    config = PipelineConfig()
    approved = gh.create_issue("Token fix", "", [UI, "batch-01", constants.SECURITY_LABEL])
    pending = gh.create_issue("Auth fix", "", [UI, "batch-01", constants.SECURITY_LABEL])
    gh.set_labels(approved, add=[config.approval_label])  # admin: a maintainer

    with sandbox.api(sandbox.users["admin"]) as c:  # carol may triage: her label approves nothing
        c.put(f"/repos/{gh.repo_name}/collaborators/carol", json={"permission": "triage"}).raise_for_status()
    with _gateway(sandbox, gh.repo_name, "carol") as as_carol:
        as_carol.set_labels(pending, add=[config.approval_label])

    with sandbox.api(sandbox.users["admin"]) as c:  # the conductor is alice: admin's approval is a person's
        c.put(f"/repos/{gh.repo_name}/collaborators/alice", json={"permission": "write"}).raise_for_status()
    with _gateway(sandbox, gh.repo_name, "alice") as conductor:
        snap = read_snapshot(conductor, Settings(pipeline=config))

    assert snap.approvals == {approved: "admin"}
    assert [(r.number, r.login) for r in snap.refused_approvals] == [(pending, "carol")]
    assert snap.state.approved == [approved]
    plan = planner.plan(snap.state, Settings(pipeline=config))
    assert [n for d in plan.dispatches for n in d.items] == [approved]
    assert {g.number: g.approved for g in plan.gated} == {approved: True, pending: False}


def test_the_snapshot_holds_the_previous_reminder_and_its_marker(gh):
    config = PipelineConfig()
    gh.create_issue("Page", "", [UI, "batch-01"])
    marker = ("<!-- conductor:reminder "
              "{\"attempt\": 2, \"fingerprint\": \"abcdef0123456789\", \"generated_at\": \"2026-12-01T10:00:00Z\"} -->")
    reminder_number = gh.create_issue("Conductor reminder", f"body\n\n{marker}\n", [config.reminder_label])

    snap = read_snapshot(gh, Settings(pipeline=config))

    assert snap.previous.newest == reminder_number
    assert snap.previous.state is not None and snap.previous.state.attempt == 2


def test_releasing_stale_claims_returns_facts_and_leaves_the_snapshot_as_it_was(gh):
    config = PipelineConfig()
    claimed = gh.create_issue("Page", "", [UI, "batch-01"])
    gh.set_labels(claimed, add=[config.status_in_progress])  # the conductor's own login left it
    snap = read_snapshot(gh, Settings(pipeline=config))

    released = claims.release_stale_claims(gh, snap.state, config, dry_run=False)
    after = snap.without_claims(released)

    assert released == {claimed: [config.status_in_progress]}
    labels_of = {i.number: i.labels for i in snap.state.issues}
    assert config.status_in_progress in labels_of[claimed], "the snapshot read must not change"
    assert config.status_in_progress not in {i.number: i.labels for i in after.state.issues}[claimed]
    assert config.status_in_progress not in next(i for i in gh.read_state().issues if i.number == claimed).labels
    # the claim is gone, so the item is ready again in the plan of the new snapshot
    plan = planner.plan(after.state, Settings(pipeline=config))
    assert [n for d in plan.dispatches for n in d.items] == [claimed]


def test_a_dry_run_release_writes_nothing_but_reports_the_same_facts(gh):
    config = PipelineConfig()
    claimed = gh.create_issue("Page", "", [UI, "batch-01"])
    gh.set_labels(claimed, add=[config.status_in_progress])
    state = gh.read_state()

    assert claims.release_stale_claims(gh, state, config, dry_run=True) == {claimed: [config.status_in_progress]}
    assert config.status_in_progress in next(i for i in gh.read_state().issues if i.number == claimed).labels

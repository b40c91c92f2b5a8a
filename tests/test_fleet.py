"""Leaves on workers (CONDUCTOR_DISPATCH=deployment), on one machine: the session's Prefect
server, the project's work pools and `leaf/<kind>` deployments (`prefect deploy`), and real
`prefect worker start` processes of the `conductor-agents` pool, each with a home of its own
(its clone cache and worktrees) and a read-only token. The pass runs in this process.

One deploy serves the module; each test starts (and stops) its own workers.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from conductor.core import constants, workflows
from conductor.edges import worktrees
from conductor.actions.coordinator import PassContext
from conductor.core.settings import Settings
from conductor.core.models import Dispatch
from deploy_support import PREFECT, PROJECT_DIR, Launcher, PrefectServer, WorkerSpec, agents_of, lose_machine
from deployments.pools import SILENT_LEAVES
from flows.coordinators import LEAF_FLOW
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, READER_LOGIN, PipelineRepo, pipeline_for_test

pytestmark = pytest.mark.slow

UI = "phase-4/new-ui-pages"
SILENCE_S = 40  # the automation's window here (90 s in production): a lost worker's run is Crashed sooner


@pytest.fixture(scope="module")
def deployed(prefect_server: str, tmp_path_factory: pytest.TempPathFactory):
    """The session's server with the work pools, the automation and the leaf deployments."""
    root = tmp_path_factory.mktemp("fleet")
    launcher = Launcher(root / "processes")
    server = PrefectServer(launcher, root / "server-home", urlsplit(prefect_server).port)
    env = server.env(root / "deploy-home")
    server.cli([sys.executable, "-m", "deployments.pools", "--silence", str(SILENCE_S)], env)
    names = [arg for w in workflows.registered() for arg in ("--name", w.name)]
    server.cli([PREFECT, "--no-prompt", "deploy", *names], env)
    try:
        yield server
    finally:
        launcher.stop_all()
        server.cancel_unfinished()


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    return pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name, CONDUCTOR_DISPATCH="deployment")


def worker_env(server: PrefectServer, sandbox, machine: Path, **extra: str) -> dict[str, str]:
    """A worker "machine": its own home (clone cache, worktrees, PREFECT_HOME), a read-only
    GitHub token of its own (it only clones and reads), the agent's token."""
    return server.env(machine / "prefect-home", HOME=str(machine), CONDUCTOR_PROJECT_DIR=str(PROJECT_DIR),
                      GITHUB_TOKEN=sandbox.users[READER_LOGIN], CONDUCTOR_AGENT_TOKEN=sandbox.users[AGENT_LOGIN],
                      CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS="0", CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES="0",
                      **extra)


@pytest.fixture
def start_workers(deployed: PrefectServer):
    with deployed.test_workers(online=True) as start:
        yield start


def leaf_runs(server: PrefectServer, repo: str) -> list[dict]:
    """The flow runs of every `leaf/<kind>` deployment for `repo`."""
    ids = [server.deployment(w.leaf_deployment)["id"] for w in workflows.registered()]
    return [r for r in server.flow_runs(deployment_id={"any_": ids})
            if r["parameters"].get("ctx", {}).get("settings", {}).get("run", {}).get("repo") == repo]


def test_prefect_yaml_deploys_one_leaf_per_registered_kind():
    config = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    leaves = [d for d in config["deployments"] if d["entrypoint"] == "flows.coordinators:remote_leaf"]
    assert sorted(f"{LEAF_FLOW}/{d['name']}" for d in leaves) == sorted(w.leaf_deployment
                                                                         for w in workflows.registered())
    assert {d["work_pool"]["name"] for d in leaves} == {"conductor-agents"}


def test_leaves_run_on_a_worker_report_through_artifacts_and_the_pass_proves_them(
        deployed: PrefectServer, start_workers, pipe: PipelineRepo, sandbox, tmp_path: Path):
    numbers = [pipe.issue(f"Page {c}", UI, "batch-01") for c in "ABC"]
    machine = tmp_path / "machine-a"
    [worker] = start_workers(WorkerSpec("conductor-agents", "machine-a", worker_env(deployed, sandbox, machine)))

    report, state = pipe.run("work")

    assert state.is_completed(), state.message
    results = [r for o in report.outcomes for r in o.results]
    assert sorted((r.number, r.ok, r.reason) for r in results) == [(n, True, "") for n in numbers]
    pulls = pipe.pulls()
    assert sorted(p["body"] for p in pulls) == sorted(f"Closes #{n}" for n in numbers)
    assert {p["user"]["login"] for p in pulls} == {AGENT_LOGIN}
    # one flow run of leaf/issue-to-pr per item, on the worker, each with its report artifact
    runs = leaf_runs(deployed, pipe.full_name)
    deployment = deployed.deployment(workflows.ISSUE_TO_PR.leaf_deployment)
    assert sorted(r["parameters"]["number"] for r in runs) == numbers
    assert {(r["deployment_id"], r["work_pool_name"], r["state_type"]) for r in runs} == {
        (deployment["id"], "conductor-agents", "COMPLETED")}
    pass_id = runs[0]["parameters"]["ctx"]["pass_id"]
    assert sorted(r["idempotency_key"] for r in runs) == sorted(
        f"leaf-{pass_id}-issue-to-pr-{n}" for n in numbers)
    artifacts = deployed.artifacts([r["id"] for r in runs])
    assert sorted(a["key"] for a in artifacts) == sorted(f"leaf-{pass_id}-issue-to-pr-{n}" for n in numbers)
    assert {a["type"] for a in artifacts} == {"conductor-leaf-report"}
    # no secret left the worker, and the parameters hold none
    for secret in sandbox.users.values():
        assert secret not in str([r["parameters"] for r in runs]) + str([a["data"] for a in artifacts])
    # the worker's own clone and worktrees; the pass's clone made none; no claim left
    clone = machine / ".conductor" / "clones" / pipe.full_name
    assert [Path(w.path) for w in worktrees.list_worktrees(clone)] == [clone.resolve()]
    assert pipe.worktrees_left() == []
    for n in numbers:
        assert constants.STATUS_IN_PROGRESS not in pipe.labels_of(n)
    assert all(f"submitting flow run '{r['id']}'" in worker.output() for r in runs)
    # a retried start (same pass and item) makes no second run
    from prefect.deployments import run_deployment

    again = run_deployment(workflows.ISSUE_TO_PR.leaf_deployment, timeout=0, as_subflow=False,
                           parameters=runs[0]["parameters"], idempotency_key=runs[0]["idempotency_key"])
    assert str(again.id) == runs[0]["id"] and again.state.is_completed()
    assert len(leaf_runs(deployed, pipe.full_name)) == len(numbers)


def test_a_lost_worker_is_a_failed_attempt_and_the_next_pass_dispatches_the_item_once_more(
        deployed: PrefectServer, start_workers, pipe: PipelineRepo, sandbox, tmp_path: Path):
    number = pipe.issue("Page A", UI, "batch-01")
    [lost] = start_workers(WorkerSpec("conductor-agents", "machine-a",
                                      worker_env(deployed, sandbox, tmp_path / "machine-a")))
    killed: list[float] = []

    def kill_mid_leaf() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not agents_of(lost):
            time.sleep(0.2)
        time.sleep(1)
        lose_machine(lost)
        killed.append(time.monotonic())

    killer = threading.Thread(target=kill_mid_leaf, daemon=True)
    killer.start()
    report, state = pipe.run("work", "--sleep", "600", agent_timeout=900)
    killer.join()

    assert killed, "the agent never started on the worker"
    assert state.is_completed(), state.message
    [result] = [r for o in report.outcomes for r in o.results]
    assert (result.number, result.ok) == (number, False)
    assert "Crashed" in result.reason and "worker was lost" in result.reason, result.reason
    [crashed] = leaf_runs(deployed, pipe.full_name)
    assert crashed["state_type"] == "CRASHED"
    assert constants.STATUS_IN_PROGRESS not in pipe.labels_of(number)  # the claim was released
    assert pipe.pulls() == []

    [_] = start_workers(WorkerSpec("conductor-agents", "machine-b",
                                   worker_env(deployed, sandbox, tmp_path / "machine-b")))
    again, state = pipe.run("work")

    assert state.is_completed(), state.message
    [result] = [r for o in again.outcomes for r in o.results]
    assert (result.number, result.ok, result.attempt) == (number, True, 1)
    assert sorted(r["state_type"] for r in leaf_runs(deployed, pipe.full_name)) == ["COMPLETED", "CRASHED"]
    assert [p["body"] for p in pipe.pulls()] == [f"Closes #{number}"]


def test_an_item_whose_leaf_run_may_be_alive_keeps_its_claim_until_the_run_ends(
        deployed: PrefectServer, pipe: PipelineRepo, sandbox):
    from prefect.deployments import run_deployment

    number = pipe.issue("Page A", UI, "batch-01")
    pipe.add_label(number, constants.STATUS_IN_PROGRESS, login=CONDUCTOR_LOGIN)  # a dead pass's claim...
    ctx = PassContext(settings=Settings(github={"api_url": sandbox.api_url},
                                       run={"repo": pipe.full_name, "agent_command": ["true"]}),
                      default_branch="main", pass_id="dead0001")
    dispatch = Dispatch(kind=workflows.ISSUE_TO_PR.kind, phase=UI, batch="batch-01", items=[number])
    run = run_deployment(workflows.ISSUE_TO_PR.leaf_deployment, timeout=0, as_subflow=False,  # ...and its leaf run
                         parameters={"number": number, "dispatch": dispatch, "ctx": ctx})
    try:
        report, state = pipe.run("work")

        assert state.is_completed(), state.message
        assert report.released_claims == [] and report.outcomes == []
        assert constants.STATUS_IN_PROGRESS in pipe.labels_of(number)
    finally:
        deployed.post(f"/flow_runs/{run.id}/set_state", {"state": {"type": "CANCELLED"}, "force": True})

    report, state = pipe.run("work", dry_run=True)  # the run ended: the claim is stale now

    assert report.released_claims == [number]
    assert [d.items for d in report.plan.dispatches] == [[number]]


def test_the_lost_worker_automation_is_made_once_and_kept_current(deployed: PrefectServer, tmp_path: Path):
    env = deployed.env(tmp_path / "home")
    for silence in (45, SILENCE_S):  # a second run brings the one automation up to its arguments
        out = deployed.cli([sys.executable, "-m", "deployments.pools", "--silence", str(silence)], env)
        assert "updated" in out, out
        [automation] = deployed.post("/automations/filter", {"automations": {"name": {"any_": [SILENT_LEAVES]}}})
        assert automation["trigger"]["within"] == silence
    assert set(automation["trigger"]["after"]) == {
        "prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.heartbeat"}
    assert automation["trigger"]["match_related"] == {"prefect.resource.role": "flow",
                                                      "prefect.resource.name": LEAF_FLOW}
    assert automation["actions"][0]["state"] == "CRASHED"

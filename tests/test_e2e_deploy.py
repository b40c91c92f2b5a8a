"""The conductor run the Prefect way, end to end, with real processes only: `prefect server
start`, `python -m deployments.pools`, `prefect deploy --all`, `prefect worker start` and
`prefect deployment run`, against the sandbox GitHub with the scripted agent.

One server and one deploy serve the module; each test starts (and stops) its own workers
with its own environment, so the tests do not depend on their order.
"""
from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path

import pytest

from conductor.core import constants
from shell.prefect_server import free_port
from conftest import unique_repo_name
from deploy_support import (PREFECT, Background, Launcher, PrefectServer, WorkerSpec, conductor_env, demo_agent,
                            files_containing, scanned_file_count, slug, token_forms, unescape_markdown)
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, PipelineRepo, make_pipeline_repo

pytestmark = pytest.mark.e2e

UI = "phase-4/new-ui-pages"
ISSUE_TO_PR = ["issue-to-pr phase-4/new-ui-pages batch-01", "issue-to-pr phase-4/new-ui-pages batch-02"]


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Launcher:
    launcher = Launcher(tmp_path_factory.mktemp("e2e-processes"))
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="module")
def deployed(launcher: Launcher, tmp_path_factory: pytest.TempPathFactory) -> PrefectServer:
    """A Prefect server with the project's work pools and every deployment of prefect.yaml."""
    root = tmp_path_factory.mktemp("e2e-prefect")
    server = PrefectServer(launcher, root / "server-home", free_port())
    server.start()
    env = server.env(root / "deploy-home")
    server.cli([sys.executable, "-m", "deployments.pools"], env)
    # CONDUCTOR_PROJECT_DIR is deliberately unset here: the pull step must keep its placeholder
    # and resolve it on the worker, where the project's clone is.
    server.cli([PREFECT, "--no-prompt", "deploy", "--all"], env)
    return server


@pytest.fixture
def start_workers(deployed: PrefectServer):
    """Start workers for this test only; stop them (and cancel what they left) at its end."""
    with deployed.test_workers() as start:
        yield start


@pytest.fixture
def pipe(sandbox, tmp_path: Path, request: pytest.FixtureRequest) -> PipelineRepo:
    return make_pipeline_repo(sandbox, unique_repo_name(request.node.name), tmp_path)


def run_pass(deployed: PrefectServer, pipe: PipelineRepo, worker: Background, *others: Background) -> dict:
    """`prefect deployment run 'conductor/manual' --param repo=…` (while the workers start),
    waited for through the API."""
    env = deployed.env(pipe.workdir / "cli-home")
    flow_run_id = deployed.run_deployment("conductor/manual", env, repo=pipe.full_name)
    deployed.wait_online([worker, *others])
    run = deployed.wait_for_flow_run(flow_run_id, watch=[worker, *others], timeout=150)
    assert run["state_type"] == "COMPLETED", (run["state"], worker.tail())
    return run


def assert_pass_artifacts(deployed: PrefectServer, run: dict, repo: str) -> list[dict]:
    artifacts = deployed.artifacts([run["id"]])
    keys = {a["key"] for a in artifacts}
    assert {f"pipeline-state-{slug(repo)}", f"conductor-summary-{slug(repo)}"} <= keys, keys
    return artifacts


def coordinator_rows(artifacts: list[dict], repo: str) -> list[list[str]]:
    """The rows of the summary's "Coordinators" table: kind, phase, batch, items, result."""
    [summary] = [a for a in artifacts if a["key"] == f"conductor-summary-{slug(repo)}"]
    text = summary["data"].split("## Coordinators", 1)[1].split("\n## ", 1)[0]  # up to the next section
    rows = [[unescape_markdown(cell.strip()) for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    return rows[2:]  # past the header and its separator


def test_deploy_schedule_and_run_twice(deployed: PrefectServer, start_workers, pipe: PipelineRepo, sandbox):
    assert {name: deployed.get(f"/work_pools/{name}")["type"] for name in ("conductor", "conductor-agents")} \
        == {"conductor": "process", "conductor-agents": "process"}
    scheduled = deployed.deployment("conductor/scheduled")
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in scheduled["schedules"]] \
        == [("0 * * * *", "UTC", True)]
    assert scheduled["global_concurrency_limit"]["limit"] == 1
    assert scheduled["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert scheduled["parameters"] == {"reminder_mode": "update"}
    manual = deployed.deployment("conductor/manual")
    assert manual["schedules"] == []
    assert (manual["global_concurrency_limit"]["limit"], manual["concurrency_options"]["collision_strategy"]) \
        == (1, "ENQUEUE")
    for name, pool in (("conductor/scheduled", "conductor"), ("conductor/manual", "conductor"),
                       ("leaf/issue-to-pr", "conductor-agents"), ("leaf/pr-review", "conductor-agents")):
        deployment = deployed.deployment(name)
        assert deployment["work_pool_name"] == pool, name
        assert deployment["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {
            "directory": "{{ $CONDUCTOR_PROJECT_DIR }}"}}], name

    first = pipe.issue("Page A", UI, "batch-01")
    second = pipe.issue("Page B", UI, "batch-02")
    env = conductor_env(deployed, pipe.workdir / "worker-home", api_url=sandbox.api_url,
                        token=sandbox.users[CONDUCTOR_LOGIN], agent_token=sandbox.users[AGENT_LOGIN],
                        repo_path=pipe.clone, work=pipe.workdir, agent_command=demo_agent())
    [worker] = start_workers(WorkerSpec("conductor", f"conductor-{secrets.token_hex(3)}", env))

    run1 = run_pass(deployed, pipe, worker)

    assert run1["parameters"] == {"repo": pipe.full_name}
    children = deployed.child_flow_runs(run1["id"])
    assert sorted(c["name"] for c in children) == ISSUE_TO_PR
    assert {c["state_type"] for c in children} == {"COMPLETED"}
    assert_pass_artifacts(deployed, run1, pipe.full_name)
    pulls = pipe.pulls()
    assert sorted(p["body"] for p in pulls) == sorted([f"Closes #{first}", f"Closes #{second}"])
    assert {p["user"]["login"] for p in pulls} == {AGENT_LOGIN}

    # At its end the first pass's PRs were ready for review: it asked for the next pass itself
    # (conductor.pass.more-work), which the on-change deployment's trigger starts at once; a
    # manual pass after that one finds whatever is left.
    on_change = deployed.deployment("conductor/on-change")["id"]
    deadline = time.monotonic() + 150
    while not (asked := deployed.flow_runs(deployment_id={"any_": [on_change]})) and time.monotonic() < deadline:
        time.sleep(1)
    assert asked, "the first pass did not start the next one"
    run2 = run_pass(deployed, pipe, worker)
    passes = [deployed.wait_for_flow_run(r["id"], watch=[worker], timeout=150) for r in asked] + [run2]
    children = [c for p in passes for c in deployed.child_flow_runs(p["id"])]
    assert children and {c["name"].split()[0] for c in children} == {"pr-review"}, [c["name"] for c in children]
    assert {c["state_type"] for c in children} == {"COMPLETED"}
    assert_pass_artifacts(deployed, run2, pipe.full_name)
    for pull in pulls:
        assert pipe.call("GET", f"/pulls/{pull['number']}")["merged"] is True
    for number in (first, second):
        assert pipe.call("GET", f"/issues/{number}")["state"] == "closed"
    assert pipe.worktrees_left() == []


def test_no_token_anywhere(deployed: PrefectServer, start_workers, pipe: PipelineRepo, sandbox, tmp_path: Path):
    planted = {}
    for role in ("conductor", "agent"):
        login = f"planted-{role}-{secrets.token_hex(3)}"
        planted[role] = (login, "sbx_PLANTED_" + secrets.token_hex(16))
        sandbox.control.add_user(*planted[role])
        pipe.call("PUT", f"/collaborators/{login}", json={"permission": "write"})
    (conductor_login, conductor_token), (agent_login, agent_token) = planted["conductor"], planted["agent"]
    issue = pipe.issue("Page A", UI, "batch-01")
    env = conductor_env(deployed, tmp_path / "worker-home", api_url=sandbox.api_url, token=conductor_token,
                        agent_token=agent_token, repo_path=pipe.clone, work=tmp_path,
                        agent_command=demo_agent())
    [worker] = start_workers(WorkerSpec("conductor", f"conductor-{secrets.token_hex(3)}", env))

    run = run_pass(deployed, pipe, worker)
    worker.wait_idle()  # the flow run process sends its last logs as it exits

    # the planted tokens did the work: the agent's opened the PR, the conductor's the reminder
    [pull] = pipe.pulls()
    assert (pull["user"]["login"], pull["body"]) == (agent_login, f"Closes #{issue}")
    reminders = pipe.issues(labels=constants.REMINDER_LABEL)
    assert reminders and {r["user"]["login"] for r in reminders} == {conductor_login}
    needles = token_forms(conductor_token) + token_forms(agent_token)

    def leaks(text: str) -> list[str]:
        return [needle.decode()[:12] for needle in needles if needle.decode() in text]

    runs = [deployed.get(f"/flow_runs/{run['id']}"), *deployed.child_flow_runs(run["id"])]
    assert len(runs) == 2
    ids = {r["id"] for r in runs}
    logs = deployed.logs()  # every log line the server holds
    assert any("agent:" in log["message"] for log in logs if log["flow_run_id"] in ids), \
        "the agent's output is not in the run's logs"
    assert [log["message"] for log in logs if leaks(log["message"])] == []
    artifacts = deployed.artifacts(sorted(ids))
    assert artifacts
    assert [a["key"] for a in artifacts if leaks(json.dumps(a))] == []
    assert [r["name"] for r in runs if leaks(json.dumps(r))] == []  # parameters, state messages, ...
    assert run["id"] in worker.output()
    assert leaks(worker.output()) == []
    roots = [tmp_path, deployed.home]  # clone (.git/config too), worktrees, salvage, worker home, server DB
    assert (pipe.clone / ".git" / "config").is_file() and scanned_file_count(roots) > 20
    assert files_containing(roots, needles) == []

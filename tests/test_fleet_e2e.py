"""A fleet across simulated machines, end to end: a Prefect server on PostgreSQL
(`deployments.postgres_server`) and the sandbox GitHub on the host; two workers of the
`conductor-agents` pool, each in a network namespace of its own with its own home (clone
cache, worktrees, PREFECT_HOME), reaching the server and the sandbox only over the addresses
of a bridge this test makes (169.254.N.0/24, link-local, on this machine only); passes run by
`conductor run` with CONDUCTOR_DISPATCH=deployment.

Eight issues become eight PRs on both workers; then, while the reviews run, one worker's
machine is lost (SIGKILL to everything it runs): its leaf runs are marked Crashed by the
automation, and the next passes finish the pipeline on the other worker, nothing run twice.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import netns_agent
from conductor.core import constants, workflows
from conductor.edges import worktrees
from conftest import unique_repo_name
from deploy_support import (PREFECT, PROJECT_DIR, Background, Launcher, PrefectServer, agents_of, clean_env,
                            demo_agent, lose_machine)
from deployments.postgres_server import prefect_on_postgresql
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, READER_LOGIN, PipelineRepo, make_pipeline_repo

pytestmark = pytest.mark.e2e

UI = "phase-4/new-ui-pages"
SILENCE_S = 60  # the automation's window here (90 s in production); above a flow run's start on 2 busy cores
SUBNET = f"169.254.{secrets.randbelow(150) + 100}"
HOST = f"{SUBNET}.1"
MACHINES = {"machine-a": f"{SUBNET}.2", "machine-b": f"{SUBNET}.3"}


def _unavailable() -> str | None:
    if os.environ.get("CONDUCTOR_POSTGRESQL_MISSING"):
        return os.environ["CONDUCTOR_POSTGRESQL_MISSING"]
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "network namespaces need root and iproute2 (ip)"
    return None


if _unavailable():
    pytest.skip(_unavailable(), allow_module_level=True)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class TcpRelay:
    """HOST:port -> 127.0.0.1:`target`: the sandbox, reachable from the namespaces."""

    def __init__(self, host: str, target: int) -> None:
        self.target = target
        self._sock = socket.create_server((host, 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            netns_agent.splice(client, socket.create_connection(("127.0.0.1", self.target)))

    def close(self) -> None:
        self._sock.close()


@pytest.fixture(scope="module")
def network():
    """A bridge with the host's address, and one namespace per machine plugged into it."""
    tag = secrets.token_hex(2)
    bridge = f"cfbr{tag}"
    ip("link", "add", bridge, "type", "bridge")
    namespaces = {}
    try:
        ip("addr", "add", f"{HOST}/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for i, (name, address) in enumerate(MACHINES.items()):
            ns, outside, inside = f"cf{tag}-{i}", f"cf{tag}h{i}", f"cf{tag}n{i}"
            ip("netns", "add", ns)
            namespaces[name] = ns
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", outside, "master", bridge)
            ip("link", "set", outside, "up")
            ip("link", "set", inside, "netns", ns)
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield namespaces
    finally:
        for ns in namespaces.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@pytest.fixture(scope="module")
def fleet(network, sandbox, tmp_path_factory: pytest.TempPathFactory):
    """Prefect on PostgreSQL at HOST, the pools, the automation and the leaf deployments, and
    the sandbox relayed at HOST."""
    root = Path(tempfile.mkdtemp(prefix="conductor-fleet-"))  # under /tmp: the postgres user reaches it
    os.chmod(root, 0o755)
    relay = TcpRelay(HOST, sandbox.port)
    launcher = Launcher(tmp_path_factory.mktemp("fleet-processes"))
    try:
        with prefect_on_postgresql(root, host=HOST, port=free_port(HOST)) as api:
            server = PrefectServer(launcher, root / "prefect-home", 0)
            server.api_url = api
            env = clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(root / "deploy-home"))
            server.cli([sys.executable, "-m", "deployments.pools", "--silence", str(SILENCE_S)], env)
            server.cli([PREFECT, "--no-prompt", "deploy",
                        *[a for w in workflows.registered() for a in ("--name", w.name)]], env)
            yield server, launcher, f"http://{HOST}:{relay.port}"
            launcher.stop_all()
    finally:
        launcher.stop_all()
        relay.close()
        shutil.rmtree(root, ignore_errors=True)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_worker(server: PrefectServer, launcher: Launcher, network: dict, name: str, home: Path,
                 sandbox) -> Background:
    """`prefect worker start` inside the machine's namespace, at most 4 leaves at once."""
    env = clean_env(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(home / "prefect-home"), HOME=str(home),
                    CONDUCTOR_PROJECT_DIR=str(PROJECT_DIR), GITHUB_TOKEN=sandbox.users[READER_LOGIN],
                    CONDUCTOR_AGENT_TOKEN=sandbox.users[AGENT_LOGIN], PREFECT_WORKER_QUERY_SECONDS="1",
                    CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS="0", CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES="0")
    home.mkdir(parents=True, exist_ok=True)
    worker = launcher.start(name, ["ip", "netns", "exec", network[name], PREFECT, "worker", "start",
                                   "--pool", "conductor-agents", "--name", name, "--limit", "4"], env)
    worker.worker_of = ("conductor-agents", name)
    return worker


def run_pass(server: PrefectServer, pipe: PipelineRepo, github: str, work: Path, sandbox,
             *agent_args: str) -> dict:
    """`conductor run --json` on the host, leaves on the workers; its report."""
    env = clean_env(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(work / "pass-home"),
                    GITHUB_TOKEN=sandbox.users[CONDUCTOR_LOGIN], CONDUCTOR_AGENT_TOKEN=sandbox.users[AGENT_LOGIN],
                    CONDUCTOR_DISPATCH="deployment", CONDUCTOR_WORKTREE_ROOT=str(work / "worktrees"),
                    CONDUCTOR_SALVAGE_DIR=str(work / "salvage"), CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS="0",
                    CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES="0", CONDUCTOR_GITHUB_BACKOFF="0.05")
    argv = [sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name, "--github-url", f"{github}/api/v3",
            "--repo-path", str(pipe.clone), "--agent-command", json.dumps(demo_agent(*agent_args)),
            "--agent-timeout", "300", "--json"]
    done = subprocess.run(argv, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=560,
                          stdin=subprocess.DEVNULL)
    assert done.stdout.strip(), f"no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def started_leaves(worker: Background) -> list[str]:
    """The leaf runs whose flow began on this worker (its log: "Flow run 'issue_to_pr #3' - Beginning")."""
    return re.findall(r"Flow run '([^']+)' - Beginning", worker.output())


def leaf_runs(server: PrefectServer, repo: str) -> list[dict]:
    ids = [server.deployment(w.leaf_deployment)["id"] for w in workflows.registered()]
    return [r for r in server.flow_runs(deployment_id={"any_": ids})
            if r["parameters"].get("ctx", {}).get("settings", {}).get("run", {}).get("repo") == repo]


def results_of(report: dict) -> list[dict]:
    return [r for o in report["outcomes"] for r in o["results"]]


def test_eight_leaves_on_two_machines_and_a_lost_machine(fleet, network, sandbox, tmp_path: Path):
    server, launcher, github = fleet
    pipe = make_pipeline_repo(sandbox, unique_repo_name("fleet-e2e"), tmp_path)
    numbers = [pipe.issue(f"Page {i}", UI, f"batch-0{1 + i // 4}") for i in range(8)]
    machines = {name: tmp_path / name for name in MACHINES}
    workers = {name: start_worker(server, launcher, network, name, home, sandbox) for name, home in machines.items()}
    server.wait_online(workers.values())

    first = run_pass(server, pipe, github, tmp_path / "conductor", sandbox, "--sleep", "4")

    assert sorted((r["number"], r["ok"]) for r in results_of(first)) == [(n, True) for n in numbers], first
    ran = {name: started_leaves(w) for name, w in workers.items()}  # both machines ran leaves, none twice
    assert all(ran.values()) and sorted(ran["machine-a"] + ran["machine-b"]) == sorted(
        f"issue_to_pr #{n}" for n in numbers), ran
    pulls = pipe.pulls()
    assert sorted(p["body"] for p in pulls) == sorted(f"Closes #{n}" for n in numbers)

    lost = workers["machine-a"]
    killed: list[int] = []

    def kill_mid_leaf() -> None:  # once its agents run (4 at most), their number steady for 5 s
        deadline, seen, steady = time.monotonic() + 240, 0, time.monotonic()
        while time.monotonic() < deadline and (seen < 4 and (not seen or time.monotonic() - steady < 5)):
            now = agents_of(lost)
            if now != seen:
                seen, steady = now, time.monotonic()
            time.sleep(0.2)
        killed.append(agents_of(lost))
        lose_machine(lost)

    killer = threading.Thread(target=kill_mid_leaf, daemon=True)
    killer.start()
    second = run_pass(server, pipe, github, tmp_path / "conductor", sandbox, "--sleep", "25")
    killer.join()

    assert killed and killed[0] > 0, "no agent ever ran on machine-a during the reviews"
    crashed = [r for r in leaf_runs(server, pipe.full_name) if r["state_type"] == "CRASHED"]
    assert crashed, "no leaf run was marked Crashed"
    failed = {r["number"]: r["reason"] for r in results_of(second) if not r["ok"]}
    assert sorted(failed) == sorted(r["parameters"]["number"] for r in crashed), failed
    assert all("worker was lost" in reason for reason in failed.values()), failed

    for _ in range(3):  # the next passes finish the pipeline on machine-b
        if not pipe.pulls():
            break
        run_pass(server, pipe, github, tmp_path / "conductor", sandbox, "--sleep", "1")

    assert pipe.pulls() == []
    closed = pipe.pulls(state="closed")
    assert sorted(p["body"] for p in closed) == sorted(f"Closes #{n}" for n in numbers)  # no PR twice
    assert all(pipe.call("GET", f"/pulls/{p['number']}")["merged"] for p in closed)
    assert all(pipe.call("GET", f"/issues/{n}")["state"] == "closed" for n in numbers)
    runs = leaf_runs(server, pipe.full_name)
    done = Counter((r["parameters"]["dispatch"]["kind"], r["parameters"]["number"]) for r in runs
                   if r["state_type"] == "COMPLETED")
    assert set(done.values()) == {1} and len(done) == 16, done  # every leaf once: 8 issues, 8 reviews
    assert {r["state_type"] for r in runs} == {"COMPLETED", "CRASHED"}
    for n in [*numbers, *(p["number"] for p in closed)]:
        assert not {constants.STATUS_IN_PROGRESS, constants.STATUS_PR_OPEN} & set(pipe.labels_of(n))
    clone = machines["machine-b"] / ".conductor" / "clones" / pipe.full_name
    assert [Path(w.path) for w in worktrees.list_worktrees(clone)] == [clone.resolve()]

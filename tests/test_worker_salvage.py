"""A worker salvages the worktrees killed leaves left in its clone (leaves on workers,
CONDUCTOR_DISPATCH=deployment): each leaf run, before it makes its worktree, saves and removes
the worktrees of leaves whose process is dead on this machine or whose run is final or gone,
never a live leaf's, under one lock per clone. Real git and worktrees; the leaf runs are real
flow runs of `remote_leaf` (processes of their own, as a worker starts them) on the session's
Prefect server, against the sandbox."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conductor.actions import orphans
from conductor.actions.coordinator import AGENT_PID_FILE, LEAF_OWNER_FILE, PassContext
from conductor.core import workflows
from conductor.core.leaf import LeafOwner, leaf_orphaned
from conductor.core.models import Dispatch
from conductor.core.settings import Settings
from conductor.edges import worktrees
from conductor.edges.agent_process import process_started
from pipeline_support import AGENT_LOGIN, READER_LOGIN, PipelineRepo, make_pipeline_repo

UI = "phase-4/new-ui-pages"
LOG = logging.getLogger("test-worker-salvage")
PROJECT = Path(__file__).resolve().parents[1]
DEMO_AGENT = [sys.executable, "-m", "shell.demo_agent"]
# The half-done agent a killed leaf leaves running until the next leaf stops it, spelled so that
# test_flow's look for stray `--mode half-done` agents never sees it.
HALF_DONE = "--mode=half-done"
OWNER = LeafOwner(run_id="run-1", host="machine-a", pid=41, started="1000")


@pytest.mark.parametrize("owner, started, ended, orphaned", [
    (None, None, False, True),  # nobody recorded making it: its maker died inside the clone's lock
    (OWNER, None, False, True),  # its process is dead here
    (OWNER, "2000", False, True),  # its pid now names another process
    (OWNER, "1000", True, True),  # alive, but its run is final or gone (marked Crashed, cancelled)
    (OWNER, "1000", False, False),  # alive and running: a live leaf's
    (OWNER.model_copy(update={"host": "machine-b"}), None, False, False),  # another machine's: its run decides
    (OWNER.model_copy(update={"host": "machine-b"}), None, True, True),
])
def test_a_leaf_worktree_is_orphaned_by_facts_of_its_process_and_run(owner, started, ended, orphaned):
    asked: list[str] = []

    def run_ended(run_id: str) -> bool:
        asked.append(run_id)
        return ended

    assert leaf_orphaned(owner, "machine-a", lambda pid: started if pid == 41 else None, run_ended) is orphaned
    # the Prefect API is asked only when the process lives or is not this machine's
    assert asked == (["run-1"] if owner is not None and (started == "1000" or owner.host != "machine-a") else [])


def test_a_process_start_names_a_live_process_and_none_once_it_is_dead():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_started(proc.pid) is not None
        assert process_started(os.getpid()) == process_started(os.getpid()) != process_started(proc.pid)
    finally:
        proc.kill()
    proc.wait()  # reaped
    assert process_started(proc.pid) is None


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker's clone (of a bare origin whose `dev` has one pushed commit)."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "dev", str(origin))
    clone = tmp_path / "clones" / "owner" / "repo"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    (clone / "README.md").write_text("hello\n")
    git(clone, "add", "README.md")
    git(clone, "commit", "-q", "-m", "initial")
    git(clone, "push", "-q", "origin", "HEAD:dev")
    return clone


def test_salvage_waits_for_a_leaf_making_its_worktree_and_spares_it(clone: Path, tmp_path: Path):
    """A leaf holds the clone's lock from its add to its owner record: a salvage started in
    between waits, then finds the worktree with its live owner and leaves it alone."""
    root, salvage_dir = tmp_path / "worktrees", tmp_path / "salvage"
    sha = worktrees.integration_tip(clone, "dev")
    done: list[list] = []
    with worktrees.clone_lock(clone):
        making = worktrees.create_worktree(clone, root, "issue-7-pass0001", sha)
        (making / "work.md").write_text("the agent's work\n")
        salvaging = threading.Thread(target=lambda: done.append(orphans.clean_on_worker(
            clone, root, salvage_dir=salvage_dir, run_ended=lambda run_id: False, log=LOG)))
        salvaging.start()
        salvaging.join(1.5)
        assert salvaging.is_alive() and making.is_dir(), "the salvage did not wait for the clone's lock"
        (worktrees.private_dir(making) / LEAF_OWNER_FILE).write_text(orphans.owner_here("run-7").model_dump_json())
    salvaging.join(30)

    assert done == [[]]
    assert making.is_dir() and (making / "work.md").is_file()
    assert not salvage_dir.exists()


# ── leaf runs on a worker: the sandbox, the session's Prefect server ─────────────


class Worker:
    """One worker machine: its own home (clone cache, worktrees, salvage), its tokens; each
    leaf a flow run of `remote_leaf` in a process of its own, as the worker starts them."""

    def __init__(self, pipe: PipelineRepo, home: Path):
        self.pipe, self.home = pipe, home
        home.mkdir(parents=True, exist_ok=True)
        name = pipe.full_name.split("/")[1]
        self.clone = home / ".conductor" / "clones" / pipe.full_name
        self.root = home / ".conductor" / "worktrees" / name
        self.salvage = home / ".conductor" / "salvage" / name
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("CONDUCTOR_WORKTREE_ROOT", "CONDUCTOR_SALVAGE_DIR", "PYTEST_XDIST_WORKER")}
        self.env.update(HOME=str(home), GITHUB_TOKEN=pipe.sandbox.users[READER_LOGIN],
                        CONDUCTOR_AGENT_TOKEN=pipe.sandbox.users[AGENT_LOGIN], PYTHONPATH=str(PROJECT))

    def start(self, number: int, pass_id: str, *agent_args: str) -> subprocess.Popen:
        """Leaf `number` of pass `pass_id`, its agent the demo agent with `agent_args`."""
        ctx = PassContext(settings=Settings(github={"api_url": self.pipe.sandbox.api_url},
                                            run={"repo": self.pipe.full_name, "agent_command": [*DEMO_AGENT, *agent_args],
                                                 "agent_timeout": 300}),
                          default_branch="main", pass_id=pass_id)
        dispatch = Dispatch(kind=workflows.ISSUE_TO_PR.kind, phase=UI, batch="batch-01", items=[number])
        code = ("import sys; from flows.coordinators import remote_leaf; "
                "from conductor.actions.coordinator import PassContext; from conductor.core.models import Dispatch; "
                "state = remote_leaf(int(sys.argv[1]), Dispatch.model_validate_json(sys.argv[2]), "
                "PassContext.model_validate_json(sys.argv[3]), return_state=True); "
                "print('LEAF', state.type.value, state.message, flush=True)")
        return subprocess.Popen([sys.executable, "-c", code, str(number), dispatch.model_dump_json(),
                                 ctx.model_dump_json()], cwd=self.home, env=self.env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def worktree(self, number: int, pass_id: str) -> Path:
        return self.root / workflows.ISSUE_TO_PR.leaf_name(number, pass_id)

    def agent_pid(self, number: int, pass_id: str) -> int | None:
        pid_file = self.clone / ".git" / "worktrees" / self.worktree(number, pass_id).name / AGENT_PID_FILE
        return int(pid_file.read_text()) if pid_file.is_file() else None

    def wait_for(self, what: str, check, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 120
        while not check():
            assert time.monotonic() < deadline and proc.poll() is None, f"{what} never happened: {proc.stdout.read()}"
            time.sleep(0.2)


def finished(proc: subprocess.Popen) -> str:
    try:
        return proc.communicate(timeout=240)[0]
    except subprocess.TimeoutExpired:
        stop(proc)
        raise


def stop(proc: subprocess.Popen) -> None:
    """kill -9 of a leaf's process (its agent, a session of its own, goes on)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def alive(pid: int) -> bool:
    return process_started(pid) is not None


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path: Path) -> PipelineRepo:
    from conftest import unique_repo_name

    return make_pipeline_repo(sandbox, unique_repo_name("worker-salvage"), tmp_path)


def test_the_next_leaf_salvages_a_killed_leafs_worktree_and_leaves_a_live_leafs_alone(
        pipe: PipelineRepo, prefect_server: str, tmp_path: Path):
    from prefect.client.orchestration import get_client

    killed_item, live_item, next_item = (pipe.issue(f"Page {c}", UI, "batch-01") for c in "ABC")
    worker = Worker(pipe, tmp_path / "machine-a")
    leaves: list[subprocess.Popen] = []
    agents: dict[int, str | None] = {}  # the agents this test leaves running, stopped at its end
    try:
        leaves.append(killed := worker.start(killed_item, "dead0001", HALF_DONE))
        worker.wait_for("the killed leaf's half-done work",
                        lambda: (worker.worktree(killed_item, "dead0001") / "uncommitted.md").is_file(), killed)
        killed_agent = worker.agent_pid(killed_item, "dead0001")
        agents[killed_agent] = process_started(killed_agent)
        stop(killed)
        leaves.append(live := worker.start(live_item, "live0001", "--sleep", "600"))
        worker.wait_for("the live leaf's agent", lambda: worker.agent_pid(live_item, "live0001"), live)
        live_agent = worker.agent_pid(live_item, "live0001")
        agents[live_agent] = process_started(live_agent)

        out = finished(worker.start(next_item, "next0001"))

        assert "LEAF COMPLETED" in out, out
        # the killed leaf's work: saved (a patch and a bundle in the worker's salvage dir), its
        # worktree removed, its agent stopped
        assert not worker.worktree(killed_item, "dead0001").exists()
        [saved] = list(worker.salvage.glob(f"issue-{killed_item}-dead0001-*"))
        assert "uncommitted.md" in (saved / "uncommitted.patch").read_text()
        heads = git(worker.clone, "bundle", "list-heads", str(saved / "unpushed.bundle"))
        assert f"refs/heads/agent/item-{killed_item}" in heads
        assert not alive(killed_agent)
        # the live leaf's: untouched, its agent still working, its run still Running
        assert worker.worktree(live_item, "live0001").is_dir() and alive(live_agent)
        owner = LeafOwner.model_validate_json(
            (worktrees.private_dir(worker.worktree(live_item, "live0001")) / LEAF_OWNER_FILE).read_text())
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(uuid.UUID(owner.run_id)).state.is_running()
        assert list(worker.salvage.iterdir()) == [saved]
        assert [Path(w.path).name for w in worktrees.list_worktrees(worker.clone)[1:]] == [
            worker.worktree(live_item, "live0001").name]
    finally:
        for proc in leaves:
            stop(proc)
        for pid, started in agents.items():
            if started and process_started(pid) == started:
                os.killpg(pid, signal.SIGKILL)


def test_two_leaves_starting_at_once_on_one_clone_salvage_once_and_keep_each_others_worktrees(
        pipe: PipelineRepo, tmp_path: Path):
    numbers = [pipe.issue(f"Page {c}", UI, "batch-01") for c in "AB"]
    worker = Worker(pipe, tmp_path / "machine-a")
    worktrees.synced_clone(f"{pipe.sandbox.base_url}/{pipe.full_name}.git", worker.clone, None)
    # a worktree a killed leaf left: its process dead, its run gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = worktrees.create_worktree(worker.clone, worker.root, "issue-99-dead0002",
                                       worktrees.integration_tip(worker.clone, "dev"))
    (orphan / "left.md").write_text("work a killed leaf left\n")
    owner = LeafOwner(run_id=str(uuid.uuid4()), host=socket.gethostname(), pid=int(dead.stdout), started="0")
    (worktrees.private_dir(orphan) / LEAF_OWNER_FILE).write_text(owner.model_dump_json())

    leaves = [worker.start(n, "both0001", "--sleep", "2") for n in numbers]  # both at once
    outs = [finished(proc) for proc in leaves]

    assert all("LEAF COMPLETED" in out for out in outs), outs
    assert not any("could not" in out for out in outs), outs
    [saved] = list(worker.salvage.iterdir())  # salvaged once, by one of them
    assert saved.name.startswith("issue-99-dead0002-") and "left.md" in (saved / "uncommitted.patch").read_text()
    assert sorted(p["body"] for p in pipe.pulls()) == sorted(f"Closes #{n}" for n in numbers)
    assert worktrees.list_worktrees(worker.clone)[1:] == []

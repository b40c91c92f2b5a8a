"""The `conductor/on-change` deployment as prefect.yaml writes it (trigger, concurrency limit),
on a real Prefect server, served by a real runner, with the conductor's own slot and coalescing
around a stand-in pass (`tests/coalesce_probe.py`): signed deliveries through the webhook
receiver start a pass at once, a burst during a pass leaves exactly one more, and an event
during a pass is never lost."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr

from conductor.core.webhooks import sign
from deployments.webhooks import Receiver, emit_to_prefect, make_server

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parent.parent


def on_change_spec() -> dict:
    data = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
    return next(d for d in data["deployments"] if d["name"] == "on-change")


def test_prefect_yaml_on_change_fires_at_every_event_and_enqueues():
    spec = on_change_spec()
    assert spec["concurrency_limit"] == {"limit": 2, "collision_strategy": "ENQUEUE"}
    [trigger] = spec["triggers"]
    assert (trigger["posture"], trigger["threshold"], trigger["within"]) == ("Reactive", 1, 0)
    assert trigger["for_each"] == ["prefect.resource.id"]


def test_a_pass_that_asks_for_the_next_one_starts_it():
    from conductor.core.webhooks import MORE_WORK_EVENT

    # the pass's own event is taken like a GitHub one (its own writes start no pass)
    assert all(MORE_WORK_EVENT in t["expect"] for t in on_change_spec()["triggers"])


async def _install(api: str, spec: dict) -> tuple[uuid.UUID, list[uuid.UUID]]:
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_id = await client.create_flow_from_name("conductor")
        deployment_id = await client.create_deployment(
            flow_id=flow_id, name=f"on-change-test-{secrets.token_hex(3)}", entrypoint=spec["entrypoint"])
        automations = []
        for trigger in _initialize_deployment_triggers("on-change", [dict(t) for t in spec["triggers"]]):
            trigger.set_deployment_id(deployment_id)
            automations.append(await client.create_automation(trigger.as_automation()))
    return deployment_id, automations


async def _runs(deployment_id: uuid.UUID) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        return await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


async def _remove(automations: list[uuid.UUID]) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for automation in automations:
            await client.delete_automation(automation)


class Probe:
    """`coalesce-probe/on-change` served in a process of its own; deliveries through a real
    receiver; the passes it made, read from its folder."""

    def __init__(self, folder: Path, prefect_server: str) -> None:
        self.folder, self.secret = folder, "s-" + secrets.token_hex(4)
        env = {**os.environ, "PROBE_DIR": str(folder), "PREFECT_API_URL": prefect_server,
               "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PYTHONPATH": str(PROJECT / "tests")}
        self.log = open(folder / "served.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-c", "import coalesce_probe; coalesce_probe.main()"],
                                        cwd=PROJECT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.receiver = Receiver(SecretStr(self.secret), ["conductor-bot"], emit=emit_to_prefect)
        self.server = make_server(self.receiver, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.delivered = 0
        self.until(lambda: self.deployment_id() is not None, 120, "the probe deployment is served")

    def deployment_id(self):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            try:
                return client.read_deployment_by_name("coalesce-probe/on-change").id
            except Exception:  # noqa: BLE001 - not registered yet
                return None

    def deliver(self, repo: str, count: int = 1) -> None:
        """`count` signed `issues.labeled` deliveries, each recorded as an event first."""
        for _ in range(count):
            self.delivered += 1
            with open(self.folder / "events", "a") as out:
                out.write(f"{self.delivered}\n")
            body = (f'{{"action": "labeled", "issue": {{"number": {self.delivered}}}, '
                    f'"repository": {{"full_name": "{repo}"}}, "sender": {{"login": "alice"}}}}').encode()
            answer = httpx.post(f"http://127.0.0.1:{self.server.server_address[1]}/", content=body, timeout=60,
                                headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
                                         "X-Hub-Signature-256": sign(self.secret.encode(), body)})
            assert answer.json()["outcome"] == "emitted"

    def passes(self) -> list[dict]:
        path = self.folder / "passes"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def settled(self) -> bool:
        """No run of the probe left to start or finish."""
        runs = asyncio.run(_runs(self.deployment_id()))
        return bool(runs) and all(r.state is not None and r.state.is_final() for r in runs)

    def until(self, check, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert self.process.poll() is None, (self.folder / "served.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"timed out waiting until {what}: passes {self.passes()}, runs " + \
                ", ".join(f"{r.name} {r.state.name if r.state else None}" for r in asyncio.run(_runs(self.deployment_id())))
            time.sleep(0.3)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def probe(prefect_server: str, tmp_path: Path):
    served = Probe(tmp_path, prefect_server)
    yield served
    served.close()


def test_a_burst_of_20_deliveries_during_a_pass_gives_exactly_one_more_pass(probe: Probe):
    repo = f"octo/burst-{secrets.token_hex(3)}"
    started = time.monotonic()
    probe.deliver(repo)
    probe.until(lambda: _pass_started(probe), 60, "the first pass started")
    first_at = time.monotonic() - started
    probe.deliver(repo, 20)  # during the first pass (8 s long)
    assert not probe.passes(), "the burst was sent after the first pass ended"
    probe.until(lambda: len(probe.passes()) >= 2 and probe.settled(), 120, "the runs settled")
    time.sleep(3)
    passes = probe.passes()
    runs = asyncio.run(_runs(probe.deployment_id()))
    print(f"21 deliveries: {len(runs)} runs, {len(passes)} passes, the first pass {first_at:.1f} s after "
          f"the first delivery, the second {passes[1]['start'] - passes[0]['end']:.1f} s after the first ended")
    assert len(passes) == 2, passes
    assert passes[0]["seen"] == 1 and passes[1]["seen"] == 21  # the second read after the whole burst
    assert passes[1]["start"] >= passes[0]["end"]  # one at a time
    # the run that made the first pass made the second at once (no queue, no process start) ...
    assert passes[1]["run"] == passes[0]["run"], passes
    # ... and the burst's queued runs were cancelled before they started: the one the
    # deployment's second slot let start beside the pass, and any the automation made only
    # after the pass's read (on a loaded machine), started and ended themselves
    started = [r.name for r in runs if r.run_count > 0 and r.name != passes[0]["run"]]
    assert len(runs) == 21 and len(started) <= 5, started
    # the queued runs the coalescing cancelled end Cancelled (or, when the runner had just picked
    # one up, Crashed "cancelled by the runtime environment"); none fails, none is left unfinished
    probe.until(lambda: all(r.state.is_final() for r in asyncio.run(_runs(probe.deployment_id()))), 60,
                "every run ended")
    runs = asyncio.run(_runs(probe.deployment_id()))
    assert all(r.state.is_completed() or r.state.is_cancelled()
               or (r.state.is_crashed() and "cancelled" in (r.state.message or "")) for r in runs), [
        (r.name, r.state.type, r.state.name, r.state.message) for r in runs
        if not (r.state.is_completed() or r.state.is_cancelled())]


def test_an_event_during_a_pass_is_never_lost(probe: Probe):
    repo = f"octo/late-{secrets.token_hex(3)}"
    probe.deliver(repo)
    probe.until(lambda: _pass_started(probe), 60, "the first pass started")
    for _ in range(3):  # events spread over the pass, the last near its end
        time.sleep(2.2)
        probe.deliver(repo)
    probe.until(lambda: probe.passes() and probe.passes()[-1]["seen"] == probe.delivered and probe.settled(),
                120, "a pass saw every event")
    passes = probe.passes()
    assert 2 <= len(passes) <= 3, passes
    assert all(a["end"] <= b["start"] for a, b in zip(passes, passes[1:])), passes  # one at a time


def _pass_started(probe: Probe) -> bool:
    """A pass began (its run took the repository's slot)."""
    return (probe.folder / "begun").exists()

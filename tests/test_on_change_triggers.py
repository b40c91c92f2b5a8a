"""The `conductor/on-change` deployment's triggers, exactly as prefect.yaml writes them, on a real
Prefect server: a burst of 20 signed deliveries through the webhook receiver starts one flow run
at once and at most one more when the burst ends."""
from __future__ import annotations

import asyncio
import secrets
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


def test_prefect_yaml_on_change_is_debounced_and_enqueued():
    spec = on_change_spec()
    assert spec["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    postures = sorted(t["posture"] for t in spec["triggers"])
    assert postures == ["Proactive", "Reactive"]
    assert all(t["for_each"] == ["prefect.resource.id"] for t in spec["triggers"])


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


def test_a_burst_of_20_deliveries_gives_at_most_2_passes(prefect_server: str):
    deployment_id, automations = asyncio.run(_install(prefect_server, on_change_spec()))
    secret = "s-" + secrets.token_hex(4)
    receiver = Receiver(SecretStr(secret), ["conductor-bot"], emit=emit_to_prefect)
    server = make_server(receiver, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    repo = f"octo/burst-{secrets.token_hex(3)}"
    try:
        started = time.monotonic()
        for n in range(20):
            body = (f'{{"action": "labeled", "issue": {{"number": {n + 1}}}, "repository": {{"full_name": "{repo}"}},'
                    f' "sender": {{"login": "alice"}}}}').encode()
            answer = httpx.post(url, content=body, timeout=60, headers={
                "X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sign(secret.encode(), body)})
            assert answer.json()["outcome"] == "emitted"
        first_seen = None
        deadline = time.monotonic() + 90
        runs: list = []
        while time.monotonic() < deadline:
            runs = asyncio.run(_runs(deployment_id))
            if runs and first_seen is None:
                first_seen = time.monotonic() - started
            if len(runs) >= 2:
                break
            time.sleep(1)
        time.sleep(15)  # longer than the quiet window: no third run may follow
        runs = asyncio.run(_runs(deployment_id))
    finally:
        server.shutdown()
        server.server_close()
        asyncio.run(_remove(automations))
    assert first_seen is not None and first_seen < 30, f"no run within 30 s (first at {first_seen})"
    print(f"on-change runs for the burst: {len(runs)}, first after {first_seen:.1f} s")
    assert 1 <= len(runs) <= 2, [r.name for r in runs]
    assert {r.parameters.get("repo") for r in runs} == {repo}

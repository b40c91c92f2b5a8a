"""End to end: a PR merged on the sandbox reaches the conductor as a webhook and the
`conductor/on-change` triggers (as prefect.yaml writes them) start a pass on a real Prefect
server within seconds: sandbox hook -> `Receiver` over HTTP -> Prefect event -> automation ->
flow run of the deployment."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pydantic import SecretStr

from deployments.webhooks import Receiver, emit_to_prefect, make_server
from test_on_change_triggers import _install, _remove, _runs, on_change_spec

pytestmark = pytest.mark.e2e
SECRET = "e2e-hook-secret"


def test_a_merged_pr_starts_a_pass_within_seconds(sandbox, sandbox_repo, prefect_server):
    deployment_id, automations = asyncio.run(_install(prefect_server, on_change_spec()))
    receiver = Receiver(SecretStr(SECRET), ["conductor-bot"], emit=emit_to_prefect)
    server = make_server(receiver, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sandbox.commit_files(sandbox_repo, "feature", {"a.txt": "a\n"}, message="feature")
        with sandbox.api() as client:
            number = client.post(f"/repos/{sandbox_repo}/pulls", json={
                "title": "Feature", "head": "feature", "base": "main"}).json()["number"]
            assert client.post(f"/repos/{sandbox_repo}/hooks", json={
                "events": ["pull_request"], "config": {
                    "url": f"http://127.0.0.1:{server.server_address[1]}/", "content_type": "json",
                    "secret": SECRET}}).status_code == 201
            merged_at = time.monotonic()
            assert client.put(f"/repos/{sandbox_repo}/pulls/{number}/merge", json={}).status_code == 200
        runs, waited = [], 0.0
        while not runs and (waited := time.monotonic() - merged_at) < 60:
            runs = asyncio.run(_runs(deployment_id))
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
        asyncio.run(_remove(automations))
    print(f"a merged PR started an on-change pass after {waited:.1f} s")
    assert receiver.emitted == 1
    assert runs and runs[0].parameters["repo"] == sandbox_repo
    assert waited < 15, f"the pass started {waited:.1f} s after the merge"

"""The webhook receiver over real HTTP, emitting to the session's real Prefect server: what a
delivery becomes is read back from Prefect's events API."""
from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from conductor.core.webhooks import event_id, sign
from deployments.webhooks import Receiver, emit_to_prefect, make_server

pytestmark = pytest.mark.slow

SECRET = "hook-secret-" + secrets.token_hex(4)
OWN = "conductor-bot"


def delivery_body(repo: str, action: str = "closed", sender: str = "alice", number: int = 3) -> bytes:
    return json.dumps({"action": action, "number": number, "pull_request": {"number": number},
                       "repository": {"full_name": repo}, "sender": {"login": sender}}).encode()


class Running:
    def __init__(self, url: str, receiver: Receiver) -> None:
        self.url, self.receiver = url, receiver

    def post(self, body: bytes, *, event: str = "pull_request", delivery: str | None = None,
             secret: str | None = SECRET, signature: str | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": delivery or str(uuid.uuid4())}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        elif secret is not None:
            headers["X-Hub-Signature-256"] = sign(secret.encode(), body)
        return httpx.post(self.url, content=body, headers=headers, timeout=60)


def start_receiver() -> tuple[Running, callable]:
    receiver = Receiver(SecretStr(SECRET), [OWN], emit=emit_to_prefect)
    server = make_server(receiver, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return Running(f"http://127.0.0.1:{server.server_address[1]}/", receiver), stop


@pytest.fixture
def running(prefect_server: str) -> Iterator[Running]:
    run, stop = start_receiver()
    yield run
    stop()


def events_for(api: str, repo: str) -> list[dict]:
    answer = httpx.post(f"{api}/events/filter", json={
        "filter": {"resource": {"id": [f"github.repository.{repo}"]}, "order": "ASC"}, "limit": 50},
        timeout=60)
    answer.raise_for_status()
    return answer.json()["events"]


def settled_events(api: str, repo: str, sentinel: Running) -> list[dict]:
    """The repository's events once everything sent before now is stored: a signed sentinel
    delivery goes last, and its arrival means the earlier ones have arrived too."""
    sentinel_delivery = "sentinel-" + secrets.token_hex(6)
    assert sentinel.post(delivery_body(repo, action="reopened"), delivery=sentinel_delivery).status_code == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = events_for(api, repo)
        if any(e["payload"].get("delivery") == sentinel_delivery for e in events):
            return [e for e in events if e["payload"].get("delivery") != sentinel_delivery]
        time.sleep(0.3)
    raise AssertionError(f"the sentinel event for {repo} never reached Prefect")


def test_signed_delivery_becomes_one_prefect_event(prefect_server: str, running: Running):
    repo = f"octo/merged-{secrets.token_hex(3)}"
    answer = running.post(delivery_body(repo), delivery="d-" + secrets.token_hex(6))
    assert answer.status_code == 202 and answer.json()["outcome"] == "emitted"
    events = settled_events(prefect_server, repo, running)
    assert [e["event"] for e in events] == ["github.pull_request.closed"]
    assert events[0]["resource"]["prefect.resource.name"] == repo
    assert events[0]["payload"]["number"] == 3


@pytest.mark.parametrize("how", ["missing", "wrong secret", "tampered body", "malformed"])
def test_bad_or_missing_signature_is_401_and_nothing_is_emitted(prefect_server: str, running: Running, how):
    repo = f"octo/forged-{secrets.token_hex(3)}"
    body = delivery_body(repo)
    if how == "missing":
        answer = running.post(body, secret=None)
    elif how == "wrong secret":
        answer = running.post(body, secret="not-" + SECRET)
    elif how == "tampered body":
        answer = running.post(body, signature=sign(SECRET.encode(), body.replace(b"alice", b"mallory")))
    else:
        answer = running.post(body, signature="sha256=zz")
    assert answer.status_code == 401
    assert running.receiver.emitted == 0
    assert settled_events(prefect_server, repo, running) == []


def test_the_conductors_own_writes_and_other_events_emit_nothing(prefect_server: str, running: Running):
    repo = f"octo/own-{secrets.token_hex(3)}"
    own = running.post(delivery_body(repo, action="labeled", sender=OWN))
    assert own.status_code == 202 and own.json()["outcome"] == "ignored"
    comment = running.post(delivery_body(repo, action="created"), event="issue_comment")
    assert comment.json()["outcome"] == "ignored"
    assigned = running.post(delivery_body(repo, action="assigned"))
    assert assigned.json()["outcome"] == "ignored"
    assert settled_events(prefect_server, repo, running) == []


def test_a_redelivered_webhook_is_one_event(prefect_server: str, running: Running):
    repo = f"octo/redelivered-{secrets.token_hex(3)}"
    delivery = str(uuid.uuid4())
    body = delivery_body(repo)
    assert running.post(body, delivery=delivery).json()["outcome"] == "emitted"
    assert running.post(body, delivery=delivery).json()["outcome"] == "duplicate"
    # A restarted receiver has forgotten the GUID: the event id is the same, and Prefect keeps one.
    other, stop = start_receiver()
    try:
        assert other.post(body, delivery=delivery).json()["outcome"] == "emitted"
        events = settled_events(prefect_server, repo, other)
    finally:
        stop()
    assert [e["id"] for e in events] == [str(event_id(delivery))]


def test_health_and_unknown_paths(running: Running):
    assert httpx.get(running.url + "healthz").json()["ok"] is True
    assert httpx.get(running.url + "nope").status_code == 404
    assert running.post(b"not json{").status_code == 400

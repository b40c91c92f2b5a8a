"""The sandbox delivers webhooks as GitHub does: hooks over the REST API, signed JSON deliveries
after the write that caused them, GitHub's payload shapes (validated with githubkit's published
webhook schemas), never retried, listed under /_sandbox/hooks/deliveries."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from githubkit.webhooks import parse_obj, verify
from pydantic import SecretStr

from deployments.webhooks import Receiver, make_server

SECRET = "sandbox-hook-secret"


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.got.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, count: int, timeout: float = 15) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.got

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


def make_hook(sandbox, repo: str, url: str, events=("issues", "pull_request")) -> dict:
    with sandbox.api() as client:
        answer = client.post(f"/repos/{repo}/hooks", json={
            "name": "web", "active": True, "events": list(events),
            "config": {"url": url, "content_type": "json", "secret": SECRET}})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_hooks_deliver_signed_github_shaped_payloads(sandbox, sandbox_repo, recorder):
    hook = make_hook(sandbox, sandbox_repo, recorder.url)
    assert hook["config"]["secret"] == "********" and SECRET not in json.dumps(hook)
    with sandbox.api() as client:
        assert [h["id"] for h in client.get(f"/repos/{sandbox_repo}/hooks").json()] == [hook["id"]]
        number = client.post(f"/repos/{sandbox_repo}/issues", json={"title": "Page A"}).json()["number"]
        client.post(f"/repos/{sandbox_repo}/issues/{number}/labels", json={"labels": ["phase-1/x"]})
        client.patch(f"/repos/{sandbox_repo}/issues/{number}", json={"title": "Page A2"})
        client.patch(f"/repos/{sandbox_repo}/issues/{number}", json={"state": "closed"})
        client.post(f"/repos/{sandbox_repo}/issues/{number}/comments", json={"body": "not a hook event"})
    got = recorder.wait(4)
    time.sleep(0.3)
    assert [(h["X-GitHub-Event"], json.loads(b)["action"]) for h, b in got] == [
        ("issues", "opened"), ("issues", "labeled"), ("issues", "edited"), ("issues", "closed")]
    for headers, body in got:
        assert verify(SECRET, body, headers["X-Hub-Signature-256"])
        payload = json.loads(body)
        parse_obj(headers["X-GitHub-Event"], payload)  # GitHub's published schema for the event
        assert payload["repository"]["full_name"] == sandbox_repo
        assert payload["sender"]["login"] == sandbox.admin_login
    assert json.loads(got[1][1])["label"]["name"] == "phase-1/x"
    assert json.loads(got[2][1])["changes"] == {"title": {"from": "Page A"}}
    guids = {h["X-GitHub-Delivery"] for h, _ in got}
    listed = [d for d in sandbox.control.hook_deliveries() if d["guid"] in guids]
    assert len(listed) == 4 and {d["status_code"] for d in listed} == {200}


def test_a_failed_delivery_is_never_retried_and_a_deleted_hook_sends_nothing(sandbox, sandbox_repo, recorder):
    dead = make_hook(sandbox, sandbox_repo, "http://127.0.0.1:9/nobody-listens")
    with sandbox.api() as client:
        client.post(f"/repos/{sandbox_repo}/issues", json={"title": "one"})
        time.sleep(1.0)
        mine = [d for d in sandbox.control.hook_deliveries() if d["hook_id"] == dead["id"]]
        assert len(mine) == 1 and mine[0]["error"] and mine[0]["status_code"] is None
        assert client.delete(f"/repos/{sandbox_repo}/hooks/{dead['id']}").status_code == 204
        live = make_hook(sandbox, sandbox_repo, recorder.url, events=("pull_request",))
        client.post(f"/repos/{sandbox_repo}/issues", json={"title": "two"})  # issues: not subscribed
        time.sleep(1.0)
        assert recorder.got == []
        assert len([d for d in sandbox.control.hook_deliveries() if d["hook_id"] == dead["id"]]) == 1
        assert client.delete(f"/repos/{sandbox_repo}/hooks/{live['id']}").status_code == 204
        assert client.delete(f"/repos/{sandbox_repo}/hooks/{live['id']}").status_code == 404


def test_the_conductors_own_writes_start_nothing(sandbox, sandbox_repo):
    """Sandbox → receiver: the admin plays the conductor; bob's label is a human's change."""
    emitted = []
    receiver = Receiver(SecretStr(SECRET), [sandbox.admin_login], emit=emitted.append)
    server = make_server(receiver, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        make_hook(sandbox, sandbox_repo, f"http://127.0.0.1:{server.server_address[1]}/")
        with sandbox.api() as client:
            client.put(f"/repos/{sandbox_repo}/collaborators/bob", json={"permission": "triage"})
            number = client.post(f"/repos/{sandbox_repo}/issues", json={"title": "x", "labels": ["a"]}).json()["number"]
        time.sleep(1.0)
        assert emitted == []  # opened + labeled by the conductor's own login
        with sandbox.api(sandbox.token_of("bob")) as client:
            assert client.post(f"/repos/{sandbox_repo}/issues/{number}/labels", json={"labels": ["b"]}).status_code == 200
        deadline = time.monotonic() + 10
        while not emitted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    assert [e.event for e in emitted] == ["github.issues.labeled"]
    assert emitted[0].payload["sender"] == "bob"


def test_pull_request_deliveries_match_githubs_schema(sandbox, sandbox_repo, recorder):
    make_hook(sandbox, sandbox_repo, recorder.url, events=("pull_request",))
    sandbox.commit_files(sandbox_repo, "feature", {"a.txt": "a\n"}, message="feature")
    with sandbox.api() as client:
        number = client.post(f"/repos/{sandbox_repo}/pulls", json={
            "title": "Feature", "head": "feature", "base": "main", "body": "Closes #1"}).json()["number"]
        assert client.put(f"/repos/{sandbox_repo}/pulls/{number}/merge", json={}).status_code == 200
    got = recorder.wait(2)
    time.sleep(0.3)
    assert [(h["X-GitHub-Event"], json.loads(b)["action"]) for h, b in got] == [
        ("pull_request", "opened"), ("pull_request", "closed")]
    for headers, body in got:
        parse_obj("pull_request", json.loads(body))
    closed = json.loads(got[1][1])
    assert closed["number"] == number and closed["pull_request"]["merged"] is True

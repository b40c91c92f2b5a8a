"""What a request can cost `conductor webhooks serve`, measured on the real process from outside
(its /proc/PID/status): bodies over GitHub's 25 MB are refused before they are read, large
unsigned bodies are hashed piece by piece and never held, at most 8 bodies are read at once
(429 beyond), a slow client is cut off at the read timeout, and good deliveries still get
through. Every client here is bounded and talks to 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.core.webhooks import MAX_BODY, sign
from deployments.webhooks import MAX_CONNECTIONS, MAX_IN_FLIGHT

pytestmark = pytest.mark.slow

SECRET = "hook-secret-" + secrets.token_hex(4)
READ_TIMEOUT = 4.0
MiB = 1024 * 1024
# The bound this file proves (README, webhook section): 12 concurrent 24 MiB unsigned bodies
# and a slow client raise the receiver's peak resident memory by at most this much.
MEMORY_BOUND = 24 * MiB
FLOOD, FLOOD_BODY = 12, 24 * MiB


class Serve:
    def __init__(self, proc: subprocess.Popen, port: int, err: Path) -> None:
        self.proc, self.port, self.err = proc, port, err

    def memory(self, field: str) -> int:
        """VmHWM (peak) or VmRSS of the receiver process, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=60)


def headers(length: int | None, *, signature: str | None = None, delivery: str = "",
            event: str = "pull_request") -> bytes:
    """A delivery's request line and headers; `length` None: a chunked body."""
    lines = ["POST / HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"X-GitHub-Event: {event}", f"X-GitHub-Delivery: {delivery or secrets.token_hex(8)}",
             "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"]
    if signature is not None:
        lines.append(f"X-Hub-Signature-256: {signature}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the answer on `sock` (0, {} when the receiver hung up)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    if not data:
        return 0, {}
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def delivery_body(repo: str) -> bytes:
    return json.dumps({"action": "closed", "pull_request": {"number": 7}, "repository": {"full_name": repo},
                       "sender": {"login": "alice"}}).encode()


def good_delivery(serve: Serve, repo: str) -> tuple[int, dict]:
    body = delivery_body(repo)
    sock = serve.connect()
    sock.sendall(headers(len(body), signature=sign(SECRET.encode(), body)) + body)
    return answer(sock)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def unsigned_flood_body(sock: socket.socket, size: int) -> tuple[int, dict]:
    """Send `size` bytes of unsigned body as fast as the receiver takes them; its answer."""
    piece = b"x" * MiB
    try:
        sock.sendall(headers(size, signature="sha256=" + "0" * 64))
        for _ in range(size // MiB):
            sock.sendall(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused (429) before its body was read: the answer may still be there
    return answer(sock)


@pytest.fixture(scope="module")
def serve(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("serve")
    ready, err = tmp / "ready", tmp / "stderr"
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    env.update(CONDUCTOR_WEBHOOK_SECRET=SECRET, PREFECT_API_URL=prefect_server)
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shell.cli", "webhooks", "serve", "--port", "0", "--ignore-login", "bot",
             "--read-timeout", str(READ_TIMEOUT), "--ready-file", str(ready)],
            env=env, stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        yield Serve(proc, int(ready.read_text().rstrip("/").rsplit(":", 1)[1]), err)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_unsigned_delivery_is_401_and_its_body_never_logged(serve: Serve):
    body = b'{"action": "closed", "secret": "do-not-log-me"}'
    sock = serve.connect()
    sock.sendall(headers(len(body)) + body)
    assert answer(sock)[0] == 401
    assert "do-not-log-me" not in serve.err.read_text()
    assert "listening on" in serve.err.read_text()


def test_a_body_over_githubs_limit_is_refused_before_it_is_read(serve: Serve):
    sock = serve.connect()
    sock.sendall(headers(MAX_BODY + 1, signature="sha256=" + "0" * 64))  # and not one byte of body
    status, data = answer(sock)
    assert status == 413 and "limit" in data["message"]


def test_a_chunked_body_is_read_and_refused_once_it_grows_past_the_limit(serve: Serve):
    body = delivery_body(f"octo/chunked-{secrets.token_hex(3)}")
    sock = serve.connect()
    sock.sendall(headers(None, signature=sign(SECRET.encode(), body))
                 + b"".join(chunk(body[i:i + 9]) for i in range(0, len(body), 9)) + b"0\r\n\r\n")
    assert answer(sock)[1]["outcome"] == "emitted"
    # 1 MiB, then a chunk that would take the body past 25 MB: refused before that chunk is read.
    sock = serve.connect()
    sock.sendall(headers(None, signature="sha256=" + "0" * 64) + chunk(b"x" * MiB)
                 + b"%x\r\n" % (MAX_BODY - MiB + 1))
    status, data = answer(sock)
    assert status == 413 and "limit" in data["message"]


def test_connections_beyond_the_cap_get_503_before_anything_is_read(serve: Serve):
    idle = [serve.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        one_more = serve.connect()
        one_more.sendall(headers(2) + b"{}")
        status, data = answer(one_more)
        assert status == 503 and "too many connections" in data["message"]
    finally:
        for sock in idle:
            sock.close()


def test_bodies_beyond_the_in_flight_cap_get_429_and_a_slow_client_is_cut_off(serve: Serve):
    # MAX_IN_FLIGHT slow clients: each sends its headers and one byte of a 1 KiB body, then waits.
    slow = [serve.connect() for _ in range(MAX_IN_FLIGHT)]
    started = time.monotonic()
    for sock in slow:
        sock.sendall(headers(1024, signature="sha256=" + "0" * 64) + b"{")
    # One more body: 401 while a slot was still free (the receiver had not yet taken in every
    # slow client), then 429 once all are taken.
    for _ in range(40):
        one_more = serve.connect()
        one_more.sendall(headers(2, signature="sha256=" + "0" * 64) + b"{}")
        status, data = answer(one_more)
        if status != 401:
            break
        time.sleep(0.05)
    assert status == 429 and "redeliver" in data["message"]
    # Each slow client is answered 408 at the read timeout, not later.
    assert [answer(sock)[0] for sock in slow] == [408] * MAX_IN_FLIGHT
    assert READ_TIMEOUT - 0.5 <= time.monotonic() - started < READ_TIMEOUT + 10
    # A client that trickles its headers is cut off as well.
    trickle, started = serve.connect(), time.monotonic()
    for byte in b"POST / HTTP/1.1\r\nX-Slow: ":
        try:
            trickle.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.25)
    assert answer(trickle) == (0, {})
    assert time.monotonic() - started < READ_TIMEOUT + 10
    # With the slots free again, a signed delivery goes through.
    status, data = good_delivery(serve, f"octo/after-slow-{secrets.token_hex(3)}")
    assert (status, data["outcome"]) == (202, "emitted")


def test_concurrent_large_unsigned_bodies_leave_memory_within_the_bound(serve: Serve):
    # Warm up: one good delivery, so what it costs (the emitter, imports) is part of the baseline.
    assert good_delivery(serve, f"octo/warm-{secrets.token_hex(3)}")[0] == 202
    baseline = serve.memory("VmHWM")
    answers: list[tuple[int, dict]] = []
    slow = serve.connect()
    slow.sendall(headers(1024, signature="sha256=" + "0" * 64) + b"{")  # holds a slot meanwhile
    flood = [threading.Thread(target=lambda: answers.append(unsigned_flood_body(serve.connect(), FLOOD_BODY)))
             for _ in range(FLOOD)]
    for thread in flood:
        thread.start()
    for thread in flood:
        thread.join(timeout=120)
    peak = serve.memory("VmHWM")
    statuses = sorted(status for status, _ in answers)
    # Every body was refused: fully read and hashed (401), cut off at the read timeout (408, on a
    # loaded machine), or turned away beyond the in-flight cap (429, or a reset while sending).
    assert len(statuses) == FLOOD and set(statuses) <= {0, 401, 408, 429}, statuses
    assert 401 in statuses, statuses
    growth = peak - baseline
    print(f"receiver peak memory {baseline / MiB:.1f} MiB -> {peak / MiB:.1f} MiB (+{growth / MiB:.1f} MiB); "
          f"answers {statuses}")
    assert growth <= MEMORY_BOUND, f"+{growth / MiB:.1f} MiB over the {MEMORY_BOUND / MiB:.0f} MiB bound"
    assert answer(slow)[0] == 408
    status, data = good_delivery(serve, f"octo/after-flood-{secrets.token_hex(3)}")
    assert (status, data["outcome"]) == (202, "emitted")

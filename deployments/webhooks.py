"""`conductor webhooks serve`: GitHub webhook deliveries in, one Prefect event each out.

    CONDUCTOR_WEBHOOK_SECRET=... GITHUB_TOKEN=... conductor webhooks serve --port 8787

It needs a reachable Prefect API (PREFECT_API_URL), and refuses to start without one. Every
POST is checked against `X-Hub-Signature-256` before anything else (wrong or missing: 401,
nothing emitted, the body is never logged), hashed as it is read: a body over GitHub's 25 MB is
refused before it is read, and what a request may cost in time, memory and connections is
bounded (`Receiver`, `make_server`). A signed delivery that can change the plan
(`conductor.core.webhooks.classify`) becomes one Prefect event `github.<event>.<action>` on the
resource `github.repository.OWNER/NAME`, with an id derived from the delivery GUID, so a
redelivery is the same event (the receiver also remembers the GUIDs it has seen, and
Prefect's event bus drops a repeated id). The `conductor/on-change` deployment's triggers
(prefect.yaml) turn those events into passes.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import socket
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

from pydantic import SecretStr

from conductor.core.settings import GitHubSettings, load_settings
from conductor.core.webhooks import (DELIVERY_HEADER, EVENT_HEADER, MAX_BODY, SIGNATURE_HEADER, Framing,
                                     PrefectEventSpec, SignatureCheck, body_framing, chunk_size, classify)
from tasks.secrets import webhook_secret, with_token

log = logging.getLogger("conductor.core.webhooks")
SEEN_LIMIT = 10_000
# What one request may cost: GitHub gives up on a delivery after 10 s, so a request that takes
# longer to arrive is dropped (READ_TIMEOUT, for the whole request however slowly it trickles);
# headers fit in HEADER_BUDGET bytes; a body is read READ_PIECE bytes at a time and held in memory
# up to SPOOL_IN_MEMORY bytes (on disk beyond); MAX_IN_FLIGHT bodies at once, MAX_CONNECTIONS
# connections at once.
READ_TIMEOUT = 10.0
WRITE_SECONDS = 5.0
HEADER_BUDGET = 64 * 1024
READ_PIECE = 64 * 1024
SPOOL_IN_MEMORY = 1024 * 1024
CHUNK_LINE_LIMIT = 4096
MAX_IN_FLIGHT = 8
MAX_CONNECTIONS = 32
PREFECT_CHECK_SECONDS = 5.0

Emitter = Callable[[PrefectEventSpec], None]


class WebhookUsageError(Exception):
    """Bad receiver input; the message names the problem and the fix."""


def emit_to_prefect(spec: PrefectEventSpec) -> None:
    from prefect.events import emit_event

    emit_event(event=spec.event, resource=spec.resource, payload=spec.payload, id=spec.id)


class Receiver:
    """The decision for one request, without the socket: (status, JSON answer) from its headers
    and a stream of its body.

    The body is read in pieces of `READ_PIECE` bytes, each hashed (`SignatureCheck`) and kept in
    a spool that holds `SPOOL_IN_MEMORY` bytes in memory and the rest in a temporary file, so a
    body costs at most that much memory until its signature is known; only a signed body is ever
    parsed. At most `max_in_flight` bodies are read at once (429 beyond)."""

    def __init__(self, secret: SecretStr, own_logins: Iterable[str], emit: Emitter = emit_to_prefect,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._secret = secret.get_secret_value().encode()
        self.own_logins = frozenset(login for login in own_logins if login)
        self._emit = emit
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.max_in_flight = max_in_flight
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self.emitted = 0

    def receive(self, headers: Iterable[tuple[str, str]], body: BinaryIO) -> tuple[int, dict[str, Any]]:
        headers = list(headers)
        framing = body_framing(headers)
        if framing.kind == "refuse":
            return framing.status, {"message": framing.message}
        if not self._in_flight.acquire(blocking=False):
            return 429, {"message": f"{self.max_in_flight} deliveries are being read; redeliver this one later"}
        try:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                check = SignatureCheck(self._secret)
                try:
                    for piece in _body_pieces(body, framing):
                        check.update(piece)
                        spool.write(piece)
                except BodyTooLarge:
                    return 413, {"message": f"body over the {MAX_BODY}-byte limit"}
                except TimeoutError:
                    return 408, {"message": "the body did not arrive in time"}
                except ValueError as exc:
                    return 400, {"message": str(exc)}
                lowered = {name.lower(): value for name, value in headers}
                if not check.matches(lowered.get(SIGNATURE_HEADER.lower())):
                    return 401, {"message": "signature missing or wrong"}
                spool.seek(0)
                return self._decide(lowered, spool.read())
        finally:
            self._in_flight.release()

    def _decide(self, lowered: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        delivery = lowered.get(DELIVERY_HEADER.lower(), "")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return 400, {"message": "body is not JSON (set the hook's content type to application/json)"}
        verdict = classify(lowered.get(EVENT_HEADER.lower()), delivery, payload, self.own_logins)
        if verdict.event is None:
            log.info("delivery %s ignored: %s", delivery[:100] or "-", verdict.reason)
            return 202, {"outcome": "ignored", "reason": verdict.reason}
        with self._lock:
            if delivery in self._seen:
                self._seen.move_to_end(delivery)
                log.info("delivery %s ignored: seen before (a redelivery)", delivery)
                return 202, {"outcome": "duplicate", "reason": "delivery seen before"}
            self._seen[delivery] = None
            while len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
        try:
            self._emit(verdict.event)
        except Exception as exc:  # noqa: BLE001 - answer 503 so GitHub's log shows it; redeliver later
            with self._lock:
                self._seen.pop(delivery, None)
            log.warning("delivery %s not emitted: %s", delivery, type(exc).__name__)
            return 503, {"message": "could not emit the event; redeliver it later"}
        self.emitted += 1
        log.info("delivery %s emitted %s for %s", delivery, verdict.event.event,
                 verdict.event.resource["prefect.resource.name"])
        return 202, {"outcome": "emitted", "event": verdict.event.event, "id": str(verdict.event.id)}


class BodyTooLarge(Exception):
    """A chunked body grew past GitHub's limit while it was read."""


def _exactly(stream: BinaryIO, size: int) -> Iterator[bytes]:
    while size:
        piece = stream.read(min(READ_PIECE, size))
        if not piece:
            raise ValueError("the body ended before its announced size")
        size -= len(piece)
        yield piece


def _body_pieces(stream: BinaryIO, framing: Framing) -> Iterator[bytes]:
    """The body in pieces of at most READ_PIECE bytes, as `framing` delimits it."""
    if framing.kind == "length":
        yield from _exactly(stream, framing.length)
        return
    total = 0
    while size := chunk_size(stream.readline(CHUNK_LINE_LIMIT)):
        total += size
        if total > MAX_BODY:
            raise BodyTooLarge
        yield from _exactly(stream, size)
        if stream.readline(CHUNK_LINE_LIMIT) not in (b"\r\n", b"\n"):
            raise ValueError("a chunk does not end where its size says")
    while stream.readline(CHUNK_LINE_LIMIT) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields: read and dropped


class HeadersTooLarge(Exception):
    """The request line and headers are over HEADER_BUDGET bytes."""


class _RequestInput(io.RawIOBase):
    """A connection's input with one deadline for the whole request (a slow client cannot hold
    its connection longer, however it trickles) and a byte budget for its request line and
    headers; the body's reader bounds the body."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._deadline = time.monotonic() + seconds
        self._budget: int | None = HEADER_BUDGET

    def readable(self) -> bool:
        return True

    def headers_read(self) -> None:
        self._budget = None

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        view = memoryview(buffer)
        if self._budget is not None:
            if self._budget <= 0:
                raise HeadersTooLarge
            view = view[:self._budget]
        self._sock.settimeout(remaining)
        received = self._sock.recv_into(view)
        if self._budget is not None:
            self._budget -= received
        return received


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` at once: a connection beyond them
    gets 503 and is closed before anything of it is read."""

    request_queue_size = 128  # the listen backlog: a burst waits to be accepted in order
    _BUSY_BODY = b'{"message": "too many connections; redeliver later"}'
    BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int) -> None:
        self._connections = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connections.acquire(blocking=False):
            try:
                request.settimeout(WRITE_SECONDS)
                request.sendall(self.BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


def make_server(receiver: Receiver, host: str, port: int, read_timeout: float = READ_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "conductor-webhooks"

        def setup(self) -> None:
            super().setup()
            self.rfile.close()
            self._input = _RequestInput(self.connection, read_timeout)
            self.rfile = io.BufferedReader(self._input)

        def handle(self) -> None:
            try:
                super().handle()
            except (OSError, HeadersTooLarge):  # a client that hung up, timed out or sent too much
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass  # one line per delivery comes from Receiver; never the body

        def _answer(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.connection.settimeout(WRITE_SECONDS)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path.rstrip("/") in ("", "/healthz"):
                self._answer(200, {"ok": True, "emitted": receiver.emitted})
            else:
                self._answer(404, {"message": "not found"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            self._input.headers_read()
            status, data = receiver.receive(self.headers.items(), self.rfile)
            self._answer(status, data)

    return _Server((host, port), Handler, max_connections)


def require_prefect_api() -> None:
    """The receiver's events are for the Prefect server whose `conductor/on-change` triggers read
    them. Without PREFECT_API_URL, Prefect would start a throwaway server of its own (where no
    trigger sees anything), so the receiver refuses instead; and it refuses an API that does not
    answer, before anything is started."""
    from urllib.parse import urlsplit

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    url = PREFECT_API_URL.value()
    if not url:
        raise WebhookUsageError("no Prefect API: set PREFECT_API_URL to the Prefect server that runs the "
                                "conductor/on-change deployment (its triggers read the receiver's events)")
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}), \
            get_client(sync_client=True, httpx_settings={"timeout": PREFECT_CHECK_SECONDS}) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        where = urlsplit(url).netloc.rpartition("@")[2]
        raise WebhookUsageError(f"the Prefect API at {where} (PREFECT_API_URL) does not answer "
                                f"({type(problem).__name__}); start that server or fix PREFECT_API_URL")


def resolve_secret(github: GitHubSettings) -> SecretStr:
    secret = webhook_secret(github)
    if secret is None:
        raise WebhookUsageError(
            f"no webhook secret: set CONDUCTOR_WEBHOOK_SECRET or create a Prefect Secret block named "
            f"{github.webhook_secret_block!r} (the hook's secret on GitHub)")
    return secret


def resolve_own_logins(flags: list[str], github: GitHubSettings) -> list[str]:
    logins = [*flags, *github.webhook_ignore_logins]
    from conductor.edges.github_gateway import GitHubError, GitHubGateway

    settings = with_token(github)
    if settings.token is not None:
        try:
            with GitHubGateway(settings, "conductor/unused") as gh:
                logins.append(gh.login())
        except GitHubError as exc:
            raise WebhookUsageError(f"cannot read the conductor's login: {exc}") from None
    if not logins:
        raise WebhookUsageError(
            "the conductor's login is unknown, so its own writes would start passes: set GITHUB_TOKEN "
            "(the conductor's token) or pass --ignore-login LOGIN (or CONDUCTOR_WEBHOOK_IGNORE_LOGINS)")
    return logins


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("webhooks", help="receive GitHub webhooks and emit Prefect events")
    sub = parser.add_subparsers(dest="webhooks_command", metavar="{serve}", required=True)
    serve = sub.add_parser("serve", help="run the webhook receiver until interrupted")
    serve.add_argument("--port", type=int, default=8787, help="TCP port (0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--ignore-login", action="append", default=[], metavar="LOGIN",
                       help="a login whose deliveries start nothing (repeatable; the token's login "
                            "is always included)")
    serve.add_argument("--github-url", default=None, help="REST API base URL (to read the token's login)")
    serve.add_argument("--ready-file", default=None, help="write the bound URL here once listening")
    serve.add_argument("--read-timeout", type=float, default=READ_TIMEOUT, metavar="SECONDS",
                       help=f"drop a request that has not fully arrived after this long (default {READ_TIMEOUT:g}; "
                            "GitHub waits 10 s for an answer)")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from conductor.core.errors import ConductorError

    logging.basicConfig(level=logging.WARNING, format="webhooks: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)  # one line per delivery; other libraries' requests stay quiet
    try:
        if not 0 <= args.port <= 65535:
            raise WebhookUsageError(f"--port {args.port} is not a TCP port (0-65535)")
        if not args.read_timeout > 0:
            raise WebhookUsageError(f"--read-timeout {args.read_timeout:g} is not a positive number of seconds")
        require_prefect_api()
        github = load_settings({"github_url": args.github_url}).github
        secret = resolve_secret(github)
        logins = resolve_own_logins(args.ignore_login, github)
        receiver = Receiver(secret, logins)
        try:
            server = make_server(receiver, args.host, args.port, read_timeout=args.read_timeout)
        except OSError as exc:
            raise WebhookUsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; "
                                    "choose another --port") from None
    except WebhookUsageError as exc:
        raise ConductorError(str(exc)) from None
    url = f"http://{args.host}:{server.server_address[1]}/"
    print(f"webhooks: listening on {url} (ignoring {', '.join(sorted(receiver.own_logins))})",
          file=sys.stderr, flush=True)
    if args.ready_file:
        with open(args.ready_file, "w", encoding="utf-8") as fh:
            fh.write(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        _flush_events()
    return 0


def _flush_events() -> None:
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all()
    except Exception:  # noqa: BLE001 - best effort at shutdown
        pass

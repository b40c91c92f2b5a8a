"""`conductor webhooks serve`: GitHub webhook deliveries in, one Prefect event each out.

    CONDUCTOR_WEBHOOK_SECRET=... GITHUB_TOKEN=... conductor webhooks serve --port 8787

Every POST is checked against `X-Hub-Signature-256` before anything else (wrong or missing:
401, nothing emitted, the body is never logged). A signed delivery that can change the plan
(`conductor.core.webhooks.classify`) becomes one Prefect event `github.<event>.<action>` on the
resource `github.repository.OWNER/NAME`, with an id derived from the delivery GUID, so a
redelivery is the same event (the receiver also remembers the GUIDs it has seen, and
Prefect's event bus drops a repeated id). The `conductor/on-change` deployment's triggers
(prefect.yaml) turn those events into passes.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import SecretStr

from conductor.core.settings import WebhookSettings, load_settings
from conductor.core.webhooks import (DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, PrefectEventSpec,
                                classify, signature_valid)
from tasks.secrets import github_settings, webhook_secret

log = logging.getLogger("conductor.core.webhooks")
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
SEEN_LIMIT = 10_000

Emitter = Callable[[PrefectEventSpec], None]


class WebhookUsageError(Exception):
    """Bad receiver input; the message names the problem and the fix."""


def emit_to_prefect(spec: PrefectEventSpec) -> None:
    from prefect.events import emit_event

    emit_event(event=spec.event, resource=spec.resource, payload=spec.payload, id=spec.id)


class Receiver:
    """The decision for one request, without HTTP: (status, JSON answer)."""

    def __init__(self, secret: SecretStr, own_logins: Iterable[str], emit: Emitter = emit_to_prefect) -> None:
        self._secret = secret.get_secret_value().encode()
        self.own_logins = frozenset(login for login in own_logins if login)
        self._emit = emit
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.emitted = 0

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        lowered = {k.lower(): v for k, v in headers.items()}
        if not signature_valid(self._secret, body, lowered.get(SIGNATURE_HEADER.lower())):
            return 401, {"message": "signature missing or wrong"}
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


def make_server(receiver: Receiver, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "conductor-webhooks"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass  # one line per delivery comes from Receiver; never the body

        def _answer(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
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
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self._answer(413, {"message": "body too large or without Content-Length"})
                return
            body = self.rfile.read(length)
            status, data = receiver.handle(dict(self.headers.items()), body)
            self._answer(status, data)

    return ThreadingHTTPServer((host, port), Handler)


def resolve_secret(webhooks: WebhookSettings) -> SecretStr:
    secret = webhook_secret(webhooks)
    if secret is None:
        raise WebhookUsageError(
            f"no webhook secret: set CONDUCTOR_WEBHOOK_SECRET or create a Prefect Secret block named "
            f"{webhooks.secret_block!r} (the hook's secret on GitHub)")
    return secret


def resolve_own_logins(flags: list[str], webhooks: WebhookSettings, github_url: str | None) -> list[str]:
    logins = [*flags, *webhooks.ignore_logins]
    from conductor.edges.github_gateway import GitHubError, GitHubGateway

    settings = github_settings(github_url)
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
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from conductor.core.errors import ConductorError

    logging.basicConfig(level=logging.INFO, format="webhooks: %(message)s", stream=sys.stderr)
    try:
        if not 0 <= args.port <= 65535:
            raise WebhookUsageError(f"--port {args.port} is not a TCP port (0-65535)")
        webhooks = load_settings().webhooks
        secret = resolve_secret(webhooks)
        logins = resolve_own_logins(args.ignore_login, webhooks, args.github_url)
        receiver = Receiver(secret, logins)
        try:
            server = make_server(receiver, args.host, args.port)
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

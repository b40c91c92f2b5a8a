"""GitHub webhook deliveries as facts: how a body is framed and how large it may be, the
signature check, the events that can change the plan, and the Prefect event a delivery
becomes. Pure functions; the HTTP receiver and the Prefect emission live in
`deployments/webhooks.py`.

GitHub signs the raw body with HMAC-SHA256 under the hook's secret and sends it as
`X-Hub-Signature-256: sha256=<hex>`; the receiver hashes the body piece by piece as it reads it
(`SignatureCheck`), so no size of body needs holding before it is judged. A redelivery keeps
its `X-GitHub-Delivery` GUID, so the Prefect event id is derived from it (uuid5) and the same
delivery always maps to the same event.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

# Events (and their actions) that can change what the planner decides. `None`: every action.
PLAN_EVENTS: dict[str, frozenset[str] | None] = {
    "issues": frozenset({"opened", "closed", "reopened", "labeled", "unlabeled", "edited"}),
    "pull_request": frozenset({"opened", "closed", "reopened", "labeled", "unlabeled",
                               "ready_for_review", "synchronize"}),
    # GitHub's issue-dependency events: blocked_by_added/removed, blocking_added/removed.
    "issue_dependencies": None,
}
EVENT_PREFIX = "github"
# What a pass emits when it ends with work ready that it did not dispatch (a PR graded down by
# the review it ran now needs a rework, a PR its predecessor's merge left conflicting needs a
# rebase): its own writes start no pass, so it asks for the next one itself.
MORE_WORK_EVENT = "conductor.pass.more-work"
RESOURCE_PREFIX = "github.repository."
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
# Namespace of the uuid5 that turns a delivery GUID into a Prefect event id.
DELIVERY_NAMESPACE = uuid.UUID("7f0c6a8e-5b7e-4d57-9d1f-3c2f0b6c9e41")
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB and does not deliver larger ones
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_CHUNK_SIZE = re.compile(rb"^([0-9a-fA-F]{1,16})(;[^\r\n]*)?\r?\n\Z")


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class SignatureCheck:
    """GitHub's signature of a body fed in pieces (HMAC-SHA256, incremental): the receiver
    never needs the whole body to judge it."""

    def __init__(self, secret: bytes) -> None:
        self._secret_given = bool(secret)
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def update(self, piece: bytes) -> None:
        self._mac.update(piece)

    def matches(self, header: str | None) -> bool:
        """Whether `header` is the signature of everything fed so far (constant time).
        An empty secret verifies nothing."""
        if not self._secret_given or not header:
            return False
        match = _SIGNATURE.match(header.strip())
        return match is not None and hmac.compare_digest(self._mac.hexdigest(), match.group(1).lower())


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is GitHub's signature of `body` under `secret` (constant time)."""
    check = SignatureCheck(secret)
    check.update(body)
    return check.matches(header)


class Framing(BaseModel):
    """How a request's body is delimited, or why it is refused before one byte of it is read."""

    kind: Literal["length", "chunked", "refuse"]
    length: int = 0
    status: int = 0
    message: str = ""


def _refuse(status: int, message: str) -> Framing:
    return Framing(kind="refuse", status=status, message=message)


def body_framing(headers: Iterable[tuple[str, str]], limit: int = MAX_BODY) -> Framing:
    """Read a request's framing headers: a `Content-Length` up to `limit`, or chunked transfer
    coding (whose size is checked while it is read). Anything else, or both, or either twice with
    different values (a smuggling attempt), is refused with the status to answer."""
    values: dict[str, set[str]] = {"content-length": set(), "transfer-encoding": set()}
    for name, value in headers:
        if name.lower() in values:
            values[name.lower()].add(value.strip())
    lengths, codings = values["content-length"], values["transfer-encoding"]
    if codings:
        if lengths:
            return _refuse(400, "both Content-Length and Transfer-Encoding; send one")
        if {coding.lower() for coding in codings} != {"chunked"}:
            return _refuse(501, "only the chunked transfer coding is accepted")
        return Framing(kind="chunked")
    if not lengths:
        return _refuse(411, "no Content-Length (GitHub sends one)")
    if len(lengths) > 1 or not next(iter(lengths)).isascii() or not next(iter(lengths)).isdigit():
        return _refuse(400, "Content-Length is not one number")
    length = int(next(iter(lengths)))
    if length > limit:
        return _refuse(413, f"body of {length} bytes is over the {limit}-byte limit")
    return Framing(kind="length", length=length)


def chunk_size(line: bytes) -> int:
    """The size on one chunk-size line of a chunked body (`1a2b;ext\r\n`); ValueError when the
    line is not one."""
    match = _CHUNK_SIZE.match(line)
    if match is None:
        raise ValueError("malformed chunk-size line")
    return int(match.group(1), 16)


class PrefectEventSpec(BaseModel):
    """What to hand to Prefect's `emit_event`, as plain data."""

    id: uuid.UUID
    event: str
    resource: dict[str, str]
    payload: dict[str, Any] = Field(default_factory=dict)


class Verdict(BaseModel):
    """What the receiver does with one delivery: emit an event, or answer why not."""

    outcome: Literal["emit", "ignore"]
    reason: str = ""
    event: PrefectEventSpec | None = None


def event_id(delivery_id: str) -> uuid.UUID:
    """The Prefect event id of a delivery: the same for every redelivery of it."""
    return uuid.uuid5(DELIVERY_NAMESPACE, delivery_id)


def resource_id(repo: str) -> str:
    return f"{RESOURCE_PREFIX}{repo}"


def _ignore(reason: str) -> Verdict:
    return Verdict(outcome="ignore", reason=reason)


def classify(event: str | None, delivery_id: str | None, payload: Any,
             own_logins: frozenset[str] = frozenset()) -> Verdict:
    """Decide what one signed delivery means. `own_logins`: the conductor's own logins (its
    writes come back as webhooks and must not start another pass)."""
    if not event:
        return _ignore("no X-GitHub-Event header")
    if not delivery_id or not _DELIVERY.match(delivery_id):
        return _ignore("no usable X-GitHub-Delivery header")
    if event == "ping":
        return _ignore("ping")
    if event not in PLAN_EVENTS:
        return _ignore(f"event {event!r} cannot change the plan")
    if not isinstance(payload, dict):
        return _ignore("payload is not a JSON object")
    action = payload.get("action")
    actions = PLAN_EVENTS[event]
    if not isinstance(action, str) or (actions is not None and action not in actions):
        return _ignore(f"{event}.{action} cannot change the plan")
    repo = (payload.get("repository") or {}).get("full_name") if isinstance(payload.get("repository"), dict) else None
    if not isinstance(repo, str) or "/" not in repo:
        return _ignore("payload names no repository")
    sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}
    login = sender.get("login") if isinstance(sender.get("login"), str) else ""
    if login and login.lower() in {own.lower() for own in own_logins}:
        return _ignore(f"sent by the conductor's own login {login}")
    return Verdict(outcome="emit", event=PrefectEventSpec(
        id=event_id(delivery_id),
        event=f"{EVENT_PREFIX}.{event}.{action}",
        resource={"prefect.resource.id": resource_id(repo), "prefect.resource.name": repo},
        payload={"delivery": delivery_id, "event": event, "action": action,
                 "number": _number(event, payload), "sender": login},
    ))


def _number(event: str, payload: dict[str, Any]) -> int | None:
    key = "pull_request" if event == "pull_request" else "issue"
    item = payload.get(key)
    number = item.get("number") if isinstance(item, dict) else None
    return number if isinstance(number, int) else None

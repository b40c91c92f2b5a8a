"""What the app and its routers share: the per-process `Sandbox`, authentication and JSON responses.

Routers import this module, never `app` (which imports the routers to mount them).
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.responses import Response

from .faults import FaultBook, RateBook, RequestCounts
from .hooks import HookBook
from .service import Service
from .state import UserRec
from .store import Store


class BadCredentials(Exception):
    """An Authorization header whose token belongs to nobody."""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = b"" if status in (204, 304) else json.dumps(data, ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers,
                    media_type=None if status in (204, 304) else "application/json; charset=utf-8")


def credentials(header: str | None) -> str | None:
    """The token in `token X`, `Bearer X` or HTTP basic (`LOGIN:TOKEN`, `x-access-token:TOKEN`,
    `TOKEN:` or `TOKEN:x-oauth-basic`). None when there is no header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme in ("token", "bearer") and value.strip():
        return value.strip()
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise BadCredentials("unreadable basic auth") from None
        if password and password != "x-oauth-basic":
            return password
        return user
    raise BadCredentials(f"unsupported auth scheme {scheme!r}")


def authenticate(store: Store, header: str | None) -> UserRec | None:
    token = credentials(header)
    if token is None:
        return None
    user = store.user_by_token(token)
    if user is None:
        raise BadCredentials("unknown token")
    return user


class Sandbox:
    """Shared per-process objects the routes reach through `request.app.state.sandbox`."""

    def __init__(self, store: Store, *, rate_limit: int = 5000) -> None:
        self.store = store
        self.service = Service(store)
        self.counts = RequestCounts()
        self.faults = FaultBook()
        self.rates = RateBook(limit=rate_limit)
        self.hooks = HookBook()

"""The sandbox's web application: GitHub's REST API under /api/v3, git smart HTTP, and a
control API under /_sandbox.

Every /api/v3 request goes through `_pipeline`: count it, maybe inject a fault,
authenticate, enforce the rate limit, run the route, then add GitHub's headers
(`x-ratelimit-*`, `ETag`, 304 on `If-None-Match`) and log what was refused.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import traceback
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from .errors import (DOC_URLS, PRIMARY_DOCS, SECONDARY_DOCS, SECONDARY_RATE_LIMIT, ApiError,
                     error_body)
from . import hooks
from .context import BadCredentials, Sandbox, authenticate, credentials, json_response  # noqa: F401 (re-exported)
from .faults import Fault
from .graphql_api import PATHS as GRAPHQL_PATHS
from .state import UserRec
from .store import Store

API_PREFIX = "/api/v3"
_CONVERTER = re.compile(r"\{(\w+):\w+\}")
CONTROL_PREFIX = "/_sandbox"
log = logging.getLogger("github_sandbox")


class RouteTable:
    """Method + path -> route template, matched the way Starlette routes (first match wins)."""

    def __init__(self, routers: list[tuple[str, Any]]) -> None:
        self._rows = []
        for prefix, router in routers:
            for route in router.routes:
                regex, _, _ = compile_path(prefix + route.path)
                self._rows.append((regex, set(route.methods or ()), prefix + route.path))

    def match(self, method: str, path: str) -> str | None:
        for regex, methods, template in self._rows:
            if regex.match(path) and method in methods:
                return template
        return None


def api_template(template: str | None) -> str | None:
    """`/api/v3/repos/{owner}/{repo}/issues/{issue_number:int}` -> `/repos/{owner}/{repo}/issues/{issue_number}`."""
    if template is None:
        return None
    template = _CONVERTER.sub(r"{\1}", template)
    if template.startswith(API_PREFIX):
        return template[len(API_PREFIX):] or "/"
    return template


def create_app(store: Store, *, rate_limit: int = 5000) -> FastAPI:
    from . import control, githttp, graphql_api, routes  # routes register on import-time routers

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = Sandbox(store, rate_limit=rate_limit)
    mounted = [(API_PREFIX, routes.router), (CONTROL_PREFIX, control.router), ("", graphql_api.router),
               ("", githttp.router)]
    for prefix, router in mounted:
        app.include_router(router, prefix=prefix)
    app.state.routes = RouteTable(mounted)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        request.state.reason = exc.reason
        template = api_template(app.state.routes.match(request.method, request.url.path))
        doc = exc.doc or DOC_URLS.get(f"{request.method} {template}")
        return json_response(error_body(exc.status, exc.message, doc, exc.errors), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        request.state.reason = f"no such route ({exc.status_code})"
        return json_response(error_body(404, "Not Found", None), 404)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        request.state.reason = f"unparseable request: {exc.errors()[:1]}"
        return json_response(error_body(404, "Not Found", None), 404)

    @app.middleware("http")
    async def _pipeline(request: Request, call_next) -> Response:
        return await pipeline(app, request, call_next)

    return app


def _rate_headers(peek: dict[str, int], resource: str = "core") -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(peek["limit"]),
        "x-ratelimit-remaining": str(peek["remaining"]),
        "x-ratelimit-reset": str(peek["reset"]),
        "x-ratelimit-used": str(peek["used"]),
        "x-ratelimit-resource": resource,
    }


def _github_headers(viewer: UserRec | None) -> dict[str, str]:
    headers = {
        "x-github-media-type": "github.v3; format=json",
        "x-github-api-version-selected": "2022-11-28",
        "x-github-request-id": secrets.token_hex(8).upper(),
        "vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
    }
    if viewer is not None:
        headers["x-oauth-scopes"] = "repo, user"
        headers["x-accepted-oauth-scopes"] = ""
    return headers


def _log_refusal(status: int, method: str, path: str, reason: str) -> None:
    log.warning("refused %s %s %s: %s", status, method, path, reason)


def fault_response(fault: Fault, headers: dict[str, str]) -> Response:
    status = fault.status or 500
    headers = dict(headers)
    if fault.retry_after is not None:
        headers["retry-after"] = str(fault.retry_after)
    if status in (403, 429) and (fault.retry_after is not None or status == 429):
        body = error_body(status, fault.message or SECONDARY_RATE_LIMIT, SECONDARY_DOCS)
    else:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = error_body(status, fault.message or phrase, None)
    return json_response(body, status, headers)


async def pipeline(app: FastAPI, request: Request, call_next) -> Response:
    sb: Sandbox = app.state.sandbox
    path, method = request.url.path, request.method
    if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
        response = await _guarded(request, call_next)
        if response.status_code >= 400:
            _log_refusal(response.status_code, method, path, getattr(request.state, "reason", "refused"))
        return response
    is_graphql = path in GRAPHQL_PATHS
    is_api = path == API_PREFIX or path.startswith(API_PREFIX + "/") or is_graphql
    template = api_template(app.state.routes.match(method, path))
    sb.counts.hit(f"{method} {template or '<unmatched>'}")

    client = request.client.host if request.client else "unknown"
    try:
        viewer = authenticate(sb.store, request.headers.get("authorization"))
        bad_credentials = False
    except BadCredentials as exc:
        viewer, bad_credentials, bad_reason = None, True, str(exc)
    rate_key = f"user:{viewer.login}" if viewer else f"ip:{client}"
    resource = "graphql" if is_graphql else "core"
    if is_graphql:  # its own rate-limit resource, as on GitHub
        rate_key = f"graphql:{rate_key}"
    base_headers = {**_github_headers(viewer), **_rate_headers(sb.rates.peek(rate_key), resource)} if is_api else {}

    fault = sb.faults.take(method, path, template, is_api)
    if fault is not None:
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.status is not None:
            _log_refusal(fault.status, method, path, f"injected fault #{fault.id}")
            return fault_response(fault, base_headers)

    if not is_api:  # git smart HTTP does its own auth
        return await _guarded(request, call_next)

    if bad_credentials:
        _log_refusal(401, method, path, bad_reason)
        return json_response(error_body(401, "Bad credentials", "https://docs.github.com/rest"), 401,
                             base_headers)
    request.state.viewer = viewer
    counted = template != "/rate_limit"
    peek = sb.rates.peek(rate_key)
    if counted and peek["remaining"] <= 0:
        who = f"user ID {viewer.id}" if viewer else client
        message = (f"API rate limit exceeded for {who}. If you reach out to GitHub Support for help, "
                   "please include the request ID.")
        _log_refusal(403, method, path, f"rate limit exhausted for {rate_key}")
        return json_response(error_body(403, message, PRIMARY_DOCS), 403, base_headers)

    hooked = _hooked_repo(sb, method, path)
    before = hooks.snapshot(hooked) if hooked is not None else None
    response = await _guarded(request, call_next)
    if hooked is not None and before is not None and response.status_code < 300:
        from .render import Urls

        urls = Urls(f"{request.url.scheme}://{request.url.netloc}")
        for event, payload in hooks.payloads(sb.service, urls, hooked, before,
                                             viewer.login if viewer else None):
            sb.hooks.send(hooked.key, event, payload)
    body = await _read_body(response)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    status = response.status_code
    if method == "GET" and status == 200:
        digest = hashlib.sha256(body + headers.get("link", "").encode())
        etag = 'W/"' + digest.hexdigest()[:40] + '"'
        headers["etag"] = etag
        headers["cache-control"] = "private, max-age=60, s-maxage=60"
        if _etag_matches(request.headers.get("if-none-match"), etag):
            status, body, counted = 304, b"", False
            headers.pop("content-type", None)
    if counted:
        sb.rates.spend(rate_key)
    headers.update(_github_headers(viewer))
    headers.update(_rate_headers(sb.rates.peek(rate_key), resource))
    if status >= 400:
        _log_refusal(status, method, path, getattr(request.state, "reason", "") or "refused")
    return Response(body, status_code=status, headers=headers)


def _hooked_repo(sb: Sandbox, method: str, path: str):
    """The repository a write goes to, when it has webhooks (else None)."""
    if method not in ("POST", "PATCH", "PUT", "DELETE"):
        return None
    where = hooks.repo_of(path)
    if where is None:
        return None
    rec = sb.store.repo(*where)
    return rec if rec is not None and sb.hooks.hooks.get(rec.key) else None


async def _read_body(response: Response) -> bytes:
    if not hasattr(response, "body_iterator"):  # a plain Response made by _guarded
        return bytes(response.body)
    parts = [chunk if isinstance(chunk, bytes) else chunk.encode() async for chunk in response.body_iterator]
    return b"".join(parts)


async def _guarded(request: Request, call_next) -> Response:
    """The route's answer; any crash becomes GitHub's 500 and a log line, never a dead server."""
    try:
        return await call_next(request)
    except Exception as exc:  # noqa: BLE001 - the sandbox must answer every request
        log.error("error 500 %s %s: %s\n%s", request.method, request.url.path, exc,
                  traceback.format_exc())
        return json_response(error_body(500, "Server Error", None), 500)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    bare = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False

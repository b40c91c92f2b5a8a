"""The sandbox's own control API under /_sandbox (site-admin token only).

    GET    /_sandbox/health            no auth; 200 when serving
    GET    /_sandbox/counts            {"counts": {"GET /repos/{owner}/{repo}/issues": 3, ...}, "total": N}
    POST   /_sandbox/counts/reset      204
    GET    /_sandbox/faults            active faults
    POST   /_sandbox/faults            FaultSpec -> 201 Fault
    DELETE /_sandbox/faults[/{id}]     204
    POST   /_sandbox/rate-limit        {"limit": N, "used": {"LOGIN": n}} -> 204
    POST   /_sandbox/users             {"login": ..., "token": ...} -> 201 (a non-admin user)
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from .context import BadCredentials, Sandbox, authenticate, json_response
from .bodies import parse_json
from .errors import ApiError
from .faults import FaultSpec

router = APIRouter()
_LOGIN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"


class RateLimitSpec(BaseModel):
    limit: int | None = Field(None, ge=0)
    used: dict[str, int] | None = None


class UserSpec(BaseModel):
    login: str = Field(pattern=_LOGIN)
    token: str = Field(min_length=1)


def _admin(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    try:
        user = authenticate(sb.store, request.headers.get("authorization"))
    except BadCredentials:
        raise ApiError(401, "Bad credentials", reason="control API: unknown token") from None
    if user is None:
        raise ApiError(401, "Requires authentication", reason="control API: no token")
    if not user.site_admin:
        raise ApiError(403, "Must be a site administrator.", reason=f"control API: {user.login} is not admin")
    return sb


async def _model(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(parse_json(await request.body()))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, f"Invalid request.\n\n{where}: {first['msg']}", reason=f"control: {where}") from None


@router.get("/hooks/deliveries")
async def hook_deliveries(request: Request) -> Response:
    return json_response(_admin(request).hooks.deliveries)


@router.get("/health")
async def health() -> Response:
    return json_response({"ok": True})


@router.get("/counts")
async def counts(request: Request) -> Response:
    snap = _admin(request).counts.snapshot()
    return json_response({"counts": snap, "total": sum(snap.values())})


@router.post("/counts/reset")
async def reset_counts(request: Request) -> Response:
    _admin(request).counts.reset()
    return json_response(None, 204)


@router.get("/faults")
async def list_faults(request: Request) -> Response:
    return json_response([f.model_dump() for f in _admin(request).faults.list()])


@router.post("/faults")
async def add_fault(request: Request) -> Response:
    sb = _admin(request)
    spec = await _model(request, FaultSpec)
    return json_response(sb.faults.add(spec).model_dump(), 201)


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    _admin(request).faults.clear()
    return json_response(None, 204)


@router.delete("/faults/{fault_id:int}")
async def delete_fault(request: Request, fault_id: int) -> Response:
    if not _admin(request).faults.clear(fault_id):
        raise ApiError(404, "Not Found", reason=f"no fault {fault_id}")
    return json_response(None, 204)


@router.post("/rate-limit")
async def set_rate_limit(request: Request) -> Response:
    sb = _admin(request)
    spec = await _model(request, RateLimitSpec)
    used = None
    if spec.used is not None:
        used = {}
        for login, n in spec.used.items():
            user = sb.store.user(login)
            if user is None:
                raise ApiError(404, "Not Found", reason=f"control: no user {login!r}")
            used[f"user:{user.login}"] = n
    sb.rates.set(limit=spec.limit, used=used)
    return json_response(None, 204)


@router.post("/users")
async def add_user(request: Request) -> Response:
    sb = _admin(request)
    spec = await _model(request, UserSpec)
    existing = sb.store.user(spec.login)
    user = sb.store.upsert_user(spec.login, spec.token, site_admin=existing.site_admin if existing else False)
    return json_response({"login": user.login, "id": user.id, "site_admin": user.site_admin}, 201)

"""git smart HTTP for the sandbox's bare repositories, through `git http-backend` (CGI).

`clone_url` is `http://HOST:PORT/OWNER/REPO.git`. Authentication is HTTP basic with the
same tokens as the API (`x-access-token:TOKEN`, `LOGIN:TOKEN` or `TOKEN:`); like GitHub,
anonymous clones of public repositories work, everything else answers 401 with a
`WWW-Authenticate` challenge so git asks for (or sends) credentials.
"""
from __future__ import annotations

import asyncio
import logging
import os

from fastapi import APIRouter, Request
from starlette.responses import Response

from .context import BadCredentials, Sandbox, authenticate
from .permissions import NONE, at_least, role_of

router = APIRouter()
log = logging.getLogger("github_sandbox")
_SERVICES = ("git-upload-pack", "git-receive-pack")


def _text(status: int, message: str, *, challenge: bool = False) -> Response:
    headers = {"www-authenticate": 'Basic realm="GitHub"'} if challenge else None
    return Response(message + "\n", status_code=status, headers=headers, media_type="text/plain")


def _refuse(request: Request, status: int, message: str, reason: str, *, challenge: bool = False) -> Response:
    log.warning("refused %s %s %s: %s", status, request.method, request.url.path, reason)
    return _text(status, message, challenge=challenge)


def _backend_env(sb: Sandbox, request: Request, key: str, rest: str, login: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({
        "GIT_PROJECT_ROOT": str(sb.store.repos_dir.resolve()),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.receivepack",
        "GIT_CONFIG_VALUE_0": "true",
        "PATH_INFO": f"/{key}.git/{rest}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "REMOTE_USER": login,
        "REMOTE_ADDR": request.client.host if request.client else "127.0.0.1",
    })
    for header in ("content-encoding", "git-protocol"):
        if header in request.headers:
            env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
    return env


def _parse_cgi(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(sep)
        if found:
            break
    else:
        return 502, {}, raw
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return status, headers, body


@router.api_route("/{owner}/{repo}.git/{rest:path}", methods=["GET", "POST"])
async def git_http(request: Request, owner: str, repo: str, rest: str) -> Response:
    sb: Sandbox = request.app.state.sandbox
    service = request.query_params.get("service") or rest.rsplit("/", 1)[-1]
    pushing = service == "git-receive-pack"
    if rest not in ("info/refs", *_SERVICES) or (rest == "info/refs" and service not in _SERVICES):
        return _refuse(request, 404, "Not Found", f"unsupported git path {rest!r} (smart HTTP only)")
    try:
        viewer = authenticate(sb.store, request.headers.get("authorization"))
    except BadCredentials as exc:
        return _refuse(request, 401, "Invalid username or token.", f"git auth: {exc}", challenge=True)
    rec = sb.store.repo(owner, repo)
    role = role_of(rec, viewer.login if viewer else None) if rec else NONE
    if role == NONE or (pushing and viewer is None):
        if viewer is None:
            return _refuse(request, 401, "Authentication required.", "git: anonymous", challenge=True)
        return _refuse(request, 404, "Repository not found.", f"git: {viewer.login} cannot see {owner}/{repo}")
    if pushing and not at_least(role, "write"):
        return _refuse(request, 403, f"Permission to {rec.full_name}.git denied to {viewer.login}.",
                       f"git push by {viewer.login} ({role})")
    body = await request.body()
    env = _backend_env(sb, request, rec.key, rest, viewer.login if viewer else "")
    env["CONTENT_LENGTH"] = str(len(body))
    proc = await asyncio.create_subprocess_exec(
        "git", "http-backend", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate(body)
    status, headers, payload = _parse_cgi(out)
    if status >= 400 or proc.returncode:
        log.warning("git http-backend %s %s -> %s: %s", request.method, request.url.path, status,
                    err.decode(errors="replace").strip()[:300])
    if pushing and rest == "git-receive-pack" and status == 200:
        sb.service.mark_pushed(rec)
    return Response(payload, status_code=status, headers=headers)

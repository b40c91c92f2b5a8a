"""Starting the sandbox: users from the command line, a bound socket, uvicorn."""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from .store import Store, StoreError
from .tls import ensure_tls

_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


class SandboxUsageError(Exception):
    """Bad sandbox input; the message names the problem and the fix."""


@dataclass
class ServeOptions:
    data_dir: Path
    port: int = 8765
    host: str = "127.0.0.1"
    users: list[tuple[str, SecretStr]] = field(default_factory=list)
    rate_limit: int = 5000
    ready_file: Path | None = None
    tls: bool = False


def parse_user(text: str) -> tuple[str, SecretStr]:
    """`LOGIN=TOKEN` -> (login, token)."""
    login, sep, token = text.strip().partition("=")
    if not sep or not token:
        raise SandboxUsageError(f"--user wants LOGIN=TOKEN, got {login or text!r} without a token")
    if not _LOGIN.match(login):
        raise SandboxUsageError(
            f"--user login {login!r} is not a GitHub login (letters, digits, '-'; at most 39)")
    return login, SecretStr(token)


def read_users_file(path: Path) -> list[tuple[str, SecretStr]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SandboxUsageError(f"cannot read --users-file {path}: {exc.strerror}") from None
    return [parse_user(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def prepare_store(opts: ServeOptions) -> tuple[Store, list[str]]:
    """Open the data directory and install users; returns the lines to print at start."""
    try:
        store = Store(opts.data_dir)
    except (StoreError, OSError) as exc:
        raise SandboxUsageError(str(exc)) from None
    notes = []
    if opts.users:
        seen = set()
        for i, (login, token) in enumerate(opts.users):
            if login.lower() in seen:
                raise SandboxUsageError(f"--user {login} is given twice; give each login once")
            seen.add(login.lower())
            store.upsert_user(login, token.get_secret_value(), site_admin=i == 0)
        for user in store.glob.users.values():  # only the first --user is the site admin
            if user.login.lower() != opts.users[0][0].lower() and user.login.lower() not in seen:
                user.site_admin = False
        store.save_global()
        notes.append(f"site admin: {opts.users[0][0]}")
    elif not store.glob.users:
        token = "sbx_" + secrets.token_urlsafe(24)
        store.upsert_user("admin", token, site_admin=True)
        notes.append(f"created site admin 'admin' with token {token}")
    else:
        admins = [u.login for u in store.glob.users.values() if u.site_admin]
        notes.append(f"site admin: {', '.join(admins) or 'none'} (tokens as before; "
                     "pass --user LOGIN=TOKEN to set a new one)")
    return store, notes


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so (else
    # Nagle + delayed ACK add 40 ms to every answer).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SandboxUsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(opts: ServeOptions) -> int:
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="sandbox: %(message)s", stream=sys.stderr)
    store, notes = prepare_store(opts)
    tls = ensure_tls(opts.data_dir) if opts.tls else None
    sock = bind(opts.host, opts.port)
    port = sock.getsockname()[1]
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    base = f"{'https' if tls else 'http'}://{host}:{port}"
    print(f"sandbox: serving {base}/api/v3 (git: {base}/OWNER/REPO.git, GraphQL: {base}/api/graphql, "
          f"data: {opts.data_dir})", flush=True)
    if tls:
        notes.append(f"certificate authority: {tls.ca} (trust it: CONDUCTOR_CA_BUNDLE, SSL_CERT_FILE, ...)")
    for note in notes:
        print(f"sandbox: {note}", flush=True)
    if opts.ready_file is not None:
        tmp = opts.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"base_url": base, "api_url": f"{base}/api/v3", "port": port,
                                   "pid": os.getpid(), "ca": str(tls.ca) if tls else None}))
        tmp.replace(opts.ready_file)
    app = create_app(store, rate_limit=opts.rate_limit)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2,
                            ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None)
    uvicorn.Server(config).run(sockets=[sock])
    return 0

"""Conditional reads for the gateway: ETags kept across passes, and the rate-limit points spent.

A layer around PyGithub's connection classes (`conditional(base)`), separate from the
gateway's own request counting. For every GET it sends `If-None-Match` with the ETag kept
for (URL, hash of the Authorization header); on 304 it hands PyGithub the kept body, so
the rest of the code never sees the difference. GitHub does not charge a 304 against the
rate limit, so a pass over an unchanged pipeline costs (almost) nothing.

Entries live as one JSON file each under a cache directory (mode 0700): they hold
repository data, never a token (only its SHA-256 is part of the key).
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

# Response headers worth keeping with a body (PyGithub reads `link` for pagination).
_KEPT_HEADERS = ("content-type", "link", "etag", "last-modified")


class EtagCache:
    """ETag + body per (URL, credential hash), one file each."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(url: str, authorization: str | None) -> str:
        credential = hashlib.sha256((authorization or "").encode()).hexdigest()
        return hashlib.sha256(f"{credential}\0{url}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get("etag") else None

    def put(self, key: str, etag: str, headers: dict[str, str], body: str) -> None:
        _replace(self._path(key), json.dumps({"etag": etag, "headers": headers, "body": body}))

    def get_text(self, name: str) -> str | None:
        """Text kept under `name` by `put_text` (derived data, never a token)."""
        try:
            return self._path(self.key(name, None)).with_suffix(".txt").read_text(encoding="utf-8")
        except OSError:
            return None

    def put_text(self, name: str, text: str) -> None:
        _replace(self._path(self.key(name, None)).with_suffix(".txt"), text)


def _replace(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a temporary file moved into place)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs rate limit


class RateMeter:
    """Rate-limit points spent, read from `X-RateLimit-*` headers: per (resource, reset window),
    the highest `used` seen minus `used` before the first response of the window."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], list[int]] = {}

    def add(self, status: int, headers: Any) -> None:
        used, reset = headers.get("x-ratelimit-used"), headers.get("x-ratelimit-reset")
        if used is None or reset is None:
            return
        try:
            used_n = int(used)
        except ValueError:
            return
        window = (str(headers.get("x-ratelimit-resource", "core")), str(reset))
        if window not in self._windows:
            before = used_n if status == 304 else used_n - 1
            self._windows[window] = [before, used_n]
        else:
            self._windows[window][1] = max(self._windows[window][1], used_n)

    @property
    def points(self) -> int:
        return sum(max(0, high - before) for before, high in self._windows.values())


class Conditional:
    """What one gateway uses: its cache (None: no conditional requests) and its meter."""

    def __init__(self, cache: EtagCache | None) -> None:
        self.cache = cache
        self.meter = RateMeter()
        self.not_modified = 0


CURRENT: contextvars.ContextVar[Conditional | None] = contextvars.ContextVar(
    "conductor_github_conditional", default=None)


def _from_cache(fresh: requests.Response, entry: dict[str, Any]) -> requests.Response:
    """A 200 made of the kept body and the 304's own (rate-limit) headers."""
    response = requests.Response()
    response.status_code = 200
    response.reason = "OK"
    headers = CaseInsensitiveDict(fresh.headers)
    for name, value in (entry.get("headers") or {}).items():
        headers[name] = value
    response.headers = headers
    response._content = str(entry.get("body", "")).encode("utf-8")
    response.encoding = "utf-8"
    response.url = fresh.url
    response.request = fresh.request
    response.raw = fresh.raw
    return response


def conditional(base: type) -> type:
    """A PyGithub connection class that makes GETs conditional (when a gateway's `Conditional`
    is current) and meters every response."""

    class ConditionalConnection(base):  # type: ignore[misc, valid-type]
        def request(self, verb: str, url: str, input: Any, headers: dict[str, str], stream: bool = False) -> None:
            self._conductor_entry = None
            self._conductor_key = None
            layer = CURRENT.get()
            if layer is not None and layer.cache is not None and verb.upper() == "GET" and not stream:
                full = f"{self.protocol}://{self.host}:{self.port}{url}"
                key = layer.cache.key(full, headers.get("Authorization") or headers.get("authorization"))
                entry = layer.cache.get(key)
                self._conductor_key = key
                if entry is not None:
                    headers = {**headers, "If-None-Match": entry["etag"]}
                    self._conductor_entry = entry
            super().request(verb, url, input, headers, stream)

        def getresponse(self):  # -> RequestsResponse
            wrapped = super().getresponse()
            layer = CURRENT.get()
            if layer is None:
                return wrapped
            raw: requests.Response = wrapped.response
            layer.meter.add(raw.status_code, raw.headers)
            entry, key = getattr(self, "_conductor_entry", None), getattr(self, "_conductor_key", None)
            if raw.status_code == 304 and entry is not None:
                layer.not_modified += 1
                return type(wrapped)(_from_cache(raw, entry))
            etag = raw.headers.get("etag")
            if key is not None and layer.cache is not None and raw.status_code == 200 and etag:
                kept = {name: raw.headers[name] for name in _KEPT_HEADERS if name in raw.headers}
                layer.cache.put(key, etag, kept, raw.text or "")
            return wrapped

    ConditionalConnection.__name__ = ConditionalConnection.__qualname__ = f"Conditional{base.__name__}"
    return ConditionalConnection

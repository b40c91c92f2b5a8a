"""Test hooks: request counts per endpoint, injected faults, and the rate limit book."""
from __future__ import annotations

import fnmatch
import threading
import time
from collections import Counter

from pydantic import BaseModel, Field, field_validator


class FaultSpec(BaseModel):
    """One injected fault. Matches a request by method and path glob; fires `times` times."""

    status: int | None = Field(None, ge=100, le=599, description="None: only add latency.")
    method: str | None = Field(None, description="GET, POST, ...; None matches any.")
    path: str | None = Field(
        None,
        description="Glob on the path without /api/v3 (e.g. /repos/*/issues) or on the route "
        "template (/repos/{owner}/{repo}/issues). None matches every /api/v3 request.",
    )
    times: int | None = Field(1, ge=1, description="None: until cleared.")
    retry_after: int | None = Field(None, ge=0)
    latency: float = Field(0.0, ge=0, le=60)
    message: str | None = None

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None


class Fault(FaultSpec):
    id: int
    fired: int = 0


class FaultBook:
    """Thread-safe list of active faults; the first match fires and counts down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next = 1

    def add(self, spec: FaultSpec) -> Fault:
        with self._lock:
            fault = Fault(id=self._next, **spec.model_dump())
            self._next += 1
            self._faults.append(fault)
            return fault

    def clear(self, fault_id: int | None = None) -> int:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if fault_id is not None and f.id != fault_id]
            return before - len(self._faults)

    def list(self) -> list[Fault]:
        with self._lock:
            return [f.model_copy() for f in self._faults]

    def take(self, method: str, path: str, template: str | None, is_api: bool) -> Fault | None:
        """The fault this request triggers (consuming one of its `times`), if any."""
        with self._lock:
            for fault in self._faults:
                if matches(fault, method, path, template, is_api):
                    fault.fired += 1
                    if fault.times is not None and fault.fired >= fault.times:
                        self._faults.remove(fault)
                    return fault.model_copy()
        return None


def matches(fault: FaultSpec, method: str, path: str, template: str | None, is_api: bool) -> bool:
    if fault.method and fault.method != method.upper():
        return False
    if fault.path is None:
        return is_api
    api_path = path[len("/api/v3"):] if path.startswith("/api/v3/") else path
    candidates = [path, api_path] + ([template] if template else [])
    return any(fnmatch.fnmatchcase(c, fault.path) for c in candidates)


class RequestCounts:
    """`METHOD /route/{template}` -> number of requests received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def hit(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class RateBook:
    """GitHub's primary rate limit: `limit` requests per hour per user (60 anonymous)."""

    WINDOW = 3600

    def __init__(self, limit: int = 5000, anonymous_limit: int = 60) -> None:
        self._lock = threading.Lock()
        self.limit = limit
        self.anonymous_limit = anonymous_limit
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (reset epoch, used)

    def _window(self, key: str) -> tuple[int, int]:
        now = int(time.time())
        reset, used = self._windows.get(key, (0, 0))
        if reset <= now:
            reset, used = now + self.WINDOW, 0
            self._windows[key] = (reset, used)
        return reset, used

    def limit_for(self, key: str) -> int:
        return self.anonymous_limit if key.startswith("ip:") else self.limit

    def peek(self, key: str) -> dict[str, int]:
        with self._lock:
            reset, used = self._window(key)
            limit = self.limit_for(key)
            return {"limit": limit, "used": used, "remaining": max(0, limit - used), "reset": reset}

    def spend(self, key: str) -> None:
        with self._lock:
            reset, used = self._window(key)
            self._windows[key] = (reset, used + 1)

    def set(self, *, limit: int | None = None, used: dict[str, int] | None = None) -> None:
        with self._lock:
            if limit is not None:
                self.limit = limit
            for key, value in (used or {}).items():
                reset, _ = self._window(key)
                self._windows[key] = (reset, value)
            if used is None and limit is not None:
                self._windows.clear()

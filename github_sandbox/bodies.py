"""Reading request bodies the way GitHub does: strict JSON, typed fields, extras ignored."""
from __future__ import annotations

import json
from typing import Any

from .errors import ApiError, invalid_request

MISSING: Any = object()

_KINDS = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "array": (list,),
    "object": (dict,),
}


def parse_json(raw: bytes, *, allow_empty: bool = True) -> Any:
    """The decoded body; 400 "Problems parsing JSON" when it is not JSON."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "Problems parsing JSON", reason="empty body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Problems parsing JSON", reason=f"bad JSON: {exc}") from None


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_request(f"For 'links/0/schema', {json.dumps(body)[:80]} is not an object.")
    return body


def _matches(value: Any, kinds: tuple[str, ...]) -> bool:
    for kind in kinds:
        if kind == "null" and value is None:
            return True
        types = _KINDS.get(kind, ())
        if isinstance(value, types) and not (kind == "integer" and isinstance(value, bool)):
            return True
    return False


def field(body: dict[str, Any], name: str, *kinds: str, required: bool = False) -> Any:
    """`body[name]` if present and of one of `kinds` (JSON type names); MISSING if absent."""
    if name not in body:
        if required:
            raise invalid_request(f'"{name}" wasn\'t supplied.')
        return MISSING
    value = body[name]
    if not _matches(value, kinds):
        wanted = " or ".join(kinds)
        raise invalid_request(f"For 'properties/{name}', {json.dumps(value)[:80]} is not {_article(wanted)}.")
    return value


def one_of(body: dict[str, Any], name: str, choices: tuple[str, ...], *, nullable: bool = False) -> Any:
    value = field(body, name, "string", *(("null",) if nullable else ()))
    if value is MISSING or value is None or value in choices:
        return value
    listed = ", ".join(json.dumps(c) for c in choices)
    raise invalid_request(f"For 'properties/{name}', {json.dumps(value)} is not one of [{listed}].")


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind

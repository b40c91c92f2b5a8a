"""JSON from untrusted text (hidden markers in GitHub bodies, agent output lines). Pure.

`json.loads` raises `RecursionError`, not `ValueError`, on deeply nested brackets
(`{"a": [[[[…]]]]}`): a parser that caught only `ValueError` could be crashed by one
comment or one output line. `json_object` never raises.
"""
from __future__ import annotations

import json
from typing import Any


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object `text` holds; None when it is not JSON, not an object, or nested
    deeper than the parser goes."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None

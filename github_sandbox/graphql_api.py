"""GitHub's GraphQL API (`POST /api/graphql`, and `/graphql` as on api.github.com), for what `gh` asks.

graphql-core executes the operations against GitHub's published schema (vendored from
@octokit/graphql-schema in schema/, with its licence). Resolvers (graphql_types.py) read the
sandbox's store and write through `Service`, the same rules as REST. A field the sandbox does
not implement answers an error naming it, never a silent null. Errors take GitHub's shape
(`type: NOT_FOUND`, ...). Requests count against their own `graphql` rate-limit resource
(app.py's pipeline).
"""
from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from graphql import (GraphQLError, GraphQLSchema, OverlappingFieldsCanBeMergedRule, build_client_schema,
                     execute_sync, parse, specified_rules, validate)
from starlette.responses import Response

from .context import Sandbox, json_response
from .errors import ApiError
from .graphql_types import Ctx, Mutation, Query, not_implemented
from .render import Urls

router = APIRouter()
SCHEMA_JSON = Path(__file__).parent / "schema" / "schema.json"
PATHS = ("/api/graphql", "/graphql")
# GitHub lets `... on Issue { state } ... on PullRequest { state }` through (`gh issue view` sends it)
_RULES = [rule for rule in specified_rules if rule is not OverlappingFieldsCanBeMergedRule]
_TYPES = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT", 422: "UNPROCESSABLE"}


@cache
def schema() -> GraphQLSchema:
    """GitHub's schema, built once per process (about half a second)."""
    return build_client_schema(json.loads(SCHEMA_JSON.read_text(encoding="utf-8")))


@cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def resolve_field(source: Any, info, **args: Any) -> Any:
    """Dicts answer by key, resolver objects by snake_case attribute (called with the field's
    arguments when it is a method); anything else is a field the sandbox does not implement."""
    name = info.field_name
    if isinstance(source, dict):
        if name in source:
            return source[name]
        raise not_implemented(info)
    value = getattr(source, _snake(name), _MISSING)
    if value is _MISSING:
        raise not_implemented(info)
    return value(**{_snake(k): v for k, v in args.items()}) if callable(value) else value


_MISSING = object()


def resolve_type(value: Any, info, abstract_type) -> str:
    return value.typename


def _error(err: GraphQLError) -> dict[str, Any]:
    out = err.formatted
    original = err.original_error
    if isinstance(original, ApiError):
        out["type"] = _TYPES.get(original.status, "UNPROCESSABLE")
        detail = "; ".join(e if isinstance(e, str) else e.get("message") or json.dumps(e)
                           for e in original.errors or [])
        out["message"] = detail or original.message
    elif err.extensions and "type" in err.extensions:
        out["type"] = err.extensions["type"]
    out.pop("extensions", None)
    return out


def execute(sb: Sandbox, urls: Urls, viewer, body: dict[str, Any]) -> dict[str, Any]:
    query = body.get("query")
    if not isinstance(query, str):
        return {"errors": [{"message": "A query attribute must be specified and must be a string."}]}
    variables = body.get("variables") or {}
    ctx = Ctx(sb.service, urls, viewer, sb.rates)
    try:
        document = parse(query)
    except GraphQLError as exc:
        return {"errors": [_error(exc)]}
    invalid = validate(schema(), document, _RULES)
    if invalid:
        return {"errors": [_error(e) for e in invalid]}
    result = execute_sync(schema(), document, root_value=_Root(ctx), context_value=ctx,
                          variable_values=variables if isinstance(variables, dict) else {},
                          operation_name=body.get("operationName"), field_resolver=resolve_field,
                          type_resolver=resolve_type)
    out: dict[str, Any] = {}
    if result.data is not None or not result.errors:
        out["data"] = result.data
    if result.errors:
        out["errors"] = [_error(e) for e in result.errors]
    return out


class _Root:
    """The root value: `query` fields come from `Query`, `mutation` fields from `Mutation`."""

    def __init__(self, ctx: Ctx) -> None:
        self._query, self._mutation = Query(ctx), Mutation(ctx)

    def __getattr__(self, name: str) -> Any:
        for side in (self._mutation, self._query):
            found = getattr(side, name, _MISSING)
            if found is not _MISSING:
                return found
        raise AttributeError(name)


async def _graphql(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return json_response({"errors": [{"message": "Problems parsing JSON"}]}, 400)
    if not isinstance(body, dict):
        return json_response({"errors": [{"message": "Problems parsing JSON"}]}, 400)
    viewer = getattr(request.state, "viewer", None)
    if viewer is None:
        return json_response({"message": "This endpoint requires you to be authenticated.",
                              "documentation_url": "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"},
                             401)
    urls = Urls(f"{request.url.scheme}://{request.url.netloc}")
    return json_response(execute(sb, urls, viewer, body))


for _path in PATHS:
    router.add_api_route(_path, _graphql, methods=["POST"])

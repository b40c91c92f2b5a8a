"""The embedded server's write queue, on a real ASGI app through httpx."""
from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI, Response

from shell.prefect_server import SerializedWrites


def make_app():
    app = FastAPI()
    seen = {"active": 0, "peak": 0}

    async def busy() -> dict:
        """Record how many requests are inside the app at once."""
        seen["active"] += 1
        seen["peak"] = max(seen["peak"], seen["active"])
        await asyncio.sleep(0.02)
        seen["active"] -= 1
        return {}

    app.post("/write")(busy)
    app.get("/read")(busy)

    @app.post("/locked")
    async def locked() -> Response:
        return Response(status_code=503, content=b'{"exception_message": "Service Unavailable"}')

    return app, seen


async def _concurrently(app, method: str, path: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await asyncio.gather(*[client.request(method, path) for _ in range(n)])


@pytest.mark.parametrize(("method", "path", "peak"), [("POST", "/write", 1), ("GET", "/read", 8)])
def test_writes_are_queued_reads_are_not(method, path, peak):
    inner, seen = make_app()
    responses = asyncio.run(_concurrently(SerializedWrites(inner), method, path, 8))
    assert [r.status_code for r in responses] == [200] * 8
    assert seen["peak"] == peak


def test_a_503_tells_the_client_to_retry_in_50_ms():
    inner, _ = make_app()
    [response] = asyncio.run(_concurrently(SerializedWrites(inner), "POST", "/locked", 1))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "0.05"

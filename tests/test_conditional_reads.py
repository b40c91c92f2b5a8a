"""Conditional reads against the sandbox over real HTTP: ETags kept on disk across gateways
(passes), 304s served from the cache, and the rate-limit points each gateway spent as the
sandbox's own X-RateLimit headers tell it."""
from __future__ import annotations

from pathlib import Path

import pytest

from conductor.edges.github_gateway import GitHubGateway
from conductor.edges.http_cache import EtagCache, RateMeter
from conductor.core.settings import GitHubSettings


def settings(sandbox, cache: Path, token: str | None = None, **extra) -> GitHubSettings:
    return GitHubSettings(api_url=sandbox.api_url, token=token or sandbox.admin_token,
                          seconds_between_requests=0, seconds_between_writes=0,
                          etag_cache_dir=cache, **extra)


def used(sandbox, token: str | None = None) -> int:
    """The sandbox's count for the token's user (GET /rate_limit costs nothing, as on GitHub)."""
    with sandbox.api(token) as client:
        return client.get("/rate_limit").json()["resources"]["core"]["used"]


def read(sandbox, repo: str, cache: Path, token: str | None = None, **extra):
    with GitHubGateway(settings(sandbox, cache, token, **extra), repo) as gh:
        state = gh.read_state()
        return state, gh.rate_points, gh.not_modified


def test_a_second_read_of_an_unchanged_pipeline_is_free(sandbox, sandbox_repo, tmp_path):
    with GitHubGateway(settings(sandbox, tmp_path), sandbox_repo) as gh:
        for n in range(3):
            gh.create_issue(f"issue {n}", "", ["phase-1/x"])
    before = used(sandbox)
    first, first_points, _ = read(sandbox, sandbox_repo, tmp_path)
    middle = used(sandbox)
    second, second_points, not_modified = read(sandbox, sandbox_repo, tmp_path)
    after = used(sandbox)
    assert first_points == middle - before == 2          # two listings, both charged
    assert second_points == after - middle == 0           # both answered 304
    assert not_modified == 2
    assert second.model_dump() == first.model_dump()      # the cached bodies are the same state


def test_a_change_is_seen_at_once(sandbox, sandbox_repo, tmp_path):
    with GitHubGateway(settings(sandbox, tmp_path), sandbox_repo) as gh:
        number = gh.create_issue("issue", "", ["phase-1/x"])
    read(sandbox, sandbox_repo, tmp_path)
    with GitHubGateway(settings(sandbox, tmp_path), sandbox_repo) as gh:
        gh.set_labels(number, add=["status/in-progress"])
    state, points, not_modified = read(sandbox, sandbox_repo, tmp_path)
    assert state.issues[0].labels == ["phase-1/x", "status/in-progress"]
    assert points == 1 and not_modified == 1  # the issues listing changed, the PR listing did not


def test_entries_are_per_token_and_hold_no_token(sandbox, sandbox_repo, tmp_path):
    read(sandbox, sandbox_repo, tmp_path)
    _, points, not_modified = read(sandbox, sandbox_repo, tmp_path, token=sandbox.token_of("bob"))
    assert not_modified == 0 and points == 2  # bob's token never sees the admin's entries
    text = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert sandbox.admin_token not in text and sandbox.token_of("bob") not in text
    assert text  # something was kept


def test_conditional_reads_can_be_turned_off(sandbox, sandbox_repo, tmp_path):
    read(sandbox, sandbox_repo, tmp_path, conditional_reads=False)
    _, points, not_modified = read(sandbox, sandbox_repo, tmp_path, conditional_reads=False)
    assert (points, not_modified) == (2, 0)
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(("responses", "points"), [
    ([(200, 10, "r1")], 1),
    ([(304, 10, "r1")], 0),
    ([(200, 10, "r1"), (304, 10, "r1"), (200, 11, "r1")], 2),
    ([(304, 10, "r1"), (304, 10, "r1")], 0),
    ([(200, 4998, "r1"), (200, 1, "r2")], 2),            # the window reset between two requests
    ([(200, 10, "r1"), (200, 15, "r1")], 6),             # someone else spent 4 in between
])
def test_rate_meter(responses, points):
    meter = RateMeter()
    for status, used_, reset in responses:
        meter.add(status, {"x-ratelimit-used": str(used_), "x-ratelimit-reset": reset})
    meter.add(200, {})  # no rate headers: not counted
    assert meter.points == points


def test_cache_key_separates_urls_and_credentials():
    keys = {EtagCache.key(u, a) for u in ("http://h/a", "http://h/b") for a in ("token x", "token y", None)}
    assert len(keys) == 6

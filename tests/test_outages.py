"""Which failed leaves failed while GitHub was failing (conductor/core/outages.py): a table of
agent output lines, and a pathological line scanned in linear time."""
from __future__ import annotations

import time

import pytest

from conductor.core.outages import outage, outage_line

API = "http://127.0.0.1:8123/api/v3"


@pytest.mark.parametrize(
    ("line", "shows"),
    [
        ("HTTP 502: Bad Gateway (https://api.github.com/repos/o/r/pulls)", True),
        ("HTTP 429: Too Many Requests (https://api.github.com/graphql)", True),
        ("fatal: unable to access 'https://github.com/o/r.git/': The requested URL returned error: 503", True),
        ("error: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500 (github.com)", True),
        ("github.GithubException.GithubException: 503 {\"message\": \"Service Unavailable\"}", True),
        ("You have exceeded a secondary rate limit (GitHub)", True),
        ("RuntimeError: POST http://127.0.0.1:8123/api/v3/repos/o/r/pulls: HTTP 503 {\"message\": \"x\"}", True),
        ("RuntimeError: GET http://127.0.0.1:8123/api/v3/repos/o/r/issues/9999: HTTP 404 {}", False),
        ("HTTP 404: Not Found (https://api.github.com/repos/o/r/issues/9999)", False),
        ("API Error: 529 overloaded_error (the model's endpoint)", False),
        ("HTTP 503: Service Unavailable (https://model.example/v1/messages)", False),
        ("edited src/github_client.py line 503", False),
        ("gitHub issue #5029 is closed", False),
    ],
)
def test_a_line_shows_github_failing(line: str, shows: bool) -> None:
    assert (outage_line(["starting", line], API) is not None) is shows


def test_the_agents_line_comes_first_then_the_leafs_own_faults() -> None:
    line = "HTTP 502: Bad Gateway (https://api.github.com/repos/o/r)"
    assert outage(["x", line], API, faults_met=2) == f"the agent met GitHub failing: {line}"
    assert outage(["x"], API, faults_met=2) == "the leaf's own GitHub calls met 2 5xx/429 answers"
    assert outage(["x"], API, faults_met=1) == "the leaf's own GitHub calls met 1 5xx/429 answer"
    assert outage(["x"], API) == ""


@pytest.mark.parametrize("text", ["github " + "http " * 13_107, "github" + ":" * 65_536, "github" + " 5" * 32_768,
                                  "github\n" * 65_536])
def test_a_pathological_line_is_scanned_in_linear_time(text: str) -> None:
    normal = "github " + "lorem ipsum " * (len(text) // 12)
    started = time.perf_counter()
    outage_line([normal] * 50, API)
    base = time.perf_counter() - started
    started = time.perf_counter()
    outage_line([text] * 50, API)
    assert time.perf_counter() - started < 20 * base + 0.05

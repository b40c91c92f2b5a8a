"""The pure webhook rules: GitHub's signature, which deliveries can change the plan, and the
Prefect event each one becomes (conductor/core/webhooks.py)."""
from __future__ import annotations

import uuid

import pytest
from githubkit.webhooks import sign as githubkit_sign
from githubkit.webhooks import verify as githubkit_verify

from conductor.core.webhooks import (MAX_BODY, PLAN_EVENTS, Framing, SignatureCheck, body_framing, chunk_size,
                                     classify, event_id, sign, signature_valid)

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
# GitHub's documented test vector (docs: "Validating webhook deliveries").
GITHUB_VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_sign_matches_githubs_documented_vector():
    assert sign(SECRET, BODY) == GITHUB_VECTOR
    assert githubkit_verify(SECRET.decode(), BODY, GITHUB_VECTOR)
    assert githubkit_sign(SECRET.decode(), BODY, method="sha256") == GITHUB_VECTOR


@pytest.mark.parametrize(("secret", "body", "header", "valid"), [
    (SECRET, BODY, GITHUB_VECTOR, True),
    (SECRET, BODY, GITHUB_VECTOR.upper().replace("SHA256=", "sha256="), True),  # hex in any case
    (SECRET, BODY, f"  {GITHUB_VECTOR} ", True),
    (SECRET, BODY + b" ", GITHUB_VECTOR, False),        # body changed
    (b"another secret", BODY, GITHUB_VECTOR, False),     # secret wrong
    (SECRET, BODY, None, False),                         # header missing
    (SECRET, BODY, "", False),
    (SECRET, BODY, GITHUB_VECTOR.replace("sha256=", "sha1="), False),
    (SECRET, BODY, GITHUB_VECTOR[:-2], False),           # truncated
    (SECRET, BODY, "sha256=" + "0" * 64, False),
    (b"", BODY, sign(b"", BODY), False),                 # an empty secret verifies nothing
])
def test_signature_valid(secret, body, header, valid):
    assert signature_valid(secret, body, header) is valid


@pytest.mark.parametrize("cuts", [[], [0], [1], [5, 6], [1, 2, 3, 12], list(range(len(BODY)))])
def test_a_body_hashed_in_pieces_checks_like_the_whole(cuts):
    check = SignatureCheck(SECRET)
    for start, end in zip([0, *cuts], [*cuts, len(BODY)]):
        check.update(BODY[start:end])
    assert check.matches(GITHUB_VECTOR)
    check.update(b"!")
    assert not check.matches(GITHUB_VECTOR)


@pytest.mark.parametrize(("headers", "framing"), [
    ([("Content-Length", "120")], Framing(kind="length", length=120)),
    ([("content-length", " 0 ")], Framing(kind="length", length=0)),
    ([("Content-Length", str(MAX_BODY))], Framing(kind="length", length=MAX_BODY)),
    ([("Content-Length", "5"), ("Content-Length", "5")], Framing(kind="length", length=5)),
    ([("Transfer-Encoding", "chunked")], Framing(kind="chunked")),
    ([("transfer-encoding", "Chunked")], Framing(kind="chunked")),
])
def test_body_framing_accepts(headers, framing):
    assert body_framing(headers) == framing


@pytest.mark.parametrize(("headers", "status"), [
    ([("Content-Length", str(MAX_BODY + 1))], 413),       # over GitHub's 25 MB: refused unread
    ([("Content-Length", "9" * 40)], 413),
    ([], 411),                                            # neither header
    ([("X-Other", "1")], 411),
    ([("Content-Length", "-1")], 400),
    ([("Content-Length", "0x10")], 400),
    ([("Content-Length", "1e3")], 400),
    ([("Content-Length", "")], 400),
    ([("Content-Length", "١٢")], 400),                    # Unicode digits are not a length
    ([("Content-Length", "5"), ("Content-Length", "6")], 400),   # two lengths: smuggling
    ([("Content-Length", "5"), ("Transfer-Encoding", "chunked")], 400),
    ([("Transfer-Encoding", "gzip, chunked")], 501),
    ([("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "identity")], 501),
])
def test_body_framing_refuses_before_reading(headers, status):
    framing = body_framing(headers)
    assert (framing.kind, framing.status) == ("refuse", status) and framing.message


@pytest.mark.parametrize(("line", "size"), [
    (b"0\r\n", 0), (b"1a\r\n", 26), (b"FF\n", 255), (b"10;name=value\r\n", 16),
    (b"ffffffffffffffff\r\n", 2**64 - 1),
])
def test_chunk_size(line, size):
    assert chunk_size(line) == size


@pytest.mark.parametrize("line", [b"", b"\r\n", b"1a", b"g\r\n", b"-1\r\n", b" 1\r\n", b"1 \r\n",
                                  b"1\r\n\r\n", b"1" * 17 + b"\r\n", b"0x10\r\n"])
def test_chunk_size_refuses(line):
    with pytest.raises(ValueError):
        chunk_size(line)


def payload(action: str | None = "closed", *, repo: str = "octo/widgets", sender: str = "alice",
            kind: str = "pull_request", number: int = 7) -> dict:
    data = {"repository": {"full_name": repo}, "sender": {"login": sender}, kind: {"number": number}}
    if action is not None:
        data["action"] = action
    return data


@pytest.mark.parametrize(("event", "data", "own", "outcome", "reason"), [
    ("pull_request", payload("closed"), {"conductor-bot"}, "emit", ""),
    ("pull_request", payload("synchronize"), set(), "emit", ""),
    ("pull_request", payload("ready_for_review"), set(), "emit", ""),
    ("pull_request", payload("assigned"), set(), "ignore", "pull_request.assigned cannot change the plan"),
    ("pull_request", payload("review_requested"), set(), "ignore", "cannot change the plan"),
    ("issues", payload("labeled", kind="issue"), set(), "emit", ""),
    ("issues", payload("edited", kind="issue"), set(), "emit", ""),
    ("issues", payload("milestoned", kind="issue"), set(), "ignore", "issues.milestoned"),
    ("issue_dependencies", payload("blocked_by_added", kind="issue"), set(), "emit", ""),
    ("issue_dependencies", payload("blocking_removed", kind="issue"), set(), "emit", ""),
    ("issue_comment", payload("created", kind="issue"), set(), "ignore", "'issue_comment' cannot change"),
    ("push", {"ref": "refs/heads/main"}, set(), "ignore", "'push' cannot change"),
    ("ping", {"zen": "Keep it logically awesome."}, set(), "ignore", "ping"),
    (None, payload(), set(), "ignore", "no X-GitHub-Event"),
    ("pull_request", payload(None), set(), "ignore", "pull_request.None"),
    ("pull_request", ["not", "an", "object"], set(), "ignore", "not a JSON object"),
    ("pull_request", {"action": "closed", "sender": {"login": "a"}}, set(), "ignore", "names no repository"),
    # The conductor's own writes come back as deliveries: they start nothing (any case).
    ("issues", payload("labeled", kind="issue", sender="conductor-bot"), {"conductor-bot"}, "ignore",
     "own login conductor-bot"),
    ("issues", payload("labeled", kind="issue", sender="Conductor-Bot"), {"conductor-bot"}, "ignore",
     "own login"),
    ("pull_request", payload("closed", sender="conductor-bot-2"), {"conductor-bot"}, "emit", ""),
])
def test_classify(event, data, own, outcome, reason):
    verdict = classify(event, "72d3162e-cc78-11e3-81ab-4c9367dc0958", data, frozenset(own))
    assert verdict.outcome == outcome
    assert reason in verdict.reason
    assert (verdict.event is not None) == (outcome == "emit")


def test_emitted_event_names_the_repository_and_keeps_the_delivery():
    delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    spec = classify("pull_request", delivery, payload("closed", repo="Octo/Widgets", number=12)).event
    assert spec is not None
    assert spec.event == "github.pull_request.closed"
    assert spec.resource == {"prefect.resource.id": "github.repository.Octo/Widgets",
                             "prefect.resource.name": "Octo/Widgets"}
    assert spec.payload == {"delivery": delivery, "event": "pull_request", "action": "closed",
                            "number": 12, "sender": "alice"}
    assert spec.id == event_id(delivery)


def test_a_redelivery_is_the_same_event_and_other_deliveries_are_not():
    first = classify("issues", "d-1", payload("closed", kind="issue")).event
    again = classify("issues", "d-1", payload("closed", kind="issue")).event
    other = classify("issues", "d-2", payload("closed", kind="issue")).event
    assert first.id == again.id != other.id
    assert isinstance(first.id, uuid.UUID)


@pytest.mark.parametrize("delivery", [None, "", "x" * 101, "bad id with spaces", "../../etc"])
def test_a_delivery_without_a_usable_id_is_ignored(delivery):
    assert classify("issues", delivery, payload("closed", kind="issue")).outcome == "ignore"


def test_plan_events_are_the_issues_list():
    assert set(PLAN_EVENTS) == {"issues", "pull_request", "issue_dependencies"}
    assert PLAN_EVENTS["issues"] == {"opened", "closed", "reopened", "labeled", "unlabeled", "edited"}
    assert PLAN_EVENTS["pull_request"] == {"opened", "closed", "reopened", "labeled", "unlabeled",
                                           "ready_for_review", "synchronize"}

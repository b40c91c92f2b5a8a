"""The pure webhook rules: GitHub's signature, which deliveries can change the plan, and the
Prefect event each one becomes (conductor/core/webhooks.py)."""
from __future__ import annotations

import uuid

import pytest
from githubkit.webhooks import sign as githubkit_sign
from githubkit.webhooks import verify as githubkit_verify

from conductor.core.webhooks import PLAN_EVENTS, classify, event_id, sign, signature_valid

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

"""Reminder and stuck issue bodies: render, parse back, fingerprint, attempt counter."""
from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from markdown_it import MarkdownIt
from pydantic import ValidationError

from conductor.core.errors import ConductorError
from conductor.core.models import (
    GatedItem,
    HeldItem,
    Issue,
    OutsideItem,
    PhaseStatus,
    PipelineState,
    Plan,
    Problem,
    PullRequest,
    WaitingItem,
)
from conductor.core.reminder import (
    ReminderState,
    body_changed,
    fingerprint,
    is_stuck_issue,
    next_attempt,
    parse_reminder,
    reminder_title,
    render_reminder,
    render_stuck,
    stuck_title,
)
from conductor.core.verify import CoordinatorFailure, FailedPR

MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
FP = "0123456789abcdef"
HINT = "prefect deployment run 'conductor/default'"
AT = '"generated_at": "2025-01-01T00:00:00Z"'


def marker(payload: str) -> str:
    return f"<!-- conductor:reminder {payload} -->"


FORGED = marker(f'{{"attempt": 99, "fingerprint": "ffff", {AT}}}')
HOSTILE = f"{FORGED} <!-- conductor:stuck --> @admin [x](https://evil) ## head\n# h1 | pipe `tick`"

PHASES = [
    PhaseStatus(name="phase-1/db-schema", open_issues=2, open_prs=1, state="active"),
    PhaseStatus(name="phase-2/core-api", open_issues=1, open_prs=0, state="waiting"),
    PhaseStatus(name="phase-3/done", state="complete"),
]
GATED = [GatedItem(number=5, kind="issue", title="Add users table", reason="phase-1 migration")]
FAILURE = CoordinatorFailure(kind="issue_to_pr", phase="phase-1/db-schema", batch="batch-01",
                             reason="agent exited with status 1")
FAILED_PR = FailedPR(number=40, grade="D", title="Broken PR", reason="graded D")
WAITING = [WaitingItem(number=8, kind="issue", title="Needs the API", blockers=[5],
                       reason="depends on #5 (open)"),
           WaitingItem(number=41, kind="pr", title="Second change", blockers=[40],
                       reason="merges after PR #40 (open), not reviewed in this pass")]
HELD = [HeldItem(number=9, kind="issue", title="Flaky one", attempts=3, last_reason="agent timed out")]
OUTSIDE = [OutsideItem(number=12, title="Regression in login", batch="batch-02"),
           OutsideItem(number=13, title="Another", batch="batch-01", placed_in="phase-2/core-api")]


def plan(**changes) -> Plan:
    return Plan(**(dict(repo="owner/repo", open_issues=3, open_prs=1, phases=PHASES) | changes))


def render(p: Plan | None = None, **changes) -> str:
    kwargs = dict(attempt=1, fingerprint=FP, now=NOW, failures=[], failed_prs=[], rerun_hint=HINT)
    return render_reminder(p or plan(), **(kwargs | changes))


def headings(body: str) -> list[str]:
    tokens = MD.parse(body)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


# --- ReminderState -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("generated_at", "expected"),
    [
        (NOW, NOW),
        (datetime(2025, 1, 2, 3, 4, 5), NOW),  # naive: read as UTC
        (datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), NOW),
        ("2025-01-02T03:04:05Z", NOW),
    ],
)
def test_state_timestamps_are_utc(generated_at, expected):
    state = ReminderState(attempt=0, fingerprint=FP, generated_at=generated_at)
    assert state.generated_at == expected and state.generated_at.tzinfo == UTC


@pytest.mark.parametrize(
    "data",
    [
        {"attempt": -1, "fingerprint": FP, "generated_at": NOW},
        {"attempt": 0, "fingerprint": "not hex", "generated_at": NOW},
        {"attempt": 0, "fingerprint": "ab --> x", "generated_at": NOW},
        {"attempt": 0, "fingerprint": FP},
    ],
)
def test_state_rejects_bad_values(data):
    with pytest.raises(ValidationError):
        ReminderState.model_validate(data)


# --- fingerprint -------------------------------------------------------------------------

BASE = PipelineState(
    repo="owner/repo",
    issues=[Issue(number=1, labels=["phase-1/db", "batch-01"]),
            Issue(number=2, labels=["phase-1/db", "batch-02"])],
    pull_requests=[PullRequest(number=10, labels=["phase-1/db"], draft=False)],
)


def changed(**changes) -> PipelineState:
    return BASE.model_copy(deep=True, update=changes)


def with_issue_labels(number: int, labels: list[str]) -> PipelineState:
    state = BASE.model_copy(deep=True)
    next(i for i in state.issues if i.number == number).labels = labels
    return state


REMINDER_ISSUE = Issue(number=99, title="⏰ Conductor reminder", labels=["conductor-reminder"])
STUCK_ISSUE = Issue(number=98, labels=["conductor-stuck"])
SAME = {
    "reordered items and labels": changed(
        issues=[Issue(number=2, labels=["batch-02", "phase-1/db"]),
                Issue(number=1, labels=["batch-01", "phase-1/db", "batch-01"])]),
    "only marked in progress": with_issue_labels(1, ["phase-1/db", "batch-01", "status/in-progress"]),
    "only marked pr-open": with_issue_labels(2, ["status/pr-open", "phase-1/db", "batch-02"]),
    "a new reminder issue": changed(issues=BASE.issues + [REMINDER_ISSUE]),
    "a stuck issue": changed(issues=BASE.issues + [STUCK_ISSUE]),
    "titles and bodies edited": changed(
        issues=[i.model_copy(update={"title": "new", "body": "x"}) for i in BASE.issues]),
    "api request count": changed(api_requests=57),
}
PROGRESS = {
    "coordinator opened a PR": changed(
        pull_requests=BASE.pull_requests + [PullRequest(number=11, labels=["phase-1/db"])]),
    "PR merged or closed": changed(pull_requests=[]),
    "issue closed": changed(issues=BASE.issues[:1]),
    "approval label added": with_issue_labels(1, ["phase-1/db", "batch-01", "conductor/approved"]),
    "phase label fixed": with_issue_labels(2, ["phase-2/api", "batch-02"]),
    "PR left draft": changed(pull_requests=[PullRequest(number=10, labels=["phase-1/db"], draft=True)]),
    "new issue": changed(issues=BASE.issues + [Issue(number=3, labels=["phase-1/db"])]),
}


@pytest.mark.parametrize("state", list(SAME.values()), ids=list(SAME))
def test_fingerprint_ignores_what_is_not_progress(state):
    assert fingerprint(state) == fingerprint(BASE)


@pytest.mark.parametrize("state", list(PROGRESS.values()), ids=list(PROGRESS))
def test_fingerprint_changes_on_progress(state):
    assert fingerprint(state) != fingerprint(BASE)


def test_fingerprint_is_16_hex_and_order_independent_under_shuffles():
    issues = [Issue(number=n, labels=[f"l{n % 3}", "phase-1/x"]) for n in range(1, 40)]
    prs = [PullRequest(number=n, labels=["phase-1/x"], draft=n % 2 == 0) for n in range(40, 60)]
    state = PipelineState(repo="o/r", issues=issues, pull_requests=prs)
    expected = fingerprint(state)
    assert re.fullmatch(r"[0-9a-f]{16}", expected)
    rng = random.Random(7)
    for _ in range(5):
        shuffled = state.model_copy(deep=True)
        rng.shuffle(shuffled.issues)
        rng.shuffle(shuffled.pull_requests)
        for item in shuffled.issues:
            rng.shuffle(item.labels)
        assert fingerprint(shuffled) == expected


def test_fingerprint_uses_the_configured_labels():
    renamed = changed(issues=BASE.issues + [Issue(number=99, labels=["my-reminder"])])
    assert fingerprint(renamed) != fingerprint(BASE)
    assert fingerprint(renamed, ignore_labels=["my-reminder"]) == fingerprint(BASE)
    wip = with_issue_labels(1, ["phase-1/db", "batch-01", "wip"])
    assert fingerprint(wip) != fingerprint(BASE)
    assert fingerprint(wip, status_labels=["wip"]) == fingerprint(BASE)


# --- next_attempt ------------------------------------------------------------------------

PREVIOUS = ReminderState(attempt=2, fingerprint=FP, generated_at=NOW)


@pytest.mark.parametrize(
    ("previous", "current", "override", "expected"),
    [
        (None, FP, None, 0),
        (PREVIOUS, FP, None, 3),
        (PREVIOUS, "fedcba9876543210", None, 0),
        (PREVIOUS, FP, 0, 0),
        (None, FP, 5, 5),
        (PREVIOUS, "fedcba9876543210", 4, 4),
    ],
)
def test_next_attempt(previous, current, override, expected):
    assert next_attempt(previous, current, override) == expected


@pytest.mark.parametrize(("previous", "current", "expected"), [
    (PREVIOUS, FP, 2),                    # where it was, nothing to dispatch: the count holds
    (PREVIOUS, "fedcba9876543210", 0),    # it moved: 0 as ever
    (None, FP, 0),
])
def test_a_waiting_pipeline_holds_its_count(previous, current, expected):
    assert next_attempt(previous, current, waiting=True) == expected


def test_negative_override_is_rejected():
    with pytest.raises(ConductorError, match="attempt override must be 0 or more, got -1"):
        next_attempt(None, FP, -1)


# --- render / parse ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("attempt", "fp", "now"),
    [
        (0, FP, NOW),
        (3, "ab", NOW + timedelta(microseconds=999)),
        (17, "f" * 64, datetime(2030, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))),
    ],
)
def test_round_trip(attempt, fp, now):
    state = parse_reminder(render(attempt=attempt, fingerprint=fp, now=now))
    assert state is not None
    assert (state.attempt, state.fingerprint) == (attempt, fp)
    assert state.generated_at == now.astimezone(UTC).replace(microsecond=0)


def test_body_layout():
    body = render(
        plan(gated=GATED, problems=[Problem(number=7, message="no batch label")]),
        attempt=2, failures=[FAILURE], failed_prs=[FAILED_PR],
    )
    lines = body.splitlines()
    assert lines[0] == "## Pipeline Status — 2025-01-02 03:04 UTC"
    for expected in [
        "**Open issues:** 3",
        "**Open PRs:** 1",
        "**Conductor run:** attempt 2",  # the same number as the marker and the table
        "Re-run the conductor: `prefect deployment run 'conductor/default'`",
        "- phase\\-1/db\\-schema: 2 open issues, 1 open PR",
        "- phase\\-2/core\\-api: 1 open issue, 0 open PRs",
        "- Issue #5: Add users table — phase\\-1 migration",
        "- PR #40 (grade D): Broken PR — graded D",
        "- issue\\_to\\_pr, phase\\-1/db\\-schema, batch\\-01: agent exited with status 1",
        "- #7: no batch label",
    ]:
        assert expected in lines
    assert not any("phase\\-3" in line for line in lines)  # complete phases are not listed
    assert "`conductor/approved`" in body
    assert lines[-1].startswith("<!-- conductor:reminder {") and body.endswith("-->\n")


WHAT = "What to do next"
BY_PHASE = "Open issues by phase"
GATED_H = "Gated items (require human sign-off before conductor can proceed)"
FAILED_H = "Failed PRs (D/F grade — not merged, needs human review)"
COORD_H = "Failed coordinators"
PROBLEMS_H = "Problems found while planning"
WAITING_H = "Waiting for other items (dependencies, merge order)"
HELD_H = "Needs a human (failed too often)"
OUTSIDE_H = "Outside the pipeline (batch label, no phase label)"
STATUS_H = "Pipeline Status — 2025-01-02 03:04 UTC"

SECTION_CASES = {
    "minimal": (plan(), {}, [STATUS_H, WHAT, BY_PHASE]),
    "no open phase": (plan(phases=[PHASES[2]]), {}, [STATUS_H, WHAT]),
    "gated": (plan(gated=GATED), {}, [STATUS_H, WHAT, BY_PHASE, GATED_H]),
    "gated but approved": (
        plan(gated=[GATED[0].model_copy(update={"approved": True})]), {},
        [STATUS_H, WHAT, BY_PHASE]),
    "failed PR": (plan(), {"failed_prs": [FAILED_PR]}, [STATUS_H, WHAT, BY_PHASE, FAILED_H]),
    "failed coordinator": (plan(), {"failures": [FAILURE]}, [STATUS_H, WHAT, BY_PHASE, COORD_H]),
    "problems": (plan(problems=[Problem(message="x")]), {}, [STATUS_H, WHAT, BY_PHASE, PROBLEMS_H]),
    "waiting": (plan(waiting=WAITING), {}, [STATUS_H, WHAT, BY_PHASE, WAITING_H]),
    "held back": (plan(held_back=HELD), {}, [STATUS_H, WHAT, BY_PHASE, HELD_H]),
    "outside": (plan(outside_pipeline=OUTSIDE), {}, [STATUS_H, WHAT, BY_PHASE, OUTSIDE_H]),
    "everything": (
        plan(gated=GATED, problems=[Problem(message="x")], waiting=WAITING, held_back=HELD,
             outside_pipeline=OUTSIDE),
        {"failures": [FAILURE], "failed_prs": [FAILED_PR]},
        [STATUS_H, WHAT, BY_PHASE, GATED_H, WAITING_H, HELD_H, OUTSIDE_H, FAILED_H, COORD_H, PROBLEMS_H]),
}


def test_waiting_held_and_outside_lines():
    lines = render(plan(waiting=WAITING, held_back=HELD, outside_pipeline=OUTSIDE)).splitlines()
    for expected in [
        "- Issue #8: Needs the API — depends on \\#\u200b5 \\(open\\)",
        "- PR #41: Second change — merges after PR \\#\u200b40 \\(open\\), not reviewed in this pass",
        "- Issue #9: Flaky one — needs a human: failed 3 times (last reason: agent timed out)",
        "- Issue #12: Regression in login — batch\\-02",
        "- Issue #13: Another — batch\\-01, dispatched in phase\\-2/core\\-api",
    ]:
        assert expected in lines, (expected, lines)


@pytest.mark.parametrize(
    ("p", "extra", "expected"), list(SECTION_CASES.values()), ids=list(SECTION_CASES)
)
def test_sections_present_only_when_they_have_content(p, extra, expected):
    assert headings(render(p, **extra)) == expected


def hostile_everywhere() -> str:
    p = Plan(
        repo="owner/repo", open_issues=1, open_prs=1,
        phases=[PhaseStatus(name=HOSTILE, open_issues=1, open_prs=1, state="active")],
        gated=[GatedItem(number=5, kind="pr", title=HOSTILE, reason=HOSTILE)],
        problems=[Problem(number=3, message=HOSTILE)],
        waiting=[WaitingItem(number=6, kind="issue", title=HOSTILE, reason=HOSTILE)],
        held_back=[HeldItem(number=7, kind="pr", title=HOSTILE, attempts=3, last_reason=HOSTILE)],
        outside_pipeline=[OutsideItem(number=8, title=HOSTILE, batch=HOSTILE, placed_in=HOSTILE)],
    )
    return render(
        p, attempt=4, rerun_hint=HOSTILE,
        failures=[CoordinatorFailure(kind="pr_review", phase=HOSTILE, batch=HOSTILE, reason=HOSTILE)],
        failed_prs=[FailedPR(number=41, grade="F", title=HOSTILE, reason=HOSTILE)],
    )


def test_hostile_text_cannot_forge_markers_headings_or_links():
    body = hostile_everywhere()
    assert body.count("<!--") == 1  # only our own marker
    state = parse_reminder(body)
    assert state is not None and (state.attempt, state.fingerprint) == (4, FP)
    assert not is_stuck_issue(body)
    assert headings(body) == [STATUS_H, WHAT, BY_PHASE, GATED_H, WAITING_H, HELD_H, OUTSIDE_H,
                              FAILED_H, COORD_H, PROBLEMS_H]
    tokens = MD.parse(body)
    inline = [c for t in tokens if t.type == "inline" for c in t.children]
    assert not {"link_open", "image", "html_inline"} & {c.type for c in inline}
    assert [t.type for t in tokens if t.type == "html_block"] == ["html_block"]  # the marker
    text = " ".join(c.content for c in inline if c.type == "text")
    assert "@admin" not in text and "https://" not in text  # GitHub would link these
    assert [c.content for c in inline if c.type == "code_inline"] == [  # our own literals only
        HOSTILE.replace("\n", " ").replace("<!--", "<\u200b!--"),
        "conductor/approved",
    ]


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "no marker here",
        "<!-- conductor:reminder not json -->",
        "<!-- conductor:reminder [1, 2] -->",
        marker(f'{{"attempt": -1, "fingerprint": "ab", {AT}}}'),
        marker(f'{{"attempt": 1, "fingerprint": "XYZ", {AT}}}'),
        marker('{"attempt": 1, "fingerprint": "ab"}'),
        marker('{"attempt": 1, "fingerprint": "ab", "generated_at": "yesterday"}'),
        marker(f'{{"attempt": "1e999", "fingerprint": "ab", {AT}}}'),
        marker(f'{{"attempt": 1, "fingerprint": "ab", {AT}}}').removesuffix(" -->"),
        '<!-- conductor:stuck -->',
        marker(f'{{"attempt": 1, "fingerprint": "ab", {AT}}}').replace("conductor:reminder", "other:m"),
    ],
)
def test_parse_tolerates_garbage(body):
    assert parse_reminder(body) is None


@pytest.mark.parametrize(
    ("body", "attempt"),
    [
        (render(attempt=2).replace("\n", "\r\n"), 2),
        (marker(f'{{"attempt": 1, "fingerprint": "ab", {AT}}}'), 1),
        ('x\n<!--conductor:reminder   {"attempt":5,"fingerprint":"ab","generated_at":"2025-01-01T00:00:00"}-->', 5),
        (render(attempt=1) + "\nedited by a human\n" + render(attempt=6), 6),  # the last marker wins
        (render(attempt=3) + '\n<!-- conductor:reminder {"attempt": 1} -->', None),  # broken last
    ],
)
def test_parse_reads_the_last_marker(body, attempt):
    state = parse_reminder(body)
    assert (state.attempt if state else None) == attempt


# --- titles, change detection ------------------------------------------------------------

def test_titles():
    assert reminder_title(NOW) == "⏰ Conductor reminder — pipeline incomplete (2025-01-02)"
    late = datetime(2025, 1, 2, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert reminder_title(late).endswith("(2025-01-03)")
    assert stuck_title(4) == "⚠️ Conductor stuck: ATTEMPT_N=4 — needs human intervention"


def test_naive_now_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        render(now=datetime(2025, 1, 2))
    with pytest.raises(ValueError, match="timezone-aware"):
        reminder_title(datetime(2025, 1, 2))


LATER = NOW + timedelta(hours=5, minutes=7)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (render(), render(now=LATER), False),
        (render().replace("\n", "\r\n"), render(now=LATER), False),
        (render() + "\n\n", render(), False),
        (None, render(), True),
        (render(), render(attempt=2), True),
        (render(), render(fingerprint="ab"), True),
        (render(), render(failures=[FAILURE]), True),
        (render(), render(plan(open_issues=4)), True),
        (render().replace("Re-run", "Please re-run"), render(), True),
    ],
)
def test_body_changed(old, new, expected):
    assert body_changed(old, new) is expected


# --- stuck issue -------------------------------------------------------------------------

def test_stuck_body():
    body = render_stuck(4, "owner/repo", plan(gated=GATED))
    assert body.startswith("The pipeline conductor has run 4 times without advancing.")
    assert "- All remaining PRs are in D/F grade rejection state" in body
    assert "`gh issue list --repo owner/repo --label conductor-reminder --state open`" in body
    assert "- Issue #5: Add users table — phase\\-1 migration" in body
    assert is_stuck_issue(body) and parse_reminder(body) is None
    assert body.rstrip().endswith("<!-- conductor:stuck -->")


def test_stuck_body_with_hostile_names():
    body = render_stuck(
        5, "o/r; rm -rf ~", plan(phases=[PhaseStatus(name=HOSTILE, open_issues=1, state="active")]),
        reminder_label="needs <!-- x --> review",
    )
    assert body.count("<!--") == 1 and is_stuck_issue(body)
    assert "--repo 'o/r; rm -rf ~' --label 'needs <\u200b!-- x --> review'" in body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, False),
        ("", False),
        ("<!-- conductor:stuck -->", True),
        ("text\n<!--conductor:stuck-->\n", True),
        ("&lt;!-- conductor:stuck --&gt;", False),
        ("conductor:stuck", False),
        (render(), False),
    ],
)
def test_is_stuck_issue(body, expected):
    assert is_stuck_issue(body) is expected


@pytest.mark.parametrize(("previous", "now", "expected"), [(None, True, 1), (None, False, 0), (2, True, 3), (2, False, 0)])
def test_a_run_of_outage_passes_is_counted_in_the_marker_and_reported(previous, now, expected):
    from conductor.core.reminder import unavailable_streak

    before = None if previous is None else ReminderState(attempt=0, fingerprint=FP, generated_at=NOW,
                                                         unavailable_passes=previous)
    streak = unavailable_streak(before, now)
    assert streak == expected
    body = render(unavailable=[(4, "the agent met GitHub failing: HTTP 503 <b>")] if now else [],
                  unavailable_passes=streak)
    assert parse_reminder(body).unavailable_passes == expected
    if now:
        assert "### GitHub unavailable (retried next pass, no attempt charged)" in body
        assert f"GitHub was unavailable in {expected} pass{'es' if expected > 1 else ''} in a row" in body
        assert "- #4: the agent met GitHub failing: HTTP 503 " in body and "<b>" not in body
    else:
        assert "GitHub unavailable" not in body and "GitHub was unavailable" not in body

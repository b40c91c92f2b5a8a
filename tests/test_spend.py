"""Spend under control (conductor/core/spend.py and the planner's admission), one table per rule."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from conductor.core import presets, spend
from conductor.core.config import PipelineConfig
from conductor.core.models import BudgetLine, Issue, ItemCap, LeafSpend, PipelineState, PullRequest
from conductor.core.planner import plan
from conductor.core.presets import get_preset
from conductor.core.settings import RunSettings, Settings
from conductor.core.usage import Usage
from conductor.core.verify import CoordinatorOutcome, ItemResult

ME, OTHER = "alice", "mallory"
P2, P3 = "phase-2/core-api", "phase-3/api-extensions"
KIND = "issue_to_pr"
DAY = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def leaf(number: int, usd: float | None, *, pass_id: str = "p1", phase: str = P3, kind: str = KIND,
         cli: str = "claude", tokens: tuple[int, int] = (1000, 100), at: datetime = DAY) -> LeafSpend:
    return LeafSpend(pass_id=pass_id, number=number, kind=kind, phase=phase, cli=cli, cost_usd=usd,
                     input_tokens=tokens[0], output_tokens=tokens[1], at=at, model="m")


# -- recording and reading back -------------------------------------------------------------

def test_a_spend_comment_reads_back_as_it_was_written() -> None:
    one = leaf(7, 1.25).model_copy(update={"turns": 3, "seconds": 12.5, "batch": "batch-01", "stopped": "cap <x>"})
    body = spend.render_spend_comment(one)
    assert "1,000 in / 100 out tokens, \\$1\\.2500, 3 turns, 12\\.5 s on this item (claude)" in body
    assert "<x>" not in body.split("<!--")[1]  # the marker never closes the comment early
    assert spend.read_spend([(ME, body)], ME) == [one]


@pytest.mark.parametrize(("comments", "expected"), [
    ([(ME, "m1")], [1]),
    ([(OTHER, "m1")], []),                            # a forged marker counts for nothing
    ([("ALICE", "m1")], [1]),                         # logins compare without case
    ([(ME, "m1"), (ME, "m1")], [1]),                  # one per (pass, item): a re-run wrote it twice
    ([(ME, "m1"), (ME, "m2")], [1, 2]),
    ([(ME, "plain text"), (ME, None), (ME, "<!-- conductor:spend {\"pass_id\": 3} -->")], []),
])
def test_only_the_conductors_own_markers_count(comments, expected) -> None:
    bodies = {"m1": spend.render_spend_comment(leaf(5, 1.0, pass_id="a")),
              "m2": spend.render_spend_comment(leaf(5, 2.0, pass_id="b"))}
    found = spend.read_spend([(a, bodies.get(b, b)) for a, b in comments], ME)
    assert [s.cost_usd for s in found] == expected


def test_leaf_spends_come_from_each_dispatched_items_usage() -> None:
    usage = Usage(input_tokens=10, output_tokens=2, cost_usd=0.5, turns=1, duration_ms=1500, model="m", stopped="cap")
    outcome = CoordinatorOutcome(kind=KIND, phase=P3, batch="batch-01", items=[1, 2], results=[
        ItemResult(number=1, kind="issue", ok=True, usage=usage, ended_at=DAY.timestamp()),
        ItemResult(number=2, kind="issue", ok=False),                 # no usage reported: nothing to record
        ItemResult(number=9, kind="issue", ok=True, usage=usage)])   # not dispatched here
    [one] = spend.leaf_spends([outcome], "p", "claude", datetime(2027, 1, 1, tzinfo=UTC))
    assert one == LeafSpend(pass_id="p", number=1, kind=KIND, phase=P3, batch="batch-01", cli="claude", model="m",
                            cost_usd=0.5, input_tokens=10, output_tokens=2, turns=1, seconds=1.5, at=DAY,
                            stopped="cap")


def test_a_batch_agents_spend_is_shared_evenly_by_its_items() -> None:
    usage = Usage(input_tokens=1001, output_tokens=20, cost_usd=1.0, turns=4, duration_ms=3000, model="m")
    batch = CoordinatorOutcome(kind=KIND, phase=P3, batch="batch-01", items=[1, 2, 3], usage=usage, results=[
        ItemResult(number=n, kind="issue", ok=True) for n in (1, 2, 3)])  # fan_out = "coordinator-agent"
    shares = spend.leaf_spends([batch], "p", "claude", DAY)
    assert [(s.number, s.input_tokens, s.output_tokens, s.turns, s.seconds, s.share_of) for s in shares] == [
        (1, 334, 7, 2, 1.0, 3), (2, 334, 7, 1, 1.0, 3), (3, 333, 6, 1, 1.0, 3)]
    assert [s.cost_usd for s in shares] == [0.333333, 0.333333, 0.333334]  # they sum to the agent's
    assert spend.amount(shares, "tokens") == 1021 and spend.amount(shares, "usd") == pytest.approx(1.0)
    body = spend.render_spend_comment(shares[0])
    assert "(claude): an even share of one batch agent's spend over 3 items." in body
    assert spend.read_spend([(ME, body)], ME) == shares[:1]
    assert spend.leaf_spends([batch.model_copy(update={"usage": None})], "p", "claude", DAY) == []


@pytest.mark.parametrize(("argv", "name"), [
    (["claude", "-p", "x"], "claude"), (["/usr/bin/codex", "exec"], "codex"),
    (["/venv/bin/python3", "-m", "shell.demo_agent"], "demo_agent"), (["python", "agent.py"], "agent"), ([], ""),
    *[(get_preset(p), p.replace("cursor", "cursor-agent")) for p in ("claude", "codex", "cursor", "gemini")],
    (get_preset("generic"), "conductor-agent"),
    (["env", "FOO=1", "claude", "-p"], "claude"),                              # a wrapper and its assignments
    (["/usr/bin/env", "claude"], "claude"),
    (["env", "-u", "HOME", "-i", "A=b", "--", "gemini", "-p"], "gemini"),       # its options, one with a value
    (["npx", "@anthropic-ai/claude-code", "-p"], "claude"),                    # an npm package
    (["npx", "-y", "@openai/codex", "exec"], "codex"),
    (["npx", "--yes", "@google/gemini-cli@0.61.0", "-p"], "gemini"),            # at a version
    (["npx", "-p", "@anthropic-ai/claude-code", "claude", "-p"], "claude"),    # the package as an option
    (["npx", "--package=@openai/codex", "codex", "exec"], "codex"),
    (["timeout", "600", "gemini", "-p"], "gemini"),                            # an operand before the command
    (["timeout", "-k", "5", "--signal=INT", "10m", "codex", "exec"], "codex"),
    (["nice", "-n", "5", "codex", "exec"], "codex"), (["nice", "-5", "codex"], "codex"),
    (["nohup", "stdbuf", "-oL", "timeout", "60", "claude"], "claude"),        # wrappers in wrappers
    (["uvx", "aider"], "aider"), (["uvx", "--from", "aider-chat==0.80", "aider", "--yes"], "aider"),
    (["env", "A=1", "python3", "-m", "shell.demo_agent"], "demo_agent"),
    (["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p"], "claude"),  # inside its package
    (["node", "--no-warnings", "/path/to/cli.js"], "unknown: node cli.js"),   # no CLI we know: said so
    (["node"], "unknown: node"), (["env", "A=1"], ""),
    (["./my-agent", "{task_file}"], "my-agent"),                               # the user's own program
])
def test_the_cli_is_named_by_its_command(argv, name) -> None:
    assert presets.cli_name(argv) == name


def test_a_wrapped_cli_is_named_in_its_spend_and_estimated_by_its_own_leaves() -> None:
    records = [leaf(1, 2.0, cli="claude"), leaf(2, 9.0, cli="codex")]
    wrapped = Settings(pipeline=PipelineConfig(phases=[{"name": P3}], gated_phases=[], budget={"item_usd": 5}),
                       run=RunSettings(agent_command=["npx", "-y", "@anthropic-ai/claude-code", "-p"]))
    p = plan(state(3, records=records), wrapped)
    assert dispatched(p) == [3]  # estimated at claude's $2, not at any CLI's p90 ($9)


# -- the budget table -----------------------------------------------------------------------

@pytest.mark.parametrize(("budget", "error"), [
    ({"phase_usd": 50, "day_tokens": 10_000, "estimate_usd": 2}, None),
    ({"phase_usd": {P3: 50}}, None),
    ({"weekly_usd": 5}, "unknown key 'weekly_usd'"),
    ({"pipeline_usd": -1}, "pipeline_usd must be a number of 0 or more"),
    ({"item_usd": "5"}, "item_usd must be a number"),
    ({"day_usd": True}, "day_usd must be a number"),
    ({"phase_usd": {"phase-9": 5}}, "names unknown phase 'phase-9'"),
    ({"pipeline_usd": {P3: 5}}, "pipeline_usd must be a number"),
])
def test_the_budget_table_is_checked(budget, error) -> None:
    if error is None:
        assert PipelineConfig(budget=budget).budget == budget
    else:
        with pytest.raises(ValidationError, match=error):
            PipelineConfig(budget=budget)


# -- sums and estimates ---------------------------------------------------------------------

def test_budget_lines_sum_per_pipeline_phase_and_utc_day() -> None:
    records = [leaf(1, 1.0), leaf(2, 2.0, phase=P2), leaf(3, None, tokens=(500, 0)),
               leaf(4, 4.0, at=datetime(2026, 12, 2, 23, 59, tzinfo=UTC))]
    lines = spend.budget_lines(records, {"phase_usd": {P3: 50}, "day_tokens": 9000}, [P2, P3], "2026-12-03")
    assert lines == [
        BudgetLine(scope="pipeline", unit="usd", spent=7.0, key="pipeline_usd"),
        BudgetLine(scope="pipeline", unit="tokens", spent=3800, key="pipeline_tokens"),  # a CLI reported no cost
        BudgetLine(scope=P2, unit="usd", spent=2.0, key="phase_usd"),
        BudgetLine(scope=P3, unit="usd", spent=5.0, limit=50, key="phase_usd"),
        BudgetLine(scope=P3, unit="tokens", spent=2700, key="phase_tokens"),
        BudgetLine(scope="today (2026-12-03 UTC)", unit="usd", spent=3.0, key="day_usd"),
        BudgetLine(scope="today (2026-12-03 UTC)", unit="tokens", spent=2700, limit=9000, key="day_tokens"),
    ]


@pytest.mark.parametrize(("records", "cli", "budget", "expected"), [
    ([], "claude", {}, None),                                            # nothing known, no default
    ([], "claude", {"estimate_usd": 3}, 3.0),                            # the configured default
    ([leaf(n, float(n)) for n in range(1, 11)], "claude", {"estimate_usd": 3}, 9.0),  # p90 of 1..10
    ([leaf(1, 1.0), leaf(2, 20.0, cli="codex")], "claude", {}, 1.0),     # that CLI's leaves
    ([leaf(2, 20.0, cli="codex")], "claude", {}, 20.0),                  # else the kind's, any CLI
    ([leaf(1, 5.0, kind="other")], "claude", {"estimate_usd": 3}, 3.0),  # never another kind's
    ([leaf(1, None)], "claude", {"estimate_usd": 3}, 3.0),               # unknown costs are no estimate
])
def test_a_leaf_is_estimated_at_the_p90_of_its_kind(records, cli, budget, expected) -> None:
    assert spend.estimate(records, KIND, cli, budget, "usd") == expected


# -- admission: each leaf reserves its estimate; caps share what is left ----------------------

def cand(number: int, kind: str = KIND, phase: str = P3, noun: str = "issue") -> spend.Candidate:
    return spend.Candidate(number, kind, phase, noun)


RAISE = " (raise {} under [budget] in conductor.toml)"


@pytest.mark.parametrize(("budget", "records", "candidates", "caps", "held"), [
    # two leaves sharing a phase budget: $3 each reserved of $10, the $4 left shared: $5 + $5, not $10 + $10
    ({"phase_usd": {P3: 10}}, [leaf(90, 3.0, phase=P2)], [cand(1), cand(2)],
     {1: ItemCap(usd=5.0), 2: ItemCap(usd=5.0)}, {}),
    # a pipeline budget across phases and kinds: $6 spent of $17, $2 + $4 + $2 reserved; the next PR ($4) waits
    ({"pipeline_usd": 17}, [leaf(90, 2.0, phase=P2), leaf(91, 4.0, phase=P2, kind="pr_review")],
     [cand(1, phase=P2), cand(2, "pr_review", noun="PR"), cand(3), cand(4, "pr_review", noun="PR")],
     {1: ItemCap(usd=3.0), 2: ItemCap(usd=5.0), 3: ItemCap(usd=3.0)},
     {4: "budget: pipeline has spent $6.00 of $17.00 ($8.00 more admitted this pass); this PR is estimated at "
         "$4.00" + RAISE.format("pipeline_usd")}),
    # items with no estimate yet reserve nothing, and share the room
    ({"phase_usd": {P3: 10}}, [], [cand(1), cand(2)], {1: ItemCap(usd=5.0), 2: ItemCap(usd=5.0)}, {}),
    # ... but wait once the reservations before them leave no room
    ({"phase_usd": {P3: 10}}, [leaf(90, 10.0, phase=P2)], [cand(1), cand(2, "rework")], {1: ItemCap(usd=10.0)},
     {2: "budget: phase-3/api-extensions has spent $0.00 of $10.00 ($10.00 more admitted this pass); this issue "
         "has no estimate yet" + RAISE.format("phase_usd")}),
    # USD and tokens together: $3 / 1,100 tokens a leaf; the day's tokens hold the fourth
    ({"phase_usd": {P3: 20}, "day_tokens": 4500}, [leaf(90, 3.0, phase=P2)], [cand(n) for n in (1, 2, 3, 4)],
     {n: ItemCap(usd=6.6666, tokens=1133) for n in (1, 2, 3)},
     {4: "budget: today (2026-12-03 UTC) has spent 1,100 tokens of 4,500 tokens (3,300 tokens more admitted this "
         "pass); this issue is estimated at 1,100 tokens" + RAISE.format("day_tokens")}),
    # a PR merging after one its budget holds waits too, reserving nothing: the issue gets the phase's $6
    ({"phase_usd": {P3: 10}, "item_usd": 4}, [leaf(5, 4.0, kind="pr_review")],
     [cand(5, "pr_review", noun="PR"), spend.Candidate(6, "pr_review", P3, "PR", after=5), cand(7, "rework")],
     {7: ItemCap(usd=4.0)},
     {5: "budget: #5 has spent $4.00 of $4.00; this PR is estimated at $4.00" + RAISE.format("item_usd"),
      6: "merges after PR #5, which waits for its budget"}),
    # an item budget caps its own leaf; the phase's share goes to each
    ({"phase_usd": {P3: 10}, "item_usd": 4}, [leaf(90, 3.0, phase=P2)], [cand(1), cand(2)],
     {1: ItemCap(usd=4.0), 2: ItemCap(usd=4.0)}, {}),
])
def test_admission_reserves_each_estimate_and_caps_sum_within_the_room(budget, records, candidates, caps,
                                                                          held) -> None:
    admission = spend.admit(candidates, records, budget, "claude", "2026-12-03")
    assert (admission.caps, admission.held) == (caps, held)
    assert admission.admitted == [c.number for c in candidates if c.number not in held]


# -- admission in the plan ------------------------------------------------------------------

def state(*numbers: int, records: list[LeafSpend] = (), read_at: datetime | None = DAY,
          prs: tuple[PullRequest, ...] = ()) -> PipelineState:
    return PipelineState(repo="octo/maestro", issues=[Issue(number=n, labels=[P3], title=f"t{n}") for n in numbers],
                         pull_requests=list(prs), spend=list(records), read_at=read_at)


def settings(**budget) -> Settings:
    config = PipelineConfig(phases=[{"name": P2}, {"name": P3}], gated_phases=[], budget=budget)
    return Settings(pipeline=config, run=RunSettings(agent_command=["claude", "-p"]))


def dispatched(p) -> list[int]:
    return [n for d in p.dispatches for n in d.items]


HISTORY = [leaf(90, 41.20, pass_id="old"), leaf(91, 12.0, phase=P2, pass_id="old")]  # p90 of the kind: $41.20


def test_a_phase_budget_that_fits_two_of_three_dispatches_exactly_two() -> None:
    history = [leaf(90, 4.0, pass_id="old", phase=P2)]  # the kind's estimate: $4
    p = plan(state(1, 2, 3, records=history), settings(phase_usd={P3: 10}))
    assert dispatched(p) == [1, 2]
    [third] = p.waiting
    assert third.number == 3
    assert third.reason == ("budget: phase-3/api-extensions has spent $0.00 of $10.00 ($8.00 more admitted this "
                            "pass); this issue is estimated at $4.00 (raise phase_usd under [budget] in conductor.toml)")
    assert not p.stuck


@pytest.mark.parametrize(("budget", "records", "expected", "reason"), [
    ({}, HISTORY, [1, 2], ""),                                                 # no budget: all admitted
    ({"phase_usd": 50}, HISTORY, [],                                           # the issue's own example
     "budget: phase-3/api-extensions has spent $41.20 of $50.00; this issue is estimated at $41.20"),
    ({"pipeline_usd": 100}, HISTORY, [1], "budget: pipeline has spent $53.20 of $100.00 ($41.20 more admitted"),
    ({"item_usd": 5}, [leaf(1, 5.0, pass_id="old")], [2], "budget: #1 has spent $5.00 of $5.00"),
    ({"phase_tokens": 3000, "estimate_tokens": 1000}, [leaf(9, None, tokens=(1500, 0))], [1],
     "budget: phase-3/api-extensions has spent 1,500 tokens of 3,000 tokens (1,500 tokens more admitted this pass); "
     "this issue is estimated at 1,500 tokens"),                             # the recorded leaf, not the default
    ({"phase_usd": {P2: 1}}, HISTORY, [1, 2], ""),                             # another phase's budget
])
def test_admission_holds_what_does_not_fit_a_budget(budget, records, expected, reason) -> None:
    p = plan(state(1, 2, records=records), settings(**budget))
    assert dispatched(p) == expected
    held = [w.reason for w in p.waiting]
    assert all(r.startswith(reason) for r in held) and (bool(held) == bool(reason))


def test_a_per_day_budget_resets_at_the_utc_day() -> None:
    records = [leaf(9, 10.0, at=datetime(2026, 12, 3, 23, 0, tzinfo=UTC))]
    just_before = plan(state(1, records=records, read_at=datetime(2026, 12, 3, 23, 59, tzinfo=UTC)),
                       settings(day_usd=10))
    assert dispatched(just_before) == [] and just_before.waiting[0].reason.startswith(
        "budget: today (2026-12-03 UTC) has spent $10.00 of $10.00")
    after_midnight = plan(state(1, records=records, read_at=datetime(2026, 12, 4, 0, 0, 1, tzinfo=UTC)),
                          settings(day_usd=10))
    assert dispatched(after_midnight) == [1]


def test_admitted_items_carry_the_least_room_left_as_their_cap() -> None:
    p = plan(state(1, records=[leaf(1, 1.0, pass_id="old"), leaf(7, 3.0, pass_id="old")]),
             settings(item_usd=5, phase_usd=10, day_tokens=100_000))
    assert p.dispatches[0].caps == {1: ItemCap(usd=4.0, tokens=97_800)}  # item: $5 - $1; phase: $10 - $4
    assert plan(state(1), settings()).dispatches[0].caps == {}


@pytest.mark.parametrize(("caps", "joint"), [
    ([ItemCap(usd=1.5, tokens=100)], ItemCap(usd=1.5, tokens=100)),                      # a leaf: its own
    ([ItemCap(usd=1.5, tokens=100), ItemCap(usd=2.25, tokens=50)], ItemCap(usd=3.75, tokens=150)),  # a batch: the sum
    ([ItemCap(usd=1.5), ItemCap(usd=2.0, tokens=50)], ItemCap(usd=3.5)),                # tokens: not all capped
    ([ItemCap(usd=1.5), None], None), ([None], None), ([], None),                        # one uncapped: none
])
def test_an_agents_cap_is_the_sum_of_its_items_caps(caps, joint) -> None:
    assert spend.joint_cap(caps) == joint


def test_a_batch_agents_cap_names_its_items() -> None:
    assert spend.over_cap(ItemCap(tokens=5000), None, 6000, 2) == "usage passed the cap of its 2 items: 6,000 of " \
        "5,000 tokens"
    assert spend.over_cap(ItemCap(usd=1), 1.5, 0) == "usage passed the item's cap: $1.50 of $1.00"
    assert spend.over_cap(ItemCap(usd=1), 0.5, 10**6) == ""


def test_a_budget_reached_is_not_stuck_but_a_loop_still_is() -> None:
    reached = plan(state(1, records=HISTORY), settings(phase_usd=50), attempt=9)
    assert not reached.stuck and reached.waiting[0].reason.startswith("budget:")
    assert plan(state(1, records=HISTORY), settings(), attempt=9).stuck


def test_a_pr_chained_after_a_pr_held_by_its_budget_waits_too() -> None:
    prs = (PullRequest(number=5, labels=[P3], files=["a.py"]), PullRequest(number=6, labels=[P3], files=["a.py"]))
    records = [leaf(5, 4.0, pass_id="old", kind="pr_review")]
    p = plan(state(records=records, prs=prs), settings(item_usd=4))
    assert dispatched(p) == []
    assert [(w.number, w.reason[:40]) for w in p.waiting] == [
        (5, "budget: #5 has spent $4.00 of $4.00; thi"), (6, "merges after PR #5, which waits for its ")]


def test_a_pr_waits_for_the_pr_it_merges_after_whatever_their_numbers() -> None:
    prs = (PullRequest(number=5, labels=[P3], files=["a.py"], body="Merge after #6"),
           PullRequest(number=6, labels=[P3], files=["a.py"]))
    p = plan(state(prs=prs, records=[leaf(6, 4.0, pass_id="old", kind="pr_review")]), settings(item_usd=4))
    assert dispatched(p) == []
    assert [(w.number, w.reason[:40]) for w in p.waiting] == [
        (5, "merges after PR #6, which waits for its "), (6, "budget: #6 has spent $4.00 of $4.00; thi")]


def test_a_pr_held_behind_another_reserves_nothing_for_the_next() -> None:
    prs = (PullRequest(number=5, labels=[P3], files=["a.py"]), PullRequest(number=6, labels=[P3], files=["a.py"]),
           PullRequest(number=8, labels=[P3], files=["b.py"]))
    p = plan(state(prs=prs, records=[leaf(5, 4.0, pass_id="old", kind="pr_review")]),
             settings(item_usd=4, phase_usd=10))  # $6 left in the phase, $4 a review
    assert dispatched(p) == [8] and p.dispatches[0].caps == {8: ItemCap(usd=4.0)}
    assert [w.number for w in p.waiting] == [5, 6]


def test_the_plan_shows_spend_against_each_budget() -> None:
    p = plan(state(1, records=HISTORY), settings(phase_usd={P3: 50}))
    assert BudgetLine(scope=P3, unit="usd", spent=41.2, limit=50, key="phase_usd") in p.budgets


# -- spend shown ----------------------------------------------------------------------------

def test_the_reminder_names_the_budget_the_spend_and_how_to_raise_it() -> None:
    from conductor.core.reminder import render_reminder

    p = plan(state(1, 2, records=HISTORY), settings(phase_usd={P3: 50}))
    body = render_reminder(p, attempt=0, fingerprint="0" * 16, now=DAY, failures=[], failed_prs=[], rerun_hint="x")
    assert "### Waiting for a budget\nA budget reached is not stuck:" in body
    assert "- Issue #1: t1 — budget: phase\\-3/api\\-extensions has spent \\$41\\.20 of \\$50\\.00; this issue " in body
    assert "raise phase\\_usd under \\[budget\\] in conductor\\.toml" in body
    assert "### Waiting for other items" not in body
    assert "### Spend (agents, as recorded on GitHub)\n- pipeline: \\$53\\.20\n" in body
    assert "- phase\\-3/api\\-extensions: \\$41\\.20 of \\$50\\.00\n" in body


def test_the_pass_table_shows_spend_per_phase_and_the_pipeline_against_each_budget() -> None:
    from conductor.core.render import plan_rows

    rows = plan_rows(plan(state(1, records=HISTORY), settings(phase_usd={P3: 41.2}, pipeline_tokens=10_000)))
    assert ["(over budget)", "wait for a budget", "", "", "", "#1", ""] in rows
    assert ["(spent: pipeline)", "", "", "", "", "", "$53.20; 2,200 tokens of 10,000 tokens"] in rows
    assert ["(spent: phase-3/api-extensions)", "budget reached", "", "", "", "", "$41.20 of $41.20 (reached)"] in rows
    assert ["(spent: phase-2/core-api)", "", "", "", "", "", "$12.00"] in rows

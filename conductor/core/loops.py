"""Review loops and conflicts: a PR graded down goes back to an implementer (`rework`), a PR
that conflicts with its base is rebased before its review (`rebase`). Pure.

What the conductor keeps on GitHub, in its own comments on the PR (trusted only from its own
login, like the attempt markers of `conductor/core/attempts.py`):

* after a pass proved a review that left the PR open graded C (unfixed), D or F, a comment
  quoting the reviewer and the marker `<!-- conductor:loop {"what": "review", "pass": ID,
  "grade": "D", "head": SHA, "round": N, "text": ...} -->` (N: the reviews that graded it down
  so far, this one included);
* after a rebase leaf reported conflicts it could not resolve, a comment naming them and the
  marker `<!-- conductor:loop {"what": "conflict", "pass": ID, "head": SHA, "paths": [...]} -->`.

The rules, read by the planner and the registry entries:

* A ready PR whose last pipeline review graded its current head down (`awaiting_rework`) goes
  to a `rework` leaf; once it has been graded down `limit` times (the per-item attempt limit,
  `item_attempt_limit`) it is held for a human instead, with its last grade.
* A ready PR whose `mergeable_state` is `dirty` goes to a `rebase` leaf; one whose last rebase
  could not resolve its conflicts at its current head is held, with the conflicting paths.
* New commits (a rework, a rebase, a human's push) move the head: the PR is reviewed again.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from conductor.core import markdown
from conductor.core.constants import LOOP_MARKER
from conductor.core.models import Dispatch, HeldItem, LoopConflict, LoopReview, PullRequest
from conductor.core.reports import AgentReport
from conductor.core.untrusted import json_object
from conductor.core.verify import CoordinatorOutcome, ItemResult, PullFacts, RunFacts, blocked_reason, \
    check_run_and_report, finish, new_outcome

REWORK_GRADES = frozenset({"C", "D", "F"})  # a review that left the PR open with one of these sends it back
TEXT_LIMIT = 300
PATHS_LIMIT = 20
_MARKER = re.compile(r"<!--\s*+" + re.escape(LOOP_MARKER) + r"\s++(\{[^<>]*?\})\s*+-->")


def awaiting_rework(pr: PullRequest) -> bool:
    """Its last pipeline review graded its current head down: nothing was pushed since."""
    return pr.review is not None and bool(pr.head_sha) and pr.review.head == pr.head_sha


def unresolved_conflict(pr: PullRequest) -> bool:
    """Its last rebase could not resolve its conflicts, and its head has not moved since."""
    return pr.conflict is not None and bool(pr.head_sha) and pr.conflict.head == pr.head_sha


def needs_rebase(pr: PullRequest) -> bool:
    return pr.mergeable_state == "dirty"


def hold(pr: PullRequest, limit: int, attempts: int) -> HeldItem | None:
    """The hold of a PR the loops cannot help any more, or None."""
    if awaiting_rework(pr) and pr.review.round >= limit:
        return HeldItem(number=pr.number, kind="pr", title=pr.title, attempts=attempts, why="review",
                        grade=pr.review.grade,
                        round=pr.review.round,
                        last_reason=f"graded {pr.review.grade} in review round {pr.review.round} of {limit}")
    if unresolved_conflict(pr):
        paths = ", ".join(pr.conflict.paths) or "paths not named"
        return HeldItem(number=pr.number, kind="pr", title=pr.title, attempts=attempts, why="conflict",
                        conflicts=list(pr.conflict.paths),
                        last_reason=f"its rebase could not resolve conflicts in {paths}")
    return None


def held_line(h: HeldItem) -> str:
    """Why a held item needs a human, in a few words (the reminder, the table, the summary)."""
    if h.why == "review":
        return f"graded {h.grade} in {h.round} review rounds"
    if h.why == "conflict":
        return "unresolved conflicts: " + (", ".join(h.conflicts) or "paths not named")
    return f"{h.attempts} failures"


def stage(kind: str, review: LoopReview | None) -> str:
    """Where a PR is in its loop (implement → review → rework 1 → review 2 …), for the summary;
    empty for a first review."""
    if kind == "rework" and review is not None:
        return f"rework {review.round} (review graded {review.grade})"
    if kind == "rebase":
        return "rebase"
    if review is not None:  # the review kind: the PR was reworked since
        return f"review {review.round + 1} (after rework {review.round}, last graded {review.grade})"
    return ""


# ── the markers ─────────────────────────────────────────────────────────────────


def _payload(data: dict) -> str:
    text = json.dumps(data, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")  # never closes the comment


def render_review_comment(pass_id: str, grade: str, head: str, round_: int, limit: int, text: str) -> str:
    """The comment recording a review that graded the PR down."""
    text = markdown.one_line(text)[:TEXT_LIMIT]
    then = ("It goes back to an implementer (a rework leaf) on its own branch." if round_ < limit
            else "It is held for a human (the review rounds are used up).")
    said = f"\n\n> {markdown.escape(text)}" if text else ""
    payload = _payload({"what": "review", "pass": pass_id, "grade": grade, "head": head, "round": round_,
                        "text": text})
    return (f"Conductor pass {markdown.code(pass_id)}: the review graded this PR {grade} at "
            f"{markdown.code(head[:12])} (review round {round_} of {limit}). {then}{said}\n\n"
            f"<!-- {LOOP_MARKER} {payload} -->\n")


def conflict_paths(paths: Iterable[object]) -> list[str]:
    """The paths a rebase agent named (untrusted): strings, one line each, at most 20."""
    out = [markdown.one_line(p)[:200] for p in paths if isinstance(p, str) and p.strip()]
    return out[:PATHS_LIMIT]


def render_conflict_comment(pass_id: str, head: str, paths: list[str]) -> str:
    """The comment recording a rebase that could not resolve the PR's conflicts."""
    named = ", ".join(markdown.code(p) for p in paths) or "(the agent named none)"
    payload = _payload({"what": "conflict", "pass": pass_id, "head": head, "paths": paths})
    return (f"Conductor pass {markdown.code(pass_id)}: the rebase could not resolve the conflicts of "
            f"{markdown.code(head[:12])} with its base in {named}. It is held for a human; push a "
            f"resolution to let the pipeline review it.\n\n<!-- {LOOP_MARKER} {payload} -->\n")


def _parse(body: str | None) -> dict | None:
    matches = list(_MARKER.finditer(body or ""))
    data = json_object(matches[-1].group(1)) if matches else None
    if data is None or not isinstance(data.get("pass"), str) or not isinstance(data.get("head"), str):
        return None
    return data


def marker_pass(body: str | None) -> tuple[str, str] | None:
    """(what, pass id) of a loop comment's marker, or None."""
    data = _parse(body)
    return (str(data.get("what")), data["pass"]) if data else None


def read_loops(comments: Iterable[tuple[str, str | None, str]], login: str
               ) -> tuple[LoopReview | None, LoopConflict | None]:
    """The last review and the last conflict recorded on a PR, from its comments (author,
    body, URL), oldest first; only the conductor's own login's count."""
    review: LoopReview | None = None
    conflict: LoopConflict | None = None
    rounds: set[str] = set()
    for author, body, url in comments:
        if author.lower() != login.lower():
            continue
        data = _parse(body)
        if data is None:
            continue
        if data.get("what") == "review" and data.get("grade") in REWORK_GRADES:
            rounds.add(data["pass"])
            text = data.get("text")
            review = LoopReview(grade=data["grade"], head=data["head"], round=len(rounds), pass_id=data["pass"],
                                url=url, text=text if isinstance(text, str) else "")
        elif data.get("what") == "conflict":
            paths = data.get("paths")
            conflict = LoopConflict(head=data["head"], pass_id=data["pass"],
                                    paths=conflict_paths(paths if isinstance(paths, list) else []))
    return review, conflict


def graded_down(outcomes: Iterable[CoordinatorOutcome]) -> list[ItemResult]:
    """The proved reviews that left their PR open graded C, D or F: each sends its PR back."""
    return [r for o in outcomes for r in o.results if r.ok and not r.merged and r.grade in REWORK_GRADES]


def unresolved(outcomes: Iterable[CoordinatorOutcome]) -> list[ItemResult]:
    """Rebase leaves that reported conflicts they could not resolve."""
    return [r for o in outcomes for r in o.results if not r.ok and r.conflicts]


# ── the proofs ──────────────────────────────────────────────────────────────────


def _prove_moved(dispatch: Dispatch, report: AgentReport | None, run: RunFacts, prs: Mapping[int, PullFacts],
                 *, claims: str, check) -> CoordinatorOutcome:
    """The proof both loop kinds share: the claimed PR still open, its head moved since the plan
    (new commits), and `check(facts)` (None, or why not)."""
    outcome = new_outcome(dispatch)
    report = check_run_and_report(outcome, dispatch, report, run, claims=claims)
    explained = bool(outcome.failures)
    blocked = blocked_reason(report)
    claimed = {c.pr: c for c in getattr(report, claims, [])} if report else {}
    for number in dispatch.items:
        claim = claimed.get(number)
        conflicts = conflict_paths(getattr(claim, "conflicts", []) or [])
        facts = prs.get(number)
        if claim is None or (report is not None and report.status != "done"):
            reason = blocked or ("no claim reported" if claim is None else "not done")
            if conflicts:
                reason = "could not resolve conflicts in " + ", ".join(conflicts)
            outcome.results.append(ItemResult(number=number, kind="pr", ok=False, blocked=bool(blocked),
                                              reason=reason, conflicts=conflicts))
            if not explained and not blocked:
                outcome.failures.append(f"PR #{number}: {reason}")
            continue
        if facts is None or not facts.exists:
            problem = f"PR #{number} does not exist"
        elif facts.merged or facts.state != "open":
            problem = f"PR #{number} is {'merged' if facts.merged else 'closed'}; it must stay open"
        elif facts.head_sha == dispatch.heads.get(number, ""):
            problem = f"no new commits on {facts.head_ref or 'its branch'}"
        else:
            problem = check(facts)
        outcome.results.append(ItemResult(number=number, kind="pr", ok=problem is None, reason=problem or ""))
        if problem:
            outcome.failures.append(f"PR #{number}: {problem}")
    return finish(outcome)


def verify_rework(dispatch: Dispatch, report: AgentReport | None, run: RunFacts,
                  prs: Mapping[int, PullFacts]) -> CoordinatorOutcome:
    """New commits on the PR's own branch after the review, the PR still open and linked."""
    return _prove_moved(dispatch, report, run, prs, claims="reworks", check=lambda f: (
        None if f.linked_issues else "no longer closes an issue (keep its closing keyword)"))


def verify_rebase(dispatch: Dispatch, report: AgentReport | None, run: RunFacts,
                  prs: Mapping[int, PullFacts]) -> CoordinatorOutcome:
    """The PR's head moved and it merges into its base now (`mergeable` not false; GitHub may
    still be computing it, which the next pass's snapshot reads again)."""
    return _prove_moved(dispatch, report, run, prs, claims="rebases", check=lambda f: (
        "still conflicts with its base" if f.mergeable is False or f.mergeable_state == "dirty" else None))

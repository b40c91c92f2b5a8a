"""Artifact proof (seed step 6): check one coordinator's claims against GitHub facts.

Pure rules: the proofs of the two shipped kinds, and the steps any kind's proof shares
(`new_outcome`, `check_run_and_report`, `blocked_reason`, `finish`); `conductor.core.workflows`
says which proof a kind has. The gateway fetches `PullFacts` for the numbers `pr_numbers_to_check` names
(never another repository's), the runner supplies `RunFacts`; the functions here decide.
Each coordinator is judged alone: one coordinator's failure never touches another's outcome.
Reasons may quote untrusted text (agent messages, claimed URLs): escape them when rendering.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from conductor.core.models import Dispatch, DispatchKind, ItemKind
from conductor.core.reports import FAILING_GRADES, MERGING_GRADES, AgentReport, Grade
from conductor.core.usage import Usage

MESSAGE_LIMIT = 300  # characters of agent text quoted in a reason
_THIS = "this coordinator"

_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_NUMBER = re.compile(r"[1-9][0-9]{0,9}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RunFacts(_Model):
    """How the agent process ended, and whether its report could be read."""

    returncode: int | None = Field(None, description="None when it never exited (timeout).")
    timed_out: bool = False
    timeout_s: float | None = None
    idle_timed_out: bool = Field(False, description="Stopped after printing nothing for idle_timeout_s.")
    idle_timeout_s: float | None = None
    stopped: str = Field("", description="Why the conductor stopped it (its spend cap).")
    report_error: str | None = Field(
        None, description="Why the report is missing or invalid (None when it parsed)."
    )


class PullFacts(_Model):
    """What GitHub says about one pull request of the conductor's repository."""

    number: int
    exists: bool = True
    repo_full_name: str = Field("", description="Base repository, OWNER/NAME.")
    html_url: str = ""
    title: str = ""
    state: Literal["open", "closed"] = "open"
    merged: bool = False
    head_ref: str = ""
    head_repo_full_name: str = Field("", description="Empty when the head repository is gone.")
    base_ref: str = ""
    head_sha: str = ""
    mergeable: bool | None = Field(None, description="None while GitHub computes it.")
    mergeable_state: str = Field("unknown", description="`dirty`: conflicts with its base.")
    body: str = ""
    linked_issues: list[int] = Field(
        default_factory=list, description="Issues the PR closes (closing keywords)."
    )


class FailedPR(_Model):
    """A PR graded D or F: left open for a human (not a coordinator failure)."""

    number: int
    grade: Grade
    reason: str = ""
    title: str = ""


class CoordinatorFailure(_Model):
    kind: DispatchKind
    phase: str
    batch: str | None = None
    reason: str


class ItemResult(_Model):
    """The verified result for one dispatched issue or PR."""

    number: int
    kind: ItemKind
    ok: bool
    pr: int | None = Field(None, description="An issue's result: the PR proved for it.")
    grade: Grade | None = None
    merged: bool = False
    reason: str = ""
    blocked: bool = Field(False, description="The agent reported blocked with a reason (not proved, "
                          "not a failure: listed as blocked).")
    prompt_path: str | None = Field(None, description="Leaf: the prompt the agent was given.")
    prompt_sha: str | None = Field(None, description="Leaf: that prompt's git blob sha.")
    prompt_source: Literal["repository", "shipped"] | None = None
    attempt: int = Field(0, description="Leaf: ATTEMPT_N written in its task file.")
    github_unavailable: str = Field(
        "", description="Leaf: not proved while GitHub was failing, and the evidence "
        "(`conductor/core/outages.py`); retried next pass with no attempt charged.")
    worktree: str | None = Field(None, description="Leaf: its worktree's directory name.")
    usage: Usage | None = Field(None, description="Leaf: tokens, cost and effort its agent reported.")
    merge_after: int | None = Field(None, description="Leaf: the PR this review waited for.")
    stage: str = Field("", description="Leaf: where the PR is in its review loop (`conductor.core.loops.stage`).")
    message: str = Field("", description="A review that left the PR open graded C, D or F: the reviewer's message.")
    conflicts: list[str] = Field(default_factory=list, description="A rebase: the paths it could not resolve.")
    started_at: float | None = Field(None, description="Leaf: when it started (epoch seconds).")
    ended_at: float | None = Field(None, description="Leaf: when it ended (epoch seconds).")
    agent_started_at: float | None = Field(None, description="Leaf: when its agent process started.")
    agent_ended_at: float | None = Field(None, description="Leaf: when its agent process ended.")


class CoordinatorOutcome(_Model):
    """The verified result of one coordinator run."""

    kind: DispatchKind
    phase: str
    batch: str | None = None
    items: list[int] = Field(default_factory=list)
    ok: bool = False
    failures: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Worth reporting, not failures.")
    verified_prs: list[int] = Field(default_factory=list)
    merged_prs: list[int] = Field(default_factory=list)
    failed_prs: list[FailedPR] = Field(default_factory=list)
    results: list[ItemResult] = Field(default_factory=list)
    usage: Usage | None = Field(None, description="Tokens, cost and effort the agent's CLI reported.")

    @property
    def blocked(self) -> list[ItemResult]:
        """Items whose agent reported blocked with a reason."""
        return [r for r in self.results if r.blocked]

    def failure_records(self) -> list[CoordinatorFailure]:
        """One record per failure reason, for the reminder's "Failed coordinators"."""
        return [
            CoordinatorFailure(kind=self.kind, phase=self.phase, batch=self.batch, reason=r)
            for r in self.failures
        ]


def parse_pr_url(url: str, html_base: str | None = None) -> tuple[str, int] | None:
    """("OWNER/REPO", N) from `<scheme>://<host>/OWNER/REPO/pull/N[/][#fragment]`, else None.

    Any http(s) host is accepted (github.com, GitHub Enterprise, the local sandbox) unless
    `html_base` is given, in which case scheme, host and path prefix must match it.
    """
    try:
        parts = urlsplit(url.strip())
        base = urlsplit(html_base) if html_base else None
    except (ValueError, AttributeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    path = parts.path
    if base is not None:
        prefix = base.path.rstrip("/")
        if (parts.scheme.lower(), parts.netloc.lower()) != (
            base.scheme.lower(),
            base.netloc.lower(),
        ) or not path.startswith(prefix + "/"):
            return None
        path = path[len(prefix):]
    segments = path.split("/")
    if segments[-1] == "" and len(segments) == 6:
        segments = segments[:-1]
    if len(segments) != 5 or segments[0] != "" or segments[3] != "pull":
        return None
    owner, repo, number = segments[1], segments[2], segments[4]
    if not (
        _OWNER.fullmatch(owner)
        and _REPO.fullmatch(repo)
        and repo not in (".", "..")
        and _NUMBER.fullmatch(number)
    ):
        return None
    return f"{owner}/{repo}", int(number)


def pr_numbers_to_check(
    dispatch: Dispatch,
    report: AgentReport | None,
    *,
    repo: str,
    html_base: str | None = None,
) -> list[int]:
    """The PRs the gateway must fetch to verify `report`: claimed, dispatched, in `repo`."""
    if report is None or report.workflow != dispatch.kind:
        return []
    dispatched = set(dispatch.items)
    numbers = {r.pr for r in report.reviews if r.pr in dispatched}
    for claim in report.issues:
        parsed = parse_pr_url(claim.pr_url, html_base)
        if claim.issue in dispatched and parsed and _same_repo(parsed[0], repo):
            numbers.add(parsed[1])
    return sorted(numbers)


def verify_issue_to_pr(
    dispatch: Dispatch,
    report: AgentReport | None,
    run: RunFacts,
    prs: Mapping[int, PullFacts],
    *,
    repo: str,
    default_branch: str,
    html_base: str | None = None,
) -> CoordinatorOutcome:
    """Each dispatched issue must have a PR in `repo`, not from `default_branch`, closing it."""
    outcome = new_outcome(dispatch)
    report = check_run_and_report(outcome, dispatch, report, run, claims="issues")
    explained = bool(outcome.failures)  # a run/report failure explains missing items
    blocked = blocked_reason(report)
    proved: dict[int, int] = {}
    claimed: set[int] = set()
    invalid: dict[int, str] = {}
    for claim in report.issues if report else []:
        issue = claim.issue
        if issue not in dispatch.items:
            outcome.failures.append(f"claimed issue #{issue} was not dispatched to {_THIS}")
            continue
        if issue in claimed:
            outcome.failures.append(f"issue #{issue} is claimed more than once")
            continue
        claimed.add(issue)
        pr, problem = _check_issue_claim(issue, claim.pr_url, prs, repo, default_branch, html_base)
        if problem:
            invalid[issue] = problem
            outcome.failures.append(f"issue #{issue}: {problem}")
        else:
            proved[issue] = pr
    for issue in dispatch.items:
        if issue in proved:
            outcome.results.append(
                ItemResult(number=issue, kind="issue", ok=True, pr=proved[issue])
            )
            continue
        if issue not in invalid and blocked:
            outcome.results.append(ItemResult(number=issue, kind="issue", ok=False, blocked=True,
                                              reason=blocked))
            continue
        reason = invalid.get(issue) or "no PR claimed"
        outcome.results.append(ItemResult(number=issue, kind="issue", ok=False, reason=reason))
        if issue not in invalid and not explained:
            outcome.failures.append(f"issue #{issue}: not done, no PR claimed")
    outcome.verified_prs = sorted(set(proved.values()))
    return finish(outcome)


def verify_pr_review(
    dispatch: Dispatch,
    report: AgentReport | None,
    run: RunFacts,
    prs: Mapping[int, PullFacts],
    *,
    repo: str,
) -> CoordinatorOutcome:
    """Each claimed merge must be a merge on GitHub; D/F grades must stay open (failed_prs)."""
    outcome = new_outcome(dispatch)
    report = check_run_and_report(outcome, dispatch, report, run, claims="reviews")
    explained = bool(outcome.failures)  # a run/report failure explains missing items
    blocked = blocked_reason(report)
    results: dict[int, ItemResult] = {}
    for claim in report.reviews if report else []:
        number = claim.pr
        if number not in dispatch.items:
            outcome.failures.append(f"review for PR #{number}, which was not dispatched to {_THIS}")
            continue
        if number in results:
            outcome.failures.append(f"PR #{number} is reviewed more than once")
            continue
        facts = prs.get(number)
        if facts is None or not facts.exists or not _same_repo(facts.repo_full_name, repo):
            problem = f"PR #{number} does not exist in {repo}"
            outcome.failures.append(problem)
            results[number] = ItemResult(
                number=number, kind="pr", ok=False, grade=claim.grade, reason=problem
            )
            continue
        problem = _check_review(claim.grade, claim.merged, facts)
        if problem is None and blocked and not facts.merged and claim.grade in MERGING_GRADES:
            results[number] = ItemResult(number=number, kind="pr", ok=False, blocked=True,
                                         grade=claim.grade, reason=blocked)
            continue
        if problem is None and not facts.merged and claim.grade in MERGING_GRADES:
            problem = f"graded {claim.grade} but not merged"
        result = ItemResult(
            number=number, kind="pr", ok=problem is None, grade=claim.grade,
            merged=facts.merged, reason=problem or "",
            message=report.message if not facts.merged and claim.grade not in MERGING_GRADES else "",
        )
        results[number] = result
        if problem:
            outcome.failures.append(f"PR #{number}: {problem}")
            continue
        if facts.merged:
            outcome.merged_prs.append(number)
            if not claim.merged:
                outcome.notes.append(
                    f"PR #{number} is merged on GitHub although the report says not merged"
                )
        elif claim.grade in FAILING_GRADES:
            outcome.failed_prs.append(FailedPR(
                number=number, grade=claim.grade, title=facts.title,
                reason=f"graded {claim.grade} by the reviewer; left open",
            ))
        else:
            outcome.notes.append(f"PR #{number} graded {claim.grade} but not merged")
    for number in dispatch.items:
        if number in results:
            outcome.results.append(results[number])
            continue
        if blocked:
            outcome.results.append(ItemResult(number=number, kind="pr", ok=False, blocked=True,
                                              reason=blocked))
            continue
        outcome.results.append(
            ItemResult(number=number, kind="pr", ok=False, reason="no review reported")
        )
        if not explained:
            outcome.failures.append(f"PR #{number}: not done, no review reported")
    outcome.merged_prs.sort()
    return finish(outcome)


def _check_issue_claim(
    issue: int,
    url: str,
    prs: Mapping[int, PullFacts],
    repo: str,
    default_branch: str,
    html_base: str | None,
) -> tuple[int, str | None]:
    shown = _quote(url)
    parsed = parse_pr_url(url, html_base)
    if parsed is None:
        return 0, f"{shown} is not a pull request URL"
    owner_repo, number = parsed
    if not _same_repo(owner_repo, repo):
        return number, f"PR URL {shown} is not in {repo}"
    facts = prs.get(number)
    if facts is None or not facts.exists or not _same_repo(facts.repo_full_name, repo):
        return number, f"PR #{number} does not exist in {repo}"
    if not facts.head_repo_full_name or not _same_repo(facts.head_repo_full_name, repo):
        source = facts.head_repo_full_name or "a deleted repository"
        return number, f"PR #{number} comes from {source}, not from a branch of {repo}"
    if facts.head_ref == default_branch:
        return number, f"PR #{number} is opened from the default branch {default_branch}"
    if facts.state == "closed" and not facts.merged:
        return number, f"PR #{number} is closed without being merged"
    if issue not in facts.linked_issues:
        return number, f"PR #{number} does not link issue #{issue} with a closing keyword"
    return number, None


def _check_review(grade: str, claimed_merged: bool, facts: PullFacts) -> str | None:
    if claimed_merged and not facts.merged:
        return f"claimed merged but GitHub says it is {facts.state} and not merged"
    if grade in FAILING_GRADES and facts.merged:
        return f"graded {grade} but GitHub shows it merged"
    if grade in FAILING_GRADES and facts.state == "closed":
        return f"graded {grade} but closed; a rejected PR must stay open"
    return None


def check_run_and_report(
    outcome: CoordinatorOutcome,
    dispatch: Dispatch,
    report: AgentReport | None,
    run: RunFacts,
    *,
    claims: str,
) -> AgentReport | None:
    """Record process- and report-level failures; return the report whose claims (its field
    `claims`) to check."""
    if run.timed_out:
        after = f" after {run.timeout_s:g} s" if run.timeout_s is not None else ""
        outcome.failures.append(f"agent timed out{after}")
    elif run.idle_timed_out:
        quiet = f"{run.idle_timeout_s:g} s" if run.idle_timeout_s is not None else "too long"
        outcome.failures.append(f"agent idle: no output for {quiet}")
    elif run.stopped:
        outcome.failures.append(f"agent stopped by the conductor: {run.stopped}")
    elif run.returncode is None:
        outcome.failures.append("agent did not exit")
    elif run.returncode < 0:
        outcome.failures.append(f"agent was killed by signal {-run.returncode}")
    elif run.returncode != 0:
        outcome.failures.append(f"agent exited with status {run.returncode}")
    if run.report_error:
        outcome.failures.append(f"agent report unreadable: {_quote(run.report_error)}")
        return None
    if report is None:
        outcome.failures.append("agent wrote no report")
        return None
    if report.workflow != dispatch.kind:
        outcome.failures.append(f"agent report is for {report.workflow}, expected {dispatch.kind}")
        return None
    if report.status == "blocked" and report.message.strip():
        pass  # listed as blocked, item by item (`blocked_reason`)
    elif report.status != "done":
        message = _quote(report.message) if report.message.strip() else "no message"
        outcome.failures.append(f"agent reported {report.status}: {message}")
    elif not getattr(report, claims):
        outcome.failures.append("reported done with no artifacts")
    return report


def blocked_reason(report: AgentReport | None) -> str:
    """"blocked: <why>" when the agent reported blocked with a reason, else ""."""
    if report is None or report.status != "blocked" or not report.message.strip():
        return ""
    return f"blocked: {_quote(report.message)}"


def new_outcome(dispatch: Dispatch) -> CoordinatorOutcome:
    """An empty outcome for `dispatch` (any kind's proof starts here, then `check_run_and_report`)."""
    return CoordinatorOutcome(
        kind=dispatch.kind, phase=dispatch.phase, batch=dispatch.batch, items=list(dispatch.items)
    )


def finish(outcome: CoordinatorOutcome) -> CoordinatorOutcome:
    """Proved when nothing failed and nothing is blocked (the last step of any kind's proof)."""
    outcome.ok = not outcome.failures and not outcome.blocked
    return outcome


def _same_repo(a: str, b: str) -> bool:
    return bool(a) and a.casefold() == b.casefold()


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"

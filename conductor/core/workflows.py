"""The workflow registry: one entry per dispatch kind, holding everything that differs by kind. Pure.

An entry says what the kind is called (`kind` in plans, reports and the coordinator-agent
task file; `name` in leaf task files, flow names and the UI), which ready items it takes
from the snapshot, the status label that claims them, its leaf's `.agent-task` keys and how
their values are built, its shipped prompt and the repository's prompt path, its report's
claims, and the proof of those claims against GitHub. The planner emits dispatches by kind;
everything else asks `get(kind)`. A new kind is one `register(Workflow(...))`, its prompt
and its proof; the I/O it needs (reading its facts) goes through the gateway it is given.

The two kinds the conductor ships (the canonical coordinators, issue #12):

* issue-to-pr (`issue_to_pr`): every ready issue; task file WORKFLOW=issue-to-pr, GH_REPO,
  GITHUB_API_URL, GH_HOST, ISSUE_NUMBER, ISSUE_TITLE, ISSUE_URL, PHASE_LABEL, BATCH_LABEL,
  ALL_ISSUE_LABELS, DEPENDS_ON (numbers or `none`), FILE_OWNERSHIP (`tbd` unless the issue
  says), ATTEMPT_N, REQUIRED_OUTPUT=pr_url, ON_BLOCK=stop, BASE, WORKTREE, CLOSES_ISSUES,
  REPORT_PATH, PROMPT; proof: a PR of this repository, not from the default branch, closing
  the issue.
* pr-review (`pr_review`): every ready PR; task file WORKFLOW=pr-review, GH_REPO,
  GITHUB_API_URL, GH_HOST, PR_NUMBER, PR_TITLE, PR_URL, PR_BRANCH, CLOSES_ISSUES,
  FILES_CHANGED, MERGE_AFTER (number or `none`), HAS_MIGRATION, ATTEMPT_N,
  REQUIRED_OUTPUT=grade,merge_status,pr_url, ON_BLOCK=stop, BASE, REPORT_PATH, PROMPT; proof:
  claimed merges are merges on GitHub, D/F grades stay open.

And the two loops (`conductor.core.loops`, issue #22), both on PRs and claimed with the pr-open label:

* rework (`rework`): a PR whose last pipeline review graded its head C (unfixed), D or F; task
  file WORKFLOW=rework, GH_REPO, GITHUB_API_URL, GH_HOST, PR_NUMBER, PR_TITLE, PR_URL,
  PR_BRANCH, ISSUE_NUMBER (the first issue it closes, or `none`), CLOSES_ISSUES, FILES_CHANGED,
  REVIEW_GRADE, REVIEW_ROUND, REVIEW_URL, REVIEW_TEXT, REVIEWED_HEAD, ATTEMPT_N,
  REQUIRED_OUTPUT=pushed_commits, ON_BLOCK=stop, BASE, WORKTREE, REPORT_PATH, PROMPT; proof:
  new commits on the PR's head since the review, the PR still open and closing an issue.
* rebase (`rebase`): a PR whose `mergeable_state` is `dirty`; task file WORKFLOW=rebase,
  GH_REPO, GITHUB_API_URL, GH_HOST, PR_NUMBER, PR_TITLE, PR_URL, PR_BRANCH, CLOSES_ISSUES,
  FILES_CHANGED, HEAD_SHA, ATTEMPT_N, REQUIRED_OUTPUT=pushed_merge, ON_BLOCK=stop, BASE,
  WORKTREE, REPORT_PATH, PROMPT; proof: the PR's head moved and it merges into its base now.

Every value is untrusted data; `conductor.taskfile.render_task_file` escapes it, so no
title, label or path can start a line of its own. A leaf's task file holds every value its
prompt's commands need (`Workflow.leaf_task` adds the API URL and `gh` host after GH_REPO for
every kind), so an agent types them literally: Claude Code's permission rules refuse a command
with a shell variable.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from conductor.core import leaf as leaves
from conductor.core import loops
from conductor.core.constants import DEFAULT_MIGRATION_PATHS, PROMPT_ISSUE_TO_PR, PROMPT_PR_REVIEW, PROMPT_REBASE, PROMPT_REWORK
from conductor.core.github_urls import gh_host
from conductor.core.models import Dispatch, Issue, ItemKind, PullRequest
from conductor.core.ports import GitHub
from conductor.core.reports import AgentReport, RebaseReport, ReworkReport
from conductor.core.verify import (
    CoordinatorOutcome,
    PullFacts,
    RunFacts,
    pr_numbers_to_check,
    verify_issue_to_pr,
    verify_pr_review,
)


@dataclass(frozen=True)
class LeafTask:
    """What any leaf's `.agent-task` is built from: its item (read from GitHub at leaf start),
    its one-item dispatch and the paths the conductor made for it."""

    repo: str
    item: leaves.IssueItem | leaves.PullItem
    dispatch: Dispatch
    base: str
    worktree: Path
    report_path: Path
    prompt_path: Path
    migration_paths: tuple[str, ...] | list[str] = DEFAULT_MIGRATION_PATHS

    @property
    def number(self) -> int:
        return self.item.number


@dataclass(frozen=True)
class Proof:
    """Where a proof is checked: the conductor's repository, its default branch, its web base."""

    repo: str
    default_branch: str
    html_base: str | None = None


@dataclass(frozen=True)
class Workflow:
    """One dispatch kind. See the module docstring for the two the conductor ships."""

    kind: str  # its name in plans, reports and the coordinator-agent task file
    name: str  # its name in leaf task files, flow names and the UI
    item: ItemKind  # what it works on: issues or pull requests
    label: str  # how the plan table names its dispatches
    status: str  # the attribute of PipelineConfig naming the label that claims its items
    prompt: Traversable  # the prompt the package ships for it...
    prompt_path: str  # ...and how results name that prompt
    repo_prompt: str  # the repository's own prompt when `[prompts]` names none
    required_output: str  # REQUIRED_OUTPUT of its coordinator-agent task file
    task_values: Callable[[LeafTask], dict[str, str | int]]  # its leaf's `.agent-task` (see leaf_task), WORKFLOW first
    claims: str  # the report field listing its claims
    item_keys: tuple[str, ...]  # a single-item report's claim keys
    report_hint: str  # the single-item report, as the agent presets describe it
    # what its proof needs, read from GitHub through `gh` (its only I/O)
    facts: Callable[[GitHub, Dispatch, AgentReport | None, Proof], Mapping[int, Any]]
    # its proof: the claims against those facts, item by item
    verify: Callable[[Dispatch, AgentReport | None, RunFacts, Mapping[int, Any], Proof], CoordinatorOutcome]
    optional_item_keys: tuple[str, ...] = ()
    report_model: type[AgentReport] = AgentReport
    # which ready items of its `item` it takes; None: those no other kind takes (one such per item)
    takes: Callable[[Issue | PullRequest], bool] | None = None

    def leaf_name(self, number: int, pass_id: str) -> str:
        """`issue-<N>-<pass>` / `pr-<N>-<pass>`: a leaf's worktree directory."""
        return f"{self.item}-{number}-{pass_id}"

    def noun(self, number: int) -> str:
        """`issue #12` / `PR #40`: how reasons name an item."""
        return f"{'issue' if self.item == 'issue' else 'PR'} #{number}"

    def leaf_task(self, task: LeafTask, api_url: str) -> dict[str, str | int]:
        """A leaf's `.agent-task`: its kind's values with GITHUB_API_URL (`api_url`) and GH_HOST
        (`gh`'s host, without a 443 port) after GH_REPO, so a command names GitHub with literals
        (`gh repo view GH_HOST/GH_REPO`, `gh api GITHUB_API_URL/…`)."""
        github = {"GITHUB_API_URL": api_url, "GH_HOST": gh_host(api_url)}
        values: dict[str, str | int] = {}
        for key, value in self.task_values(task).items():
            values[key] = value
            if key == "GH_REPO":
                values.update(github)
        return values | github

    def shipped_prompt(self) -> leaves.Prompt:
        return leaves.prompt_of(self.prompt.read_bytes(), self.prompt_path, "shipped")

    def choose_prompt(self, paths: Mapping[str, str], read_at_tip: Callable[[str], bytes | None]) -> leaves.Prompt:
        """The repository's prompt (configured, else `repo_prompt`) when the integration tip has
        it, else the shipped one. `read_at_tip(path)` returns the file's bytes or None. A
        configured path the tip lacks is an error (a typo must not silently fall back)."""
        configured = paths.get(self.kind)
        path = configured or self.repo_prompt
        data = read_at_tip(path)
        if data is None:
            if configured:
                raise leaves.PromptError(f"prompts.{self.kind} = {configured!r} is not on the integration "
                                         "branch; commit that file or remove the setting")
            return self.shipped_prompt()
        return leaves.prompt_of(data, path, "repository")

    def single_item(self, data: dict[str, Any]) -> dict[str, Any]:
        """A leaf's single-item report `{"workflow": name, <item keys>...}` in the batch form,
        one claim (none when a blocked or failed report leaves the claim out)."""
        keys = self.item_keys
        if set(data) & {"issues", "reviews", self.claims}:
            raise ValueError(f"a {self.name} report names its one item with {', '.join(keys)}, "
                             "not a list of claims")
        claim = {k: data[k] for k in keys if k in data}
        out = {k: v for k, v in data.items() if k not in keys + self.optional_item_keys}
        out["workflow"] = self.kind
        blocked = data.get("status") in ("blocked", "failed")
        if all(k in claim for k in keys) or (claim and not blocked):  # an incomplete claim is a schema error
            claim.update({k: data[k] for k in self.optional_item_keys if k in data})
            out[self.claims] = [claim]
        return out


_REGISTRY: dict[str, Workflow] = {}


def register(workflow: Workflow) -> Workflow:
    """Add a kind (idempotent for the same entry); a second default for one item is refused."""
    known = _REGISTRY.get(workflow.kind)
    if known is not None and known != workflow:
        raise ValueError(f"workflow {workflow.kind} is already registered")
    clash = [w.kind for w in _REGISTRY.values() if w.name == workflow.name and w.kind != workflow.kind]
    if clash:
        raise ValueError(f"workflow name {workflow.name} is already {clash[0]}'s")
    if workflow.takes is None and any(w.takes is None and w.item == workflow.item and w.kind != workflow.kind
                                      for w in _REGISTRY.values()):
        raise ValueError(f"{workflow.kind}: another workflow already takes every {workflow.item}")
    _REGISTRY[workflow.kind] = workflow
    return workflow


def unregister(kind: str) -> None:
    _REGISTRY.pop(kind, None)


def registered() -> list[Workflow]:
    """Every kind, in the order they were registered."""
    return list(_REGISTRY.values())


def get(kind: str) -> Workflow:
    """The entry of a kind named in a plan or a report (raises for an unknown kind)."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown workflow {kind!r}; registered: {', '.join(_REGISTRY)}") from None


def by_name(name: str) -> Workflow | None:
    """The entry whose kind or name is `name`, else None."""
    return _REGISTRY.get(name) or next((w for w in _REGISTRY.values() if w.name == name), None)


def kind_of(item: Issue | PullRequest) -> str:
    """The kind a ready item is dispatched to: the first kind of its item (issue or PR) whose
    `takes` accepts it, else its item's default kind."""
    item_kind = "issue" if isinstance(item, Issue) else "pr"
    candidates = [w for w in _REGISTRY.values() if w.item == item_kind]
    chosen = next((w for w in candidates if w.takes is not None and w.takes(item)), None)
    chosen = chosen or next((w for w in candidates if w.takes is None), None)
    if chosen is None:
        raise ValueError(f"no registered workflow takes {item_kind} #{item.number}")
    return chosen.kind


def read_report(data: Any) -> AgentReport:
    """An agent's report (parsed JSON), in either form, as its kind's report model.
    Raises ValueError (pydantic's ValidationError is one) when it does not fit."""
    if not isinstance(data, dict):
        raise ValueError("a report is a JSON object")
    named = data.get("workflow")
    workflow = by_name(named) if isinstance(named, str) else None
    if workflow is None:
        raise ValueError(f"workflow: {named!r} is not a registered workflow")
    if named == workflow.name and (named != workflow.kind or workflow.claims not in data):
        data = workflow.single_item(data)
    return workflow.report_model.model_validate(data)


def prove(gh: GitHub, dispatch: Dispatch, report: AgentReport | None, run: RunFacts,
          where: Proof) -> CoordinatorOutcome:
    """Read what the dispatch's kind needs from GitHub and check its claims against it."""
    workflow = get(dispatch.kind)
    return workflow.verify(dispatch, report, run, workflow.facts(gh, dispatch, report, where), where)


def verify(dispatch: Dispatch, report: AgentReport | None, run: RunFacts, facts: Mapping[int, Any], *,
           repo: str, default_branch: str, html_base: str | None = None) -> CoordinatorOutcome:
    """The proof of `dispatch`'s kind over facts already read (pure)."""
    return get(dispatch.kind).verify(dispatch, report, run, facts, Proof(repo, default_branch, html_base))


# ── the two kinds the conductor ships ──────────────────────────────────────────


def _pull_facts(numbers: list[int], gh: GitHub) -> dict[int, PullFacts]:
    return {n: gh.pull_facts(n) for n in numbers}


def _issue_task(t: LeafTask) -> dict[str, str | int]:
    issue, d = t.item, t.dispatch
    return {
        "WORKFLOW": ISSUE_TO_PR.name,
        "GH_REPO": t.repo,
        "ISSUE_NUMBER": issue.number,
        "ISSUE_TITLE": issue.title,
        "ISSUE_URL": issue.url,
        "PHASE_LABEL": d.phase,
        "BATCH_LABEL": d.batch or "none",
        "ALL_ISSUE_LABELS": ",".join(issue.labels),
        "DEPENDS_ON": leaves.numbers_or_none(d.depends_on.get(issue.number)),
        "FILE_OWNERSHIP": leaves.file_ownership(issue.body),
        "ATTEMPT_N": d.attempts.get(issue.number, 0),
        "REQUIRED_OUTPUT": "pr_url",
        "ON_BLOCK": "stop",
        "BASE": t.base,
        "WORKTREE": str(t.worktree),
        "CLOSES_ISSUES": issue.number,
        "REPORT_PATH": str(t.report_path),
        "PROMPT": str(t.prompt_path),
    }


def _review_task(t: LeafTask) -> dict[str, str | int]:
    pull, d = t.item, t.dispatch
    merge_after = d.merge_after.get(pull.number)
    return {
        "WORKFLOW": PR_REVIEW.name,
        "GH_REPO": t.repo,
        "PR_NUMBER": pull.number,
        "PR_TITLE": pull.title,
        "PR_URL": pull.url,
        "PR_BRANCH": pull.head_ref,
        "CLOSES_ISSUES": leaves.numbers_or_none(pull.closes),
        "FILES_CHANGED": ",".join(pull.files),
        "MERGE_AFTER": merge_after if merge_after else "none",
        "HAS_MIGRATION": "true" if leaves.has_migration(pull.files, t.migration_paths) else "false",
        "ATTEMPT_N": d.attempts.get(pull.number, 0),
        "REQUIRED_OUTPUT": "grade,merge_status,pr_url",
        "ON_BLOCK": "stop",
        "BASE": t.base,
        "REPORT_PATH": str(t.report_path),
        "PROMPT": str(t.prompt_path),
    }


_PROMPTS = resources.files("conductor").joinpath("prompts")

ISSUE_TO_PR = register(Workflow(
    kind="issue_to_pr", name="issue-to-pr", item="issue", label="issue→PR", status="status_in_progress",
    prompt=_PROMPTS.joinpath("issue_to_pr.md"), prompt_path="conductor/prompts/issue_to_pr.md",
    repo_prompt=PROMPT_ISSUE_TO_PR, required_output="pr_urls", task_values=_issue_task,
    claims="issues", item_keys=("issue", "pr_url"),
    report_hint='{"workflow": "issue-to-pr", "status": "done" or "blocked" or "failed", '
                '"issue": <ISSUE_NUMBER>, "pr_url": "<pull request URL>", "message": "why, if not done"}',
    facts=lambda gh, d, report, where: _pull_facts(
        pr_numbers_to_check(d, report, repo=where.repo, html_base=where.html_base), gh),
    verify=lambda d, report, run, prs, where: verify_issue_to_pr(
        d, report, run, prs, repo=where.repo, default_branch=where.default_branch, html_base=where.html_base),
))

PR_REVIEW = register(Workflow(
    kind="pr_review", name="pr-review", item="pr", label="review", status="status_pr_open",
    prompt=_PROMPTS.joinpath("pr_review.md"), prompt_path="conductor/prompts/pr_review.md",
    repo_prompt=PROMPT_PR_REVIEW, required_output="merge_status_and_grades", task_values=_review_task,
    claims="reviews", item_keys=("pr", "grade", "merged"), optional_item_keys=("pr_url",),
    report_hint='{"workflow": "pr-review", "status": "done" or "blocked" or "failed", "pr": <PR_NUMBER>, '
                '"grade": "A" to "F", "merged": true or false, "message": "why, if not done"}',
    facts=lambda gh, d, report, where: _pull_facts(
        sorted(set(pr_numbers_to_check(d, report, repo=where.repo, html_base=where.html_base)) | set(d.items)), gh),
    verify=lambda d, report, run, prs, where: verify_pr_review(d, report, run, prs, repo=where.repo),
))



def _pr_keys(t: LeafTask, workflow: Workflow) -> dict[str, str | int]:
    pull = t.item
    return {"WORKFLOW": workflow.name, "GH_REPO": t.repo, "PR_NUMBER": pull.number, "PR_TITLE": pull.title,
            "PR_URL": pull.url, "PR_BRANCH": pull.head_ref}


def _tail(t: LeafTask, required_output: str) -> dict[str, str | int]:
    return {"ATTEMPT_N": t.dispatch.attempts.get(t.number, 0), "REQUIRED_OUTPUT": required_output,
            "ON_BLOCK": "stop", "BASE": t.base, "WORKTREE": str(t.worktree), "REPORT_PATH": str(t.report_path),
            "PROMPT": str(t.prompt_path)}


def _rework_task(t: LeafTask) -> dict[str, str | int]:
    pull = t.item
    review = t.dispatch.reviews.get(pull.number)
    return {
        **_pr_keys(t, REWORK),
        "ISSUE_NUMBER": pull.closes[0] if pull.closes else "none",
        "CLOSES_ISSUES": leaves.numbers_or_none(pull.closes),
        "FILES_CHANGED": ",".join(pull.files),
        "REVIEW_GRADE": review.grade if review else "none",
        "REVIEW_ROUND": review.round if review else 0,
        "REVIEW_URL": (review.url or "none") if review else "none",
        "REVIEW_TEXT": (review.text or "none") if review else "none",
        "REVIEWED_HEAD": review.head if review else "none",
        **_tail(t, "pushed_commits"),
    }


def _rebase_task(t: LeafTask) -> dict[str, str | int]:
    pull = t.item
    return {
        **_pr_keys(t, REBASE),
        "CLOSES_ISSUES": leaves.numbers_or_none(pull.closes),
        "FILES_CHANGED": ",".join(pull.files),
        "HEAD_SHA": t.dispatch.heads.get(pull.number) or "none",
        **_tail(t, "pushed_merge"),
    }


REWORK = register(Workflow(
    kind="rework", name="rework", item="pr", label="rework", status="status_pr_open",
    prompt=_PROMPTS.joinpath("rework.md"), prompt_path="conductor/prompts/rework.md",
    repo_prompt=PROMPT_REWORK, required_output="pushed_commits", task_values=_rework_task,
    claims="reworks", item_keys=("pr",), report_model=ReworkReport,
    report_hint='{"workflow": "rework", "status": "done" or "blocked" or "failed", "pr": <PR_NUMBER>, '
                '"message": "what was changed, or why not"}',
    facts=lambda gh, d, report, where: _pull_facts(sorted(d.items), gh),
    verify=lambda d, report, run, prs, where: loops.verify_rework(d, report, run, prs),
    takes=lambda item: isinstance(item, PullRequest) and loops.awaiting_rework(item),
))

REBASE = register(Workflow(
    kind="rebase", name="rebase", item="pr", label="rebase", status="status_pr_open",
    prompt=_PROMPTS.joinpath("rebase.md"), prompt_path="conductor/prompts/rebase.md",
    repo_prompt=PROMPT_REBASE, required_output="pushed_merge", task_values=_rebase_task,
    claims="rebases", item_keys=("pr",), optional_item_keys=("conflicts",), report_model=RebaseReport,
    report_hint='{"workflow": "rebase", "status": "done" or "failed", "pr": <PR_NUMBER>, '
                '"conflicts": ["paths it could not resolve"], "message": "why, if not done"}',
    facts=lambda gh, d, report, where: _pull_facts(sorted(d.items), gh),
    verify=lambda d, report, run, prs, where: loops.verify_rebase(d, report, run, prs),
    takes=lambda item: isinstance(item, PullRequest) and loops.needs_rebase(item),
))

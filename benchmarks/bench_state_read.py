"""Benchmark: read a large pipeline's state from the sandbox GitHub, and price the seed's way.

    .venv/bin/python benchmarks/bench_state_read.py [--issues 300] [--prs 60] [--changed 150]

Starts a sandbox server in a temporary directory, fills one repository with open issues
(the seed's 7 phase labels, batch-NN labels, a few `security`), open PRs (one pushed
branch each, "Closes #k" bodies, a few drafts, some touching maestro/protocol/events.py)
and one comment per item, then times the snapshot's reads (`read_open_items` and the
per-item attempts of what the plan would dispatch) and prints the requests they made, as
counted by the client and by the server. A second read after `--changed` new comments
shows the attempts costing one page of the comment listing per 100 of them. Next to it,
`seed_query_cost` prices the seed's `gh` queries for the same state and lists the counts
the seed would silently get wrong.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from conductor.core.config import PipelineConfig
from conductor.edges.github_gateway import GitHubGateway
from conductor.core.linking import linked_issues
from conductor.core.models import PipelineState
from conductor.core.planner import plan
from conductor.actions.snapshot import read_open_items, with_dispatch_facts
from github_sandbox.testing import RunningSandbox, running_sandbox
from conductor.core.settings import GitHubSettings
from conductor.core.settings import Settings

PROTECTED_FILE = "maestro/protocol/events.py"
PAGE = 100  # per_page of every listing


def listing_budget(issues: int, prs: int) -> int:
    """Pages of the two listings: issues (PRs included, as GitHub lists them) and PRs.
    5 at 300 issues + 60 PRs; 26 at 2,000 + 300."""
    return max(1, -(-(issues + prs) // PAGE)) + max(1, -(-prs // PAGE))

# -- the seed's query pattern, priced ----------------------------------------------------------
#
# How `gh` (v2) turns the seed's commands into API requests (read in cli/cli,
# pkg/cmd/issue/list and pkg/cmd/pr/list):
#   * `gh issue list --label L`   -> GraphQL `search(type: ISSUE)`: a SEARCH request
#     (a label filter, like --search, sends `gh issue list` to the search index).
#   * `gh issue list` (no label)  -> GraphQL `repository.issues`: a listing request.
#   * `gh pr list --search Q`     -> GraphQL `search(type: ISSUE)`: a SEARCH request.
#   * `gh pr list` (no filter)    -> GraphQL `repository.pullRequests`: a listing request.
#   * `gh issue view N`           -> one GraphQL request for that one issue.
# Every call fetches min(--limit, 100) nodes per page and stops at --limit, whose default
# is 30; all the seed's limits are <= 100, so each call is exactly one request, and each
# silently keeps at most --limit results (30 unless the seed passes --limit 50 / 100).
# Listings come newest first, so a truncated one drops the oldest items; this model uses
# the highest numbers as the newest. PHASE_FILTER is empty (the seed's default).
GH_DEFAULT_LIMIT = 30
SEED_PR_LIST_LIMIT = 50         # STEP 2 and STEP 3: gh pr list --limit 50
SEED_REMAINING_PRS_LIMIT = 100  # STEP 7: gh pr list --limit 100


def _newest(numbers: list[int], limit: int) -> list[int]:
    return sorted(numbers, reverse=True)[:limit]


def _truncated(where: str, seen: int, true: int, why: str) -> str:
    return f"{where}: sees {seen} of {true} ({why})"


def seed_query_cost(state: PipelineState, config: PipelineConfig) -> dict[str, Any]:
    """The read requests the seed's STEPS 2, 3, 4 and 7 issue for `state`, by step and kind
    (search / listing / item), and the counts that their --limit truncation gets wrong.

    Not counted: STEP 1 (one more search for stale reminders, then one close per reminder),
    the STEP 7 writes (issue create + edit), and gh's own overhead (auth, repo lookup).
    """
    phases = config.phase_names
    issue_nums = {i.number for i in state.issues} - {p.number for p in state.pull_requests}
    issues = [i for i in state.issues if i.number in issue_nums]
    open_in = {p: sorted(i.number for i in issues if p in i.labels) for p in phases}
    prs = sorted(p.number for p in state.pull_requests)
    steps: dict[str, Counter[str]] = {s: Counter() for s in ("2", "3", "4", "7")}
    wrong: list[str] = []

    # STEP 2: per phase, a count (`--json number --jq length`) and, if > 0, a listing (both
    # `gh issue list --label`, default limit 30); then `gh pr list --limit 50`.
    for p in phases:
        steps["2"]["search"] += 1 + (1 if open_in[p] else 0)
        if len(open_in[p]) > GH_DEFAULT_LIMIT:
            wrong.append(_truncated(f"STEP 2 count and listing of {p}", GH_DEFAULT_LIMIT,
                                    len(open_in[p]), "gh default --limit 30"))
    steps["2"]["listing"] += 1
    if len(prs) > SEED_PR_LIST_LIMIT:
        wrong.append(_truncated("STEP 2 open PR listing", SEED_PR_LIST_LIMIT, len(prs), "--limit 50"))

    # STEP 3: PHASE_OPEN recount per phase (capped at 30, but only `> 0` is used, so the
    # active phases come out right). Active: lowest phase of each chain with open issues,
    # i.e. open issues and none open in any phase it depends on (PRs are not looked at).
    steps["3"]["search"] += len(phases)
    active = [p for p in phases if open_in[p]
              and not any(open_in[d] for d in config.dependencies_closure(p))]
    newest_prs = _newest(prs, SEED_PR_LIST_LIMIT)
    pr_by_number = {p.number: p for p in state.pull_requests}
    closed_by_open_pr = {n for p in state.pull_requests for n in linked_issues(p.body, state.repo)}
    ready_issues: list[int] = []
    for p in active:
        # PHASE_ISSUES (`gh issue list --label`, limit 30), then one `gh pr list --search
        # "closes #N"` per issue listed: issues past the 30th are never examined.
        seen = _newest(open_in[p], GH_DEFAULT_LIMIT)
        steps["3"]["search"] += 1 + len(seen)
        ready_issues += [n for n in seen if n not in closed_by_open_pr]
        if len(seen) < len(open_in[p]):
            wrong.append(_truncated(f"STEP 3 issues examined for readiness in {p}", len(seen),
                                    len(open_in[p]), "gh default --limit 30; the rest are never dispatched"))
        # PHASE_PRS: `gh pr list --limit 50`, filtered on the PR's own phase label.
        steps["3"]["listing"] += 1
        labelled = [n for n in prs if p in pr_by_number[n].labels]
        kept = [n for n in newest_prs if p in pr_by_number[n].labels]
        if len(kept) < len(labelled):
            wrong.append(_truncated(f"STEP 3 PRs found for review in {p}", len(kept), len(labelled),
                                    "--limit 50 applied before the phase filter"))
        unlabelled = [n for n in prs if p not in pr_by_number[n].labels
                      and any(i in open_in[p] for i in linked_issues(pr_by_number[n].body, state.repo))]
        if unlabelled:
            wrong.append(f"STEP 3 PRs found for review in {p}: misses {len(unlabelled)} PR(s) that close "
                         f"its issues but carry no phase label (not a truncation: the filter is on labels)")

    # STEP 4: one `gh issue view` per ready issue, to read labels it already had.
    steps["4"]["item"] += len(ready_issues)

    # STEP 7: REMAINING_ISSUES (`gh issue list`, no label: a listing, limit 30, counting the
    # phase-labelled ones among them) and REMAINING_PRS (`gh pr list --limit 100`).
    steps["7"]["listing"] += 2
    true_remaining = {i.number for i in issues if any(lb.startswith(config.phase_prefix) for lb in i.labels)}
    seen_remaining = [n for n in _newest(sorted(issue_nums), GH_DEFAULT_LIMIT) if n in true_remaining]
    if len(seen_remaining) != len(true_remaining):
        wrong.append(_truncated("STEP 7 REMAINING_ISSUES", len(seen_remaining), len(true_remaining),
                                "gh default --limit 30 before the phase filter"))
    if len(prs) > SEED_REMAINING_PRS_LIMIT:
        wrong.append(_truncated("STEP 7 REMAINING_PRS", SEED_REMAINING_PRS_LIMIT, len(prs), "--limit 100"))
    if seen_remaining or prs:
        # The reminder body: a count per phase (search), the phase-1 "gated" list (search),
        # and the "failed PRs" list (`gh pr list`, limit 30, then head -5; it lists any open PR).
        steps["7"]["search"] += len(phases) + 1
        steps["7"]["listing"] += 1
        for p in phases:
            if len(open_in[p]) > GH_DEFAULT_LIMIT:
                wrong.append(_truncated(f"STEP 7 reminder count of {p}", GH_DEFAULT_LIMIT,
                                        len(open_in[p]), "gh default --limit 30"))
        gated_phase = phases[0] if phases else None
        if gated_phase and len(open_in[gated_phase]) > GH_DEFAULT_LIMIT:
            wrong.append(_truncated(f"STEP 7 reminder gated list ({gated_phase})", GH_DEFAULT_LIMIT,
                                    len(open_in[gated_phase]), "gh default --limit 30"))

    totals: Counter[str] = Counter()
    for counter in steps.values():
        totals.update(counter)
    return {
        "requests": sum(totals.values()),
        "search": totals["search"],
        "listing": totals["listing"],
        "item": totals["item"],
        "by_step": {s: dict(c) for s, c in steps.items()},
        "active_phases": active,
        "ready_issues": len(ready_issues),
        "wrong": wrong,
    }


# -- building the repository -------------------------------------------------------------------

def issue_specs(count: int, phases: list[str]) -> list[dict[str, Any]]:
    """Issue #i+1 for i < count: phases round-robin, 12 batches, every 23rd `security`,
    every 11th already in progress."""
    specs = []
    for i in range(count):
        phase = phases[i % len(phases)]
        labels = [phase, f"batch-{(i // len(phases)) % 12 + 1:02d}"]
        if i % 23 == 22:
            labels.append("security")
        if i % 11 == 10:
            labels.append("status/in-progress")
        specs.append({"title": f"{phase}: work item {i + 1}", "body": f"Synthetic issue {i + 1}.",
                      "labels": labels})
    return specs


def pr_specs(count: int, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PR j closes an issue spread evenly over `issues` (numbered from 1); every 4th has no
    labels (it inherits its phase), every 10th is a draft, every 8th touches PROTECTED_FILE."""
    specs = []
    for j in range(count):
        k = (j * len(issues)) // count + 1 if issues else 0
        labels = [lb for lb in issues[k - 1]["labels"] if lb.startswith(("phase-", "batch-"))] if k else []
        files = {f"src/feature_{j:04d}.py": f"VALUE = {j}\n"}
        if j % 8 == 0:
            files[PROTECTED_FILE] = f"EVENT_{j} = 'event-{j}'\n"
        specs.append({
            "branch": f"feature/pr-{j:04d}",
            "title": f"Implement #{k}" if k else f"Change {j}",
            "body": f"Closes #{k}\n\nSynthetic pull request {j}." if k else f"Synthetic pull request {j}.",
            "labels": [] if j % 4 == 3 else labels,
            "draft": j % 10 == 9,
            "files": files,
        })
    return specs


def _git(cwd: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@sandbox.invalid", *args],
                   cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def push_branches(sb: RunningSandbox, full_name: str, prs: list[dict[str, Any]], base: str) -> None:
    """One commit per PR branch, made in a temporary clone, all pushed in one `git push`."""
    env = {**os.environ, **sb.git_env()}
    with tempfile.TemporaryDirectory(prefix="bench-wc-") as tmp:
        wc = Path(tmp) / "wc"
        subprocess.run(["git", "clone", "-q", "--branch", base, sb.repo_url(full_name), str(wc)],
                       env=env, check=True)
        for pr in prs:
            _git(wc, env, "checkout", "-q", "-B", pr["branch"], f"origin/{base}")
            for name, text in pr["files"].items():
                (wc / name).parent.mkdir(parents=True, exist_ok=True)
                (wc / name).write_text(text, encoding="utf-8")
            _git(wc, env, "add", "-A")
            _git(wc, env, "commit", "-q", "-m", pr["title"])
        _git(wc, env, "push", "-q", "origin", *[f"{pr['branch']}:refs/heads/{pr['branch']}" for pr in prs])


def add_comments(sb: RunningSandbox, full_name: str, numbers: list[int], text: str) -> None:
    with sb.api() as client:
        for n in numbers:
            resp = client.post(f"/repos/{full_name}/issues/{n}/comments", json={"body": f"{text} #{n}"})
            if resp.status_code >= 300:
                raise RuntimeError(f"comment on #{n}: {resp.status_code} {resp.text[:200]}")


def fill_repository(sb: RunningSandbox, full_name: str, issues: list[dict[str, Any]],
                    prs: list[dict[str, Any]], base: str) -> None:
    push_branches(sb, full_name, prs, base)
    with sb.api() as client:
        def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            resp = client.request(method, f"/repos/{full_name}{path}", json=body)
            if resp.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:200]}")
            return resp.json()

        for spec in issues:
            call("POST", "/issues", spec)
        for pr in prs:
            number = call("POST", "/pulls", {"title": pr["title"], "body": pr["body"], "head": pr["branch"],
                                             "base": base, "draft": pr["draft"]})["number"]
            if pr["labels"]:
                call("POST", f"/issues/{number}/labels", {"labels": pr["labels"]})


# -- measuring ---------------------------------------------------------------------------------

def classify_server_counts(counts: dict[str, int]) -> dict[str, int]:
    """Server-side request counts grouped as listing / files / search / other."""
    groups: Counter[str] = Counter()
    for key, n in counts.items():
        method, _, route = key.partition(" ")
        if route.startswith("/search"):
            groups["search"] += n
        elif method == "GET" and route.endswith(("/{repo}/issues", "/{repo}/pulls")):
            groups["listing"] += n
        elif method == "GET" and route.endswith("/files"):
            groups["files"] += n
        elif method == "GET" and route.endswith("/{repo}/issues/comments"):
            groups["comments"] += n
        else:
            groups["other"] += n
    return {k: groups[k] for k in ("listing", "files", "comments", "search", "other")}


def pages(count: int) -> int:
    return max(1, -(-count // PAGE))


def run(issue_count: int, pr_count: int, changed: int) -> None:
    config = PipelineConfig()
    rules = Settings(pipeline=config)
    issues = issue_specs(issue_count, config.phase_names)
    prs = pr_specs(pr_count, issues)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as data_dir, running_sandbox(data_dir) as sb:
        full_name = sb.create_repo("bench-pipeline")
        sb.push_initial(full_name, branches=("main", config.integration_branch))
        sb.control.set_rate_limit(limit=100_000)  # the setup alone passes GitHub's 5,000 an hour at 2,000 issues
        started = time.perf_counter()
        fill_repository(sb, full_name, issues, prs, config.integration_branch)
        items = list(range(1, issue_count + pr_count + 1))
        add_comments(sb, full_name, items, "Synthetic comment on")
        # GitHub's `since` is inclusive and to the second: the comments sharing the newest
        # one's second are listed again by the next read. One comment a second later keeps
        # that to itself, as on a repository not filled by a script.
        time.sleep(1.1)
        add_comments(sb, full_name, items[:1], "The newest comment, on")
        print(f"setup: {issue_count} issues, {pr_count} PRs, {len(items) + 1} comments in "
              f"{time.perf_counter() - started:.1f} s (sandbox at {sb.api_url})")

        settings = GitHubSettings(api_url=sb.api_url, token=sb.admin_token, etag_cache_dir=Path(data_dir) / "etags",
                                  seconds_between_requests=0, seconds_between_writes=0)

        def snapshot_reads() -> tuple[PipelineState, float, int, dict[str, int]]:
            sb.control.reset_counts()
            with GitHubGateway(settings, full_name) as gateway:
                gateway.login()  # the pass reads it before (approvals): not a read of the state
                started = time.perf_counter()
                state = with_dispatch_facts(gateway, read_open_items(gateway, rules), rules)
                return state, time.perf_counter() - started, gateway.requests_made - 1, sb.control.counts()

        state, seconds, client_requests, server = snapshot_reads()
        server.pop("GET /user", None)
        report(state, rules, seconds, client_requests, server, len(items) + 1)
        time.sleep(1.1)  # the new comments start a second of their own, as on GitHub
        add_comments(sb, full_name, [items[k % len(items)] for k in range(changed)], "Changed since the last pass:")
        state, seconds, _, server = snapshot_reads()
        got = classify_server_counts(server)["comments"]
        goal = pages(changed + 1)  # and the newest one before, listed again
        print(f"\nthe next read, {changed} comments changed since: {got} comment-listing page(s) "
              f"(goal <= {goal}: {'PASS' if got <= goal else 'FAIL'}), "
              f"attempts of {len(state.attempts)} items, {seconds:.2f} s wall")


def report(state: PipelineState, rules: Settings, seconds: float,
           client_requests: int, server: dict[str, int], comments: int) -> None:
    groups = classify_server_counts(server)
    decided = plan(state, rules)
    dispatchable = [p.number for p in state.pull_requests if p.files]
    print(f"\nread_state: {len(state.issues)} open issues, {len(state.pull_requests)} open PRs "
          f"in {seconds:.2f} s wall")
    print(f"  client-side requests: {client_requests} (state.api_requests = {state.api_requests})")
    print(f"  server-side requests: {sum(server.values())}")
    for key, n in server.items():
        print(f"    {n:5d}  {key}")
    print(f"  listing requests: {groups['listing']}   file-listing requests: {groups['files']}   "
          f"search requests: {groups['search']}   comment-listing requests: {groups['comments']}   "
          f"other: {groups['other']}")
    print("  (the sandbox has no search endpoint: a search call would show as 'GET <unmatched>', under other)")
    print(f"  dispatchable PRs (files read): {len(dispatchable)}; attempts read for {len(state.attempts)} items; "
          f"plan: {len(decided.dispatches)} dispatches, "
          f"{len(decided.gated)} gated, active {', '.join(decided.active_phases)}")

    listings = listing_budget(len(state.issues), len(state.pull_requests))
    budget = listings + len(dispatchable) + pages(comments)
    ok = (groups["listing"] <= listings and groups["files"] <= len(dispatchable)
          and groups["comments"] <= pages(comments) and groups["search"] == 0 and groups["other"] == 0)
    print(f"\ngoal: at most {listings} listing requests (pages of 100) plus one file listing per dispatchable PR "
          f"plus {pages(comments)} page(s) of the {comments} comments for every attempt "
          f"(<= {budget} in all, nothing else), zero search requests: {'PASS' if ok else 'FAIL'}")
    if groups["other"]:
        print(f"  over budget: the {groups['other']} 'other' requests in the table above")

    seed = seed_query_cost(state, rules.pipeline)
    print(f"\nthe seed's gh queries for the same state (steps 2-4 and 7): {seed['requests']} requests "
          f"= {seed['search']} search + {seed['listing']} listing + {seed['item']} per-issue")
    for step, kinds in seed["by_step"].items():
        print(f"  STEP {step}: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()))
    print(f"  active phases: {', '.join(seed['active_phases'])}; "
          f"ready issues it finds: {seed['ready_issues']} (one gh issue view each in STEP 4)")
    print(f"  counts the seed gets wrong here ({len(seed['wrong'])}):")
    for line in seed["wrong"] or ["none"]:
        print(f"    - {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=300, help="open issues to create (default 300)")
    parser.add_argument("--prs", type=int, default=60, help="open PRs to create (default 60)")
    parser.add_argument("--changed", type=int, default=150,
                        help="comments added before the second read (default 150)")
    args = parser.parse_args(argv)
    if args.issues < 0 or args.prs < 0 or args.changed < 0:
        parser.error("--issues, --prs and --changed must be 0 or more")
    run(args.issues, args.prs, args.changed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

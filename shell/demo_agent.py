"""A scripted local agent: a real process that does real work, for `conductor demo` and tests.

It reads its `.agent-task` (CONDUCTOR_TASK_FILE), works in its worktree (the current
directory) and writes its report (CONDUCTOR_REPORT_FILE), like a real coding agent:

* given issues: per issue, a branch with one commit pushed with git, and a PR whose body
  closes the issue;
* given PRs: per PR, a grade and, when it passes, a merge (closing the linked issues
  that are still open, as a PR_REVIEW agent does when the base is not the default branch);
  a PR that no longer merges cleanly is not merged: the review reports blocked, and the
  conductor sends it to a rebase leaf first;
* as a `rework` leaf: one commit on the PR's own branch addressing its review, pushed;
* as a `rebase` leaf: the base merged into the PR's branch, every conflict resolved by
  keeping both sides (`--mode no-resolve`: resolved by nobody, the conflicting paths reported).

An issue whose body says `demo:grade-d-once` gets a PR whose body says it too; the reviewer
grades such a PR D until the conductor has recorded one review of it (its `conductor:loop`
comment), then grades it as usual: the demo's rework round.

As a leaf (the conductor's default) it gets one item: `ISSUE_NUMBER` (it also edits the
files the issue owns, `FILE_OWNERSHIP`, and reports blocked while a `DEPENDS_ON` issue is
open), or `PR_NUMBER` (it reports blocked while its `MERGE_AFTER` PR is unmerged, and brings
the base into a branch that no longer merges cleanly before merging it); it writes the
single-item report under the task file's `WORKFLOW`. As a coordinator agent it gets `ISSUES`
or `PRS` and writes the batch report.

`--mode` makes it misbehave on purpose for tests: crash, hang, empty (done with no
artifact), foreign-url (a PR URL in another repository), grade-d, garbage (a report
that is not JSON), no-report, leak (prints its token, then works: the conductor must
redact it from the logs), half-done (commits on its branch without pushing, leaves a
file uncommitted, then hangs: the work a killed pass leaves in a worktree).

Usage, as the agent CLIs report it (`conductor/core/usage.py`): `--usage USD,IN,OUT` ends its
output with Claude Code's result event of that cost and those tokens; `--stream-turns N`
prints, before working, N of Codex's `turn.completed` events of `--turn-tokens` input tokens
each, 0.1 s apart (a spend that grows while it works).

Auth: its own token from GH_TOKEN (never the conductor's); git pushes send it as an
HTTP header, so it is never written into a URL or a git config file.
"""
from __future__ import annotations

import time

STARTED = time.monotonic()  # before the heavier imports: `--lasting` counts from here

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path
from typing import Any

import httpx
from git import Repo

from conductor.core.linking import linked_issues
from conductor.core.constants import AGENT_REPORT_FILE_ENV, AGENT_TASK_FILE_ENV
from conductor.core.settings import process_environment
from conductor.core.taskfile import parse_key_values

MODES = ("work", "crash", "hang", "empty", "foreign-url", "grade-d", "garbage", "no-report", "leak", "half-done",
         "no-resolve")
GRADE_D_ONCE = "demo:grade-d-once"
IDENTITY = {"GIT_AUTHOR_NAME": "demo-agent", "GIT_AUTHOR_EMAIL": "demo-agent@sandbox.invalid",
            "GIT_COMMITTER_NAME": "demo-agent", "GIT_COMMITTER_EMAIL": "demo-agent@sandbox.invalid"}


def api_url(task: dict[str, str]) -> str:
    return task.get("GITHUB_API_URL") or process_environment().get("GITHUB_API_URL", "")


def _token() -> str | None:
    return process_environment().get("GH_TOKEN") or None


def base_branch(task: dict[str, str]) -> str:
    return task.get("BASE") or task.get("INTEGRATION_BRANCH") or "dev"


def _numbers(value: str | None) -> list[int]:
    return [int(n) for n in (value or "").split(",") if n.strip().isdigit()]


def _safe_paths(value: str | None) -> list[str]:
    """Owned paths from FILE_OWNERSHIP that stay inside the worktree."""
    out = []
    for raw in (value or "").split(","):
        path = raw.strip()
        if path and path != "tbd" and not path.startswith("/") and ".." not in Path(path).parts:
            out.append(path)
    return out


class Agent:
    def __init__(self, task: dict[str, str], token: str | None) -> None:
        self.task = task
        self.repo = task["GH_REPO"]
        self.token = token
        headers = {"Accept": "application/vnd.github+json"}
        if token:
            headers["Authorization"] = f"token {token}"
        self.api = httpx.Client(base_url=api_url(task), headers=headers, timeout=30)

    def _git_auth(self) -> list[str]:
        header = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return ["-c", f"http.extraHeader=Authorization: Basic {header}"]

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.api.request(method, f"/repos/{self.repo}{path}", **kwargs)
        if response.status_code >= 400 and response.status_code != 422:
            raise RuntimeError(f"{method} {response.request.url}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def implement(self, issue: int, owned: list[str] = ()) -> str:
        """Branch, commit, push, open (or find) the PR; returns its HTML URL. Besides its own
        note it adds a line to every file the issue owns (a directory gets a file of its own)."""
        branch = f"agent/issue-{issue}"
        git = Repo(Path.cwd())
        try:
            git.git.checkout("-B", branch)
            path = Path("changes") / f"issue-{issue}.md"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"Implements #{issue}.\n", encoding="utf-8")
            touched = [str(path)]
            for name in owned:
                target = Path(name) / f"issue_{issue}.md" if name.endswith("/") else Path(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                before = target.read_text(encoding="utf-8") if target.exists() else ""
                target.write_text(before + f"# part of #{issue}\n", encoding="utf-8")
                touched.append(str(target))
            git.index.add(touched)
            git.git.commit("-m", f"Implement #{issue}", env=IDENTITY)
            git.git.execute(["git", *self._git_auth(), "push", "--force", "-q", "origin",
                             f"HEAD:refs/heads/{branch}"])
        finally:
            git.close()
        base = base_branch(self.task)
        hint = f"\n\n{GRADE_D_ONCE}" if GRADE_D_ONCE in (self._call("GET", f"/issues/{issue}").json().get("body")
                                                          or "") else ""
        created = self._call("POST", "/pulls", json={
            "title": f"Implement #{issue}", "head": branch, "base": base, "body": f"Closes #{issue}{hint}"})
        if created.status_code == 201:
            return created.json()["html_url"]
        owner = self.repo.split("/")[0]
        existing = self._call("GET", "/pulls", params={"head": f"{owner}:{branch}", "state": "open"}).json()
        if not existing:
            raise RuntimeError(f"could not open a PR for #{issue}: {created.text[:200]}")
        return existing[0]["html_url"]

    def is_open(self, number: int) -> bool:
        return self._call("GET", f"/issues/{number}").json().get("state") == "open"

    def is_merged(self, number: int) -> bool:
        return bool(self._call("GET", f"/pulls/{number}").json().get("merged"))

    def checkout(self, git: Repo, pull: dict[str, Any]) -> None:
        """The PR's own branch, as on GitHub now, checked out in the worktree."""
        head, base = pull["head"]["ref"], pull["base"]["ref"]
        git.git.execute(["git", "fetch", "-q", "origin", f"+refs/heads/{head}:refs/remotes/origin/{head}",
                         f"+refs/heads/{base}:refs/remotes/origin/{base}"])
        git.git.checkout("-q", "-B", head, f"origin/{head}")

    def push(self, git: Repo, pull: dict[str, Any]) -> None:
        git.git.execute(["git", *self._git_auth(), "push", "-q", "origin", f"HEAD:refs/heads/{pull['head']['ref']}"])

    def rebase(self, number: int, resolve: bool = True) -> list[str]:
        """Merge the base into the PR's branch and push it, every conflict resolved by keeping
        both sides; with `resolve` False nothing is pushed. Returns the conflicting paths left."""
        pull = self._call("GET", f"/pulls/{number}").json()
        git = Repo(Path.cwd())
        try:
            self.checkout(git, pull)
            status, _, _ = git.git.execute(["git", "merge", "-q", "--no-edit", f"origin/{pull['base']['ref']}"],
                                           env=IDENTITY, with_extended_output=True, with_exceptions=False)
            conflicts = git.git.diff("--name-only", "--diff-filter=U").splitlines() if status else []
            if conflicts and not resolve:
                git.git.execute(["git", "merge", "--abort"])
                return conflicts
            for path in conflicts:
                sides = []
                for stage in (2, 1, 3):  # ours, base, theirs
                    status, text, _ = git.git.execute(["git", "show", f":{stage}:{path}"],
                                                      with_extended_output=True, with_exceptions=False,
                                                      strip_newline_in_stdout=False)
                    side = Path(git.git_dir) / f"union-{stage}"
                    side.write_text(text if status == 0 else "", encoding="utf-8")
                    sides.append(str(side))
                _, merged, _ = git.git.execute(["git", "merge-file", "--union", "-p", *sides],
                                               with_extended_output=True, with_exceptions=False,
                                               strip_newline_in_stdout=False)
                Path(path).write_text(merged, encoding="utf-8")
                git.git.add(path)
            if conflicts:
                git.git.execute(["git", "commit", "-q", "--no-edit"], env=IDENTITY)
            self.push(git, pull)
            return []
        finally:
            git.close()

    def rework(self, number: int, task: dict[str, str]) -> None:
        """One commit on the PR's own branch that addresses its review, pushed (no new PR)."""
        pull = self._call("GET", f"/pulls/{number}").json()
        git = Repo(Path.cwd())
        try:
            self.checkout(git, pull)
            path = Path("changes") / f"rework-pr-{number}.md"
            path.parent.mkdir(exist_ok=True)
            before = path.read_text(encoding="utf-8") if path.exists() else ""
            path.write_text(before + f"Round {task.get('REVIEW_ROUND')}: addressed the review graded "
                            f"{task.get('REVIEW_GRADE')}.\n", encoding="utf-8")
            git.index.add([str(path)])
            git.git.commit("-q", "-m", f"Rework PR #{number} after its review", env=IDENTITY)
            self.push(git, pull)
        finally:
            git.close()

    def graded_down_before(self, number: int) -> bool:
        """The conductor recorded a review that graded PR `number` down (its loop comment)."""
        return any("conductor:loop" in (c.get("body") or "") and '"review"' in (c.get("body") or "")
                   for c in self._call("GET", f"/issues/{number}/comments").json())

    def merge(self, number: int) -> bool:
        """Squash-merge PR `number`; False when GitHub refuses (it conflicts with its base)."""
        result = self.api.put(f"/repos/{self.repo}/pulls/{number}/merge", json={"merge_method": "squash"})
        if result.status_code >= 400 and result.status_code != 405:
            raise RuntimeError(f"merge of PR #{number}: {result.status_code} {result.text[:200]}")
        return result.status_code == 200 and bool(result.json().get("merged"))

    def review(self, number: int, grade: str) -> dict[str, Any]:
        pull = self._call("GET", f"/pulls/{number}").json()
        if GRADE_D_ONCE in (pull.get("body") or "") and not self.graded_down_before(number):
            grade = "D"
        merged = bool(pull.get("merged"))
        if grade in ("A", "B", "C") and not merged:
            merged = self.merge(number)
            if not merged and self.is_open(number):
                print(f"demo agent: PR #{number} does not merge cleanly; it needs a rebase", flush=True)
                return {"pr": number, "grade": grade, "merged": False, "conflicts": True}
        if merged:
            for issue in linked_issues(pull.get("body") or "", self.repo):
                state = self._call("GET", f"/issues/{issue}").json().get("state")
                if state == "open":
                    self._call("PATCH", f"/issues/{issue}", json={"state": "closed", "state_reason": "completed"})
        return {"pr": number, "grade": grade, "merged": merged}


def half_done(item: int) -> None:
    """Work a killed pass interrupts: `committed.md` committed on `agent/item-<N>` (not
    pushed), `uncommitted.md` written and not committed."""
    git = Repo(Path.cwd())
    try:
        git.git.checkout("-q", "-B", f"agent/item-{item}")
        Path("committed.md").write_text(f"Committed for #{item}.\n", encoding="utf-8")
        git.index.add(["committed.md"])
        git.git.commit("-q", "-m", f"Part of #{item}", env=IDENTITY)
        Path("uncommitted.md").write_text(f"Not yet committed for #{item}.\n", encoding="utf-8")
    finally:
        git.close()
    print(f"demo agent: #{item} half done", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conductor-demo-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="work")
    parser.add_argument("--grade", default="A", choices=list("ABCDF"))
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds of 'thinking' before working")
    parser.add_argument("--lasting", type=float, default=0.0,
                        help="seconds the whole run lasts, its own work included (a leaf of a fixed "
                             "duration, for benchmarks): after working it waits out the rest")
    parser.add_argument("--usage", default="", help="USD,IN,OUT: the figures its result event reports")
    parser.add_argument("--stream-turns", type=int, default=0, help="turn events printed before working")
    parser.add_argument("--turn-tokens", type=int, default=1000, help="input tokens of each turn event")
    args = parser.parse_args(argv)
    for _ in range(args.stream_turns):
        print(json.dumps({"type": "turn.completed", "usage": {"input_tokens": args.turn_tokens, "output_tokens": 0}}),
              flush=True)
        time.sleep(0.1)
    code = _run(args)
    if args.usage:
        cost, tokens_in, tokens_out = args.usage.split(",")
        print(json.dumps({"type": "result", "total_cost_usd": float(cost), "num_turns": 1,
                          "usage": {"input_tokens": int(tokens_in), "output_tokens": int(tokens_out)},
                          "modelUsage": {"scripted": {}}}), flush=True)
    time.sleep(remaining(args.lasting, time.monotonic() - STARTED))
    return code


def remaining(lasting: float, elapsed: float) -> float:
    """Seconds still to wait so that a run meant to last `lasting` seconds does (0 when over)."""
    return max(0.0, lasting - elapsed)


def _run(args: argparse.Namespace) -> int:
    given = process_environment()  # what the conductor handed this agent
    task = parse_key_values(Path(given[AGENT_TASK_FILE_ENV]).read_text(encoding="utf-8"))
    report_path = Path(given[AGENT_REPORT_FILE_ENV])
    workflow = task["WORKFLOW"]
    leaf = "ISSUE_NUMBER" in task or "PR_NUMBER" in task
    if leaf:
        items = [int(task["PR_NUMBER"] if "PR_NUMBER" in task else task["ISSUE_NUMBER"])]
        print(f"demo agent: {workflow} #{items[0]} mode {args.mode}", flush=True)
        prompt = Path(task.get("PROMPT") or "")
        if prompt.is_file():
            first = prompt.read_text(encoding="utf-8").splitlines()[:1]
            print(f"demo agent: prompt: {first[0] if first else ''}", flush=True)
    else:
        items = [int(n) for n in (task.get("ISSUES") or task.get("PRS") or "").split(",") if n]
        print(f"demo agent: {workflow} {task.get('PHASE')} {task.get('BATCH')} items {items} mode {args.mode}",
              flush=True)

    time.sleep(args.sleep)
    if args.mode == "leak":
        print(f"demo agent: my token is {_token()}", flush=True)
    if args.mode == "crash":
        print("demo agent: crashing on purpose", flush=True)
        return 3
    if args.mode == "hang":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # a grandchild
        time.sleep(3600)
        return 0
    if args.mode == "half-done":
        half_done(items[0])
        time.sleep(3600)
        return 0
    if args.mode == "no-report":
        return 0
    if args.mode == "garbage":
        report_path.write_text("this is not json {", encoding="utf-8")
        return 0

    if leaf:
        report_path.write_text(json.dumps(leaf_report(task, args, items[0]), indent=2), encoding="utf-8")
        return 0
    report: dict[str, Any] = {"workflow": workflow, "status": "done", "issues": [], "reviews": []}
    if args.mode != "empty":
        agent = Agent(task, _token())
        if task.get("ISSUES"):
            for issue in items:
                html = api_url(task).removesuffix("/api/v3")
                url = (f"{html}/someone-else/other-repo/pull/{issue}" if args.mode == "foreign-url"
                       else agent.implement(issue))
                report["issues"].append({"issue": issue, "pr_url": url})
                print(f"demo agent: #{issue} -> {url}", flush=True)
        else:
            grade = "D" if args.mode == "grade-d" else args.grade
            for pr in items:
                review = agent.review(pr, grade)
                if review.pop("conflicts", False):
                    report.update(status="blocked", message=f"PR #{pr} conflicts with its base: it needs a rebase")
                report["reviews"].append(review)
                print(f"demo agent: PR #{pr} graded {review['grade']}", flush=True)
    report_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


def leaf_report(task: dict[str, str], args: argparse.Namespace, number: int) -> dict[str, Any]:
    """One item's work and its single-item report."""
    workflow = task["WORKFLOW"]
    if args.mode == "empty":
        return {"workflow": workflow, "status": "done"}
    agent = Agent(task, _token())
    if workflow == "rework":
        agent.rework(number, task)
        print(f"demo agent: PR #{number} reworked after its review graded {task.get('REVIEW_GRADE')}", flush=True)
        return {"workflow": workflow, "status": "done", "pr": number, "message": "addressed the review"}
    if workflow == "rebase":
        conflicts = agent.rebase(number, resolve=args.mode != "no-resolve")
        if conflicts:
            print(f"demo agent: PR #{number}: cannot resolve {', '.join(conflicts)}", flush=True)
            return {"workflow": workflow, "status": "failed", "pr": number, "conflicts": conflicts,
                    "message": "conflicts need a human decision"}
        print(f"demo agent: PR #{number} rebased onto its base", flush=True)
        return {"workflow": workflow, "status": "done", "pr": number, "message": "brought the base in"}
    if "ISSUE_NUMBER" in task:
        waiting = [n for n in _numbers(task.get("DEPENDS_ON")) if agent.is_open(n)]
        if waiting:
            message = "depends on " + ", ".join(f"#{n}" for n in waiting) + ", still open"
            print(f"demo agent: #{number} blocked: {message}", flush=True)
            return {"workflow": workflow, "status": "blocked", "issue": number, "message": message}
        html = api_url(task).removesuffix("/api/v3")
        url = (f"{html}/someone-else/other-repo/pull/{number}" if args.mode == "foreign-url"
               else agent.implement(number, _safe_paths(task.get("FILE_OWNERSHIP"))))
        print(f"demo agent: #{number} -> {url}", flush=True)
        return {"workflow": workflow, "status": "done", "issue": number, "pr_url": url}
    first = _numbers(task.get("MERGE_AFTER"))
    if first and not agent.is_merged(first[0]):
        message = f"waiting for MERGE_AFTER #{first[0]}"
        print(f"demo agent: PR #{number} blocked: {message}", flush=True)
        return {"workflow": workflow, "status": "blocked", "pr": number, "message": message}
    grade = "D" if args.mode == "grade-d" else args.grade
    review = agent.review(number, grade)
    if review.pop("conflicts", False):
        message = f"PR #{number} conflicts with its base: it needs a rebase"
        return {"workflow": workflow, "status": "blocked", "pr": number, "message": message}
    print(f"demo agent: PR #{number} graded {review['grade']}, merged {review['merged']}", flush=True)
    return {"workflow": workflow, "status": "done", **review, "pr_url": task.get("PR_URL") or None}


if __name__ == "__main__":
    sys.exit(main())

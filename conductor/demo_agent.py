"""A scripted local agent: a real process that does real work, for `conductor demo` and tests.

It reads its `.agent-task` (CONDUCTOR_TASK_FILE), works in its worktree (the current
directory) and writes its report (CONDUCTOR_REPORT_FILE), like a real coding agent:

* issue_to_pr: per issue, a branch with one commit pushed with git, and a PR whose body
  closes the issue;
* pr_review: per PR, a grade and, when it passes, a merge (closing the linked issues
  that are still open, as a PR_REVIEW agent does when the base is not the default branch).

`--mode` makes it misbehave on purpose for tests: crash, hang, empty (done with no
artifact), foreign-url (a PR URL in another repository), grade-d, garbage (a report
that is not JSON), no-report, leak (prints its token, then works: the conductor must
redact it from the logs).

Auth: its own token from GH_TOKEN (never the conductor's); git pushes send it as an
HTTP header, so it is never written into a URL or a git config file.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from git import Repo

from conductor.linking import linked_issues
from conductor.taskfile import parse_key_values

MODES = ("work", "crash", "hang", "empty", "foreign-url", "grade-d", "garbage", "no-report", "leak")


class Agent:
    def __init__(self, task: dict[str, str], token: str | None) -> None:
        self.task = task
        self.repo = task["GH_REPO"]
        self.token = token
        headers = {"Accept": "application/vnd.github+json"}
        if token:
            headers["Authorization"] = f"token {token}"
        self.api = httpx.Client(base_url=task["GITHUB_API_URL"], headers=headers, timeout=30)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.api.request(method, f"/repos/{self.repo}{path}", **kwargs)
        if response.status_code >= 400 and response.status_code != 422:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response

    def implement(self, issue: int) -> str:
        """Branch, commit, push, open (or find) the PR; returns its HTML URL."""
        branch = f"agent/issue-{issue}"
        git = Repo(Path.cwd())
        try:
            git.git.checkout("-B", branch)
            path = Path("changes") / f"issue-{issue}.md"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"Implements #{issue}.\n", encoding="utf-8")
            git.index.add([str(path)])
            git.git.commit("-m", f"Implement #{issue}", author="demo-agent <demo-agent@sandbox.invalid>",
                           env={"GIT_COMMITTER_NAME": "demo-agent",
                                "GIT_COMMITTER_EMAIL": "demo-agent@sandbox.invalid"})
            header = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
            git.git.execute(["git", "-c", f"http.extraHeader=Authorization: Basic {header}",
                             "push", "--force", "-q", "origin", f"HEAD:refs/heads/{branch}"])
        finally:
            git.close()
        base = self.task.get("INTEGRATION_BRANCH") or "dev"
        created = self._call("POST", "/pulls", json={
            "title": f"Implement #{issue}", "head": branch, "base": base, "body": f"Closes #{issue}"})
        if created.status_code == 201:
            return created.json()["html_url"]
        owner = self.repo.split("/")[0]
        existing = self._call("GET", "/pulls", params={"head": f"{owner}:{branch}", "state": "open"}).json()
        if not existing:
            raise RuntimeError(f"could not open a PR for #{issue}: {created.text[:200]}")
        return existing[0]["html_url"]

    def review(self, number: int, grade: str) -> dict[str, Any]:
        pull = self._call("GET", f"/pulls/{number}").json()
        merged = bool(pull.get("merged"))
        if grade in ("A", "B", "C") and not merged:
            result = self._call("PUT", f"/pulls/{number}/merge", json={"merge_method": "merge"})
            merged = result.status_code == 200 and bool(result.json().get("merged"))
        if merged:
            for issue in linked_issues(pull.get("body") or "", self.repo):
                state = self._call("GET", f"/issues/{issue}").json().get("state")
                if state == "open":
                    self._call("PATCH", f"/issues/{issue}", json={"state": "closed", "state_reason": "completed"})
        return {"pr": number, "grade": grade, "merged": merged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conductor-demo-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="work")
    parser.add_argument("--grade", default="A", choices=list("ABCDF"))
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds of 'thinking' before working")
    args = parser.parse_args(argv)
    task = parse_key_values(Path(os.environ["CONDUCTOR_TASK_FILE"]).read_text(encoding="utf-8"))
    report_path = Path(os.environ["CONDUCTOR_REPORT_FILE"])
    workflow = task["WORKFLOW"]
    items = [int(n) for n in (task.get("ISSUES") or task.get("PRS") or "").split(",") if n]
    print(f"demo agent: {workflow} {task.get('PHASE')} {task.get('BATCH')} items {items} mode {args.mode}",
          flush=True)

    time.sleep(args.sleep)
    if args.mode == "leak":
        print(f"demo agent: my token is {os.environ.get('GH_TOKEN')}", flush=True)
    if args.mode == "crash":
        print("demo agent: crashing on purpose", flush=True)
        return 3
    if args.mode == "hang":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # a grandchild
        time.sleep(3600)
        return 0
    if args.mode == "no-report":
        return 0
    if args.mode == "garbage":
        report_path.write_text("this is not json {", encoding="utf-8")
        return 0

    report: dict[str, Any] = {"workflow": workflow, "status": "done", "issues": [], "reviews": []}
    if args.mode != "empty":
        agent = Agent(task, os.environ.get("GH_TOKEN"))
        if workflow == "issue_to_pr":
            for issue in items:
                html = task["GITHUB_API_URL"].removesuffix("/api/v3")
                url = (f"{html}/someone-else/other-repo/pull/{issue}" if args.mode == "foreign-url"
                       else agent.implement(issue))
                report["issues"].append({"issue": issue, "pr_url": url})
                print(f"demo agent: #{issue} -> {url}", flush=True)
        else:
            grade = "D" if args.mode == "grade-d" else args.grade
            for pr in items:
                report["reviews"].append(agent.review(pr, grade))
                print(f"demo agent: PR #{pr} graded {grade}", flush=True)
    report_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

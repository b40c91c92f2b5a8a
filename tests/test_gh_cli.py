"""Debian's `gh` against `conductor sandbox serve --tls`, every form agents and the canonical prompts use.

gh talks to an Enterprise host over https only, drops the port from the host and reads
GraphQL at /api/graphql, so it runs in a network namespace of its own (tests/netns_agent.py)
where 127.0.0.1:443 is the https sandbox, trusting the sandbox's CA through SSL_CERT_FILE,
as an agent does (GH_HOST, GH_ENTERPRISE_TOKEN, GH_REPO=HOST/OWNER/NAME). Each form's effect
is checked through REST.
"""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

import netns_agent
from conftest import unique_repo_name
from github_sandbox.testing import RunningSandbox

pytestmark = pytest.mark.e2e
HOST = "127.0.0.1"  # inside the namespace: port 443, so gh's host carries no port


@pytest.fixture(scope="module")
def relay(tls_sandbox: RunningSandbox):
    reason = "gh is not installed (apt-get install gh)" if shutil.which("gh") is None else netns_agent.available()
    if reason:
        pytest.skip(reason)
    sockets = Path(f"/tmp/conductor-gh-{secrets.token_hex(4)}")
    sockets.mkdir()
    relay = netns_agent.UnixRelay(sockets / "443.sock", tls_sandbox.port)
    yield relay
    relay.close()
    shutil.rmtree(sockets, ignore_errors=True)


class Gh:
    """`gh` as one sandbox user, in the namespace, on one repository."""

    def __init__(self, sandbox: RunningSandbox, relay, login: str, full_name: str, home: Path, log: Path,
                 clone: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.clone = clone
        self.prefix = netns_agent.command_prefix(log, {443: relay.path})
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "GH_HOST": HOST,
                    "GH_ENTERPRISE_TOKEN": sandbox.users[login], "GH_REPO": f"{HOST}/{full_name}",
                    "SSL_CERT_FILE": sandbox.ca, "GIT_SSL_CAINFO": sandbox.ca, "GH_NO_UPDATE_NOTIFIER": "1",
                    "GH_PROMPT_DISABLED": "1", "GH_PAGER": "cat", "NO_COLOR": "1", "GIT_TERMINAL_PROMPT": "0",
                    "GIT_AUTHOR_NAME": login, "GIT_AUTHOR_EMAIL": f"{login}@example.invalid",
                    "GIT_COMMITTER_NAME": login, "GIT_COMMITTER_EMAIL": f"{login}@example.invalid"}

    def __call__(self, *args: str) -> str:
        proc = subprocess.run([*self.prefix, "gh", *args], env=self.env, cwd=self.clone, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"gh {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        return proc.stdout

    def json(self, *args: str) -> object:
        return json.loads(self(*args))


def test_every_gh_form_agents_use_works_on_the_https_sandbox(tls_sandbox: RunningSandbox, relay,
                                                             tmp_path: Path) -> None:
    sb = tls_sandbox
    full_name = sb.create_repo(unique_repo_name("gh-forms"), sb.users["alice"])
    with sb.api(sb.users["alice"]) as api:
        for login in ("bob", "carol"):
            assert api.put(f"/repos/{full_name}/collaborators/{login}", json={"permission": "write"}).status_code in (201, 204)
    sb.push_initial(full_name, token=sb.users["alice"])
    log = tmp_path / "netns.jsonl"
    clone = tmp_path / "clone"  # an agent's work tree: origin is the repository on the gh host
    subprocess.run(["git", "clone", "-q", sb.repo_url(full_name), str(clone)], env={
        **sb.git_env(sb.users["bob"]), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, check=True)
    subprocess.run(["git", "-C", str(clone), "remote", "set-url", "origin", f"https://{HOST}/{full_name}.git"],
                   check=True)
    gh = Gh(sb, relay, "bob", full_name, tmp_path / "bob", log, clone)
    reviewer = Gh(sb, relay, "carol", full_name, tmp_path / "carol", log, clone)
    rest = sb.api(sb.users["alice"])
    repo = f"/repos/{full_name}"

    # repository and labels
    info = gh.json("repo", "view", f"{HOST}/{full_name}", "--json", "name,nameWithOwner,defaultBranchRef,url")
    assert info["nameWithOwner"] == full_name and info["defaultBranchRef"]["name"] == "main"
    gh("label", "create", "status/in-progress", "--color", "ededed", "--description", "being worked on")
    assert rest.get(f"{repo}/labels/status/in-progress").json()["description"] == "being worked on"
    listed = gh.json("label", "list", "--search", "status/", "--json", "name")
    assert [x["name"] for x in listed] == ["status/in-progress"]

    # issues
    url = gh("issue", "create", "--title", "Add a page", "--body", "The page.", "--label", "bug").strip()
    number = int(url.rsplit("/", 1)[1])
    assert url == f"https://{HOST}/{full_name}/issues/{number}"
    made = rest.get(f"{repo}/issues/{number}").json()
    assert (made["title"], made["body"], [x["name"] for x in made["labels"]]) == ("Add a page", "The page.", ["bug"])
    gh("issue", "edit", str(number), "--add-label", "status/in-progress", "--remove-label", "bug")
    assert [x["name"] for x in rest.get(f"{repo}/issues/{number}").json()["labels"]] == ["status/in-progress"]
    viewed = gh.json("issue", "view", str(number), "--json", "number,title,state,labels,body,comments")
    assert viewed["state"] == "OPEN" and viewed["labels"][0]["name"] == "status/in-progress"
    listed = gh.json("issue", "list", "--label", "status/in-progress", "--json", "number,title")
    assert [x["number"] for x in listed] == [number]
    comment_url = gh("issue", "comment", str(number), "--body", "On it.").strip()
    [comment] = rest.get(f"{repo}/issues/{number}/comments").json()
    assert comment["body"] == "On it."  # and its id is the one in gh's URL
    assert comment_url == f"https://{HOST}/{full_name}/issues/{number}#issuecomment-{comment['id']}"

    # a branch with two files, pushed with git over https
    sb.commit_files(full_name, f"agent/issue-{number}", {"a.py": "a = 1\n", "docs/b.md": "# b\n"},
                    base="dev", token=sb.users["bob"])

    # pull requests
    pr_url = gh("pr", "create", "--base", "dev", "--head", f"agent/issue-{number}", "--title", "Add a page",
                "--body", f"Closes #{number}").strip()
    pr = int(pr_url.rsplit("/", 1)[1])
    made = rest.get(f"{repo}/pulls/{pr}").json()
    assert (made["base"]["ref"], made["head"]["ref"], made["body"], made["user"]["login"]) == (
        "dev", f"agent/issue-{number}", f"Closes #{number}", "bob")
    found = gh.json("pr", "list", "--head", f"agent/issue-{number}", "--base", "dev", "--state", "open",
                    "--limit", "5", "--json", "number,headRefName")
    assert [x["number"] for x in found] == [pr]
    found = gh.json("pr", "list", "--search", f"closes #{number}", "--state", "all", "--json", "number")
    assert [x["number"] for x in found] == [pr]
    names = gh("pr", "diff", str(pr), "--name-only").split()
    assert names == ["a.py", "docs/b.md"]
    gh("pr", "edit", str(pr), "--title", "Add the page", "--add-label", "status/in-progress")
    edited = rest.get(f"{repo}/issues/{pr}").json()
    assert edited["title"] == "Add the page" and [x["name"] for x in edited["labels"]] == ["status/in-progress"]
    gh("pr", "comment", str(pr), "--body", "Ready.")
    assert [c["body"] for c in rest.get(f"{repo}/issues/{pr}/comments").json()] == ["Ready."]
    gh("pr", "review", str(pr), "--comment", "--body", "Self-review: fine.")
    reviewer("pr", "review", str(pr), "--approve", "--body", "Grade A.")
    reviews = rest.get(f"{repo}/pulls/{pr}/reviews").json()
    assert [(r["user"]["login"], r["state"]) for r in reviews] == [("bob", "COMMENTED"), ("carol", "APPROVED")]
    view = gh.json("pr", "view", str(pr), "--json",
                   "state,mergedAt,reviews,reviewDecision,headRefName,body,title,labels")
    assert (view["state"], view["reviewDecision"], view["headRefName"]) == ("OPEN", "APPROVED", f"agent/issue-{number}")
    assert [r["state"] for r in view["reviews"]] == ["COMMENTED", "APPROVED"]
    gh("pr", "checkout", str(pr))
    assert (clone / "docs" / "b.md").exists()

    dev_before = rest.get(f"{repo}/branches/dev").json()["commit"]["sha"]
    gh("pr", "merge", str(pr), "--squash")
    merged = rest.get(f"{repo}/pulls/{pr}").json()
    assert merged["merged"] and merged["merged_by"]["login"] == "bob"
    tip = rest.get(f"{repo}/branches/dev").json()["commit"]  # one commit whose only parent is the old tip
    assert tip["sha"] == merged["merge_commit_sha"] and [p["sha"] for p in tip["parents"]] == [dev_before]
    assert gh.json("pr", "view", str(pr), "--json", "state,mergedAt")["state"] == "MERGED"

    gh("issue", "close", str(number), "--comment", f"Fixed by PR #{pr}.")
    closed = rest.get(f"{repo}/issues/{number}").json()
    assert (closed["state"], closed["state_reason"], closed["closed_by"]["login"]) == ("closed", "completed", "bob")
    assert rest.get(f"{repo}/issues/{number}/comments").json()[-1]["body"] == f"Fixed by PR #{pr}."
    other = int(gh("issue", "create", "--title", "Not this", "--body", "x").strip().rsplit("/", 1)[1])
    gh("issue", "close", str(other), "--reason", "not planned")
    assert rest.get(f"{repo}/issues/{other}").json()["state_reason"] == "not_planned"

    out = gh.json("api", "graphql", "-f", "query={ viewer { login } }")
    assert out == {"data": {"viewer": {"login": "bob"}}}
    rest.close()
    # gh reached nothing but the sandbox
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e for e in events if e["kind"] in ("dns", "connect")] == []

"""The agent-output door, end to end: a real pass (the `conductor run` CLI, a real Prefect
server, the GitHub sandbox over HTTP) whose scripted agent puts the conductor's token and
its own into its report (`message` and the claimed `pr_url`) and its output, in several
forms, and the webhook secret into its message. None may appear anywhere the pass writes."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

from conductor.core import constants
from conductor.core.redaction import basic_credential
from pipeline_support import PipelineRepo, pipeline_for_test

UI = "phase-4/new-ui-pages"

# Does the real work (a branch and a PR, through the demo agent), then reports it failed, with
# both tokens in its message and in the PR URL it claims, and prints them too.
LEAKY_AGENT = textwrap.dedent('''
    import json, os, subprocess, sys
    code = subprocess.call([sys.executable, "-m", "shell.demo_agent"])
    mine, conductors = os.environ["GH_TOKEN"], os.environ["PLANTED_CONDUCTOR_TOKEN"]
    hook = os.environ["PLANTED_WEBHOOK_SECRET"]
    assert "CONDUCTOR_WEBHOOK_SECRET" not in os.environ  # never given to an agent
    percent = "".join(f"%{b:02X}" for b in conductors.encode())
    def escape(token):
        return "".join(f"\\\\u{ord(c):04x}" for c in token)
    escaped = escape(mine)
    print(f"agent says: {conductors} {percent} {escaped}", flush=True)
    path = os.environ["CONDUCTOR_REPORT_FILE"]
    with open(path, encoding="utf-8") as fh:
        report = json.load(fh)
    report["status"] = "failed"
    report["message"] = (f"tokens: {conductors} {mine} {percent} {escaped} "
                         f"https://x-access-token:{mine}@example.com/x hook {hook}")
    report["pr_url"] = report["pr_url"].replace("://", f"://x-access-token:{conductors}@") + f"?a={mine}"
    text = json.dumps(report).replace(conductors, escape(conductors), 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)  # the conductor's token JSON-escaped in the file the first time
    sys.exit(code)
''')


def forms(token: str) -> list[str]:
    """The ways a token may be written down: as is, percent-encoded, JSON-escaped, as git's
    basic credential, markdown-escaped."""
    return [token, quote(token, safe=""), "".join(f"%{b:02X}" for b in token.encode()),
            "".join(f"\\u{ord(c):04x}" for c in token), basic_credential(token), token.replace("_", "\\_")]


def test_no_token_an_agent_reports_reaches_anything_the_pass_writes(
        sandbox, prefect_server, prefect_client, tmp_path: Path, monkeypatch):
    tokens = {f"planted-{role}-{secrets.token_hex(3)}": "sbx_PLANTED_" + secrets.token_hex(16)
              for role in ("conductor", "agent")}
    hook_secret = "hook-PLANTED-" + secrets.token_hex(16)
    for login, token in tokens.items():
        sandbox.control.add_user(login, token)
    conductor_token, agent_token = tokens.values()
    pipe: PipelineRepo = pipeline_for_test(sandbox, tmp_path, monkeypatch, "agent-output-door",
                                           GITHUB_TOKEN=conductor_token, CONDUCTOR_AGENT_TOKEN=agent_token,
                                           CONDUCTOR_WEBHOOK_SECRET=hook_secret)
    for login in tokens:
        pipe.call("PUT", f"/collaborators/{login}", json={"permission": "write"})
    number = pipe.issue("Page", UI, "batch-01")
    agent = tmp_path / "leaky_agent.py"
    agent.write_text(LEAKY_AGENT, encoding="utf-8")
    log_file = tmp_path / "run.log"

    run = subprocess.run(
        [sys.executable, "-m", "shell.cli", "run", "--json", "--repo", pipe.full_name,
         "--github-url", sandbox.api_url, "--repo-path", str(pipe.clone), "--log-file", str(log_file),
         "--agent-command", f"{sys.executable} {agent}", "--agent-timeout", "120"],
        env={**os.environ, "PREFECT_API_URL": prefect_server, "PLANTED_CONDUCTOR_TOKEN": conductor_token,
             "PLANTED_WEBHOOK_SECRET": hook_secret},
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-3000:]  # 1: a coordinator failed

    needles = [form for token in [*tokens.values(), hook_secret] for form in forms(token)]

    def leaks(text: str) -> list[str]:
        return [needle[:16] for needle in needles if needle in text]

    # the message and the claimed URL did reach every place, redacted
    report = json.loads(run.stdout)
    [outcome] = report["outcomes"]
    assert not outcome["ok"] and any("tokens: ***" in f for f in outcome["failures"]), outcome["failures"]
    assert any("x-access-token:***@" in r["reason"] for r in outcome["results"]), outcome["results"]
    # GitHub: every issue, PR and comment of the repository
    items = pipe.call("GET", "/issues", params={"state": "all", "per_page": 100})
    comments = [c for item in items for c in pipe.call("GET", f"/issues/{item['number']}/comments")]
    assert any("tokens: \\*\\*\\*" in c["body"] for c in comments), [c["body"] for c in comments]
    reminder = pipe.issues(labels=constants.REMINDER_LABEL)[0]
    assert "### Failed coordinators" in reminder["body"] and "tokens: \\*\\*\\*" in reminder["body"]
    assert leaks(json.dumps([items, comments])) == []
    assert leaks(run.stdout) == [] and leaks(run.stderr) == []
    assert "agent says: ***" in log_file.read_text(encoding="utf-8")
    assert leaks(log_file.read_text(encoding="utf-8")) == []
    # Prefect: the pass's flow runs, its coordinators', their task runs, logs and artifacts
    records = prefect_client.runs_named_like(pipe.full_name)
    assert {r.get("name") for r in records} >= {"issue_to_pr #%d" % number}
    assert any("agent says: ***" in str(r.get("message")) for r in records)
    assert leaks(json.dumps(records)) == []
    # every file of the pass (clone, worktrees, salvage, log) and of Prefect (its database, the
    # ETag cache), as bytes
    roots = [tmp_path, Path(os.environ["PREFECT_HOME"])]
    assert any((roots[1] / "conductor-http-cache").rglob("*.json")), "the pass kept no ETag"
    files = [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 20
    found = [f"{p}: {n[:16]}" for p in files for n in needles if n.encode() in p.read_bytes()]
    assert found == []

"""Spend recorded from a real agent CLI: the real Claude Code on the `claude` preset, through
`conductor run` against the sandbox and the scripted model server (which reports known token
figures on every answer, tests/scripted_model.py), leaves on its item the spend the CLI reported
(a hidden marker in a comment by the conductor's login); a fresh dry run on another PREFECT_HOME
reads it back from GitHub, and a phase budget in tokens just above it holds a further item."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import netns_agent
from conductor.core import constants, spend
from conductor.core.presets import get_preset
from conftest import unique_repo_name
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, make_pipeline_repo
from scripted_model import INPUT_TOKENS, OUTPUT_TOKENS, ModelServer, ScriptedModel, issue_to_pr_script
from test_agent_clis import IDLE_S, UI, _skip_reason, cli_binary, cli_environment, conductor_run

pytestmark = pytest.mark.e2e


def test_claude_spend_is_recorded_on_github_read_back_by_a_fresh_pass_and_holds_by_a_budget(
        sandbox, prefect_server: str, tmp_path: Path) -> None:
    reason = _skip_reason("claude")
    if reason:
        pytest.skip(reason)
    pipe = make_pipeline_repo(sandbox, unique_repo_name("claude-spend"), tmp_path)
    issue = pipe.issue("Page A", UI, "batch-01")
    model = ScriptedModel(script_for=lambda prompt: issue_to_pr_script())
    sockets = Path(f"/tmp/conductor-netns-{secrets.token_hex(4)}")
    sockets.mkdir()
    events, log = tmp_path / "netns-events.jsonl", tmp_path / "conductor-run.log"
    relays: list[netns_agent.UnixRelay] = []
    with ModelServer(model) as server:
        try:
            # the whole pass runs in the namespace (the agent's argv[0] is the CLI it records)
            prefect_port = int(prefect_server.split(":")[-1].split("/")[0])
            for port in (server.port, sandbox.port, prefect_port):
                relays.append(netns_agent.UnixRelay(sockets / f"{port}.sock", port))
            prefix = tuple(netns_agent.command_prefix(events, {r.port: r.path for r in relays}))
            agent = [str(cli_binary("claude")), *get_preset("claude")[1:]]
            env = {**os.environ, **cli_environment("claude", server.url, tmp_path / "home"),
                   "PREFECT_API_URL": prefect_server,
                   "GITHUB_TOKEN": sandbox.users[CONDUCTOR_LOGIN],
                   "CONDUCTOR_AGENT_TOKEN": sandbox.users[AGENT_LOGIN],
                   "CONDUCTOR_AGENT_IDLE_TIMEOUT": str(IDLE_S["claude"]),
                   "CONDUCTOR_WORKTREE_ROOT": str(tmp_path / "worktrees"),
                   "CONDUCTOR_SALVAGE_DIR": str(tmp_path / "salvage"),
                   "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
                   "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0"}
            started = time.monotonic()
            [outcome] = conductor_run(pipe, agent, env, log, prefix=prefix)["outcomes"]
            pass_s = time.monotonic() - started
        finally:
            for relay in relays:
                relay.close()
            shutil.rmtree(sockets, ignore_errors=True)
    assert outcome["ok"], (outcome["failures"], log.read_text()[-6000:])
    usage = outcome["usage"]  # what Claude Code reported of the scripted model's figures
    answered = model.answers["anthropic"]
    assert usage["input_tokens"] == answered * INPUT_TOKENS and usage["output_tokens"] == answered * OUTPUT_TOKENS
    assert usage["cost_usd"] > 0 and usage["turns"] >= 6

    # the spend comment on the item, by the conductor's login, carries what the CLI reported
    comments = [c for c in pipe.call("GET", f"/issues/{issue}/comments") if constants.SPEND_MARKER in c["body"]]
    assert [c["user"]["login"] for c in comments] == [CONDUCTOR_LOGIN], log.read_text()[-4000:]
    leaf = spend.parse_spend(comments[0]["body"])
    assert leaf is not None and leaf.number == issue and leaf.cli == "claude"
    assert (leaf.input_tokens, leaf.output_tokens, leaf.turns) == \
        (usage["input_tokens"], usage["output_tokens"], usage["turns"])
    assert leaf.cost_usd == pytest.approx(usage["cost_usd"])

    # a fresh dry run on another PREFECT_HOME reads it back; a phase budget just above it holds another item
    further = pipe.issue("Page B", UI, "batch-02")
    budget = {"phase_tokens": leaf.tokens + 1, "pipeline_usd": 100}
    fresh_env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
                 "PREFECT_HOME": str(tmp_path / "another-prefect-home"),
                 "GITHUB_TOKEN": sandbox.users[CONDUCTOR_LOGIN], "CONDUCTOR_BUDGET": json.dumps(budget)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name, "--github-url",
                           sandbox.api_url, "--repo-path", str(pipe.clone), "--json", "--dry-run",
                           "--log-file", str(tmp_path / "fresh.log")],
                          env=fresh_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    fresh_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    plan = json.loads(done.stdout)["plan"]
    assert {"scope": UI, "unit": "tokens", "spent": float(leaf.tokens), "limit": float(leaf.tokens + 1),
            "key": "phase_tokens"} in plan["budgets"], plan["budgets"]
    assert {"scope": "pipeline", "unit": "usd", "spent": pytest.approx(leaf.cost_usd), "limit": 100.0,
            "key": "pipeline_usd"} in plan["budgets"], plan["budgets"]
    assert further not in [n for d in plan["dispatches"] for n in d["items"]]
    [held] = [w for w in plan["waiting"] if w["number"] == further]
    assert held["budget"] and held["reason"].startswith(
        f"budget: {UI} has spent {leaf.tokens:,} tokens of {leaf.tokens + 1:,} tokens; "
        f"this issue is estimated at {leaf.tokens:,} tokens"), held
    print(f"claude spend: pass {pass_s:.1f} s, fresh dry run {fresh_s:.1f} s, {answered} answers, "
          f"{leaf.tokens:,} tokens, ${leaf.cost_usd}")

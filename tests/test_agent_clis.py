"""The real agent CLIs (Claude Code, Codex, Gemini CLI) through `conductor run` on the sandbox.

Each agent runs in a network namespace of its own with only loopback (tests/netns_agent.py),
talking to a scripted model server (tests/scripted_model.py) in the vendor's own streaming
wire format, and to the sandbox GitHub, both forwarded in over Unix sockets. Every DNS lookup
or web connection it attempts elsewhere is recorded there, and must not happen.

One pass dispatches three issues of one phase in three batches: the model of the first does
the work (branch, commit, push, a PR opened with `gh api`), the second claims a PR it never
opened, the third stops answering. The conductor proves the first, catches the second, and
ends the third by the idle timeout. A second pass reviews the PR: the model merges it and
closes the issue. Another test runs Claude Code over the https sandbox, its model typing the
shipped prompts' own example commands (`gh pr create`, `gh pr merge --squash`, …). The CLIs
come from npm, pinned in tests/agent_clis.json (`python3 dev.py test` installs them); a CLI
that is not installed is reported skipped with the reason.
"""
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
from conductor.core.presets import get_preset
from conftest import unique_repo_name
from github_sandbox.testing import RunningSandbox
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, PipelineRepo, make_pipeline_repo
from scripted_model import (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    ModelServer,
    PromptScript,
    ScriptedModel,
    bash_results,
    hang_script,
    issue_to_pr_script,
    pr_review_script,
)

pytestmark = pytest.mark.e2e

PINS = {k: v for k, v in json.loads((Path(__file__).parent / "agent_clis.json").read_text()).items()
        if not k.startswith("_")}
CACHE = Path(os.environ.get("CONDUCTOR_AGENT_CLIS_DIR") or Path.home() / ".cache" / "conductor" / "agent-clis")
UI = "phase-4/new-ui-pages"
# Seconds without output before a leaf is stopped: above each CLI's start-up on two busy cores
# (it prints its first event after up to 10 s for Claude Code, 20 s for Gemini CLI).
IDLE_S = {"claude": 30, "codex": 20, "gemini": 60}
API = {"claude": "anthropic", "codex": "openai", "gemini": "gemini"}
HTTPS_HOST = "127.0.0.1"  # the https sandbox inside a namespace, on port 443


def cli_binary(name: str) -> Path:
    pin = PINS[name]
    return CACHE / f"{pin['package'].split('/')[-1]}-{pin['version']}" / "node_modules" / ".bin" / pin["bin"]


def _skip_reason(name: str) -> str | None:
    binary = cli_binary(name)
    if not binary.exists():
        marker = CACHE / f"{PINS[name]['package'].split('/')[-1]}-{PINS[name]['version']}.failed"
        why = marker.read_text().strip() if marker.exists() else "run `python3 dev.py test` to install it"
        return f"{PINS[name]['package']}@{PINS[name]['version']} is not installed at {binary}: {why}"
    engines = json.loads((binary.parents[1] / PINS[name]["package"] / "package.json").read_text()).get("engines", {})
    need = engines.get("node", "").removeprefix(">=").split(".")[0]
    if name == "gemini" and need.isdigit():  # Claude Code and Codex ship native binaries
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        if not node or int(node.lstrip("v").split(".")[0]) < int(need):
            return f"{PINS[name]['package']} needs node {engines['node']}, this machine has {node or 'none'}"
    if shutil.which("gh") is None:
        return "gh is not installed (apt-get install gh): the scripted agents open PRs with `gh api`"
    return netns_agent.available()


def cli_environment(name: str, model_url: str, home: Path) -> dict[str, str]:
    """What points each CLI at the scripted model: the same variables the README gives
    for a gateway, a proxy or a local model."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "GH_NO_UPDATE_NOTIFIER": "1", "GH_PROMPT_DISABLED": "1"}
    if name == "claude":
        env.update({"ANTHROPIC_BASE_URL": model_url, "ANTHROPIC_API_KEY": "sk-scripted-" + secrets.token_hex(4),
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    elif name == "codex":
        # not under /tmp: Codex refuses to create its helper binaries there
        codex_home = Path.home() / ".cache" / "conductor" / f"codex-home-{secrets.token_hex(4)}"
        codex_home.mkdir(parents=True)
        (codex_home / "config.toml").write_text(
            'model = "scripted"\nmodel_provider = "scripted"\ncheck_for_update_on_startup = false\n'
            '[model_providers.scripted]\nname = "scripted"\n'
            f'base_url = "{model_url}/v1"\nwire_api = "responses"\nenv_key = "SCRIPTED_MODEL_KEY"\n'
            '[analytics]\nenabled = false\n'
            # its connectors and plugins look up chatgpt.com and github.com at start-up
            '[features]\napps = false\nplugins = false\n')
        env.update({"CODEX_HOME": str(codex_home), "SCRIPTED_MODEL_KEY": "sk-scripted"})
    elif name == "gemini":
        (home / ".gemini").mkdir(exist_ok=True)
        (home / ".gemini" / "settings.json").write_text(json.dumps({
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
            "telemetry": {"enabled": False}}))
        env.update({"GOOGLE_GEMINI_BASE_URL": model_url, "GEMINI_API_KEY": "scripted-key"})
    return env


class Scenario:
    """Which script each leaf's model follows, chosen by the issue or PR its task names."""

    def __init__(self) -> None:
        self.by_item: dict[int, object] = {}

    def script_for(self, prompt: str):
        from scripted_model import first_item, task_path
        from conductor.core.taskfile import parse_key_values

        task = parse_key_values(Path(task_path(prompt)).read_text(encoding="utf-8"))
        item = first_item(task, "ISSUE_NUMBER", "PR_NUMBER", "ISSUE", "ISSUES", "PR", "PRS")
        return self.by_item[item]


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, request) -> PipelineRepo:
    return make_pipeline_repo(sandbox, unique_repo_name(request.node.name), tmp_path)


def conductor_run(pipe: PipelineRepo, agent: list[str], env: dict[str, str], log: Path, *,
                  prefix: tuple[str, ...] = (), api_url: str | None = None) -> dict:
    """One `conductor run --json` (under `prefix`, on `api_url`, else the sandbox's): its report."""
    command = [*prefix, sys.executable, "-m", "shell.cli", "run", "--json", "--repo", pipe.full_name,
               "--github-url", api_url or pipe.sandbox.api_url, "--repo-path", str(pipe.clone),
               "--agent-command", json.dumps(agent), "--agent-timeout", "240", "--log-file", str(log)]
    started = time.monotonic()
    with log.open("a") as err:
        proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=420)
    elapsed = time.monotonic() - started
    with log.open("a") as err:
        err.write(f"\n== conductor run exited {proc.returncode} after {elapsed:.1f} s\n")
    # 1: the pass ran and some claim was not proved (expected in pass 1); 2 would be bad input
    assert proc.returncode in (0, 1) and proc.stdout.strip(), log.read_text()[-4000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", sorted(PINS))
def test_real_cli_opens_a_proved_pr_is_caught_lying_is_stopped_idle_and_merges(
        name: str, pipe: PipelineRepo, sandbox, prefect_server, tmp_path: Path) -> None:
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    honest = pipe.issue("Page A", UI, "batch-01")
    liar = pipe.issue("Page B", UI, "batch-02")
    # Gemini CLI gives up on a silent model itself and retries, printing each attempt, so
    # only the total timeout would end that leaf: its silent leaf is left out
    silent = pipe.issue("Page C", UI, "batch-03") if name != "gemini" else None
    scenario = Scenario()
    scenario.by_item.update({honest: issue_to_pr_script(), liar: issue_to_pr_script(lie=True)})
    if silent:
        scenario.by_item[silent] = hang_script()
    model = ScriptedModel(script_for=scenario.script_for)
    relays: list[netns_agent.UnixRelay] = []
    sockets = Path(f"/tmp/conductor-netns-{secrets.token_hex(4)}")
    sockets.mkdir()
    keep = Path(os.environ.get("CONDUCTOR_AGENT_CLI_LOGS") or tmp_path)  # to read after a failure
    keep.mkdir(parents=True, exist_ok=True)
    events = keep / f"{name}-netns-events.jsonl"
    log = keep / f"{name}-conductor-run.log"
    events.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    with ModelServer(model) as server:
        try:
            for port in (server.port, sandbox.port):
                relays.append(netns_agent.UnixRelay(sockets / f"{port}.sock", port))
            prefix = netns_agent.command_prefix(events, {r.port: r.path for r in relays})
            agent = [*prefix, str(cli_binary(name)), *get_preset(name)[1:]]
            env = {**os.environ, **cli_environment(name, server.url, tmp_path / "home"),
                   "PREFECT_API_URL": prefect_server,
                   "GITHUB_TOKEN": sandbox.users[CONDUCTOR_LOGIN],
                   "CONDUCTOR_AGENT_TOKEN": sandbox.users[AGENT_LOGIN],
                   "CONDUCTOR_AGENT_IDLE_TIMEOUT": str(IDLE_S[name]),
                   "CONDUCTOR_WORKTREE_ROOT": str(tmp_path / "worktrees"),
                   "CONDUCTOR_SALVAGE_DIR": str(tmp_path / "salvage"),
                   "CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
                   "CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES": "0"}

            # pass 1: three issue leaves at once
            started = time.monotonic()
            first = conductor_run(pipe, agent, env, log)
            pass1_s = time.monotonic() - started
            (keep / f"{name}-pass1-report.json").write_text(json.dumps(first, indent=1))
            outcomes = {o["items"][0]: o for o in first["outcomes"]}
            assert outcomes[honest]["ok"], (outcomes[honest]["failures"], log.read_text()[-6000:])
            [pr] = pipe.pulls()
            assert pr["body"] == f"Closes #{honest}" and pr["head"]["ref"] == f"agent/issue-{honest}"
            assert pr["user"]["login"] == AGENT_LOGIN  # opened with the agent's own token (gh api)
            usage = outcomes[honest]["usage"]  # what the CLI reported of the scripted model's figures
            assert usage and usage["input_tokens"] >= 8 * INPUT_TOKENS and usage["output_tokens"] >= 8 * OUTPUT_TOKENS
            assert usage["input_tokens"] % INPUT_TOKENS == 0 and usage["duration_ms"] > 0
            if name == "claude":
                assert usage["cost_usd"] > 0 and usage["turns"] >= 8
            assert not outcomes[liar]["ok"]
            assert any("999" in f for f in outcomes[liar]["failures"]), outcomes[liar]["failures"]
            if silent:
                assert not outcomes[silent]["ok"]
                assert any(f.endswith(f"agent idle: no output for {IDLE_S[name]} s")  # "issue #N: …"
                           for f in outcomes[silent]["failures"]), outcomes[silent]["failures"]
            assert pass1_s < 200

            # pass 2: the review leaf merges the PR and closes the issue (the others are
            # withdrawn by a person, so they are not dispatched again)
            for number in (n for n in (liar, silent) if n):
                pipe.call("PATCH", f"/issues/{number}", json={"state": "closed"})
            scenario.by_item[pr["number"]] = pr_review_script("A")
            started = time.monotonic()
            second = conductor_run(pipe, agent, env, log)
            pass2_s = time.monotonic() - started
            [review] = second["outcomes"]
            assert review["kind"] == "pr_review" and review["ok"], (review["failures"], log.read_text()[-6000:])
            assert pipe.call("GET", f"/pulls/{pr['number']}")["merged"]
            assert pipe.call("GET", f"/issues/{honest}")["state"] == "closed"
        finally:
            for relay in relays:
                relay.close()
            shutil.rmtree(sockets, ignore_errors=True)
            codex_home = env.get("CODEX_HOME") if "env" in locals() else None
            if codex_home and Path(codex_home).parent.name == "conductor":
                shutil.rmtree(codex_home, ignore_errors=True)

    # the model server was driven by this CLI's own API, and only by it
    apis = {r.api for r in model.requests}
    assert apis == {API[name]}, apis
    # nothing but loopback: the agents ran in their namespaces and looked nothing up
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    ready = [e for e in recorded if e["kind"] == "ready"]
    assert len(ready) == (4 if silent else 3) and all(e["interfaces"] == ["lo"] for e in ready)
    outside = [e for e in recorded if e["kind"] in ("dns", "connect")]
    assert outside == [], outside
    print(f"{name}: pass 1 {pass1_s:.1f} s, pass 2 {pass2_s:.1f} s, "
          f"{len(model.requests)} model requests, {INPUT_TOKENS}/{OUTPUT_TOKENS} tokens each")


def test_claude_follows_the_shipped_prompts_with_gh_over_https(tls_sandbox: RunningSandbox, prefect_server: str,
                                                               tmp_path: Path) -> None:
    """The real Claude Code on the `claude` preset, its model typing exactly the shipped prompts'
    example commands (`gh issue view`, `gh pr create`, `gh pr view`, `gh pr diff --name-only`,
    `gh pr merge --squash`, `gh issue close --comment`, git over https), none refused, against
    the sandbox on https trusted through CONDUCTOR_CA_BUNDLE. `gh` drops a host's port, so the
    whole pass runs in a network namespace where 127.0.0.1:443 is the sandbox."""
    reason = _skip_reason("claude")
    if reason:
        pytest.skip(reason)
    sb = tls_sandbox
    with pytest.MonkeyPatch.context() as env_for_setup:
        env_for_setup.setenv("GIT_SSL_CAINFO", sb.ca)  # the test's own clone trusts the sandbox
        pipe = make_pipeline_repo(sb, unique_repo_name("claude-gh-prompts"), tmp_path)
    subprocess.run(["git", "-C", str(pipe.clone), "remote", "set-url", "origin",
                    f"https://{HTTPS_HOST}/{pipe.full_name}.git"], check=True)  # the pass's origin, on 443
    earlier = pipe.issue("Page 0", UI, "batch-01")
    pipe.call("PATCH", f"/issues/{earlier}", json={"state": "closed"})
    issue = pipe.issue("Page A", UI, "batch-01", body=f"Depends on #{earlier}")  # DEPENDS_ON: a number
    script = PromptScript("A")
    model = ScriptedModel(script_for=lambda prompt: script)
    sockets = Path(f"/tmp/conductor-netns-{secrets.token_hex(4)}")
    sockets.mkdir()
    events, log = tmp_path / "netns-events.jsonl", tmp_path / "conductor-run.log"
    prefect_port = int(prefect_server.split(":")[-1].split("/")[0])
    relays: dict[int, netns_agent.UnixRelay] = {}  # port inside the namespace -> its relay
    with ModelServer(model) as server:
        try:
            for inside, outside in ((443, sb.port), (prefect_port, prefect_port), (server.port, server.port)):
                relays[inside] = netns_agent.UnixRelay(sockets / f"{inside}.sock", outside)
            prefix = tuple(netns_agent.command_prefix(events, {port: r.path for port, r in relays.items()}))
            env = {**os.environ, **cli_environment("claude", server.url, tmp_path / "home"),
                   "PREFECT_API_URL": prefect_server, "CONDUCTOR_CA_BUNDLE": sb.ca,
                   "GITHUB_TOKEN": sb.users[CONDUCTOR_LOGIN], "CONDUCTOR_AGENT_TOKEN": sb.users[AGENT_LOGIN],
                   "CONDUCTOR_AGENT_IDLE_TIMEOUT": str(IDLE_S["claude"]),
                   "CONDUCTOR_WORKTREE_ROOT": str(tmp_path / "worktrees"),
                   "CONDUCTOR_SALVAGE_DIR": str(tmp_path / "salvage"),
                   **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                      for what, value in (("NAME", "scripted-agent"), ("EMAIL", "agent@sandbox.invalid"))}}
            agent = [str(cli_binary("claude")), *get_preset("claude")[1:]]

            def run_pass() -> dict:
                return conductor_run(pipe, agent, env, log, prefix=prefix, api_url=f"https://{HTTPS_HOST}/api/v3")

            started = time.monotonic()
            [opened] = run_pass()["outcomes"]
            pass1_s = time.monotonic() - started
            assert opened["ok"], (opened["failures"], log.read_text()[-6000:])
            [pr] = pipe.pulls()
            assert (pr["base"]["ref"], pr["head"]["ref"], pr["body"], pr["user"]["login"]) == (
                "dev", f"agent/issue-{issue}", f"Closes #{issue}", AGENT_LOGIN)  # gh pr create, the agent's token
            dev_before = pipe.call("GET", "/branches/dev")["commit"]["sha"]

            started = time.monotonic()
            [review] = run_pass()["outcomes"]
            pass2_s = time.monotonic() - started
            assert review["kind"] == "pr_review" and review["ok"], (review["failures"], log.read_text()[-6000:])
        finally:
            for relay in relays.values():
                relay.close()
            shutil.rmtree(sockets, ignore_errors=True)

    number = pr["number"]
    merged = pipe.call("GET", f"/pulls/{number}")
    tip = pipe.call("GET", "/branches/dev")["commit"]  # a squash: one commit on the old tip
    assert merged["merged"] and tip["sha"] == merged["merge_commit_sha"]
    assert [p["sha"] for p in tip["parents"]] == [dev_before]
    closed = pipe.call("GET", f"/issues/{issue}")
    assert (closed["state"], closed["state_reason"]) == ("closed", "completed")
    assert pipe.call("GET", f"/issues/{issue}/comments")[-1]["body"] == f"Fixed by PR #{number}."
    assert [r["body"] for r in pipe.call("GET", f"/pulls/{number}/reviews")] == ["Grade A: scripted"]
    # every command of both prompts was typed as written, with the task's literal values, and none refused
    ran = bash_results(model)
    for command in [c for commands in script.typed.values() for c in commands]:
        assert command in ran, (command, sorted(ran))
        assert not ran[command][0], f"{command}\n{ran[command][1]}"
    typed = set(ran)
    for form in (f"gh issue view {earlier} --json state", f"gh pr view {number} --json",
                 f"gh pr diff {number} --name-only", f"gh pr merge {number} --squash",
                 f'gh issue close {issue} --comment "Fixed by PR #{number}."', "gh pr create --base dev"):
        assert any(c.startswith(form) for c in typed), (form, sorted(typed))
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e for e in recorded if e["kind"] in ("dns", "connect")] == []
    print(f"claude over https with the shipped prompts: pass 1 {pass1_s:.1f} s, pass 2 {pass2_s:.1f} s, "
          f"{len(ran)} commands")

"""conductor.edges.agent_process with real subprocesses (`sys.executable -c ...`)."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conductor.edges.agent_process import (
    DEFAULT_DROPPED_ENV,
    TAIL_LINES,
    AgentCommandError,
    AgentRun,
    agent_environment,
    agent_github_env,
    expand_command,
    run_agent,
)
from conductor.core.errors import ConductorError
from conductor.core.models import ItemCap
from conductor.core.presets import AGENT_PROMPT, PRESETS, cap_flags, get_preset
from conductor.core.redaction import Redactor

PY = sys.executable


def script(source: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(source)]


def run(argv: list[str], cwd: Path, *, timeout: float = 30, secrets: tuple[str, ...] = (),
        env: dict[str, str] | None = None, kill_grace: float = 1.0) -> tuple[AgentRun, list[str]]:
    lines: list[str] = []
    result = run_agent(argv, cwd=cwd, env=env if env is not None else dict(os.environ),
                       timeout=timeout, on_line=lines.append, redactor=Redactor(secrets),
                       kill_grace=kill_grace)
    return result, lines


def is_running(pid: int) -> bool:
    """Alive and not a zombie (PID 1 in a container may never reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_dead(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.02)
    return False


def read_pid(path: Path, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return int(path.read_text())


# A grandchild that ignores SIGTERM (only SIGKILL stops it) and records its pid atomically.
GRANDCHILD = (
    "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); "
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(60)"
)


# ── pure helpers ────────────────────────────────────────────────────────────

VALUES = {
    "task_file": "/w/.agent-task",
    "report_file": "/w/.agent-report.json",
    "worktree": "/w",
    "prompt_file": ".cursor/PARALLEL_ISSUE_TO_PR.md",
    "workflow": "issue_to_pr",
    "git_dir": "/r/.git/worktrees/w",
    "git_common_dir": "/r/.git",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (["agent", "{task_file}"], ["agent", "/w/.agent-task"]),
        (["agent", "--report={report_file}", "--cd", "{worktree}"],
         ["agent", "--report=/w/.agent-report.json", "--cd", "/w"]),
        (["agent", "Read {task_file}, follow {prompt_file}, write {report_file} ({workflow})"],
         ["agent", "Read /w/.agent-task, follow .cursor/PARALLEL_ISSUE_TO_PR.md, "
                   "write /w/.agent-report.json (issue_to_pr)"]),
        (["agent", "{unknown}", "{ task_file }", '{"issue": 1}'],
         ["agent", "{unknown}", "{ task_file }", '{"issue": 1}']),
        (["{worktree}/bin/agent"], ["/w/bin/agent"]),
    ],
)
def test_expand_command(template: list[str], expected: list[str]) -> None:
    assert expand_command(template, VALUES) == expected


def test_expand_command_never_rescans_or_splits_values() -> None:
    values = {**VALUES, "task_file": "a b {report_file} $(x)", "workflow": "{task_file}"}
    assert expand_command(["agent", "{task_file}", "{workflow}"], values) == [
        "agent", "a b {report_file} $(x)", "{task_file}"]


def test_expand_command_errors() -> None:
    with pytest.raises(AgentCommandError, match="agent command is empty"):
        expand_command([], VALUES)
    with pytest.raises(AgentCommandError, match=r"uses \{worktree\} but no value"):
        expand_command(["agent", "{worktree}"], {"task_file": "t"})
    assert issubclass(AgentCommandError, ConductorError)


@pytest.mark.parametrize(("api_url", "expected_host", "web"), [
    ("https://api.github.com", None, "https://github.com"),
    ("https://api.github.com/", None, "https://github.com"),
    ("https://ghe.example.com/api/v3", "ghe.example.com", "https://ghe.example.com"),
    ("http://127.0.0.1:8123/api/v3", "127.0.0.1:8123", "http://127.0.0.1:8123"),
])
def test_agent_github_env_on_every_host(api_url: str, expected_host: str | None, web: str) -> None:
    env = agent_github_env(api_url, "agent-tok")
    assert env["GH_TOKEN"] == env["GITHUB_TOKEN"] == "agent-tok"
    if expected_host is None:  # github.com: gh reads GH_TOKEN, no host needed
        assert "GH_ENTERPRISE_TOKEN" not in env and "GH_HOST" not in env
    else:
        assert env["GH_ENTERPRISE_TOKEN"] == env["GITHUB_ENTERPRISE_TOKEN"] == "agent-tok"
        assert env["GH_HOST"] == expected_host
    assert env["GIT_CONFIG_COUNT"] == "3"
    assert env["GIT_CONFIG_KEY_2"] == f"http.{web}/.extraHeader"
    assert env["GIT_CONFIG_VALUE_2"] == "Authorization: Basic " + base64.b64encode(b"x-access-token:agent-tok").decode()
    assert env["GIT_CONFIG_KEY_0"] == env["GIT_CONFIG_KEY_1"] == f"credential.{web}.helper"
    assert env["GIT_CONFIG_VALUE_0"] == ""
    assert "agent-tok" not in env["GIT_CONFIG_VALUE_1"] and "$GH_TOKEN" in env["GIT_CONFIG_VALUE_1"]
    assert agent_github_env(api_url, None) == {} == agent_github_env(api_url, "")


def test_agents_own_enterprise_token_survives_the_drop_list(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"GH_ENTERPRISE_TOKEN": "conductor", "GH_HOST": "elsewhere", "CONDUCTOR_AGENT_TOKEN": "a",
            "PATH": "/bin"}
    env = agent_environment(base, agent_github_env("https://ghe.example.com/api/v3", "agent"))
    assert env["GH_ENTERPRISE_TOKEN"] == "agent" and env["GH_HOST"] == "ghe.example.com"
    assert "CONDUCTOR_AGENT_TOKEN" not in env and env["PATH"] == "/bin"
    assert agent_environment(base)["PATH"] == "/bin" and "GH_HOST" not in agent_environment(base)


def test_agent_environment_drops_secrets_and_adds_extra() -> None:
    base = {"PATH": "/bin", "HOME": "/h", "GITHUB_TOKEN": "a", "gh_token": "b",
            "PREFECT_API_KEY": "c", "CONDUCTOR_WEBHOOK_SECRET": "w", "KEEP": "d"}
    env = agent_environment(base, {"GH_TOKEN": "agent-token", "EXTRA": "e"})
    assert env == {"PATH": "/bin", "HOME": "/h", "KEEP": "d", "GH_TOKEN": "agent-token", "EXTRA": "e"}
    assert base["GITHUB_TOKEN"] == "a"  # the base is not modified
    assert agent_environment(base, drop=()) == base
    assert {"GITHUB_TOKEN", "GH_TOKEN", "PREFECT_API_KEY"} <= set(DEFAULT_DROPPED_ENV)


# ── running ─────────────────────────────────────────────────────────────────


def test_streams_merged_output_in_order_with_exit_code(tmp_path: Path) -> None:
    result, lines = run(script("""
        import sys
        print("one", flush=True)
        print("two", file=sys.stderr, flush=True)
        sys.stdout.write("three\\r\\nfour")
        sys.stdout.flush()
        sys.exit(3)
    """), tmp_path)
    assert lines == ["one", "two", "three", "four"]
    assert (result.returncode, result.timed_out, result.ok) == (3, False, False)
    assert result.output_tail == lines
    assert 0 < result.duration_s < 10


def test_lines_arrive_while_the_agent_is_still_running(tmp_path: Path) -> None:
    flag = tmp_path / "seen"
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "ready":
            flag.write_text("1")

    result = run_agent(script(f"""
        import os, time
        print("ready", flush=True)
        deadline = time.monotonic() + 10
        while not os.path.exists({str(flag)!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("saw it" if os.path.exists({str(flag)!r}) else "not streamed")
    """), cwd=tmp_path, env=dict(os.environ), timeout=30, on_line=on_line)
    assert seen == ["ready", "saw it"] and result.ok


def test_cwd_and_exact_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_conductor_secret")
    monkeypatch.setenv("CANARY_FROM_PARENT", "1")
    env = agent_environment({"PATH": os.environ["PATH"]}, {"CONDUCTOR_REPORT_FILE": "r.json"})
    result, lines = run(script("""
        import json, os
        print(json.dumps({"cwd": os.getcwd(), "env": sorted(os.environ)}))
    """), tmp_path, env=env)
    seen = json.loads(lines[0])
    assert Path(seen["cwd"]).resolve() == tmp_path.resolve()
    assert "CONDUCTOR_REPORT_FILE" in seen["env"] and "PATH" in seen["env"]
    assert "GITHUB_TOKEN" not in seen["env"] and "CANARY_FROM_PARENT" not in seen["env"]
    assert result.ok


def test_default_environment_helper_strips_github_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_conductor_secret")
    monkeypatch.setenv("GH_TOKEN", "gho_conductor_secret")
    _, lines = run(script("import os; print(os.environ.get('GITHUB_TOKEN'), os.environ.get('GH_TOKEN'))"),
                   tmp_path, env=agent_environment(os.environ))
    assert lines == ["None None"]


def test_planted_secret_is_redacted_everywhere(tmp_path: Path) -> None:
    secret = "ghp_PLANTED0123456789"
    result, lines = run(script(f"""
        import sys
        print("token is {secret} ok", flush=True)
        print("{secret}", file=sys.stderr, flush=True)
    """), tmp_path, secrets=(secret, ""))
    assert lines == ["token is *** ok", "***"]
    encoded = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    _, lines = run(script(f"print('header {encoded} end')"), tmp_path, secrets=(secret,))
    assert lines == ["header *** end"]
    assert all(secret not in line for line in result.output_tail)


SECRET = "ghp_STRADDLE0123456789abcdef"
PERCENT = "".join(f"%{b:02X}" for b in SECRET.encode())  # the secret percent-encoded, every byte
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in SECRET)  # the secret JSON-escaped, every character


@pytest.mark.parametrize(("name", "source"), [pytest.param(*case, id=case[0]) for case in [
    # the secret begins 10 bytes before the 64 KiB line cut (and the first read's end)
    ("straddles the 64 KiB boundary",
     f"import sys; sys.stdout.write('x' * 65526 + {SECRET!r} + 'tail' + chr(10))"),
    # the same, with no newline anywhere: the line is cut in pieces, never through the secret
    ("straddles the cut of a line with no newline",
     f"import sys; sys.stdout.write('y' * 65526 + {SECRET!r} + 'z' * 70000)"),
    # half of it in one write, a pause, the other half in the next
    ("split across two writes",
     f"import sys, time; sys.stdout.write('a' * 10 + {SECRET[:9]!r}); sys.stdout.flush(); "
     f"time.sleep(0.3); sys.stdout.write({SECRET[9:]!r} + ' after' + chr(10))"),
    ("at the very end, no newline",
     f"import sys; sys.stdout.write('last words ' + {SECRET!r})"),
    ("across the cut, split across writes, then the end",
     f"import sys, time; sys.stdout.write('q' * 65530 + {SECRET[:3]!r}); sys.stdout.flush(); "
     f"time.sleep(0.3); sys.stdout.write({SECRET[3:]!r})"),
    # encoded forms are longer than the secret: held back as far as their own length
    ("percent-encoded, straddles the cut of a line with no newline",
     f"import sys; sys.stdout.write('p' * 65500 + {PERCENT!r} + 'z' * 70000)"),
    ("JSON-escaped, split across writes at the cut",
     f"import sys, time; sys.stdout.write('j' * 65480 + {ESCAPED[:100]!r}); sys.stdout.flush(); "
     f"time.sleep(0.3); sys.stdout.write({ESCAPED[100:]!r} + chr(10))"),
]])
def test_a_secret_is_redacted_before_any_cut(tmp_path: Path, name: str, source: str) -> None:
    result, lines = run([PY, "-c", source], tmp_path, secrets=(SECRET,))
    assert result.ok
    everything = "".join(lines) + "".join(result.output_tail)
    assert "***" in "".join(lines), name
    for form in (SECRET, PERCENT, ESCAPED):
        third = len(form) // 3
        for piece in (form, form[:third + 2], form[third:2 * third], form[-third - 2:]):
            assert piece not in everything, (name, piece)
    assert all(len(line.encode()) <= 65536 for line in lines)


def test_idle_agent_is_stopped_with_its_group(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_agent(script(f"""
        import pathlib, subprocess, sys, time
        d = pathlib.Path({str(tmp_path)!r})
        subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}, str(d / "grandchild.pid")])
        while not (d / "grandchild.pid").exists():
            time.sleep(0.01)
        for i in range(3):
            print("working", i, flush=True)
            time.sleep(0.4)  # shorter than the idle timeout: not idle yet
        time.sleep(60)
    """), cwd=tmp_path, env=dict(os.environ), timeout=30, idle_timeout=1.0,
        on_line=lambda line: None, kill_grace=0.5)
    assert result.idle_timed_out and not result.timed_out and result.returncode is None and not result.ok
    assert result.output_tail == ["working 0", "working 1", "working 2"]
    assert 2.2 <= result.duration_s < 8 and time.monotonic() - started < 10
    assert wait_dead(read_pid(tmp_path / "grandchild.pid"))


def test_the_total_timeout_still_holds_for_a_chatty_agent(tmp_path: Path) -> None:
    result = run_agent(script("""
        import time
        while True:
            print("still here", flush=True)
            time.sleep(0.1)
    """), cwd=tmp_path, env=dict(os.environ), timeout=1.5, idle_timeout=1.0,
        on_line=lambda line: None, kill_grace=0.5)
    assert result.timed_out and not result.idle_timed_out


def test_an_agent_whose_streamed_usage_passes_its_cap_is_stopped(tmp_path: Path) -> None:
    from conductor.core.spend import over_cap
    from conductor.core.usage import UsageMeter

    meter = UsageMeter()
    turn = json.dumps({"type": "turn.completed", "usage": {"input_tokens": 1000, "output_tokens": 0}})
    started = time.monotonic()
    result = run_agent(script(f"""
        import time
        for _ in range(100):
            print({turn!r}, flush=True)
            time.sleep(0.05)
    """), cwd=tmp_path, env=dict(os.environ), timeout=30, on_line=meter.feed, kill_grace=0.5,
        stop_when=lambda: over_cap(ItemCap(tokens=2500), None, meter.usage.input_tokens if meter.usage else 0))
    assert result.stopped == "usage passed the item's cap: 3,000 of 2,500 tokens"
    assert result.returncode is None and not result.ok and len(result.output_tail) < 10
    assert time.monotonic() - started < 5


def test_idle_timeout_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(AgentCommandError, match="idle timeout must be positive"):
        run_agent([PY, "-c", "pass"], cwd=tmp_path, env={}, timeout=5, idle_timeout=0,
                  on_line=lambda line: None)


def test_timeout_kills_child_and_grandchild(tmp_path: Path) -> None:
    result, lines = run(script(f"""
        import os, pathlib, subprocess, sys, time
        d = pathlib.Path({str(tmp_path)!r})
        subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}, str(d / "grandchild.pid")])
        (d / "child.pid").write_text(str(os.getpid()))
        while not (d / "grandchild.pid").exists():
            time.sleep(0.01)
        print("started", flush=True)
        time.sleep(60)
    """), tmp_path, timeout=1.5, kill_grace=0.5)
    assert result.timed_out and result.returncode is None and not result.ok
    assert lines == ["started"]
    assert 1.5 <= result.duration_s < 10
    for name in ("child.pid", "grandchild.pid"):
        assert wait_dead(read_pid(tmp_path / name)), f"{name} survived the timeout"


def test_leftover_background_process_is_stopped_when_agent_exits(tmp_path: Path) -> None:
    result, lines = run(script(f"""
        import pathlib, subprocess, sys, time
        d = pathlib.Path({str(tmp_path)!r})
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}, str(d / "holder.pid")])
        while not (d / "holder.pid").exists():
            time.sleep(0.01)
        print("bye", flush=True)
    """), tmp_path, timeout=30, kill_grace=0.5)
    assert (result.returncode, result.timed_out, lines) == (0, False, ["bye"])
    assert result.duration_s < 10  # did not wait for the 30 s timeout
    assert wait_dead(read_pid(tmp_path / "holder.pid"))


def test_shell_metacharacters_stay_one_literal_argument(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    values = {**VALUES, "task_file": "$(touch pwned)", "report_file": "; rm -rf x",
              "worktree": "`touch pwned2` && touch pwned3 | cat > pwned4", "workflow": "a b\nc"}
    argv = expand_command(
        script("import json, sys; print(json.dumps(sys.argv[1:]))")
        + ["{task_file}", "--report={report_file}", "{worktree}", "{workflow}"],
        values,
    )
    result, lines = run(argv, tmp_path)
    assert json.loads(lines[0]) == ["$(touch pwned)", "--report=; rm -rf x",
                                    "`touch pwned2` && touch pwned3 | cat > pwned4", "a b\nc"]
    assert result.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_large_output_does_not_deadlock(tmp_path: Path) -> None:
    count = 0
    size = 0

    def on_line(line: str) -> None:
        nonlocal count, size
        count += 1
        size += len(line) + 1

    result = run_agent(script("""
        import sys
        line = "y" * 99 + "\\n"
        for _ in range(26215):
            sys.stdout.write(line)
            sys.stderr.write(line)
        print("done")
    """), cwd=tmp_path, env=dict(os.environ), timeout=60, on_line=on_line)
    assert result.ok
    assert count == 2 * 26215 + 1 and size >= 5 * 1024 * 1024
    assert len(result.output_tail) == TAIL_LINES and result.output_tail[-1] == "done"


def test_a_huge_line_without_newline_is_split(tmp_path: Path) -> None:
    result, lines = run(script("import sys; sys.stdout.write('z' * 200000)"), tmp_path)
    assert [len(line) for line in lines] == [65536, 65536, 65536, 200000 - 3 * 65536]
    assert result.ok


def test_missing_executable(tmp_path: Path) -> None:
    with pytest.raises(AgentCommandError) as err:
        run(["no-such-agent-cli-xyz", "-p", "hi"], tmp_path)
    message = str(err.value)
    assert "'no-such-agent-cli-xyz' not found" in message and "agent_command" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("argv", "cwd_name", "timeout", "match"),
    [
        ([], ".", 10, "agent command is empty"),
        ([PY, "-c", "pass"], "missing-dir", 10, "does not exist"),
        ([PY, "-c", "pass"], ".", 0, "timeout must be positive"),
    ],
)
def test_bad_arguments(tmp_path: Path, argv: list[str], cwd_name: str, timeout: float, match: str) -> None:
    with pytest.raises(AgentCommandError, match=match):
        run(argv, tmp_path / cwd_name, timeout=timeout)


def test_not_executable(tmp_path: Path) -> None:
    tool = tmp_path / "agent"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o644)
    with pytest.raises(AgentCommandError, match="is not executable"):
        run([str(tool)], tmp_path)


def test_callback_error_still_kills_the_agent(tmp_path: Path) -> None:
    def on_line(line: str) -> None:
        raise RuntimeError("callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        run_agent(script(f"""
            import os, pathlib, time
            pathlib.Path({str(tmp_path / 'child.pid')!r}).write_text(str(os.getpid()))
            print("hello", flush=True)
            time.sleep(60)
        """), cwd=tmp_path, env=dict(os.environ), timeout=30, on_line=on_line, kill_grace=0.5)
    assert wait_dead(read_pid(tmp_path / "child.pid"))


def test_parallel_runs_from_threads_and_async(tmp_path: Path) -> None:
    def one(n: int) -> tuple[AgentRun, list[str]]:
        return run(script(f"""
            import time
            for i in range(20):
                print("{n}", i, flush=True)
                time.sleep(0.005)
        """), tmp_path)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(one, range(4)))
    for n, (result, lines) in enumerate(outcomes):
        assert result.ok and lines == [f"{n} {i}" for i in range(20)]

    async def main() -> list[tuple[AgentRun, list[str]]]:
        return await asyncio.gather(*(asyncio.to_thread(one, n) for n in range(2)))

    for n, (result, lines) in enumerate(asyncio.run(main())):
        assert result.ok and lines[-1] == f"{n} 19"


# ── presets ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_expands_all_placeholders(name: str) -> None:
    argv = expand_command(get_preset(name), VALUES)
    joined = "\n".join(argv)
    assert not any(f"{{{p}}}" in joined for p in VALUES)
    for value in (VALUES["task_file"], VALUES["prompt_file"], VALUES["report_file"]):
        assert value in joined
    preset = PRESETS[name]
    assert argv[0] == preset.argv[0] and len(argv) == len(preset.argv)
    assert preset.description and preset.docs


@pytest.mark.parametrize(("name", "executable"), [
    ("claude", "claude"), ("codex", "codex"), ("cursor", "cursor-agent"), ("gemini", "gemini"),
    (" Claude ", "claude"),
])
def test_agent_cli_presets_pass_the_prompt_as_one_argument(name: str, executable: str) -> None:
    argv = expand_command(get_preset(name), VALUES)
    assert argv[0] == executable
    prompts = [arg for arg in argv if "coordinator" in arg]
    assert prompts == [expand_command([AGENT_PROMPT], VALUES)[0]]
    assert "issue_to_pr agent for one item" in prompts[0] and '"pr_url"' in prompts[0]
    assert '"workflow": "issue-to-pr"' in prompts[0] and '"workflow": "pr-review"' in prompts[0]


def test_get_preset_returns_a_copy() -> None:
    get_preset("claude").append("--extra")
    assert "--extra" not in get_preset("claude")


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ConductorError) as err:
        get_preset("copilot")
    assert str(err.value) == (
        "unknown agent preset 'copilot'; choose one of: claude, codex, cursor, gemini, generic"
    )


def test_codex_preset_may_write_both_git_directories_of_a_linked_worktree() -> None:
    argv = expand_command(get_preset("codex"), VALUES)
    dirs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--add-dir"]
    assert dirs == [VALUES["git_dir"], VALUES["git_common_dir"]]


def test_gemini_preset_trusts_the_worktree_and_allows_git_by_policy() -> None:
    argv = get_preset("gemini")
    assert "--skip-trust" in argv and "--allowed-tools" not in argv
    policy = Path(argv[argv.index("--policy") + 1])
    import tomllib

    rules = tomllib.loads(policy.read_text())["rule"]
    assert rules == [{"toolName": "run_shell_command", "commandPrefix": ["git", "gh"],
                      "decision": "allow", "priority": 100}]


def test_presets_listing_marks_cursor_unverified() -> None:
    from conductor.core.presets import describe_presets

    lines = {line.split()[0]: line for line in describe_presets()}
    assert set(lines) == set(PRESETS)
    assert " unverified " in lines["cursor"]


def test_conductor_presets_command_lists_status_and_environment() -> None:
    import subprocess

    out = subprocess.run([PY, "-m", "shell.cli", "presets", "--env"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "cursor   unverified" in out.stdout
    assert "claude   verified with @anthropic-ai/claude-code 2.1.332" in out.stdout
    assert "ANTHROPIC_BASE_URL" in out.stdout and "GOOGLE_GEMINI_BASE_URL" in out.stdout


@pytest.mark.parametrize(("argv", "cap", "flags"), [
    (get_preset("claude"), ItemCap(usd=3.456), ["--max-budget-usd", "3.45"]),  # Claude Code takes a USD cap,
    (["/opt/bin/claude", "-p"], ItemCap(usd=1), ["--max-budget-usd", "1.00"]),   # in cents down: never above it
    (["env", "A=1", "claude", "-p"], ItemCap(usd=2), ["--max-budget-usd", "2.00"]),  # wrapped: still Claude Code
    (["npx", "-y", "@anthropic-ai/claude-code", "-p"], ItemCap(usd=2), ["--max-budget-usd", "2.00"]),
    (["npx", "-y", "@openai/codex", "exec"], ItemCap(usd=2), []),
    (["claude", "--max-budget-usd", "1"], ItemCap(usd=2), []),                   # the user's own flag stays
    (get_preset("claude"), ItemCap(tokens=5000), []),                            # no token flag: stopped instead
    (get_preset("codex"), ItemCap(usd=3), []),                                   # no spend flag: stopped instead
    (get_preset("gemini"), ItemCap(usd=3), []),
    (get_preset("claude"), None, []),
])
def test_a_leafs_usd_cap_is_passed_to_a_cli_that_takes_one(argv, cap, flags) -> None:
    assert cap_flags(argv, cap) == flags

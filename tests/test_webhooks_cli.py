"""`conductor webhooks serve` as a user runs it: bad input is one line and exit 2, and so is a
missing or unreachable Prefect API (the receiver's events are for the server whose triggers read
them; it never starts a throwaway one). The running receiver's limits: test_webhooks_limits.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def env_for(api_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GITHUB_TOKEN", "GH_TOKEN", "CONDUCTOR_WEBHOOK_SECRET", "CONDUCTOR_WEBHOOK_IGNORE_LOGINS",
                        "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shell.cli", "webhooks", "serve", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(("env", "args", "message"), [
    ({}, [], "no webhook secret: set CONDUCTOR_WEBHOOK_SECRET"),
    ({"CONDUCTOR_WEBHOOK_SECRET": "s"}, [], "pass --ignore-login LOGIN"),
    ({"CONDUCTOR_WEBHOOK_SECRET": "s"}, ["--ignore-login", "bot", "--port", "70000"], "not a TCP port"),
    ({"CONDUCTOR_WEBHOOK_SECRET": "s"}, ["--ignore-login", "bot", "--read-timeout", "0"], "--read-timeout 0"),
])
def test_bad_input_is_one_line_and_exit_2(prefect_server, env, args, message):
    done = serve(env_for(prefect_server, **env), *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.parametrize("api_url", [None, "http://127.0.0.1:9/api"], ids=["unset", "unreachable"])
def test_without_a_reachable_prefect_api_serve_refuses_before_starting(tmp_path: Path, api_url):
    # A fresh PREFECT_HOME: Prefect's default profile would start a throwaway server of its own.
    ready = tmp_path / "ready"
    done = serve(env_for(api_url, PREFECT_HOME=str(tmp_path / "home")),
                 "--ignore-login", "bot", "--port", "0", "--ready-file", str(ready))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PREFECT_API_URL" in lines[0], done.stderr
    assert not ready.exists()  # never listened
    assert "telemetry" not in done.stderr.lower()

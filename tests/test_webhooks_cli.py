"""`conductor webhooks serve` as a user runs it: bad input is one line and exit 2; a running
receiver answers 401 to an unsigned delivery."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def env_without_secrets(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GITHUB_TOKEN", "GH_TOKEN", "CONDUCTOR_WEBHOOK_SECRET", "CONDUCTOR_WEBHOOK_IGNORE_LOGINS")}
    # No Prefect server answers here: the Secret-block lookup must fail quietly and fast.
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    env["PREFECT_CLIENT_MAX_RETRIES"] = "0"
    env.update(extra)
    return env


@pytest.mark.parametrize(("env", "args", "message"), [
    ({}, [], "no webhook secret: set CONDUCTOR_WEBHOOK_SECRET"),
    ({"CONDUCTOR_WEBHOOK_SECRET": "s"}, [], "pass --ignore-login LOGIN"),
    ({"CONDUCTOR_WEBHOOK_SECRET": "s"}, ["--ignore-login", "bot", "--port", "70000"], "not a TCP port"),
])
def test_bad_input_is_one_line_and_exit_2(env, args, message):
    done = subprocess.run([sys.executable, "-m", "shell.cli", "webhooks", "serve", *args],
                          capture_output=True, text=True, env=env_without_secrets(**env), timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_serve_answers_401_to_an_unsigned_delivery(tmp_path: Path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shell.cli", "webhooks", "serve", "--port", "0", "--ignore-login", "bot",
         "--ready-file", str(ready)],
        env=env_without_secrets(CONDUCTOR_WEBHOOK_SECRET="s3cret"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        url = ready.read_text()
        assert httpx.get(url + "healthz").json() == {"ok": True, "emitted": 0}
        answer = httpx.post(url, content=b'{"action": "closed", "secret": "do-not-log-me"}',
                            headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d1"})
        assert answer.status_code == 401
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "do-not-log-me" not in err
    assert "listening on" in err

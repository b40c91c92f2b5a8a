"""The embedded Prefect server's life: it dies with its parent (even `kill -9`), two on one
fresh PREFECT_HOME do not race on migrations, and it keeps a database of its own."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from shell.prefect_server import EMBEDDED_DB_NAME, EmbeddedServer

pytestmark = pytest.mark.slow

PARENT = textwrap.dedent("""
    import json, sys, time
    from shell.prefect_server import EmbeddedServer
    server = EmbeddedServer(prefect_home=sys.argv[1]).start()
    url = server.wait_ready()
    print(json.dumps({"pid": server.process.pid, "url": url}), flush=True)
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose (its parent, init, reaps it)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_kill_9_of_the_parent_ends_the_server_within_seconds(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "home")],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        info = json.loads(parent.stdout.readline())
        assert alive(info["pid"])
        with urllib.request.urlopen(info["url"] + "/health", timeout=5) as r:
            assert r.status == 200
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(info["pid"]), "the server outlived its parent by more than 10 s"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_two_servers_on_one_fresh_home_both_start(tmp_path):
    home = tmp_path / "fresh-home"
    first, second = EmbeddedServer(home), EmbeddedServer(home)
    try:
        first.start()
        second.start()
        urls = [first.wait_ready(), second.wait_ready()]
        for url in urls:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                assert r.status == 200
        # both migrated one database: its own, not the prefect.db of `prefect server start`
        assert (home / EMBEDDED_DB_NAME).exists()
        assert not (home / "prefect.db").exists()
    finally:
        first.stop()
        second.stop()

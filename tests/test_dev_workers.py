"""`python3 dev.py test`'s pytest workers: 3 by default, CONDUCTOR_TEST_WORKERS, or the caller's own
choice; a bad value is one line and exit 2, before anything is installed."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
assert _spec is not None and _spec.loader is not None
dev = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dev)


@pytest.mark.parametrize(("env", "args", "expected"), [
    (None, [], ["-n", "3", "--dist", "loadfile"]),
    (None, ["-q", "-m", "not e2e and not slow"], ["-n", "3", "--dist", "loadfile"]),
    ("2", ["tests/test_linking.py"], ["-n", "2", "--dist", "loadfile"]),
    ("0", [], []),
    (None, ["-n", "1"], []),
    (None, ["-n4"], []),
    (None, ["--numprocesses", "2"], []),
    (None, ["--numprocesses=2"], []),
    (None, ["-p", "no:xdist"], []),
])
def test_worker_arguments(monkeypatch: pytest.MonkeyPatch, env: str | None, args: list[str], expected: list[str]):
    if env is None:
        monkeypatch.delenv(dev.WORKERS_ENV, raising=False)
    else:
        monkeypatch.setenv(dev.WORKERS_ENV, env)
    assert dev._worker_args(args) == expected


def test_a_bad_worker_count_is_one_line_and_exit_2_before_anything_is_installed(tmp_path: Path):
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "dev.py").write_bytes((ROOT / "dev.py").read_bytes())
    done = subprocess.run([sys.executable, "dev.py", "test"], cwd=clone, capture_output=True, text=True,
                          env={**os.environ, dev.WORKERS_ENV: "many"}, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "CONDUCTOR_TEST_WORKERS='many'" in done.stderr
    assert sorted(p.name for p in clone.iterdir()) == ["dev.py"]  # no .venv made

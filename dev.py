#!/usr/bin/env python3
"""The README's two commands, with nothing but python3 and git on the machine.

    python3 dev.py demo   # the main job on the embedded default sample pipeline
    python3 dev.py test   # the whole test suite

Each creates ./.venv on first use, installs the project (and, for `test`, its dev
dependencies) into it, and re-installs only when pyproject.toml changes. `test` also
installs Debian's Chromium for the browser test when run as root; otherwise it says how
in one line and that test is reported as skipped.
Anything after the command name is passed on (to `conductor demo` or to pytest).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _ensure_env(extras: str) -> None:
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PY.exists():
        return
    if not PY.exists():
        print(f"dev.py: creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extras}]" if extras else "."
    print(f"dev.py: installing {target} into {VENV}", file=sys.stderr)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-e", target], cwd=ROOT, check=True)
    stamp.write_text(digest)


CHROMIUM_SKIP_ENV = "CONDUCTOR_CHROMIUM_MISSING"


def _ensure_chromium() -> None:
    """tests/test_ui_browser.py drives Debian's Chromium (never a browser download). As root,
    install it; otherwise say in one line how, and the test reports itself skipped."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("dev.py: installing Debian's chromium for the browser test", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        ok = subprocess.call(["apt-get", "update", "-qq"], env=env) == 0 and subprocess.call(
            ["apt-get", "install", "-y", "-qq", "chromium"], env=env) == 0
        if ok and shutil.which("chromium"):
            return
        reason = "apt-get install chromium failed"
    else:
        reason = "chromium is not installed and dev.py is not root"
    message = f"{reason}; install it with `sudo apt-get install chromium` (Debian) to run the browser test"
    print(f"dev.py: {message}; tests/test_ui_browser.py will be skipped", file=sys.stderr)
    os.environ[CHROMIUM_SKIP_ENV] = message


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print("usage: python3 dev.py demo|test [args...]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        _ensure_env("sandbox")
        return subprocess.call([str(BIN / "conductor"), "demo", *rest], cwd=ROOT)
    _ensure_env("dev")
    _ensure_chromium()
    return subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""The README's two commands, with nothing but python3 and git on the machine.

    python3 dev.py demo   # the main job on the embedded default sample pipeline
    python3 dev.py test   # the whole test suite

Each creates ./.venv on first use, installs the project (and, for `test`, its dev
dependencies) into it, and re-installs only when pyproject.toml changes.
Anything after the command name is passed on (to `conductor demo` or to pytest).
"""
from __future__ import annotations

import hashlib
import os
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


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print("usage: python3 dev.py demo|test [args...]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        _ensure_env("sandbox")
        return subprocess.call([str(BIN / "conductor"), "demo", *rest], cwd=ROOT)
    _ensure_env("dev")
    return subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

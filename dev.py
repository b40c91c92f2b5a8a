#!/usr/bin/env python3
"""The README's two commands, with nothing but python3 and git on the machine.

    python3 dev.py demo   # the main job on the embedded default sample pipeline
    python3 dev.py test   # the whole test suite

Each creates ./.venv on first use, installs the project (and, for `test`, its dev
dependencies) into it, and re-installs only when pyproject.toml changes. `test` also
installs Debian's Chromium for the browser test and Debian's PostgreSQL for the fleet test
when run as root; otherwise it says how in one line and that test is reported as skipped.
Anything after the command name is passed on (to `conductor demo` or to pytest).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable
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


def _ensure_debian(package: str, present: Callable[[], bool], test: str, skip_env: str) -> None:
    """Debian's `package` for `test` (never a download of its own). As root, install it;
    otherwise say in one line how, and `test` reports itself skipped (`skip_env` says why)."""
    if present():
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"dev.py: installing Debian's {package} for {test}", file=sys.stderr)
        if _apt_install([package]) and present():
            return
        reason = f"apt-get install {package} failed"
    else:
        reason = f"{package} is not installed and dev.py is not root"
    message = f"{reason}; install it with `sudo apt-get install {package}` (Debian) to run {test}"
    print(f"dev.py: {message}; it will be skipped", file=sys.stderr)
    os.environ[skip_env] = message


def _ensure_chromium() -> None:
    """tests/test_ui_browser.py drives Debian's Chromium."""
    _ensure_debian("chromium", lambda: bool(shutil.which("chromium") or shutil.which("chromium-browser")),
                   "tests/test_ui_browser.py", "CONDUCTOR_CHROMIUM_MISSING")


def _ensure_postgresql() -> None:
    """tests/test_fleet_e2e.py runs a Prefect server on Debian's PostgreSQL (deployments/postgres_server.py)."""
    _ensure_debian("postgresql", lambda: bool(list(Path("/usr/lib/postgresql").glob("*/bin/postgres"))),
                   "tests/test_fleet_e2e.py", "CONDUCTOR_POSTGRESQL_MISSING")


AGENT_CLIS = ROOT / "tests" / "agent_clis.json"


def agent_clis_dir() -> Path:
    return Path(os.environ.get("CONDUCTOR_AGENT_CLIS_DIR") or Path.home() / ".cache" / "conductor" / "agent-clis")


def _apt_install(packages: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.call(["apt-get", "update", "-qq"], env=env) == 0 and subprocess.call(
        ["apt-get", "install", "-y", "-qq", *packages], env=env) == 0


def _ensure_agent_clis() -> None:
    """tests/test_agent_clis.py runs the real agent CLIs pinned in tests/agent_clis.json: install
    each with npm into its own folder of the cache (outside the clone, reused), once; and
    Debian's gh (the scripted agents open PRs with `gh api`) and nodejs/npm when absent and
    root. A CLI that cannot be installed leaves `<folder>.failed` with the reason, which the
    test reports as its skip reason. CONDUCTOR_SKIP_AGENT_CLIS=1 skips all of this."""
    if os.environ.get("CONDUCTOR_SKIP_AGENT_CLIS") == "1":
        return
    pins = {k: v for k, v in json.loads(AGENT_CLIS.read_text()).items() if not k.startswith("_")}
    cache = agent_clis_dir()
    folders = {name: cache / f"{pin['package'].split('/')[-1]}-{pin['version']}" for name, pin in pins.items()}
    missing = {name: f for name, f in folders.items() if not (f / "node_modules" / ".bin" / pins[name]["bin"]).exists()}
    wanted = [pkg for command, pkg in (("gh", "gh"), ("node", "nodejs"), ("npm", "npm")) if not shutil.which(command)]
    if not missing and "gh" not in wanted:
        return
    if wanted:
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
            print(f"dev.py: installing Debian's {' '.join(wanted)} for the agent CLI tests", file=sys.stderr)
            _apt_install(wanted)
        else:
            print(f"dev.py: {', '.join(wanted)} not installed and dev.py is not root; "
                  f"`sudo apt-get install {' '.join(wanted)}` to run tests/test_agent_clis.py", file=sys.stderr)
    if not missing:
        return
    npm = shutil.which("npm")
    cache.mkdir(parents=True, exist_ok=True)
    started, procs = time.monotonic(), {}
    for name, folder in missing.items():
        marker = folder.with_name(folder.name + ".failed")
        if npm is None:
            marker.write_text("npm is not installed (Debian: apt-get install nodejs npm)\n")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        spec = f"{pins[name]['package']}@{pins[name]['version']}"
        print(f"dev.py: installing {spec} into {folder} (npm, in the background of the others)", file=sys.stderr)
        log = open(folder / "npm-install.log", "wb")  # noqa: SIM115 (closed below)
        procs[name] = (subprocess.Popen([npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), spec],
                                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log, marker)
    for name, (proc, log, marker) in procs.items():
        code = proc.wait()
        log.close()
        if code == 0 and (folders[name] / "node_modules" / ".bin" / pins[name]["bin"]).exists():
            marker.unlink(missing_ok=True)
        else:
            tail = (folders[name] / "npm-install.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
            marker.write_text(f"npm install failed (exit {code}): {tail[0][:200]}\n")
            print(f"dev.py: {pins[name]['package']} could not be installed; its tests will be skipped", file=sys.stderr)
    if procs:
        print(f"dev.py: agent CLIs installed in {time.monotonic() - started:.0f} s", file=sys.stderr)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print("usage: python3 dev.py demo|test [args...]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        _ensure_env("sandbox")
        return subprocess.call([str(BIN / "conductor"), "demo", *rest], cwd=ROOT)
    workers = _worker_args(rest)  # checked before anything is installed
    _ensure_env("dev")
    _ensure_chromium()
    _ensure_postgresql()
    _ensure_agent_clis()
    return subprocess.call([str(PY), "-m", "pytest", *workers, *rest], cwd=ROOT)


WORKERS_ENV = "CONDUCTOR_TEST_WORKERS"
DEFAULT_WORKERS = 3  # on 2 cores: most tests wait on a server, git or a process, not the CPU


def _worker_args(rest: list[str]) -> list[str]:
    """pytest-xdist workers, one test module per worker at a time (module fixtures are set up
    once): CONDUCTOR_TEST_WORKERS workers (default 3; 0 runs in this process). Left alone
    when the arguments choose for themselves (-n, --numprocesses, -p no:xdist)."""
    if any(a in {"--numprocesses", "no:xdist"} or a.startswith(("-n", "--numprocesses=")) for a in rest):
        return []
    raw = os.environ.get(WORKERS_ENV, str(DEFAULT_WORKERS))
    if not raw.isdigit():
        print(f"dev.py: {WORKERS_ENV}={raw!r} is not a number of workers; set it to 0 (no workers) or more",
              file=sys.stderr)
        raise SystemExit(2)
    return ["-n", raw, "--dist", "loadfile"] if int(raw) > 0 else []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

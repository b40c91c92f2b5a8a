"""The Prefect UI shows the conductor's history: headless Chromium against a real Prefect
server (with its UI) after two real `conductor run` passes over a sandbox repository.

Needs Debian's `chromium` (`python3 dev.py test` installs it when root, else the test is
skipped with the reason dev.py gave) and Playwright for Python (a dev
dependency; never `playwright install`). Screenshots go to the test's tmp_path, or to
`docs/` (the README's images) when CONDUCTOR_UPDATE_SCREENSHOTS=1.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from shell.prefect_server import embedded_server, free_port
from conftest import unique_repo_name
from pipeline_support import AGENT_LOGIN, CONDUCTOR_LOGIN, PipelineRepo, make_pipeline_repo

pytestmark = pytest.mark.e2e

UI = "phase-4/new-ui-pages"
DOCS = Path(__file__).resolve().parents[1] / "docs"
# Without the background-networking flags Chromium's own outbound connections are refused
# in sandboxed CI and it stalls; the UI itself only talks to 127.0.0.1.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOT_LOCAL = re.compile(r"^(?!https?://127\.0\.0\.1[:/])[a-z]+://")
_passes = itertools.count(1)
BEGINNING = re.compile(r"Beginning flow run '(?P<name>[^']+)' for flow 'conductor'")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Prefect server of its own, UI on; yields its API URL (…/api)."""
    port = free_port()
    with ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        env.setenv("PREFECT_UI_API_URL", f"http://127.0.0.1:{port}/api")  # where the UI's JS calls
        api_url = stack.enter_context(embedded_server(
            prefect_home=str(tmp_path_factory.mktemp("prefect-ui-home")), port=port, ui=True))
        env.undo()  # only the server process needed it
        yield api_url


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium and Playwright, checked before the slow fixtures start."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = os.environ.get("CONDUCTOR_CHROMIUM_MISSING")
        if reason:  # dev.py could not install it (not root) and said so
            pytest.skip(reason)
        pytest.fail("chromium is not installed: `python3 dev.py test` installs it as root "
                    "(apt-get install -y chromium); `playwright install` is not used")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: `python3 dev.py test` installs the dev extras")
    return path


@pytest.fixture(scope="module")
def browser(chromium: str):
    """Headless Chromium through Playwright. Request it after `ui_server`: it must close
    first, since Playwright's event loop runs in this thread while it is open."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def conductor_pass(pipe: PipelineRepo, api_url: str, workdir: Path, mode: str = "work", status: int = 0) -> str:
    """One `conductor run` in a subprocess against `api_url`; returns its flow run's name
    (from the pass's log file: Prefect's own lines go there, not to the terminal)."""
    log_file = workdir / f"run-{next(_passes)}.log"
    env = dict(os.environ,
               PREFECT_API_URL=api_url, PREFECT_HOME=str(workdir / "prefect-client"),
               GITHUB_TOKEN=pipe.sandbox.users[CONDUCTOR_LOGIN],
               CONDUCTOR_AGENT_TOKEN=pipe.sandbox.users[AGENT_LOGIN],
               CONDUCTOR_WORKTREE_ROOT=str(workdir / "worktrees"),
               CONDUCTOR_SALVAGE_DIR=str(workdir / "salvage"),
               CONDUCTOR_GITHUB_SECONDS_BETWEEN_REQUESTS="0",
               CONDUCTOR_GITHUB_SECONDS_BETWEEN_WRITES="0")
    done = subprocess.run(
        [sys.executable, "-m", "shell.cli", "run", "--repo", pipe.full_name,
         "--github-url", pipe.sandbox.api_url, "--repo-path", str(pipe.clone),
         "--agent-command", f"{sys.executable} -m shell.demo_agent --mode {mode}",
         "--log-file", str(log_file)],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == status, done.stderr[-3000:]
    started = BEGINNING.search(log_file.read_text())
    assert started, f"no 'Beginning flow run' line in the pass's log file {log_file}"
    assert started["name"].startswith(f"{pipe.full_name} "), started["name"]  # named after its repository
    return started["name"]


def run_row(listing, run_name: str):
    """The list entry of one flow run (each entry holds a breadcrumb: flow / run)."""
    link = listing.page.get_by_role("link", name=run_name, exact=True)
    crumbs = listing.page.get_by_role("navigation", name="breadcrumb").filter(has=link)
    return listing.get_by_role("listitem").filter(has=crumbs)


def save_screenshot(page, path: Path) -> None:
    """The whole page, the viewport stretched to its height (so the sidebar reaches the end)."""
    viewport = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    page.screenshot(path=path)
    page.set_viewport_size(viewport)


def screenshot_dir(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("CONDUCTOR_UPDATE_SCREENSHOTS") == "1" else tmp_path


def test_prefect_ui_shows_the_runs_the_subflows_and_the_pipeline_state_table(
        chromium, ui_server, sandbox, browser, tmp_path):
    from playwright.sync_api import expect

    pipe = make_pipeline_repo(sandbox, unique_repo_name("prefect-ui"), tmp_path)
    pipe.issue("Page A", UI, "batch-01")
    pipe.issue("Page B", UI, "batch-02")
    first = conductor_pass(pipe, ui_server, tmp_path)   # two issue-to-pr coordinators open PRs
    second = conductor_pass(pipe, ui_server, tmp_path)  # two pr-review coordinators merge them
    (tmp_path / "broken").mkdir()
    broken = make_pipeline_repo(sandbox, unique_repo_name("prefect-ui-broken"), tmp_path / "broken")
    broken.issue("Seed", "phase-6/seed-data", "batch-01")  # its coordinator has a name of its own
    failing = conductor_pass(broken, ui_server, tmp_path / "broken", mode="crash", status=1)
    key = "pipeline-state-" + re.sub(r"[^a-z0-9]+", "-", pipe.full_name.lower())
    shots = screenshot_dir(tmp_path)
    runs_png, artifact_png = shots / "prefect-ui-runs.png", shots / "prefect-ui-artifact.png"

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.route(NOT_LOCAL, lambda route: route.abort())  # the UI's outside links and fonts
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        # the server's front page opens its default UI; the sidebar leads to the run history
        page.goto(ui_server.removesuffix("/api") + "/")
        page.get_by_role("link", name="Runs", exact=True).click()
        history = page.get_by_role("tabpanel", name="Flow Runs")
        expect(history.get_by_text("8 Flow runs")).to_be_visible()
        # a pass whose coordinator failed is not shown as a plain "Completed"
        expect(run_row(history, failing)).to_contain_text("Completed with failures")
        expected = {first: "conductor", second: "conductor",
                    f"issue-to-pr {UI} batch-01": "issue-to-pr", f"issue-to-pr {UI} batch-02": "issue-to-pr",
                    f"pr-review {UI} batch-01": "pr-review", f"pr-review {UI} batch-02": "pr-review"}
        for run_name, flow_name in expected.items():
            row = run_row(history, run_name)
            expect(row).to_contain_text("Completed")
            expect(row.get_by_role("link", name=flow_name, exact=True)).to_be_visible()
        save_screenshot(page, runs_png)

        # the first pass: its coordinators are subflows, its table artifact is one click away
        history.get_by_role("link", name=first, exact=True).click()
        page.wait_for_url("**/runs/flow-run/**")
        page.get_by_role("tab", name="Subflow Runs").click()
        subflows = page.get_by_role("tabpanel", name="Subflow Runs")
        expect(subflows.get_by_text("2 Subflow runs")).to_be_visible()
        for batch in ("batch-01", "batch-02"):
            row = run_row(subflows, f"issue-to-pr {UI} {batch}")
            expect(row).to_contain_text("Completed")
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_role("tabpanel", name="Artifacts").get_by_role("link").filter(
            has=page.get_by_role("heading", name=key, exact=True)).click()
        table = page.get_by_role("table")
        expect(table.get_by_role("columnheader").first).to_have_text("Phase")
        phase_row = table.get_by_role("row").filter(has_text=UI)
        expect(phase_row).to_contain_text("active")
        expect(phase_row).to_contain_text("batch-01: #1")
        expect(phase_row).to_contain_text("batch-02: #2")
        save_screenshot(page, artifact_png)

        # the key's page keeps one version per pass; the second pass reviewed the PRs
        page.get_by_role("link", name=key, exact=True).first.click()
        page.wait_for_url(f"**/artifacts/key/{key}")
        expect(page.get_by_role("link", name=first, exact=True)).to_be_visible()
        page.get_by_role("link", name=second, exact=True).click()
        page.wait_for_url("**/runs/flow-run/**")
        page.get_by_role("tab", name="Subflow Runs").click()
        subflows = page.get_by_role("tabpanel", name="Subflow Runs")
        for batch in ("batch-01", "batch-02"):
            row = run_row(subflows, f"pr-review {UI} {batch}")
            expect(row).to_contain_text("Completed")
    except Exception:
        page.screenshot(path=tmp_path / "failure.png", full_page=True)
        print(f"UI at failure: {page.url}, screenshot {tmp_path / 'failure.png'}")
        raise
    finally:
        context.close()

    for png in (runs_png, artifact_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

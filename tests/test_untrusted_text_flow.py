"""Untrusted issue text in real passes (Prefect server, sandbox GitHub over HTTP, git, the
scripted agent): bodies of blank lines cost no more than normal ones, owned paths reach the
leaf exactly (those outside the repository are refused as problems), and bidi controls in a
title never reach a written task file raw."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from conductor.core import constants
from conductor.core.constants import BIDI_CONTROLS
from conductor.core.taskfile import parse_key_values
from conftest import unique_repo_name
from pipeline_support import PipelineRepo, agent, make_pipeline_repo, pipeline_for_test

UI = "phase-4/new-ui-pages"
BLANK_LINES = "\n" * 65_500 + "The end."  # under GitHub's 65,536-character cap

# The scripted agent, after it kept a copy of the task file it was given (argv[1]).
COPY_THEN_WORK = """
import os, runpy, shutil, sys
shutil.copyfile(os.environ["CONDUCTOR_TASK_FILE"], sys.argv[1])
sys.argv = ["demo_agent", *sys.argv[2:]]
runpy.run_module("shell.demo_agent", run_name="__main__", alter_sys=True)
"""


@pytest.fixture
def pipe(sandbox, prefect_server, tmp_path, monkeypatch, request) -> PipelineRepo:
    return pipeline_for_test(sandbox, tmp_path, monkeypatch, request.node.name)


def timed_pass(repo: PipelineRepo) -> float:
    start = time.monotonic()
    report, state = repo.run()
    took = time.monotonic() - start
    assert state.is_completed(), state.message
    assert [o.ok for o in report.outcomes] == [True], report.failures
    return took


def test_a_pass_over_two_issues_of_blank_lines_takes_about_as_long_as_over_two_normal_ones(
        pipe: PipelineRepo, sandbox, tmp_path: Path):
    blank = make_pipeline_repo(sandbox, unique_repo_name("blank-lines"), tmp_path / "blank")
    for title in ("Page A", "Page B"):
        pipe.issue(title, UI, "batch-01", body="Implement the page.\n\nFiles: `app/pages.md`")
        blank.issue(title, UI, "batch-01", body=BLANK_LINES)

    pipe.run(dry_run=True)  # this process's first pass (imports, clients) is timed in neither
    normal_s = timed_pass(pipe)
    blank_s = timed_pass(blank)

    print(f"pass over two normal issues {normal_s:.1f} s, over two of blank lines {blank_s:.1f} s")
    # Before: the Files: pattern took about 150 s of CPU per such body, holding the GIL.
    assert blank_s < 1.5 * normal_s + 10, (blank_s, normal_s)
    assert len(blank.pulls()) == 2


def test_a_pass_keeps_owned_paths_exact_refuses_outside_ones_and_writes_no_bidi_control(
        pipe: PipelineRepo, tmp_path: Path):
    title = "Fix \u202etxt.exe\u202c page \u2066isolated\u2069 marks \u200e\u200f\u061c end"
    number = pipe.issue(title, UI, "batch-01",
                        body="Files: `.github/workflows/ci.yml`, ../../../../etc/passwd, /etc/shadow")
    copy = tmp_path / "task-copy"

    report, state = pipe.run(agent_command=[sys.executable, "-c", COPY_THEN_WORK, str(copy),
                                            *agent()[3:]])

    assert state.is_completed(), state.message
    raw = copy.read_text(encoding="utf-8")
    assert not BIDI_CONTROLS & set(raw), "a bidi control reached the task file raw"
    assert "\\u202e" in raw and "\\u2066" in raw and "\\u061c" in raw
    task = parse_key_values(raw)
    assert task["ISSUE_TITLE"] == title  # escaped, not lost: the agent can read it back
    assert task["FILE_OWNERSHIP"] == ".github/workflows/ci.yml"  # leading dot kept
    [pull] = pipe.pulls()
    changed = [f["filename"] for f in pipe.call("GET", f"/pulls/{pull['number']}/files")]
    assert ".github/workflows/ci.yml" in changed and not any("etc/" in f for f in changed)
    # the refused paths are problems on the issue: in the plan, the table and the reminder
    problems = [p.message for p in report.final_plan.problems if p.number == number]
    assert [("../../../../etc/passwd" in m, "/etc/shadow" in m) for m in problems] == [
        (True, False), (False, True)]
    assert ["(problems)", "see the reminder or --json", "", "", "", f"#{number}", ""] in report.table_rows()
    [reminder] = pipe.issues(labels=constants.REMINDER_LABEL)
    assert "../../../../etc/passwd" in reminder["body"].replace("\\", "")
    assert not BIDI_CONTROLS & set(reminder["body"])

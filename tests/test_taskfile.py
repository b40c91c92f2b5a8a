"""The `.agent-task` file: strict parsing with line numbers, injection-proof rendering."""
from __future__ import annotations

from pathlib import Path

import pytest

from conductor.core.errors import ConductorError
from conductor.core.taskfile import (
    TaskFile,
    TaskFileError,
    parse_key_values,
    parse_task_file,
    read_task_file,
    render_task_file,
)

SEED = """WORKFLOW=conductor
GH_REPO=cgcardona/maestro
PHASE_FILTER=
MAX_ISSUES_PER_DISPATCH=12
MAX_PRS_PER_DISPATCH=12
ATTEMPT_N=0
REQUIRED_OUTPUT=pipeline_status_report
ON_BLOCK=escalate
"""


def test_seed_task_file() -> None:
    task = parse_task_file(SEED)
    assert (task.GH_REPO, task.PHASE_FILTER, task.MAX_ISSUES_PER_DISPATCH,
            task.MAX_PRS_PER_DISPATCH, task.ATTEMPT_N) == ("cgcardona/maestro", "", 12, 12, 0)
    assert (task.REQUIRED_OUTPUT, task.ON_BLOCK, task.WORKFLOW) == (
        "pipeline_status_report", "escalate", "conductor")


def test_every_key_has_a_default() -> None:
    assert parse_task_file("# nothing set\n") == TaskFile()
    assert TaskFile().GH_REPO == ""  # the CLI then needs --repo


def test_defaults_comments_blank_lines_and_crlf() -> None:
    text = "# conductor\r\n\r\n  # indented comment\r\nGH_REPO=o/r\r\nATTEMPT_N=2\r\nPHASE_FILTER=phase-2/core-api\r\n"
    task = parse_task_file(text)
    assert (task.GH_REPO, task.ATTEMPT_N, task.PHASE_FILTER, task.MAX_ISSUES_PER_DISPATCH) == (
        "o/r", 2, "phase-2/core-api", 12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GH_REPO=o/r\nnonsense", "line 2: no '='"),
        ("GH_REPO=o/r\n\n# c\nFOO=1", "line 4: FOO='1' is not a known key"),
        ("GH_REPO=o/r\ngh_repo=o/r", "line 2: invalid key 'gh_repo'"),
        ("=x", "line 1: invalid key ''"),
        ("GH_REPO=o/r\nMAX_ISSUES_PER_DISPATCH=twelve", "line 2: MAX_ISSUES_PER_DISPATCH='twelve' is not a whole number"),
        ("GH_REPO=o/r\nMAX_PRS_PER_DISPATCH=0", "line 2: MAX_PRS_PER_DISPATCH='0' is too small; use a number >= 1"),
        ("GH_REPO=o/r\nATTEMPT_N=-1", "line 2: ATTEMPT_N='-1' is too small; use a number >= 0"),
        ("GH_REPO=o/r\nATTEMPT_N=1.5", "line 2: ATTEMPT_N='1.5' is not a whole number"),
        ("GH_REPO=not a slug", "line 1: GH_REPO='not a slug' is not an OWNER/NAME repository"),
        ("GH_REPO=o/r/x", "line 1: GH_REPO='o/r/x' is not an OWNER/NAME repository"),
        ("GH_REPO=/r", "is not an OWNER/NAME repository"),
        ("GH_REPO=o/r\nGH_REPO=o/s", "line 2: duplicate key GH_REPO (first on line 1)"),
        ("GH_REPO=o/r\nWORKFLOW=pr_review", "line 2: WORKFLOW='pr_review' is not the conductor's workflow"),
        ("GH_REPO=o/r\nPHASE_FILTER=a\\qb", "line 2: PHASE_FILTER: invalid escape '\\\\q'"),
        ("GH_REPO=o/r\nPHASE_FILTER=a\\x4", "line 2: PHASE_FILTER: invalid escape"),
    ],
)
def test_parse_errors_name_the_line_and_fix(text: str, expected: str) -> None:
    with pytest.raises(TaskFileError) as info:
        parse_task_file(text)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "; " in message  # one line, with a fix
    assert isinstance(info.value, ConductorError)


def test_read_task_file(tmp_path: Path) -> None:
    path = tmp_path / ".agent-task"
    with pytest.raises(TaskFileError, match="does not exist"):
        read_task_file(path)
    path.write_bytes(b"GH_REPO=o/r\nPHASE_FILTER=\xff\n")
    with pytest.raises(TaskFileError, match="is not UTF-8 text .byte 25.; save it as UTF-8"):
        read_task_file(path)
    path.write_text(SEED)
    assert read_task_file(path).GH_REPO == "cgcardona/maestro"


NASTY = [
    "x\nGH_TOKEN=stolen",
    "x\r\nGH_TOKEN=stolen",
    "\r",
    "=",
    "==a=b==",
    "#",
    "# not a comment",
    "",
    " leading and trailing ",
    "\\",
    "\\n is not a newline",
    "back\\\\slashes\\",
    "tab\tand\x00nul\x1bescape\x7fdel",
    "unicode ✅ — ünïcødé 漢字 🎉",
    "line\u2028sep\u2029para\x85nel\x0bvt\x0cff",
    "\\x41 \\u0041",
    "\ud800 lone surrogate",
]


@pytest.mark.parametrize("value", NASTY)
def test_render_parse_round_trip_never_injects_a_key(value: str) -> None:
    values = {"PHASE_FILTER": value, "GH_REPO": "o/r", "REPORT_PATH": value}
    text = render_task_file(values)
    assert parse_key_values(text) == values
    assert text.count("\n") == len(values)  # one physical line per key
    assert len(text.splitlines()) == len(values)  # even for str.splitlines' separators
    assert [line.split("=", 1)[0] for line in text.split("\n")[:-1]] == list(values)


def test_round_trip_of_every_bmp_character() -> None:
    value = "".join(chr(c) for c in range(0x10000))
    assert parse_key_values(render_task_file({"V": value})) == {"V": value}


def test_render_ints_and_task_file_render_round_trip() -> None:
    assert render_task_file({"ATTEMPT_N": 3, "A": "b"}) == "ATTEMPT_N=3\nA=b\n"
    task = parse_task_file(SEED).model_copy(update={"ATTEMPT_N": 2, "PHASE_FILTER": "x\ny"})
    assert parse_task_file(task.render()) == task


@pytest.mark.parametrize("key", ["", "lower", "A-B", "A B", "1A", "_A", "A\nB", "Ä", "GH_REPO=x"])
def test_render_rejects_bad_keys(key: str) -> None:
    with pytest.raises(ValueError, match="invalid task-file key"):
        render_task_file({key: "v"})


@pytest.mark.parametrize("value", [None, 1.5, True, ["a"]])
def test_render_rejects_non_text_values(value: object) -> None:
    with pytest.raises(TypeError):
        render_task_file({"K": value})  # type: ignore[dict-item]

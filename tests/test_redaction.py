"""conductor.redaction: the one redactor every word of an agent passes, in every form."""
from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from conductor.core import markdown
from conductor.core import workflows
from conductor.core.redaction import Redactor, basic_credential
from conductor.core.reports import AgentReport

TOKEN = "ghp_Tok3nABCdef0123456789"
ODD = 'p@ss/w:rd "q" \\ é'  # a secret with characters every encoding changes


def percent_every_byte(text: str, case: str = "upper") -> str:
    return "".join(f"%{b:02X}" if case == "upper" else f"%{b:02x}" for b in text.encode())


def escaped_every_char(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


@pytest.mark.parametrize(("text", "secrets", "expected"), [pytest.param(*case, id=case[0]) for case in [
    # plain
    ("token=abc123 end", ["abc123"], "token=*** end"),
    ("abc123abc123", ["abc123"], "******"),
    ("nothing here", ["abc123"], "nothing here"),
    ("keep everything", ["", None], "keep everything"),
    ("long: abcdef", ["abc", "abcdef"], "long: ***"),
    ("two a1 b2", ["a1", "b2"], "two *** ***"),
    ("case matters: GHP_TOK3NABCDEF0123456789", [TOKEN], "case matters: GHP_TOK3NABCDEF0123456789"),
    # URL-embedded
    (f"https://x-access-token:{TOKEN}@github.com/o/r.git", [TOKEN], "https://x-access-token:***@github.com/o/r.git"),
    (f"https://github.com/o/r/pull/4?token={TOKEN}#x", [TOKEN], "https://github.com/o/r/pull/4?token=***#x"),
    (f"https://u:{quote(ODD, safe='')}@host/", [ODD], "https://u:***@host/"),
    # percent-encoded
    (percent_every_byte(TOKEN), [TOKEN], "***"),
    (percent_every_byte(TOKEN, "lower") + "!", [TOKEN], "***!"),
    (f"q={quote_plus(ODD)}&", [ODD], "q=***&"),
    ("mixed gh%70_Tok3n%41BCdef0123456789.", [TOKEN], "mixed ***."),
    ("q=%C3%A9t%C3%A9-key&", ["été-key"], "q=***&"),  # a first character that is not ASCII
    ("q=x+lead&", [" lead"], "q=x***&"),  # a first space written as +
    # JSON-escaped
    (json.dumps({"m": ODD}), [ODD], '{"m": "***"}'),
    (json.dumps({"m": ODD}, ensure_ascii=False), [ODD], '{"m": "***"}'),
    (escaped_every_char(TOKEN), [TOKEN], "***"),
    (escaped_every_char(TOKEN).upper().replace("\\U", "\\u"), [TOKEN], "***"),
    ("a\\/b/c", ["a/b/c"], "***"),
    # markdown-escaped (what `markdown.escape` makes of it)
    (markdown.escape(f"see {TOKEN}"), [TOKEN], "see ***"),
    # git's HTTP basic credential
    (f"Authorization: Basic {basic_credential(TOKEN)}", [TOKEN], "Authorization: Basic ***"),
    # a secret of several lines, each line alone
    ("line two-of-key only", ["line-one-of-key\ntwo-of-key"], "line *** only"),
    ("ab\ncd whole, ab cd", ["ab\ncd"], "*** whole, ab cd"),  # lines under 4 characters: never alone
]])
def test_every_form_of_a_secret_is_redacted(text: str, secrets: list[str | None], expected: str) -> None:
    assert Redactor(secrets).text(text) == expected


def test_bytes_are_redacted_like_text() -> None:
    redactor = Redactor([TOKEN, ODD])
    for text in (f"a {TOKEN} b", f"x {percent_every_byte(ODD)} y", json.dumps(ODD), "nothing"):
        assert redactor.bytes(text.encode()) == redactor.text(text).encode()
    assert Redactor([]).bytes(b"as is") == b"as is" and Redactor([]).text("as is") == "as is"


def test_every_string_in_data_is_redacted_keys_too() -> None:
    data = {"message": f"my {TOKEN}", TOKEN: [1, f"{percent_every_byte(TOKEN)}", {"n": None}], "ok": True}
    assert Redactor([TOKEN]).data(data) == {"message": "my ***", "***": [1, "***", {"n": None}], "ok": True}


def test_a_model_copy_is_redacted_and_validated() -> None:
    report = workflows.read_report({"workflow": "issue-to-pr", "status": "failed", "issue": 3,
                                         "message": f"token {TOKEN}",
                                         "pr_url": f"https://x-access-token:{TOKEN}@h/o/r/pull/9"})
    clean = Redactor([TOKEN]).model(report)
    assert clean.message == "token ***" and clean.issues[0].pr_url == "https://x-access-token:***@h/o/r/pull/9"
    assert TOKEN in report.message  # the original is left as it was
    assert Redactor([None]).model(report) is report


def test_the_redactor_never_shows_its_secrets() -> None:
    redactor = Redactor([TOKEN])
    assert TOKEN not in repr(redactor) and TOKEN not in str(redactor)
    assert bool(redactor) and not Redactor(["", None])


PIECE = 100


@pytest.mark.parametrize(("name", "buffer", "at", "expected"), [pytest.param(*case, id=case[0]) for case in [
    ("no secret: cut where asked", b"x" * 300, PIECE, PIECE),
    ("a secret across the cut: cut before it", b"x" * 90 + TOKEN.encode() + b"y" * 300, PIECE, 90),
    ("a secret ending at the cut: kept whole", b"x" * 75 + TOKEN.encode() + b"y" * 300, PIECE, PIECE),
    ("an encoded secret across the cut", b"x" * 60 + percent_every_byte(TOKEN).encode() + b"y" * 300, PIECE, 60),
    # the end of the buffer may be the start of a secret still arriving
    ("the buffer ends soon after the cut", b"x" * 400 + TOKEN[:5].encode(), 300,
     405 - Redactor([TOKEN]).longest + 1),
    ("a secret longer than the piece cannot be held back", TOKEN.encode() * 2 + b"x" * 300, 10, 10),
]])
def test_safe_cut_never_splits_a_secret(name: str, buffer: bytes, at: int, expected: int) -> None:
    redactor = Redactor([TOKEN])
    cut = redactor.safe_cut(buffer, at)
    assert cut == expected, name
    assert TOKEN.encode() not in redactor.bytes(buffer[:cut]) + b"|" + buffer[cut:cut + 1]
    assert Redactor([]).safe_cut(buffer, at) == at


def test_basic_credential_is_what_git_sends() -> None:
    assert base64.b64decode(basic_credential("tok")) == b"x-access-token:tok"


# ── the door: where the report is read, and where a coordinator's result comes back ──


@pytest.mark.parametrize(("name", "text", "expected_error"), [pytest.param(*case, id=case[0]) for case in [
    ("message and claimed URL", json.dumps({
        "workflow": "issue-to-pr", "status": "failed", "issue": 4, "message": f"mine is {TOKEN}",
        "pr_url": f"https://x-access-token:{percent_every_byte(TOKEN)}@h/o/r/pull/5?t={TOKEN}"}), None),
    ("JSON-escaped in the file", json.dumps({"workflow": "issue_to_pr", "status": "failed",
                                             "message": TOKEN}).replace(TOKEN, escaped_every_char(TOKEN)), None),
    ("a key the schema refuses", json.dumps({"workflow": "issue_to_pr", TOKEN: 1}),
     "the report does not match the schema (***: Extra inputs are not permitted)"),
]])
def test_the_report_is_redacted_where_it_is_read(tmp_path, name: str, text: str, expected_error: str | None) -> None:
    from conductor.actions.coordinator import read_report

    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    report, error = read_report(path, Redactor([TOKEN]))
    assert error == expected_error, name
    assert TOKEN not in repr((report, error)) and (report is None or "***" in repr(report)), name
    assert read_report(path, Redactor([]))[0] == (workflows.read_report(json.loads(text)) if report else None)


def test_a_coordinator_result_is_redacted_whole() -> None:
    from conductor.actions.coordinator import AgentResult, CoordinatorResult
    from conductor.core.verify import CoordinatorOutcome, RunFacts

    outcome = CoordinatorOutcome(kind="issue_to_pr", phase="p", batch=None, items=[4], ok=False,
                                 failures=[f"agent reported failed: {TOKEN}"])
    result = CoordinatorResult(outcome=outcome, agent=AgentResult(
        run=RunFacts(returncode=0, timed_out=False), output_tail=[f"said {TOKEN}"],
        report=AgentReport(workflow="issue_to_pr", status="failed", message=TOKEN)))
    clean = Redactor([TOKEN]).model(result)
    assert TOKEN not in clean.model_dump_json() and TOKEN in result.model_dump_json()
    assert clean.outcome.failures == ["agent reported failed: ***"] and clean.agent.output_tail == ["said ***"]

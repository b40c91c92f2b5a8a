"""What the last pass left on GitHub: its reminders (with the anti-loop marker) and stuck
issues, and closing the reminders a new one supersedes.

The conductor owns only what it wrote: an issue counts as its reminder or stuck issue only
when the conductor's own login (the token's user) authored it *and* it carries the
conductor's marker. Anything else carrying those labels (a person's issue, a forgery with a
copied marker) is reported in the pass's summary (`NotOurs`), never closed, never edited
and never read for the attempt counter.
"""
from __future__ import annotations

from conductor.core import constants, reminder
from conductor.core.config import PipelineConfig
from conductor.core.facts import NotOurs, PreviousRun
from conductor.core.ports import GitHub
from conductor.core.ports import IssueRef


def _owned(ref: IssueRef, login: str, label: str, is_marked) -> NotOurs | None:
    """None when `ref` is the conductor's own; else why it is not."""
    if ref.author.lower() != login.lower():
        return NotOurs(number=ref.number, label=label, author=ref.author,
                       reason=f"was not written by the conductor (author: {ref.author or 'unknown'})")
    if not is_marked(ref.body):
        return NotOurs(number=ref.number, label=label, author=ref.author,
                       reason="has no conductor marker (edited by hand?)")
    return None


def read_previous_run(gh: GitHub, config: PipelineConfig) -> PreviousRun:
    """The conductor's own open reminders and stuck issues (two listings and the login)."""
    login = gh.login()
    not_ours: list[NotOurs] = []
    reminders: list[IssueRef] = []
    for ref in sorted(gh.list_issues_labelled(config.reminder_label), key=lambda r: r.number):
        problem = _owned(ref, login, config.reminder_label, lambda body: reminder.parse_reminder(body) is not None)
        if problem:
            not_ours.append(problem)
        else:
            reminders.append(ref)
    stuck: list[int] = []
    for ref in sorted(gh.list_issues_labelled(constants.STUCK_LABEL), key=lambda r: r.number):
        problem = _owned(ref, login, constants.STUCK_LABEL, reminder.is_stuck_issue)
        if problem:
            not_ours.append(problem)
        else:
            stuck.append(ref.number)
    newest = reminders[-1] if reminders else None
    return PreviousRun(
        reminders=[r.number for r in reminders], newest=newest.number if newest else None,
        newest_body=newest.body if newest else None,
        state=reminder.parse_reminder(newest.body) if newest else None,
        stuck_issues=stuck, not_ours=not_ours)



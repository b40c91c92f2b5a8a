"""The example commands of an agent prompt, as an agent types them (test support).

A shipped prompt (conductor/prompts/*.md) gives its commands in fenced ```sh blocks, one a
line: `<KEY>` stands for the task file's value of KEY, a lowercase `<…>` for the agent's
own words. An agent types the values literally (Claude Code refuses a command holding a
shell variable), so a command here must hold no `$`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

_FENCE = re.compile(r"^[ \t]*```sh\n(.*?)^[ \t]*```", re.M | re.S)
KEY = re.compile(r"<([A-Z][A-Z0-9_]*)>")
WORDS = re.compile(r"<([a-z][^<>]*)>")


def example_commands(prompt: str) -> list[str]:
    """Every line of the prompt's ```sh blocks, in order."""
    return [line.strip() for block in _FENCE.findall(prompt) for line in block.splitlines() if line.strip()]


def typed(command: str, task: Mapping[str, str], words: Mapping[str, str] | None = None) -> str | None:
    """`command` with the task's values in place of `<KEY>` (the first number of a list: one
    command per number) and `words` (else "scripted") in place of a lowercase `<…>`; None
    when a key it names is `none` (the command does not apply)."""
    if any(task[key] == "none" for key in KEY.findall(command)):
        return None
    filled = KEY.sub(lambda m: task[m.group(1)].split(",")[0], command)
    return WORDS.sub(lambda m: (words or {}).get(m.group(1), "scripted"), filled)

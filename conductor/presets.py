"""Ready-made agent commands for common agent CLIs, as argv templates.

Each preset is data: a name, an argument list using the placeholders of
`conductor.agent_process.expand_command` ({task_file}, {report_file}, {worktree},
{prompt_file}, {workflow}), a description and the page documenting its flags.
The agent runs with the coordinator's worktree as working directory, stdin closed.

Permissions: every preset lets the agent edit files in its worktree without asking.
Where the CLI can allow shell commands by name, `git` and `gh` are allowed (a
coordinator commits, pushes and opens or merges pull requests); anything else a
repository needs (its test runner, linters) is granted in that CLI's own project
settings, never by turning every prompt off.
"""
from __future__ import annotations

from dataclasses import dataclass

from conductor.errors import ConductorError

# What every preset tells the agent; the report shape is conductor.reports.AgentReport.
AGENT_PROMPT = (
    "You are the {workflow} coordinator. Read the task file at {task_file} (KEY=value lines) "
    "and follow the canonical prompt at {prompt_file} exactly. When you finish, or if you "
    "cannot proceed, write a JSON report to {report_file} of the form "
    '{"workflow": "issue_to_pr" or "pr_review", "status": "done" or "blocked" or "failed", '
    '"message": "why, if not done", '
    '"issues": [{"issue": <number>, "pr_url": "<pull request URL>"}], '
    '"reviews": [{"pr": <number>, "grade": "A" to "F", "merged": true or false}]}. '
    "List only work you actually did: every claim is checked against GitHub."
)


@dataclass(frozen=True)
class Preset:
    name: str
    argv: tuple[str, ...]
    description: str
    docs: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="generic",
            argv=("conductor-agent", "{workflow}", "{task_file}", "{prompt_file}",
                  "{report_file}", "{worktree}"),
            description=(
                "Your own executable `conductor-agent` on PATH (or replace argv[0]): receives "
                "workflow, task file, canonical prompt file, report path and worktree as arguments."
            ),
            docs="conductor/agent_process.py",
        ),
        # https://code.claude.com/docs/en/headless  (claude -p, --output-format)
        # https://code.claude.com/docs/en/permission-modes  (acceptEdits)
        # https://code.claude.com/docs/en/permissions  (Bash(git:*) prefix rules)
        Preset(
            name="claude",
            argv=("claude", "-p", AGENT_PROMPT, "--permission-mode", "acceptEdits",
                  "--allowedTools", "Bash(git:*),Bash(gh:*)", "--output-format", "text"),
            description=(
                "Claude Code in print mode: file edits accepted, `git` and `gh` allowed; "
                "allow the repository's test commands in .claude/settings.json."
            ),
            docs="https://code.claude.com/docs/en/headless",
        ),
        # https://developers.openai.com/codex/noninteractive  (codex exec, --sandbox)
        # https://developers.openai.com/codex/cli/reference#codex-exec  (--cd, -c key=value)
        Preset(
            name="codex",
            argv=("codex", "exec", "--sandbox", "workspace-write",
                  "-c", "sandbox_workspace_write.network_access=true",
                  "--cd", "{worktree}", AGENT_PROMPT),
            description=(
                "OpenAI Codex non-interactive: writes confined to the worktree, network on for "
                "git push and gh. A linked worktree commits into the main repository's .git: "
                "add `--add-dir <repo>/.git` if the sandbox blocks git commit."
            ),
            docs="https://developers.openai.com/codex/noninteractive",
        ),
        # https://cursor.com/docs/cli/headless  (-p, --force, --output-format)
        # https://cursor.com/docs/cli/reference/parameters  (--trust, --workspace)
        Preset(
            name="cursor",
            argv=("cursor-agent", "-p", "--force", "--trust", "--output-format", "text",
                  "--workspace", "{worktree}", AGENT_PROMPT),
            description=(
                "Cursor's agent CLI in print mode; --force applies changes and runs commands "
                "its permission config does not deny, --trust skips the workspace prompt."
            ),
            docs="https://cursor.com/docs/cli/headless",
        ),
        # https://geminicli.com/docs/cli/headless  (-p)
        # https://geminicli.com/docs/cli/configuration  (--approval-mode, --allowed-tools)
        Preset(
            name="gemini",
            argv=("gemini", "--approval-mode", "auto_edit",
                  "--allowed-tools", "run_shell_command(git),run_shell_command(gh)",
                  "-p", AGENT_PROMPT),
            description=(
                "Gemini CLI headless: edits auto-approved, `git` and `gh` allowed; with folder "
                "trust enabled, trust the worktree root or approval falls back to default."
            ),
            docs="https://geminicli.com/docs/cli/headless",
        ),
    )
}


def get_preset(name: str) -> list[str]:
    """The argv template of a preset, ready for `expand_command`."""
    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise ConductorError(
            f"unknown agent preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}"
        )
    return list(preset.argv)

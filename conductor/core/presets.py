"""Ready-made agent commands for common agent CLIs, as argv templates.

Each preset is data: a name, an argument list using the placeholders of
`conductor.edges.agent_process.expand_command` ({task_file}, {report_file}, {worktree},
{prompt_file}, {workflow}, {git_dir}, {git_common_dir}), a description, the page
documenting its flags, and the CLI version it was last run with end to end by this
project's tests (tests/test_agent_clis.py; None: never run here).
The agent runs with the coordinator's worktree as working directory, stdin closed.

Permissions: every preset lets the agent edit files in its worktree without asking.
Where the CLI can allow shell commands by name, `git` and `gh` are allowed (a
coordinator commits, pushes and opens or merges pull requests); anything else a
repository needs (its test runner, linters) is granted in that CLI's own project
settings, never by turning every prompt off.

Output: each CLI prints one JSON event per line as it works (so the idle timeout sees
progress and the run's logs show it), ending with its token and cost figures, which
`conductor.core.usage` reads.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from conductor.core import workflows
from conductor.core.errors import ConductorError
from conductor.core.models import ItemCap
from conductor.core.spend import round_down

# What every preset tells the agent; the report shape is conductor.core.reports.AgentReport.
AGENT_PROMPT = (
    "You are the {workflow} agent for one item (a leaf coordinator). Read the task file at "
    "{task_file} (KEY=value lines) and follow the prompt it names in PROMPT ({prompt_file} if "
    "it names none) exactly. When you finish, or if you cannot proceed, write a JSON report to "
    "{report_file}: "
    + "; ".join(f"for {w.name} {w.report_hint}" for w in workflows.registered())
    + ". List only work you actually did: every claim is checked against GitHub."
)

GEMINI_POLICY = Path(__file__).resolve().parents[1] / "agent_policies" / "gemini.toml"

@dataclass(frozen=True)
class Preset:
    name: str
    argv: tuple[str, ...]
    description: str
    docs: str
    verified: str | None = None  # the CLI version this project's end-to-end tests ran
    environment: str = ""  # how to point it at a gateway, a proxy or a local model
    budget_flag: str = ""  # the flag that caps a run's spend in USD (none: the conductor stops it)
    package: str = ""  # the npm package that installs it (`npx PACKAGE` runs it)

    @property
    def status(self) -> str:
        if self.name == "generic":
            return "your own command"
        return f"verified with {self.verified}" if self.verified else "unverified"


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
            docs="conductor/edges/agent_process.py",
        ),
        # https://code.claude.com/docs/en/headless  (claude -p, --output-format)
        # https://code.claude.com/docs/en/permission-modes  (acceptEdits)
        # https://code.claude.com/docs/en/permissions  (Bash(git:*) prefix rules)
        Preset(
            name="claude",
            argv=("claude", "-p", AGENT_PROMPT, "--permission-mode", "acceptEdits",
                  "--allowedTools", "Bash(git:*),Bash(gh:*)",
                  "--output-format", "stream-json", "--verbose"),
            description=(
                "Claude Code in print mode: file edits accepted, `git` and `gh` allowed (any other "
                "command is refused: allow the repository's test commands in .claude/settings.json); "
                "one JSON event per line, ending with cost and tokens."
            ),
            docs="https://code.claude.com/docs/en/headless",
            verified="@anthropic-ai/claude-code 2.1.332",
            package="@anthropic-ai/claude-code",
            # https://code.claude.com/docs/en/cli-reference  (--max-budget-usd, print mode only)
            budget_flag="--max-budget-usd",
            environment=(
                "ANTHROPIC_BASE_URL=http://HOST:PORT (a gateway, a proxy or a local model speaking "
                "the Messages API) with ANTHROPIC_API_KEY (sent as x-api-key) or ANTHROPIC_AUTH_TOKEN "
                "(sent as Authorization: Bearer); CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 stops its "
                "update checks, telemetry and error reports (and its own `gh` look-ups); "
                "HTTPS_PROXY for a proxy."
            ),
        ),
        # https://developers.openai.com/codex/noninteractive  (codex exec, --json, --sandbox)
        # https://developers.openai.com/codex/cli/reference#codex-exec  (--cd, --add-dir, -c key=value)
        Preset(
            name="codex",
            argv=("codex", "exec", "--json", "--sandbox", "workspace-write",
                  "-c", "sandbox_workspace_write.network_access=true",
                  "--add-dir", "{git_dir}", "--add-dir", "{git_common_dir}",
                  "--cd", "{worktree}", AGENT_PROMPT),
            description=(
                "OpenAI Codex non-interactive: writes confined to the worktree plus its two git "
                "directories (a linked worktree's commit writes its own .git/worktrees/NAME and the "
                "clone's .git), network on for git push and gh; JSONL events with token counts."
            ),
            docs="https://developers.openai.com/codex/noninteractive",
            verified="@openai/codex 0.171.0",
            package="@openai/codex",
            environment=(
                "a provider in $CODEX_HOME/config.toml: [model_providers.NAME] base_url = "
                "\"http://HOST:PORT/v1\", wire_api = \"responses\", env_key = \"VAR\" (the variable "
                "holding its key), selected with model_provider = \"NAME\"; "
                "check_for_update_on_startup = false and [analytics] enabled = false offline. "
                "Keep CODEX_HOME out of /tmp. Its commands run under `bash -lc` (PATH from /etc/profile) "
                "and see VAR."
            ),
        ),
        # https://cursor.com/docs/cli/headless  (-p, --force, --output-format)
        # https://cursor.com/docs/cli/reference/parameters  (--trust, --workspace)
        Preset(
            name="cursor",
            argv=("cursor-agent", "-p", "--force", "--trust", "--output-format", "text",
                  "--workspace", "{worktree}", AGENT_PROMPT),
            description=(
                "Cursor's agent CLI in print mode; --force applies changes and runs commands "
                "its permission config does not deny, --trust skips the workspace prompt. "
                "Unverified: its CLI cannot be installed from a package registry, so no test runs it."
            ),
            docs="https://cursor.com/docs/cli/headless",
            environment="CURSOR_API_KEY; it talks only to Cursor's own service.",
        ),
        # https://geminicli.com/docs/cli/headless  (-p, --output-format stream-json)
        # https://geminicli.com/docs/cli/trusted-folders  (--skip-trust)
        # https://geminicli.com/docs/reference/policy-engine  (--policy)
        Preset(
            name="gemini",
            argv=("gemini", "--skip-trust", "--approval-mode", "auto_edit",
                  "--policy", str(GEMINI_POLICY), "--output-format", "stream-json",
                  "-p", AGENT_PROMPT),
            description=(
                "Gemini CLI headless: the fresh worktree trusted for this session (else it exits "
                "55), edits auto-approved, `git` and `gh` allowed by the shipped policy file "
                "(conductor/agent_policies/gemini.toml); JSONL events ending with token stats."
            ),
            docs="https://geminicli.com/docs/cli/headless",
            verified="@google/gemini-cli 0.61.0",
            package="@google/gemini-cli",
            environment=(
                "GOOGLE_GEMINI_BASE_URL=http://HOST:PORT with GEMINI_API_KEY, and "
                "security.auth.selectedType = \"gemini-api-key\" in its settings.json "
                "(~/.gemini or GEMINI_CLI_HOME): the base URL alone selects an auth type it rejects. "
                "HTTPS_PROXY for a proxy."
            ),
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


def cap_flags(argv: Sequence[str], cap: ItemCap | None) -> list[str]:
    """The flags that pass a leaf's USD cap to its CLI when it is a preset's CLI that takes one
    (Claude Code's `--max-budget-usd`, in whole cents down: never more than the cap); none
    otherwise (Codex, Gemini CLI and Cursor take no spend limit: the conductor stops them when
    their streamed usage passes the cap)."""
    if cap is None or cap.usd is None or not argv:
        return []
    cli = cli_name(argv)
    flags = [p.budget_flag for p in PRESETS.values() if p.budget_flag and p.argv[0] == cli]
    return [flags[0], f"{round_down(cap.usd, 2):.2f}"] if flags and flags[0] not in argv else []


# Commands that run another command after options of their own: the options that take a value
# as the next word, and how many operands come before the command (timeout's duration).
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "env": (frozenset({"-u", "--unset", "-C", "--chdir"}), 0),
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "nohup": (frozenset(), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}), 0),
    "timeout": (frozenset({"-s", "--signal", "-k", "--kill-after"}), 1),
    "npx": (frozenset({"-p", "--package", "-c", "--call"}), 0),
    "bunx": (frozenset({"-p", "--package"}), 0),
    "uvx": (frozenset({"--from", "--with", "--with-editable", "--with-requirements", "-p", "--python",
                       "--index", "--default-index"}), 0),
}
_PACKAGES = {p.package: p.argv[0] for p in PRESETS.values() if p.package}


def cli_name(argv: Sequence[str]) -> str:
    """The agent CLI an agent command runs, as spend records, estimates and the budget flag name
    it: a preset's CLI by its executable (`claude`, `codex`, `cursor-agent`, `gemini`), also when
    wrapped (`env A=1`, `timeout 600`, `nice -n 5`, `nohup`, `stdbuf`, their options and operands
    skipped) or run by its npm package (`npx -y @openai/codex`, a `node` script inside the
    package); the script or module a Python interpreter runs (`python -m shell.demo_agent` is
    `demo_agent`); any other program by its name; `unknown: node cli.js` for a script of no
    known package. A preset is resolved into its command by the settings (a command at a
    higher level overrides it), so the command alone says what runs."""
    words = list(argv)
    while words and (name := PurePath(words[0]).name) in _WRAPPERS:
        words = _wrapped(words[1:], *_WRAPPERS[name], assignments=name == "env")
    if not words:
        return ""
    name = PurePath(words[0]).name
    if (spec := _unversioned(words[0])) in _PACKAGES:
        return _PACKAGES[spec]
    if name.startswith("python"):
        if len(words) > 2 and words[1] == "-m":
            return words[2].rsplit(".", 1)[-1]
        return PurePath(words[1]).stem if len(words) > 1 else name
    if name == "node":
        script = next((w for w in words[1:] if not w.startswith("-")), "")
        parts = PurePath(script).parts
        known = [_PACKAGES[p] for p in (*parts, *map("/".join, zip(parts, parts[1:]))) if p in _PACKAGES]
        return known[0] if known else f"unknown: node {PurePath(script).name}".rstrip()
    return name


def _wrapped(words: list[str], takes_value: frozenset[str], operands: int, *, assignments: bool) -> list[str]:
    """The command a wrapper runs: `words` past its options (and their values), its variable
    assignments (`env`) and its operands."""
    while words:
        word = words[0]
        if word == "--":
            words = words[1:]
            break
        if word in takes_value:
            words = words[2:]
        elif word.startswith("-") or (assignments and "=" in word):
            words = words[1:]
        else:
            break
    return words[operands:]


def _unversioned(spec: str) -> str:
    """An npm or PyPI package spec without its version: `@openai/codex@0.171.0` is `@openai/codex`."""
    head, at, _ = spec[1:].partition("@")
    return (spec[0] + head if at else spec).split("==")[0]


def describe_presets() -> list[str]:
    """One line per preset for `conductor presets`: name, status, what it does."""
    return [f"{p.name:8} {p.status:40} {p.description}" for p in PRESETS.values()]


def register(sub) -> None:  # noqa: ANN001 (argparse's private subparsers type)
    """`conductor presets`: the shipped presets, whether this project's tests ran them,
    and (with --env) how to point each at a gateway, a proxy or a local model."""
    p = sub.add_parser("presets", help="the shipped agent presets and which are verified")
    p.add_argument("--env", action="store_true", help="also show how to point each CLI at a model endpoint")
    p.set_defaults(func=_cmd_presets)


def _cmd_presets(args) -> int:  # noqa: ANN001
    for preset, line in zip(PRESETS.values(), describe_presets(), strict=True):
        print(line)
        if args.env and preset.environment:
            print(f"{'':8} {preset.environment}")
    return 0

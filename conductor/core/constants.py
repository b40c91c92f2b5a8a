"""Names the conductor writes to or reads from GitHub and disk, in one place.

Label names here are the *defaults*; the live values come from `PipelineConfig`
so a repository can rename them. Markers are fixed: they are how the conductor
recognises what it owns.
"""
from __future__ import annotations

# Status labels (seed: "Source of truth signals").
STATUS_IN_PROGRESS = "status/in-progress"
STATUS_PR_OPEN = "status/pr-open"
REMINDER_LABEL = "conductor-reminder"
REMINDER_LABEL_COLOR = "e4e669"
REMINDER_LABEL_DESCRIPTION = "Open: pipeline incomplete — re-run the conductor"
STUCK_LABEL = "conductor-stuck"
APPROVAL_LABEL = "conductor/approved"
SECURITY_LABEL = "security"
BATCH_PREFIX = "batch-"
PHASE_PREFIX = "phase-"

# Workflows (seed: canonical coordinator prompts).
WORKFLOW_CONDUCTOR = "conductor"
PROMPT_ISSUE_TO_PR = ".cursor/PARALLEL_ISSUE_TO_PR.md"
PROMPT_PR_REVIEW = ".cursor/PARALLEL_PR_REVIEW.md"
PROMPT_REWORK = ".cursor/PARALLEL_PR_REWORK.md"
PROMPT_REBASE = ".cursor/PARALLEL_PR_REBASE.md"

# Files.
TASK_FILE_NAME = ".agent-task"
REPORT_FILE_NAME = ".agent-report.json"
CONFIG_FILE_NAME = "conductor.toml"
# Files the conductor itself writes into a worktree: never the agent's work, never committed
# (each worktree's git excludes list them; salvage skips them).
CONDUCTOR_FILES = (TASK_FILE_NAME, REPORT_FILE_NAME)

# The pass lock: a git ref in the repository (see conductor/core/passlock.py).
LOCK_REF = "refs/conductor/lock"

# GitHub's own cap on an issue, pull request or comment body (characters): text read from GitHub
# is cut there where it enters (conductor/edges/github_gateway.py), so no parser sees more.
GITHUB_BODY_LIMIT = 65_536

# Unicode bidirectional controls (the "Trojan Source" characters: embeddings and overrides
# U+202A-202E, isolates U+2066-2069, the marks U+200E/200F and U+061C): text shown with them
# can read differently from what it is, so nothing the conductor writes carries them raw.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Hidden markers in issue bodies the conductor writes.
REMINDER_MARKER = "conductor:reminder"
STUCK_MARKER = "conductor:stuck"
# Hidden marker in the comment a pass leaves on an item it dispatched without a proved result.
ATTEMPT_MARKER = "conductor:attempt"
# Hidden marker of a leaf's spend comment: what its agent cost (conductor/core/spend.py).
SPEND_MARKER = "conductor:spend"
# Hidden marker in the comment recording a review that graded a PR down, or a rebase that failed.
LOOP_MARKER = "conductor:loop"
NEEDS_HUMAN_LABEL = "conductor/needs-human"

# Seed texts.
STALE_REMINDER_COMMENT = (
    "Superseded by new conductor run. New reminder will be created if pipeline is still incomplete."
)
IDLE_MESSAGE = (
    "✅ Pipeline is fully idle. No open issues or PRs with phase labels.\n"
    "   All batches are implemented and merged. Well done.\n"
    "   Push new GitHub issues with phase/batch labels to start the next development cycle."
)
MAX_PER_DISPATCH = 12  # the seed's default cap on issues, and on PRs, dispatched per pass
AGENT_TIMEOUT = 3600.0  # default seconds before an agent is killed
ANTI_LOOP_LIMIT = 3  # ATTEMPT_N > 3 -> stuck
ITEM_ATTEMPT_LIMIT = 3  # an item that failed 3 times is held back for a human
# Possible causes listed in the stuck issue (seed STEP 0 anti-loop guard).
STUCK_CAUSES = (
    "All remaining batches have unresolved DEPENDS_ON dependencies",
    "All remaining PRs are in D/F grade rejection state",
    "All remaining items are gated and wait for human approval",
    "Label misconfiguration (phase/batch labels missing or wrong)",
    "GitHub API failures",
)
# Globs of database migrations: a PR changing one has HAS_MIGRATION=true in its review task file.
DEFAULT_MIGRATION_PATHS = ("alembic/versions/**", "migrations/**", "**/migrations/*.py", "*.sql")
# What the conductor hands an agent in its environment: its task file and where its report goes.
AGENT_TASK_FILE_ENV = "CONDUCTOR_TASK_FILE"
AGENT_REPORT_FILE_ENV = "CONDUCTOR_REPORT_FILE"

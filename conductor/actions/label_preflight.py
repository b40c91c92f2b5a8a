"""Seed step "label pre-flight": the labels the conductor writes exist before it writes them."""
from __future__ import annotations

from conductor.core import constants
from conductor.core.config import PipelineConfig
from conductor.core.ports import GitHub

STUCK_LABEL_COLOR = "b60205"


def wanted_labels(config: PipelineConfig) -> dict[str, tuple[str, str]]:
    """Labels the conductor writes, name -> (color, description)."""
    return {
        config.reminder_label: (constants.REMINDER_LABEL_COLOR, constants.REMINDER_LABEL_DESCRIPTION),
        constants.STUCK_LABEL: (STUCK_LABEL_COLOR, "The conductor stopped: needs human intervention"),
        config.status_in_progress: ("fbca04", "An ISSUE_TO_PR agent is working on this"),
        config.status_pr_open: ("0e8a16", "A PR_REVIEW agent was dispatched for this PR"),
        config.approval_label: ("5319e7", "Approved for dispatch by a maintainer"),
        config.needs_human_label: ("d93f0b", "The review loops stopped here: a human decides"),
    }


def label_preflight(gh: GitHub, config: PipelineConfig, dry_run: bool) -> list[str]:
    """Create the conductor's labels that are missing; returns their names."""
    if dry_run:
        return []
    return gh.ensure_labels(wanted_labels(config))

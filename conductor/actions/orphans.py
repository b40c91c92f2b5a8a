"""Seed: "clean orphaned worktrees" — what a dead pass left under the worktree root.

For each orphan: stop the agent it may still run, salvage unsaved work, remove it. In a
dry run, only list them. `log` receives what a person should see (a `logging.Logger`).
"""
from __future__ import annotations

import logging
from pathlib import Path

from conductor.actions import coordinator
from conductor.edges import worktrees
from conductor.core.facts import OrphanCleanup


def clean(repo_path: Path, root: Path, *, salvage_dir: Path, dry_run: bool,
          log: logging.Logger | logging.LoggerAdapter) -> list[OrphanCleanup]:
    if not root.exists():
        return []
    found = worktrees.find_orphans(repo_path, root)
    if dry_run:
        return [OrphanCleanup(path=p) for p in found]
    for orphan in found:
        if coordinator.stop_orphaned_agent(orphan):
            log.warning("stopped the agent a dead pass left running in %s", orphan)
    results = worktrees.clean_orphans(repo_path, root, salvage_dir=salvage_dir)
    for r in results:
        if r.salvaged_to:
            log.warning("orphaned worktree %s had unsaved work: saved to %s", r.path, r.salvaged_to)
        if r.error:
            log.error("orphaned worktree %s: %s", r.path, r.error)
    return results

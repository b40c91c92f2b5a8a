"""Seed: "clean orphaned worktrees" — what a dead pass left under the worktree root.

For each orphan: stop the agent it may still run, salvage unsaved work, remove it. In a
dry run, only list them. `log` receives what a person should see (a `logging.Logger`).

On a worker (leaves on workers), each leaf does the same for its clone before it makes its
worktree (`clean_on_worker`), under the clone's lock, sparing the worktrees of live leaves.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from conductor.actions import coordinator
from conductor.core import leaf as leaves
from conductor.edges import worktrees
from conductor.edges.agent_process import process_started
from conductor.core.facts import OrphanCleanup


def clean(repo_path: Path, root: Path, *, salvage_dir: Path, dry_run: bool,
          log: logging.Logger | logging.LoggerAdapter, keep: Iterable[Path] = ()) -> list[OrphanCleanup]:
    if not root.exists():
        return []
    keep = list(keep)
    found = worktrees.find_orphans(repo_path, root, keep)
    if dry_run:
        return [OrphanCleanup(path=p) for p in found]
    for orphan in found:
        if coordinator.stop_orphaned_agent(orphan):
            log.warning("stopped the agent a dead pass left running in %s", orphan)
    results = worktrees.clean_orphans(repo_path, root, keep, salvage_dir=salvage_dir)
    for r in results:
        if r.salvaged_to:
            log.warning("orphaned worktree %s had unsaved work: saved to %s", r.path, r.salvaged_to)
        if r.error:
            log.error("orphaned worktree %s: %s", r.path, r.error)
    return results


def owner_here(run_id: str) -> leaves.LeafOwner:
    """This process, running leaf run `run_id` on this machine."""
    pid = os.getpid()
    return leaves.LeafOwner(run_id=run_id, host=socket.gethostname(), pid=pid, started=process_started(pid) or "")


def clean_on_worker(repo_path: Path, root: Path, *, salvage_dir: Path, run_ended: Callable[[str], bool],
                    log: logging.Logger | logging.LoggerAdapter) -> list[OrphanCleanup]:
    """`clean` for a worker's clone, holding its lock (`worktrees.clone_lock`): the worktrees
    of killed leaves (`leaves.leaf_orphaned`: no owner recorded, its process dead here, or its
    run final or gone per `run_ended`) are salvaged and removed; a live leaf's is kept."""
    with worktrees.clone_lock(repo_path):
        here = socket.gethostname()
        live = [path for path in (worktrees.find_orphans(repo_path, root) if root.exists() else [])
                if not leaves.leaf_orphaned(coordinator.leaf_owner(path), here, process_started, run_ended)]
        return clean(repo_path, root, salvage_dir=salvage_dir, dry_run=False, log=log, keep=live)


def stop_agents_of_pass(root: Path, pass_id: str) -> list[Path]:
    """Stop the agents pass `pass_id` runs in its own worktrees under `root` (their names end
    in `-<pass id>`): its lock was taken over, so their work is no longer its to finish."""
    if not root.is_dir():
        return []
    return [path for path in sorted(root.iterdir())
            if path.name.endswith(f"-{pass_id}") and coordinator.stop_orphaned_agent(path)]

"""Git operations on the sandbox's bare repositories (GitPython).

Everything a pull request needs from git: branch tips, merge bases, real diffs,
mergeability (`git merge-tree --write-tree`, no worktree) and merge commits moved
onto the base branch with a compare-and-swap `update-ref`.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

from git import Actor, Repo
from git.exc import GitCommandError
from git.index.base import IndexFile
from git.index.typ import BaseIndexEntry
from git.objects.commit import Commit
from gitdb.base import IStream

ZERO_SHA = "0" * 40
_COMMITTER = Actor("GitHub", "noreply@github.com")


class MergeConflict(Exception):
    """The head does not merge cleanly into the base."""


class RefMoved(Exception):
    """The base branch moved while merging (compare-and-swap failed)."""


@dataclass(frozen=True)
class FileChange:
    """One file of a diff, in the terms of GitHub's `diff-entry`."""

    filename: str
    status: str
    sha: str
    additions: int
    deletions: int
    patch: str | None
    previous_filename: str | None = None


_STATUS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}


def init_bare(path: Path, default_branch: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Repo.init(path, bare=True, mkdir=True, initial_branch=default_branch).close()


def clone_bare(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    Repo.clone_from(str(src), str(dst), bare=True).close()
    with Repo(dst) as repo:  # a fork has no remote; its branches are its own
        if "origin" in [r.name for r in repo.remotes]:
            repo.delete_remote(repo.remote("origin"))


def branches(path: Path) -> dict[str, str]:
    """Branch name -> tip sha."""
    with Repo(path) as repo:
        return {head.name: head.commit.hexsha for head in repo.heads}


def branch_sha(path: Path, branch: str) -> str | None:
    """The tip of exactly `refs/heads/<branch>` (no revision syntax: `main~1` is no branch)."""
    with Repo(path) as repo:
        try:
            return repo.git.show_ref("--verify", "--hash", f"refs/heads/{branch}").strip() or None
        except GitCommandError:
            return None


def set_ref(path: Path, ref: str, sha: str) -> None:
    with Repo(path) as repo:
        repo.git.update_ref(ref, sha)


def fetch_ref(dst: Path, src: Path, src_branch: str, dst_ref: str) -> None:
    """Copy a branch of another repository (a fork) into `dst_ref` here."""
    with Repo(dst) as repo:
        repo.git.fetch("--quiet", "--no-tags", str(src), f"+refs/heads/{src_branch}:{dst_ref}")


def merge_base(path: Path, a: str, b: str) -> str | None:
    with Repo(path) as repo:
        try:
            return repo.git.merge_base(a, b)
        except GitCommandError:
            return None


def commit_count(path: Path, base: str, head: str) -> int:
    with Repo(path) as repo:
        return int(repo.git.rev_list("--count", f"{base}..{head}"))


def commit_shas(path: Path, base: str, head: str) -> list[str]:
    """The commits in `base..head`, oldest first."""
    with Repo(path) as repo:
        return repo.git.rev_list("--reverse", f"{base}..{head}").split()


def commit_messages(path: Path, base: str, head: str) -> list[str]:
    with Repo(path) as repo:
        out = repo.git.log("--format=%B%x00", f"{base}..{head}")
    return [m.strip() for m in out.split("\x00") if m.strip()]


def diff(path: Path, base: str, head: str) -> list[FileChange]:
    """The files changed between two commits, as `git diff -M base head` sees them."""
    with Repo(path) as repo:
        raw = repo.git.diff("--raw", "-z", "-M", "--abbrev=40", "--no-color", base, head)
        numstat = repo.git.diff("--numstat", "-z", "-M", "--no-color", base, head)
        patch = repo.git.diff("-M", "--no-color", "--no-ext-diff", base, head)
    entries = _parse_raw(raw)
    counts = _parse_numstat(numstat)
    patches = _split_patch(patch)
    out = []
    for i, (status, old_sha, new_sha, old_path, new_path) in enumerate(entries):
        adds, dels = counts[i] if i < len(counts) else (0, 0)
        out.append(FileChange(
            filename=new_path,
            status=_STATUS.get(status[0], "changed"),
            sha=old_sha if status[0] == "D" else new_sha,
            additions=adds,
            deletions=dels,
            patch=patches[i] if i < len(patches) else None,
            previous_filename=old_path if status[0] in "RC" else None,
        ))
    return out


def diff_text(path: Path, base: str, head: str, *, patch: bool) -> str:
    """`git diff base head` (the `.diff` media type), or the commits as `git format-patch` (`.patch`)."""
    with Repo(path) as repo:
        if patch:
            return repo.git.format_patch("--stdout", "--no-color", f"{base}..{head}", strip_newline=False)
        return repo.git.diff("-M", "--no-color", "--no-ext-diff", base, head, strip_newline=False)


def _parse_raw(raw: str) -> list[tuple[str, str, str, str, str]]:
    parts = raw.split("\x00")
    out, i = [], 0
    while i < len(parts) and parts[i].startswith(":"):
        meta = parts[i][1:].split()
        old_sha, new_sha, status = meta[2], meta[3], meta[4]
        if status[0] in "RC":
            out.append((status, old_sha, new_sha, parts[i + 1], parts[i + 2]))
            i += 3
        else:
            out.append((status, old_sha, new_sha, parts[i + 1], parts[i + 1]))
            i += 2
    return out


def _parse_numstat(raw: str) -> list[tuple[int, int]]:
    parts = raw.split("\x00")
    out, i = [], 0
    while i < len(parts) and parts[i]:
        adds, dels, name = parts[i].split("\t", 2)
        out.append((int(adds) if adds.isdigit() else 0, int(dels) if dels.isdigit() else 0))
        i += 3 if name == "" else 1  # a rename is followed by its two paths
    return out


def _split_patch(patch: str) -> list[str | None]:
    chunks: list[list[str]] = []
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            chunks.append([])
        elif chunks:
            chunks[-1].append(line)
    out: list[str | None] = []
    for lines in chunks:
        start = next((i for i, line in enumerate(lines) if line.startswith("@@")), None)
        out.append("\n".join(lines[start:]) if start is not None else None)
    return out


def merge_tree(path: Path, base: str, head: str) -> str | None:
    """The tree of merging head into base, or None when they conflict."""
    with Repo(path) as repo:
        status, out, _ = repo.git.merge_tree(
            "--write-tree", "--no-messages", base, head,
            with_extended_output=True, with_exceptions=False,
        )
    if status != 0:
        return None
    return out.splitlines()[0].strip()


def create_commit(path: Path, tree: str, parents: list[str], message: str, author: Actor,
                  committer: Actor = _COMMITTER) -> str:
    with Repo(path) as repo:
        commit = Commit.create_from_tree(
            repo, tree, message, parent_commits=[repo.commit(p) for p in parents],
            head=False, author=author, committer=committer,
        )
        return commit.hexsha


def move_branch(path: Path, branch: str, new: str, old: str) -> None:
    """Point `branch` at `new` only if it still points at `old`."""
    with Repo(path) as repo:
        try:
            repo.git.update_ref(f"refs/heads/{branch}", new, old)
        except GitCommandError as exc:
            raise RefMoved(str(exc)) from None


def merge_into(path: Path, base_branch: str, head_sha: str, *, method: str, title: str,
               message: str, author: Actor) -> str:
    """Merge (or squash) `head_sha` onto `base_branch`; returns the new commit."""
    base_sha = branch_sha(path, base_branch)
    if base_sha is None:
        raise MergeConflict(f"base branch {base_branch} is gone")
    tree = merge_tree(path, base_sha, head_sha)
    if tree is None:
        raise MergeConflict(f"{head_sha[:7]} conflicts with {base_branch}")
    parents = [base_sha] if method == "squash" else [base_sha, head_sha]
    text = f"{title}\n\n{message}".rstrip() + "\n" if message else f"{title}\n"
    sha = create_commit(path, tree, parents, text, author)
    move_branch(path, base_branch, sha, base_sha)
    return sha


def initial_commit(path: Path, branch: str, files: dict[str, str], message: str,
                   author: Actor) -> str:
    """Create the first commit of an empty repository (used by `auto_init`)."""
    with Repo(path) as repo:
        index = IndexFile.new(repo)
        entries = []
        for name, text in sorted(files.items()):
            data = text.encode()
            stream = repo.odb.store(IStream("blob", len(data), io.BytesIO(data)))
            entries.append(BaseIndexEntry((0o100644, stream.binsha, 0, name)))
        index.add(entries, write=False)
        tree = index.write_tree()
        commit = Commit.create_from_tree(repo, tree, message, parent_commits=[], head=False,
                                         author=author, committer=author)
        repo.git.update_ref(f"refs/heads/{branch}", commit.hexsha, ZERO_SHA)
        return commit.hexsha


def author_for(login: str, user_id: int, host: str = "users.noreply.sandbox") -> Actor:
    return Actor(login, f"{user_id}+{login}@{host}")


def commit_info(path: Path, sha: str) -> dict:
    """sha, tree, parents, message, author and committer (name, email, ISO date) of a commit."""
    with Repo(path) as repo:
        c = repo.commit(sha)

        def person(actor: Actor, when) -> dict[str, str]:
            return {"name": actor.name or "", "email": actor.email or "",
                    "date": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

        return {
            "sha": c.hexsha,
            "tree": c.tree.hexsha,
            "parents": [p.hexsha for p in c.parents],
            "message": c.message.rstrip("\n") if isinstance(c.message, str) else c.message.decode(),
            "author": person(c.author, c.authored_datetime),
            "committer": person(c.committer, c.committed_datetime),
        }


def delete_branches_except(path: Path, keep: str) -> None:
    with Repo(path) as repo:
        for head in list(repo.heads):
            if head.name != keep:
                repo.git.update_ref("-d", f"refs/heads/{head.name}")

"""Git worktrees for the conductor and its coordinators (seed: "Setup", STEP 1b, STEP 8).

The only module of the conductor that imports GitPython (the demo agent, a stand-in for a
real agent CLI, runs git itself).
Every worktree lives directly under one worktree root, named by `worktree_dir_name`.

Orphans: `find_orphans` returns worktrees *git knows* under the root that are neither
the conductor's own worktree (`conductor`), nor the worktree `repo_path` is, nor in the
keep set. Directories under the root that git does not know for this repository are
never deleted: they may belong to another repository or hold work git has lost track
of, so a human decides.

`clean_orphans` never removes a worktree before its work is safe: uncommitted changes
(untracked files included, ignored files excluded) become a patch, commits no
remote-tracking branch contains become a bundle, both under the salvage directory.

The conductor's own files in a worktree (`constants.CONDUCTOR_FILES`: the `.agent-task`
and the report) are not the agent's work: `create_worktree` lists them in the git
excludes (`info/exclude`, which git reads from the repository's common directory for every
worktree), so an agent's `git add -A` never commits them, and salvage never counts them.
"""
from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from git import Repo
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError
from pydantic import BaseModel, ConfigDict

from conductor.core.constants import CONDUCTOR_FILES
from conductor.core.facts import OrphanCleanup  # noqa: F401 (re-exported)
from conductor.core.errors import ConductorError
from conductor.core.redaction import basic_credential
from conductor.core.settings import process_environment

CONDUCTOR_WORKTREE = "conductor"
_MAX_NAME = 100
_USERINFO = re.compile(r"(://)[^/@\s]+@")
_MUTATING = threading.Lock()  # coordinators start in threads: one add/remove/prune at a time
# The lock `git worktree add` holds until its checkout is done: left behind, it marks an add
# that was killed (the conductor starts an agent only after the add returned).
_UNFINISHED_ADD = "initializing"
_EXCLUDE_HEADER = "# conductor: files it writes into its worktrees (never the agent's work)"
# Pathspecs that leave the conductor's own files (at the worktree's top) out of a git command
# that only reads (`git add` refuses a pathspec naming an ignored file, even to exclude it).
_NOT_OURS = [".", *(f":(top,exclude,literal){name}" for name in CONDUCTOR_FILES)]
_OURS = [f":(top,literal){name}" for name in CONDUCTOR_FILES]


class WorktreeError(ConductorError):
    """A git worktree operation failed; the message names the fix."""


class WorktreeInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    head: str | None = None
    branch: str | None = None  # e.g. "refs/heads/feature"; None when detached
    detached: bool = False
    bare: bool = False
    locked: bool = False
    lock_reason: str = ""
    prunable: bool = False


class SalvageResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    directory: Path
    head: str
    patch: Path | None = None   # `git apply <patch>` on a checkout of `head` restores it
    bundle: Path | None = None  # `git fetch <bundle> HEAD` brings the commits back
    commits: int = 0


# ── pure helpers ────────────────────────────────────────────────────────────


def worktree_dir_name(name: str) -> str:
    """A safe directory name for an untrusted label: `phase-2/core-api` -> `phase-2-core-api`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    safe = re.sub(r"\.{2,}", ".", safe)
    safe = re.sub(r"-{2,}", "-", safe)
    safe = safe.strip("-.")[:_MAX_NAME].strip("-.")
    if not safe:
        raise WorktreeError(
            f"worktree name {name!r} has no usable characters; use letters, digits, '.', '_' or '-'"
        )
    return safe


def parse_worktree_porcelain(text: str) -> list[WorktreeInfo]:
    """Parse `git worktree list --porcelain` (records separated by blank lines)."""
    infos: list[WorktreeInfo] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, object] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            if key == "worktree":
                fields["path"] = Path(value)
            elif key == "HEAD":
                fields["head"] = value
            elif key == "branch":
                fields["branch"] = value
            elif key in ("detached", "bare", "locked", "prunable"):
                fields[key] = True
                if key == "locked":
                    fields["lock_reason"] = value
        if "path" in fields:
            infos.append(WorktreeInfo.model_validate(fields))
    return infos


def _scrub(text: str) -> str:
    """Drop credentials embedded in URLs (`https://user:token@host`)."""
    return _USERINFO.sub(r"\1***@", text)


def _git_failure(exc: GitCommandError) -> str:
    """The most telling stderr line of a failed git command (GitPython wraps it in quotes)."""
    lines = [ln.strip().removeprefix("stderr: ").strip("'").strip() for ln in str(exc.stderr).splitlines()]
    lines = [ln for ln in lines if ln]
    errors = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return _scrub((errors or lines or [f"exit status {exc.status}"])[0])


# ── repository access ───────────────────────────────────────────────────────


@contextmanager
def _open(path: Path | str) -> Iterator[Repo]:
    try:
        repo = Repo(path)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise WorktreeError(
            f"{path} is not a git repository; point repo_path at a git checkout"
        ) from None
    try:
        yield repo
    finally:
        repo.close()


def _git(repo: Repo, *args: str, what: str, **kwargs: object) -> str | bytes:
    try:
        return repo.git.execute([repo.git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args], **kwargs)  # type: ignore[call-overload]
    except GitCommandError as exc:
        raise WorktreeError(
            f"{what} failed in {repo.working_tree_dir}: {_git_failure(exc)}"
        ) from None


def _ref_sha(repo: Repo, ref: str) -> str | None:
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
    except GitCommandError:
        return None


def fetch(repo_path: Path | str, remote: str = "origin", ca_bundle: Path | None = None) -> None:
    """`git fetch <remote>` if that remote exists; a repository without it is fine.
    `ca_bundle` (CONDUCTOR_CA_BUNDLE): the CA git trusts, over any GIT_SSL_CAINFO of the machine."""
    with _open(repo_path) as repo:
        if remote in {r.name for r in repo.remotes}:
            env = {"GIT_SSL_CAINFO": str(ca_bundle)} if ca_bundle else None
            _git(repo, "fetch", "--prune", remote, what=f"git fetch {remote}", env=env)


def remote_urls(repo_path: Path | str) -> dict[str, list[str]]:
    """Remote name -> its URLs (credentials scrubbed); WorktreeError if not a git repository."""
    with _open(repo_path) as repo:
        return {r.name: [_scrub(u) for u in r.urls] for r in repo.remotes}


def clone(url: str, dest: Path | str) -> Path:
    """`git clone <url> <dest>` (used by the demo; a user brings their own clone)."""
    try:
        Repo.clone_from(url, str(dest)).close()
    except GitCommandError as exc:
        raise WorktreeError(f"git clone {_scrub(url)} failed: {_git_failure(exc)}") from None
    return Path(dest)


@contextmanager
def clone_lock(clone: Path | str) -> Iterator[None]:
    """The lock of a worker's clone (a file `.<name>.lock` beside it). The leaf runs of one
    machine take it in turn to clone or fetch it, to add a worktree of it (and record who
    made it), to remove one, or to salvage its orphans: none of them ever salvages a
    worktree another is making, using or removing."""
    clone = Path(clone)
    clone.parent.mkdir(parents=True, exist_ok=True)
    with open(clone.parent / f".{clone.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def synced_clone(url: str, dest: Path | str, token: str | None) -> Path:
    """The clone of `url` at `dest`, made now or fetched now (a cache a worker keeps per
    repository). The token travels as git's HTTP header in the environment only: never in
    the URL, an argument or the clone's config. Flow runs of one worker share the cache: one
    clone or fetch at a time (`clone_lock`)."""
    dest = Path(dest)
    env = {k: v for k, v in process_environment().items() if not k.startswith("GIT_CONFIG")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    if token:
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic_credential(token)}"})
    with clone_lock(dest):
        try:
            if (dest / ".git").is_dir():
                with _open(dest) as repo, repo.git.custom_environment(**env):
                    _git(repo, "fetch", "--prune", "origin", what="git fetch origin")
            else:
                Repo.clone_from(url, str(dest), env=env).close()
        except GitCommandError as exc:
            raise WorktreeError(f"git clone {_scrub(url)} failed: {_git_failure(exc)}") from None
    return dest


def private_dir(worktree: Path | str) -> Path:
    """The worktree's own git directory (`.git/worktrees/<name>`): private to it, outside
    its files, and gone when the worktree is removed."""
    with _open(worktree) as repo:
        return Path(repo.git_dir).resolve()


def git_dirs(worktree: Path | str) -> tuple[Path, Path]:
    """(`git rev-parse --git-dir`, `--git-common-dir`) of a worktree, absolute: where a
    commit in it writes (its own HEAD and index, and the clone's objects and refs)."""
    with _open(worktree) as repo:
        out = str(_git(repo, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir",
                       what="git rev-parse"))
    git_dir, common = out.splitlines()[:2]
    return Path(git_dir).resolve(), Path(common).resolve()


def integration_tip(repo_path: Path | str, branch: str, remote: str = "origin") -> str:
    """The sha of `<remote>/<branch>` if it exists, else of the local `<branch>`."""
    with _open(repo_path) as repo:
        for ref in (f"refs/remotes/{remote}/{branch}", f"refs/heads/{branch}"):
            sha = _ref_sha(repo, ref)
            if sha:
                return sha
    raise WorktreeError(
        f"integration branch '{branch}' not found in {repo_path}; "
        "create it or set integration_branch"
    )


def read_blob(repo_path: Path | str, sha: str, path: str) -> bytes | None:
    """The bytes of `path` in commit `sha` (as `git show sha:path`), or None if it has no such file."""
    if not sha or sha.startswith("-") or not path or path.startswith(("-", "/")):
        return None
    with _open(repo_path) as repo:
        try:
            kind = repo.git.cat_file("-t", f"{sha}:{path}")
        except GitCommandError:
            return None
        if kind.strip() != "blob":
            return None
        out = repo.git.execute(["git", "cat-file", "blob", f"{sha}:{path}"], stdout_as_string=False,
                               strip_newline_in_stdout=False)
    return bytes(out)


def exclude_conductor_files(repo: Repo) -> Path:
    """Add `/.agent-task` and the other `CONDUCTOR_FILES` to the repository's git excludes
    (`info/exclude` of its common directory, read for every worktree) unless listed."""
    common = Path(str(_git(repo, "rev-parse", "--git-common-dir", what="git rev-parse")).strip())
    if not common.is_absolute():
        common = Path(str(repo.working_tree_dir or repo.git_dir)) / common
    exclude = common / "info" / "exclude"
    try:
        text = exclude.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    have = {line.strip() for line in text.splitlines()}
    missing = [f"/{name}" for name in CONDUCTOR_FILES if f"/{name}" not in have]
    if missing:
        lines = ([] if _EXCLUDE_HEADER in have else [_EXCLUDE_HEADER]) + missing
        prefix = "" if not text or text.endswith("\n") else "\n"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as out:
            out.write(prefix + "\n".join(lines) + "\n")
    return exclude


def create_worktree(repo_path: Path | str, root: Path | str, name: str, sha: str) -> Path:
    """`git worktree add --detach <root>/<safe name> <sha>`; refuses an existing path.

    The conductor's own files are excluded from git in it first (`exclude_conductor_files`)."""
    root = Path(root).resolve()
    path = root / worktree_dir_name(name)
    if path.exists() or path.is_symlink():
        raise WorktreeError(
            f"worktree {path} already exists; remove it first: "
            f"git worktree remove --force {path} && git worktree prune"
        )
    if not sha or sha.startswith("-"):
        raise WorktreeError(f"invalid commit {sha!r} for worktree {path}; pass a commit sha")
    root.mkdir(parents=True, exist_ok=True)
    with _MUTATING, _open(repo_path) as repo:
        exclude_conductor_files(repo)
        try:
            _git(repo, "worktree", "add", "--detach", str(path), sha, what="git worktree add")
        except WorktreeError:
            # a stale registration of this path (its directory deleted by hand) blocks `add`:
            # prune it and try once more. Pruning only here keeps concurrent starts short.
            _git(repo, "worktree", "prune", what="git worktree prune")
            _git(repo, "worktree", "add", "--detach", str(path), sha, what="git worktree add")
    return path


def list_worktrees(repo_path: Path | str) -> list[WorktreeInfo]:
    """All worktrees of the repository; the main worktree comes first."""
    with _open(repo_path) as repo:
        out = _git(repo, "worktree", "list", "--porcelain", what="git worktree list")
    return parse_worktree_porcelain(str(out))


def remove_worktree(repo_path: Path | str, path: Path | str) -> None:
    """Force-remove a worktree and prune; a worktree that is already gone is fine."""
    target = Path(path).resolve()
    with _MUTATING, _open(repo_path) as repo:
        if (target / ".git").is_file():  # the usual case, one git command (leaves end together)
            try:
                _git(repo, "worktree", "remove", "--force", str(target), what="git worktree remove")
                return
            except WorktreeError:
                pass  # not one of ours, or a stale registration: the careful way below
        _git(repo, "worktree", "prune", what="git worktree prune")
        known = {w.path.resolve() for w in _listed(repo)}
        if target in known:
            _git(repo, "worktree", "remove", "--force", str(target), what="git worktree remove")
            _git(repo, "worktree", "prune", what="git worktree prune")
        elif target.exists():
            raise WorktreeError(
                f"{target} is not a worktree of {repo_path}; it was left in place, remove it by hand"
            )


def _listed(repo: Repo) -> list[WorktreeInfo]:
    out = _git(repo, "worktree", "list", "--porcelain", what="git worktree list")
    return parse_worktree_porcelain(str(out))


def _is_under(path: Path, root: Path) -> bool:
    return path.parent == root


def find_orphans(repo_path: Path | str, root: Path | str, keep: Iterable[Path | str] = ()) -> list[Path]:
    """Worktrees under `root` that are not the conductor's, not `repo_path`'s, and not kept."""
    root = Path(root).resolve()
    kept = {Path(p).resolve() for p in keep}
    with _open(repo_path) as repo:
        own = Path(str(repo.working_tree_dir)).resolve()
        worktrees = _listed(repo)
    orphans = []
    for wt in worktrees[1:]:  # the first entry is the main worktree
        path = wt.path.resolve()
        if (
            _is_under(path, root)
            and not wt.prunable
            and path.name != CONDUCTOR_WORKTREE
            and path != own
            and path not in kept
        ):
            orphans.append(path)
    return orphans


def _salvage_target(salvage_dir: Path, name: str, now: datetime) -> Path:
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = salvage_dir / f"{name}-{stamp}"
    n = 1
    while target.exists():
        target = salvage_dir / f"{name}-{stamp}-{n}"
        n += 1
    return target


def _uncommitted_patch(wt: Repo) -> bytes:
    """`git diff HEAD --binary` of everything, untracked files included, via a temp index.

    `git add -A .` names no file, so git itself leaves ignored files out (the conductor's
    own, listed in `info/exclude`, among them) and never refuses; `git reset` then takes
    the conductor's files back out of the temp index in case its excludes were lost."""
    with tempfile.TemporaryDirectory(prefix="conductor-salvage-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _git(wt, "read-tree", "HEAD", what="git read-tree", env=env)
        _git(wt, "add", "-A", "--", ".", what="git add -A (temporary index)", env=env)
        _git(wt, "reset", "-q", "--", *_OURS, what="git reset (temporary index)", env=env)
        patch = _git(
            wt, "diff", "--cached", "--binary", "HEAD", what="git diff --binary", env=env,
            stdout_as_string=False, strip_newline_in_stdout=False,
        )
    return bytes(patch)


def salvage(
    repo_path: Path | str,
    worktree: Path | str,
    salvage_dir: Path | str,
    now: datetime | None = None,
) -> SalvageResult | None:
    """Save a worktree's uncommitted changes (patch) and unpushed commits (bundle).

    Returns None when there is nothing to save (clean but for the conductor's own files,
    every commit on a remote branch, or the directory is already gone). `repo_path` is the repository the worktree belongs to.
    """
    worktree = Path(worktree).resolve()
    if not worktree.is_dir():
        return None
    with _open(worktree) as wt:
        head = _ref_sha(wt, "HEAD")
        if head is None:
            return None
        status = str(_git(wt, "status", "--porcelain", "--untracked-files=all", "--", *_NOT_OURS,
                          what="git status"))
        patch = _uncommitted_patch(wt) if status.strip() else b""
        heads = ["HEAD"] + ([wt.git.symbolic_ref("-q", "HEAD")] if not wt.head.is_detached else [])
        count = int(str(_git(wt, "rev-list", "--count", *heads, "--not", "--remotes",
                             what="git rev-list")).strip() or 0)
        if not patch and count == 0:
            return None
        target = _salvage_target(Path(salvage_dir), worktree.name, now or datetime.now(timezone.utc))
        try:
            target.mkdir(parents=True)
        except OSError as exc:
            raise WorktreeError(
                f"cannot create salvage directory {target}: {exc.strerror}; "
                "set salvage_dir to a writable directory"
            ) from None
        patch_file = bundle_file = None
        if patch:
            patch_file = target / "uncommitted.patch"
            patch_file.write_bytes(patch)
        if count:
            bundle_file = target / "unpushed.bundle"
            _git(wt, "bundle", "create", str(bundle_file), *heads, "--not", "--remotes",
                 what="git bundle create")
    (target / "README.txt").write_text(_restore_notes(repo_path, worktree, head, patch_file, bundle_file))
    return SalvageResult(directory=target, head=head, patch=patch_file, bundle=bundle_file, commits=count)


def _restore_notes(repo: Path | str, worktree: Path, head: str, patch: Path | None,
                   bundle: Path | None) -> str:
    lines = [f"Salvaged from worktree {worktree} of {repo} (HEAD {head}).", ""]
    if bundle:
        lines.append(f"Unpushed commits:     git fetch {bundle} HEAD && git branch salvaged FETCH_HEAD")
    if patch:
        lines.append(f"Uncommitted changes:  git checkout --detach {head} && git apply {patch}")
    return "\n".join(lines) + "\n"


def clean_orphans(
    repo_path: Path | str,
    root: Path | str,
    keep: Iterable[Path | str] = (),
    *,
    salvage_dir: Path | str,
) -> list[OrphanCleanup]:
    """Salvage then remove every orphan, then prune. An orphan whose salvage fails stays.
    One whose `git worktree add` was killed (still locked "initializing") holds no agent's
    work: it is unlocked and removed without salvage."""
    _prune(repo_path)
    unfinished = {w.path.resolve() for w in list_worktrees(repo_path) if w.lock_reason == _UNFINISHED_ADD}
    results = []
    for path in find_orphans(repo_path, root, keep):
        try:
            if path in unfinished:
                with _MUTATING, _open(repo_path) as repo:
                    _git(repo, "worktree", "unlock", str(path), what="git worktree unlock")
                saved = None
            else:
                saved = salvage(repo_path, path, salvage_dir)
        except WorktreeError as exc:
            results.append(OrphanCleanup(path=path, error=f"not removed, salvage failed: {exc}"))
            continue
        where = saved.directory if saved else None
        try:
            remove_worktree(repo_path, path)
        except WorktreeError as exc:
            results.append(OrphanCleanup(path=path, salvaged_to=where, error=str(exc)))
            continue
        results.append(OrphanCleanup(path=path, salvaged_to=where, removed=True))
    _prune(repo_path)
    return results


def _prune(repo_path: Path | str) -> None:
    with _MUTATING, _open(repo_path) as repo:
        _git(repo, "worktree", "prune", what="git worktree prune")

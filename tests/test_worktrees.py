"""conductor.edges.worktrees against real git repositories: a bare origin and a clone in tmp_path."""
from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conductor.core.constants import CONDUCTOR_FILES, REPORT_FILE_NAME, TASK_FILE_NAME
from conductor.core.errors import ConductorError
from conductor.edges.worktrees import (
    WorktreeError,
    clean_orphans,
    create_worktree,
    fetch,
    find_orphans,
    integration_tip,
    list_worktrees,
    parse_worktree_porcelain,
    remove_worktree,
    salvage,
    worktree_dir_name,
)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def commit(cwd: Path, name: str, text: str, message: str) -> str:
    (cwd / name).write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_INDEX_FILE", raising=False)
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clone of a bare origin whose `dev` branch has one pushed commit."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "dev", str(origin))
    clone = tmp_path / "repo"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    commit(clone, "README.md", "hello\n", "initial")
    git(clone, "push", "-q", "origin", "HEAD:dev")
    return clone


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return (tmp_path / "worktrees" / "repo").resolve()


# ── names ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("phase-2/core-api", "phase-2-core-api"),
        ("batch-07", "batch-07"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", None),
        ("-rf", "rf"),
        ("--upload-pack=evil", "upload-pack-evil"),
        ("a b\tc", "a-b-c"),
        ("phase-1/db schema; rm -rf ~", "phase-1-db-schema-rm-rf"),
        ("$(touch pwned)", "touch-pwned"),
        (".hidden", "hidden"),
        ("x" * 300, "x" * 100),
        ("///", None),
        ("", None),
    ],
)
def test_worktree_dir_name(label: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(WorktreeError, match="no usable characters"):
            worktree_dir_name(label)
    else:
        name = worktree_dir_name(label)
        assert name == expected
        assert "/" not in name and ".." not in name and not name.startswith(("-", "."))


def test_worktree_error_is_a_conductor_error() -> None:
    assert issubclass(WorktreeError, ConductorError)


# ── porcelain ───────────────────────────────────────────────────────────────


def test_parse_worktree_porcelain() -> None:
    text = (
        "worktree /r\nHEAD aaaa\nbranch refs/heads/dev\n\n"
        "worktree /w/one\nHEAD bbbb\ndetached\nlocked because\n\n"
        "worktree /w/gone\nHEAD cccc\ndetached\nprunable gitdir file points to non-existent location\n"
    )
    main, one, gone = parse_worktree_porcelain(text)
    assert (main.path, main.head, main.branch, main.detached) == (Path("/r"), "aaaa", "refs/heads/dev", False)
    assert (one.path, one.head, one.detached, one.locked, one.branch) == (Path("/w/one"), "bbbb", True, True, None)
    assert gone.prunable and not gone.locked


# ── fetch / integration tip ─────────────────────────────────────────────────


def test_integration_tip_prefers_origin(repo: Path, tmp_path: Path) -> None:
    pushed = git(repo, "rev-parse", "HEAD")
    assert commit(repo, "local.txt", "x\n", "not pushed") != pushed  # local dev is ahead
    assert integration_tip(repo, "dev") == pushed
    # Another clone advances origin/dev; fetch makes it visible.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(other))
    advanced = commit(other, "b.txt", "b\n", "advance")
    git(other, "push", "-q", "origin", "HEAD:dev")
    assert integration_tip(repo, "dev") == pushed
    fetch(repo)
    assert integration_tip(repo, "dev") == advanced


def test_integration_tip_falls_back_to_local_branch(tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    git(tmp_path, "init", "-q", "-b", "dev", str(lone))
    sha = commit(lone, "a.txt", "a\n", "only commit")
    fetch(lone)  # no remote: nothing to do, no error
    assert integration_tip(lone, "dev") == sha


def test_integration_tip_missing_branch(repo: Path) -> None:
    with pytest.raises(WorktreeError) as err:
        integration_tip(repo, "trunk")
    assert str(err.value) == (
        f"integration branch 'trunk' not found in {repo}; create it or set integration_branch"
    )


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(WorktreeError, match="is not a git repository"):
        list_worktrees(tmp_path)


def test_fetch_failure_is_one_line_without_credentials(repo: Path) -> None:
    git(repo, "remote", "set-url", "origin", "https://user:s3cret@127.0.0.1:9/x.git")
    with pytest.raises(WorktreeError) as err:
        fetch(repo)
    assert "git fetch origin failed" in str(err.value)
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)


# ── create / list / remove ──────────────────────────────────────────────────


def test_create_worktree_at_integration_tip(repo: Path, root: Path) -> None:
    tip = integration_tip(repo, "dev")
    path = create_worktree(repo, root, "phase-2/core-api", tip)
    assert path == root / "phase-2-core-api"
    assert git(path, "rev-parse", "HEAD") == tip
    listed = {w.path.resolve(): w for w in list_worktrees(repo)}
    assert listed[path].head == tip and listed[path].detached and listed[path].branch is None


def test_create_refuses_existing_path_with_seed_instruction(repo: Path, root: Path) -> None:
    tip = integration_tip(repo, "dev")
    path = create_worktree(repo, root, "conductor", tip)
    with pytest.raises(WorktreeError) as err:
        create_worktree(repo, root, "conductor", tip)
    assert f"git worktree remove --force {path} && git worktree prune" in str(err.value)


def test_create_rejects_option_like_commit(repo: Path, root: Path) -> None:
    with pytest.raises(WorktreeError, match="invalid commit"):
        create_worktree(repo, root, "x", "--orphan")
    assert not (root / "x").exists()


def test_remove_worktree_is_idempotent(repo: Path, root: Path) -> None:
    path = create_worktree(repo, root, "batch-01", integration_tip(repo, "dev"))
    (path / "scratch.txt").write_text("untracked\n")
    remove_worktree(repo, path)
    assert not path.exists()
    assert path not in {w.path.resolve() for w in list_worktrees(repo)}
    remove_worktree(repo, path)  # already gone: fine


def test_remove_worktree_prunes_a_deleted_directory(repo: Path, root: Path) -> None:
    path = create_worktree(repo, root, "batch-02", integration_tip(repo, "dev"))
    subprocess.run(["rm", "-rf", str(path)], check=True)
    remove_worktree(repo, path)
    assert path not in {w.path.resolve() for w in list_worktrees(repo)}


def test_remove_refuses_a_directory_git_does_not_know(repo: Path, root: Path) -> None:
    stray = root / "stray"
    stray.mkdir(parents=True)
    with pytest.raises(WorktreeError, match="is not a worktree"):
        remove_worktree(repo, stray)
    assert stray.exists()


# ── orphans ─────────────────────────────────────────────────────────────────


def test_find_orphans_keeps_conductor_keep_set_and_outside_root(repo: Path, root: Path, tmp_path: Path) -> None:
    tip = integration_tip(repo, "dev")
    conductor = create_worktree(repo, root, "conductor", tip)
    running = create_worktree(repo, root, "phase-1/db-schema", tip)
    orphan = create_worktree(repo, root, "phase-2/core-api", tip)
    elsewhere = create_worktree(repo, tmp_path / "elsewhere", "batch-03", tip)
    stray = root / "not-a-worktree"
    stray.mkdir()
    assert find_orphans(repo, root, keep={running}) == [orphan]
    assert sorted(find_orphans(repo, root, keep=set())) == sorted([running, orphan])
    # Run from inside the conductor's worktree: same answer.
    assert find_orphans(conductor, root, keep={running}) == [orphan]
    assert elsewhere.exists()


def test_find_orphans_never_returns_the_worktree_it_runs_from(repo: Path, root: Path) -> None:
    own = create_worktree(repo, root, "conductor-2", integration_tip(repo, "dev"))
    assert find_orphans(own, root, keep=set()) == []


def test_dirty_orphan_is_salvaged_into_a_patch_that_applies(repo: Path, root: Path, tmp_path: Path) -> None:
    tip = integration_tip(repo, "dev")
    orphan = create_worktree(repo, root, "phase-2/core-api", tip)
    (orphan / "README.md").write_text("hello\nedited by the agent\n")
    (orphan / "new_module.py").write_text("print('new')\n")
    (orphan / "pkg").mkdir()
    (orphan / "pkg" / "blob.bin").write_bytes(bytes(range(256)))
    (orphan / ".gitignore").write_text("*.log\n")
    (orphan / "debug.log").write_text("ignored noise\n")
    git(orphan, "add", "README.md")  # a staged change must survive too
    salvage_dir = tmp_path / "salvage"

    results = clean_orphans(repo, root, keep=set(), salvage_dir=salvage_dir)

    assert [(r.path, r.removed, r.error) for r in results] == [(orphan, True, None)]
    saved = results[0].salvaged_to
    assert saved is not None and saved.parent == salvage_dir
    assert saved.name.startswith("phase-2-core-api-")
    assert not orphan.exists()
    patch = saved / "uncommitted.patch"
    assert not (saved / "unpushed.bundle").exists()
    assert b"debug.log" not in patch.read_bytes()

    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(fresh))
    git(fresh, "checkout", "-q", "--detach", tip)
    git(fresh, "apply", str(patch))
    assert (fresh / "README.md").read_text() == "hello\nedited by the agent\n"
    assert (fresh / "new_module.py").read_text() == "print('new')\n"
    assert (fresh / "pkg" / "blob.bin").read_bytes() == bytes(range(256))
    assert (fresh / ".gitignore").read_text() == "*.log\n"
    assert not (fresh / "debug.log").exists()
    assert "git apply" in (saved / "README.txt").read_text()


def test_unpushed_commit_is_salvaged_into_a_bundle(repo: Path, root: Path, tmp_path: Path) -> None:
    tip = integration_tip(repo, "dev")
    orphan = create_worktree(repo, root, "batch-05", tip)
    first = commit(orphan, "feature.py", "x = 1\n", "agent work 1")
    second = commit(orphan, "feature.py", "x = 2\n", "agent work 2")
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)

    result = salvage(repo, orphan, tmp_path / "salvage", now=now)

    assert result is not None
    assert result.directory == tmp_path / "salvage" / "batch-05-20240506T070809Z"
    assert (result.head, result.commits, result.patch) == (second, 2, None)
    remove_worktree(repo, orphan)
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(fresh))
    git(fresh, "fetch", "-q", str(result.bundle), "HEAD")
    assert git(fresh, "rev-parse", "FETCH_HEAD") == second
    assert git(fresh, "rev-parse", "FETCH_HEAD~1") == first
    again = salvage(repo, repo, tmp_path / "salvage", now=now)
    assert again is None  # the main checkout is clean and fully pushed


def test_commit_on_a_branch_and_dirty_tree_save_both(repo: Path, root: Path, tmp_path: Path) -> None:
    orphan = create_worktree(repo, root, "batch-06", integration_tip(repo, "dev"))
    git(orphan, "switch", "-q", "-c", "agent/feature")
    sha = commit(orphan, "f.txt", "1\n", "on a branch")
    (orphan / "f.txt").write_text("2\n")
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    first = salvage(repo, orphan, tmp_path / "s", now=now)
    second = salvage(repo, orphan, tmp_path / "s", now=now)
    assert first is not None and second is not None
    assert first.directory != second.directory
    assert first.patch is not None and first.bundle is not None and first.commits == 1
    heads = git(tmp_path, "bundle", "list-heads", str(first.bundle))
    assert f"{sha} refs/heads/agent/feature" in heads


def test_clean_orphan_is_removed_without_salvage(repo: Path, root: Path, tmp_path: Path) -> None:
    commit(repo, ".gitignore", "*.log\n", "ignore logs")
    git(repo, "push", "-q", "origin", "HEAD:dev")
    tip = integration_tip(repo, "dev")
    conductor = create_worktree(repo, root, "conductor", tip)
    kept = create_worktree(repo, root, "batch-08", tip)
    (kept / "wip.txt").write_text("running coordinator\n")
    orphan = create_worktree(repo, root, "batch-09", tip)
    (orphan / "debug.log").write_text("ignored files are not work\n")
    salvage_dir = tmp_path / "salvage"

    results = clean_orphans(repo, root, keep={kept}, salvage_dir=salvage_dir)

    assert [(r.path, r.salvaged_to, r.removed) for r in results] == [(orphan, None, True)]
    assert conductor.exists() and not orphan.exists()
    assert (kept / "wip.txt").exists()
    assert not salvage_dir.exists()


def test_orphan_whose_salvage_fails_is_left_in_place(repo: Path, root: Path, tmp_path: Path) -> None:
    orphan = create_worktree(repo, root, "batch-10", integration_tip(repo, "dev"))
    (orphan / "work.txt").write_text("precious\n")
    blocker = tmp_path / "salvage-is-a-file"
    blocker.write_text("")
    results = clean_orphans(repo, root, keep=set(), salvage_dir=blocker)
    assert len(results) == 1 and not results[0].removed and results[0].error
    assert (orphan / "work.txt").read_text() == "precious\n"


def test_worktrees_created_from_threads(repo: Path, root: Path) -> None:
    tip = integration_tip(repo, "dev")
    names = [f"phase-3/batch-{n:02d}" for n in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = list(pool.map(lambda n: create_worktree(repo, root, n, tip), names))
    assert paths == [root / f"phase-3-batch-{n:02d}" for n in range(4)]
    assert sorted(find_orphans(repo, root, keep=set())) == sorted(paths)


def test_create_recovers_from_a_worktree_deleted_by_hand(repo: Path, root: Path) -> None:
    import shutil

    sha = integration_tip(repo, "dev")
    first = create_worktree(repo, root, "issue_to_pr-x", sha)
    shutil.rmtree(first)  # git still has it registered until pruned
    again = create_worktree(repo, root, "issue_to_pr-x", sha)
    assert again == first and (again / ".git").exists()


# ── the conductor's own files (issue #11, items 9 and 10) ───────────────────


def _write_conductor_files(worktree: Path) -> None:
    (worktree / TASK_FILE_NAME).write_text("WORKFLOW=issue_to_pr\n")
    (worktree / REPORT_FILE_NAME).write_text('{"issues": []}\n')


def test_agents_git_add_all_never_commits_the_conductors_files(repo: Path, root: Path) -> None:
    wt = create_worktree(repo, root, "batch-10", integration_tip(repo, "dev"))
    _write_conductor_files(wt)
    (wt / "feature.py").write_text("x = 1\n")

    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", "agent work")

    assert git(wt, "show", "--name-only", "--format=", "HEAD").splitlines() == ["feature.py"]
    assert git(wt, "status", "--porcelain") == ""
    # listed once, however many worktrees are made
    create_worktree(repo, root, "batch-11", integration_tip(repo, "dev"))
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert [exclude.count(f"/{name}") for name in CONDUCTOR_FILES] == [1] * len(CONDUCTOR_FILES)


@pytest.mark.parametrize("excludes_lost", [False, True])
def test_an_orphan_holding_only_the_conductors_files_is_not_salvaged(
        repo: Path, root: Path, tmp_path: Path, excludes_lost: bool) -> None:
    orphan = create_worktree(repo, root, "batch-12", integration_tip(repo, "dev"))
    _write_conductor_files(orphan)
    if excludes_lost:  # a worktree made before the excludes existed, or edited by hand
        (repo / ".git" / "info" / "exclude").write_text("")

    assert salvage(repo, orphan, tmp_path / "salvage") is None
    results = clean_orphans(repo, root, keep=set(), salvage_dir=tmp_path / "salvage")
    assert [(r.path, r.salvaged_to, r.removed) for r in results] == [(orphan, None, True)]
    assert not (tmp_path / "salvage").exists()


def test_salvaged_work_leaves_the_conductors_files_out(repo: Path, root: Path, tmp_path: Path) -> None:
    orphan = create_worktree(repo, root, "batch-13", integration_tip(repo, "dev"))
    (repo / ".git" / "info" / "exclude").write_text("")
    _write_conductor_files(orphan)
    (orphan / "work.py").write_text("y = 2\n")

    saved = salvage(repo, orphan, tmp_path / "salvage")

    assert saved is not None and saved.patch is not None
    patch = saved.patch.read_text()
    assert "work.py" in patch
    assert all(name not in patch for name in CONDUCTOR_FILES)

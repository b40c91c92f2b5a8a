"""The sandbox's data directory: one JSON file per repository plus a global file.

Layout::

    DATA/sandbox.json               users and the id counter
    DATA/repos/OWNER/NAME.json      one repository's labels, issues, pulls, comments
    DATA/repos/OWNER/NAME.git       its bare git repository

Every file is written atomically (temp file + rename), global file first, so a crash
never leaves a half-written file and never re-uses an id.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

from pydantic import ValidationError

from .state import GlobalRec, RepoRec, UserRec, repo_key


class StoreError(Exception):
    """The data directory cannot be used (unreadable or corrupt file)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Store:
    """In-memory state mirrored to the data directory after every change."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.repos_dir = self.data_dir / "repos"
        self.lock = threading.RLock()
        self._global_path = self.data_dir / "sandbox.json"
        self._global_dirty = False
        self.glob = GlobalRec()
        self.repos: dict[str, RepoRec] = {}
        self._load()

    # -- loading and saving -------------------------------------------------------
    def _load(self) -> None:
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        if self._global_path.exists():
            self.glob = self._read(self._global_path, GlobalRec)
        for path in sorted(self.repos_dir.glob("*/*.json")):
            rec = self._read(path, RepoRec)
            self.repos[rec.key] = rec

    @staticmethod
    def _read(path: Path, model):
        try:
            return model.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValidationError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(
                f"cannot read sandbox state {path}: {first}; fix or delete the file"
            ) from None

    def save_global(self) -> None:
        with self.lock:
            _write_atomic(self._global_path, self.glob.model_dump_json(indent=1))
            self._global_dirty = False

    def save(self, repo: RepoRec) -> None:
        """Persist one repository (and the id counter first, if it moved)."""
        with self.lock:
            if self._global_dirty:
                self.save_global()
            _write_atomic(self.meta_path(repo.key), repo.model_dump_json())

    def meta_path(self, key: str) -> Path:
        return self.repos_dir / f"{key}.json"

    def git_path(self, key: str) -> Path:
        return self.repos_dir / f"{key}.git"

    # -- ids and users --------------------------------------------------------------
    def next_id(self) -> int:
        with self.lock:
            value = self.glob.next_id
            self.glob.next_id += 1
            self._global_dirty = True
            return value

    def upsert_user(self, login: str, token: str, *, site_admin: bool) -> UserRec:
        with self.lock:
            user = self.glob.users.get(login.lower())
            if user is None:
                user = UserRec(id=self.next_id(), login=login, token_sha256=token_hash(token))
                self.glob.users[login.lower()] = user
            user.token_sha256 = token_hash(token)
            user.site_admin = site_admin
            self.save_global()
            return user

    def user(self, login: str | None) -> UserRec | None:
        return self.glob.users.get(login.lower()) if login else None

    def user_by_token(self, token: str) -> UserRec | None:
        digest = token_hash(token)
        for user in self.glob.users.values():
            if user.token_sha256 == digest:
                return user
        return None

    # -- repositories ---------------------------------------------------------------
    def repo(self, owner: str, name: str) -> RepoRec | None:
        return self.repos.get(repo_key(owner, name))

    def add_repo(self, repo: RepoRec) -> None:
        with self.lock:
            self.repos[repo.key] = repo
            self.save(repo)

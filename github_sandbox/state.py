"""The sandbox's persisted records: users, repositories and everything in them.

Plain pydantic models, no I/O. `Store` (store.py) loads and saves them; `render.py`
turns them into GitHub's JSON shapes.
"""
from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field

ROLES = ("read", "triage", "write", "maintain", "admin")


def now_iso() -> str:
    """GitHub's timestamp format: ISO-8601, seconds, UTC, `Z`."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Rec(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class UserRec(_Rec):
    id: int
    login: str
    token_sha256: str
    site_admin: bool = False
    created_at: str = Field(default_factory=now_iso)


class LabelRec(_Rec):
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


class CommentRec(_Rec):
    id: int
    user: str
    body: str
    created_at: str
    updated_at: str


class EventRec(_Rec):
    id: int
    event: str
    actor: str
    created_at: str
    label: dict[str, str] | None = None
    commit_id: str | None = None
    state_reason: str | None = None


class ReviewRec(_Rec):
    id: int
    user: str
    state: str = Field(description="APPROVED, CHANGES_REQUESTED, COMMENTED or PENDING.")
    body: str = ""
    commit_id: str
    submitted_at: str | None = None


class PullRec(_Rec):
    """What a pull request adds to its issue record."""

    id: int = Field(description="The pull request's own id (GitHub's differs from the issue's).")
    head_repo: str = Field(description="Store key (owner/name, lower case) of the head repository.")
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    merge_base_sha: str | None = Field(None, description="Frozen when the PR closes.")
    draft: bool = False
    maintainer_can_modify: bool = False
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    reviews: list[ReviewRec] = Field(default_factory=list)


class IssueRec(_Rec):
    id: int
    number: int
    title: str
    body: str | None = None
    user: str
    state: str = "open"
    state_reason: str | None = None
    labels: list[int] = Field(default_factory=list, description="Label ids.")
    assignees: list[str] = Field(default_factory=list)
    locked: bool = False
    created_at: str
    updated_at: str
    updated_seq: int = Field(0, description="Tie-breaker for sort=updated within one second.")
    closed_at: str | None = None
    closed_by: str | None = None
    comments: list[CommentRec] = Field(default_factory=list)
    events: list[EventRec] = Field(default_factory=list)
    pull: PullRec | None = None
    blocked_by: list[int] = Field(
        default_factory=list,
        description="Issue dependencies: ids (GitHub's database ids) of the issues blocking this one.")


class RepoRec(_Rec):
    id: int
    owner: str
    name: str
    description: str | None = None
    homepage: str | None = None
    private: bool = False
    default_branch: str = "main"
    created_at: str
    updated_at: str
    pushed_at: str | None = None
    fork: bool = False
    parent: str | None = Field(None, description="Store key of the repository this one forks.")
    collaborators: dict[str, str] = Field(default_factory=dict, description="login -> role")
    labels: list[LabelRec] = Field(default_factory=list)
    issues: dict[int, IssueRec] = Field(default_factory=dict)
    next_number: int = 1

    @property
    def key(self) -> str:
        return repo_key(self.owner, self.name)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class GlobalRec(_Rec):
    next_id: int = 1
    users: dict[str, UserRec] = Field(default_factory=dict, description="lower-case login -> user")


def repo_key(owner: str, name: str) -> str:
    """Repositories are case-insensitive on GitHub; this is their one spelling on disk."""
    return f"{owner.lower()}/{name.lower()}"

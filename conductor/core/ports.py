"""What the core and the actions need of GitHub, named without PyGithub.

`conductor.edges.github_gateway.GitHubGateway` is the implementation (PyGithub over REST, with
request counting and idempotent writes); tests and other callers can name `GitHub` alone.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import SecretStr

from conductor.core.leaf import IssueItem, PullItem
from conductor.core.models import NumberKind, PipelineState
from conductor.core.verify import PullFacts


@dataclass(frozen=True)
class IssueRef:
    """An issue as a listing shows it (reminders, stuck issues), with its author: only
    those the conductor's own login wrote are the conductor's."""

    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    author: str = ""


@dataclass(frozen=True)
class Comment:
    """A comment on an issue or PR, with its author: only those the conductor's own login
    wrote can carry a marker the conductor trusts."""

    author: str
    body: str
    id: int = 0
    number: int = 0  # the issue or PR it is on
    updated_at: datetime | None = None
    url: str = ""


@dataclass(frozen=True)
class MergedPull:
    """A closed PR from the bounded listing of recently updated ones."""

    number: int
    merged: bool
    base_ref: str
    body: str
    updated_at: datetime


@runtime_checkable
class GitHub(Protocol):
    """One repository on GitHub, as the conductor reads and writes it."""

    @property
    def requests_made(self) -> int: ...

    @property
    def rate_points(self) -> int:
        """Rate-limit points spent so far (from X-RateLimit-* headers)."""

    def default_branch(self) -> str: ...

    def read_state(self) -> PipelineState:
        """Every open issue and PR (two listings), without changed files."""

    def pull_files(self, number: int) -> list[str]:
        """The paths PR `number` changes."""

    def number_kind(self, number: int) -> NumberKind:
        """What the repository has under `number`: an issue (closed or open), a pull request,
        or nothing (`missing`); one request."""

    def comments(self, number: int) -> list[Comment]:
        """Every comment on issue or PR `number`, oldest first."""

    def comments_since(self, since: datetime | None) -> list[Comment]:
        """Every issue and PR comment of the repository updated at or after `since` (all of
        them without), most recently updated first: one paginated listing."""

    def recall(self, name: str) -> str | None:
        """Text kept locally beside the HTTP cache under `name` (None when nothing is kept
        or conditional reads are off): derived data only, re-read from GitHub when lost."""

    def remember(self, name: str, text: str) -> None: ...

    def add_comment(self, number: int, body: str) -> None: ...

    def list_issues_labelled(self, label: str, state: str = "open") -> list[IssueRef]: ...

    def pull_facts(self, number: int) -> PullFacts: ...

    def issue_item(self, number: int) -> IssueItem:
        """What an issue leaf needs: title, URL, labels, body."""

    def pull_item(self, number: int, files: list[str] | None = None) -> PullItem:
        """What a review leaf needs: title, URL, branch, the issues it closes, its files."""

    def login(self) -> str:
        """The login of the token's user."""

    def token_login(self, token: SecretStr | None) -> str | None:
        """The login of another token's user (the agent's); None without one."""

    def labels_of(self, number: int) -> list[str]: ...

    def clone_url(self) -> str: ...

    def closed_pulls_since(self, since: datetime) -> list[MergedPull]:
        """Closed PRs, most recently updated first, until one last updated before `since`."""

    def last_labeler(self, number: int, label: str) -> str | None: ...

    def has_write_access(self, login: str) -> bool: ...

    def ensure_labels(self, wanted: dict[str, tuple[str, str]]) -> list[str]: ...

    def set_labels(self, number: int, add: Iterable[str] = (), remove: Iterable[str] = (),
                   current: Iterable[str] | None = None) -> list[str]: ...

    def create_issue(self, title: str, body: str, labels: list[str]) -> int: ...

    def edit_issue_body(self, number: int, body: str, title: str | None = None) -> None: ...

    def close_with_comment(self, number: int, comment: str, state_reason: str = "not_planned") -> None: ...

"""The sandbox's GitHub: repositories, labels, issues, pull requests and who may touch them.

`Service` methods take already-parsed input and the authenticated viewer, change the
records, persist them and return records; they raise `ApiError` with GitHub's answer
when GitHub would refuse. HTTP parsing lives in `routes.py`, JSON shapes in `render.py`.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from . import gitops, render
from .closing import closing_references
from .errors import ApiError, forbidden, not_found, requires_auth, validation_failed
from .permissions import NONE, at_least, normalize_role, role_of
from .render import PullGit, Urls
from .search import SearchError, matches, parse_query, sort_key
from .state import CommentRec, EventRec, IssueRec, LabelRec, PullRec, RepoRec, ReviewRec, UserRec, now_iso
from .store import Store

# GitHub's labels for a new repository.
DEFAULT_LABELS = (
    ("bug", "d73a4a", "Something isn't working"),
    ("documentation", "0075ca", "Improvements or additions to documentation"),
    ("duplicate", "cfd3d7", "This issue or pull request already exists"),
    ("enhancement", "a2eeef", "New feature or request"),
    ("good first issue", "7057ff", "Good for newcomers"),
    ("help wanted", "008672", "Extra attention is needed"),
    ("invalid", "e4e669", "This doesn't seem right"),
    ("question", "d876e3", "Further information is requested"),
    ("wontfix", "ffffff", "This will not be worked on"),
)
_COLOR = re.compile(r"^#?[0-9a-fA-F]{6}$")
_REPO_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]")


def parse_time(value: str) -> datetime | None:
    """ISO-8601 as GitHub takes it in `since`; no zone means UTC."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


class Service:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- lookups ------------------------------------------------------------------
    def users(self, login: str) -> UserRec | None:
        return self.store.user(login)

    def repo_for(self, owner: str, name: str, viewer: UserRec | None, need: str = "read",
                 message: str | None = None) -> tuple[RepoRec, str]:
        """The repository and the viewer's role, or GitHub's 401/403/404."""
        if need != "read" and viewer is None:
            raise requires_auth(f"{need} on {owner}/{name} needs a token")
        rec = self.store.repo(owner, name)
        if rec is None:
            raise not_found(f"repository {owner}/{name} does not exist")
        login = viewer.login if viewer else None
        role = role_of(rec, login)
        if role == NONE:
            raise not_found(f"{login or 'anonymous'} has no access to private {rec.full_name}")
        if not at_least(role, need):
            reason = f"{login} has {role} on {rec.full_name}, needs {need}"
            raise forbidden(reason, message) if message else forbidden(reason)
        return rec, role

    def issue_for(self, rec: RepoRec, number: int) -> IssueRec:
        it = rec.issues.get(number)
        if it is None:
            raise not_found(f"{rec.full_name} has no issue #{number}")
        return it

    def pull_for(self, rec: RepoRec, number: int) -> IssueRec:
        it = rec.issues.get(number)
        if it is None or it.pull is None:
            raise not_found(f"{rec.full_name} has no pull request #{number}")
        return it

    @staticmethod
    def find_label(rec: RepoRec, name: str) -> LabelRec | None:
        lowered = name.lower()
        return next((lab for lab in rec.labels if lab.name.lower() == lowered), None)

    def label_for(self, rec: RepoRec, name: str) -> LabelRec:
        lab = self.find_label(rec, name)
        if lab is None:
            raise not_found(f"{rec.full_name} has no label {name!r}")
        return lab

    def git(self, rec: RepoRec):
        return self.store.git_path(rec.key)

    def forks_of(self, rec: RepoRec) -> list[RepoRec]:
        return [r for r in self.store.repos.values() if r.parent == rec.key]

    # -- rendering helpers --------------------------------------------------------------
    def repo_json(self, urls: Urls, rec: RepoRec, viewer: UserRec | None, *, full: bool) -> dict[str, Any]:
        parent = self.store.repos.get(rec.parent) if rec.parent else None
        source = self.root_of(rec) if parent else None
        return render.repo(urls, rec, self.users, role=role_of(rec, viewer.login if viewer else None),
                           parent=parent, source=source, forks=len(self.forks_of(rec)), full=full)

    def pull_json(self, urls: Urls, rec: RepoRec, it: IssueRec, viewer: UserRec | None, *,
                  full: bool) -> dict[str, Any]:
        assert it.pull is not None
        head_repo = self.store.repos.get(it.pull.head_repo)
        login = viewer.login if viewer else None
        return render.pull(
            urls, rec, it, self.users, head_repo=head_repo,
            head_role=role_of(head_repo, login) if head_repo else None,
            base_role=role_of(rec, login), git=self.pull_git(rec, it) if full else None,
        )

    # -- users ----------------------------------------------------------------------------
    def repo_counts(self, login: str) -> tuple[int, int]:
        owned = [r for r in self.store.repos.values() if r.owner.lower() == login.lower()]
        return sum(not r.private for r in owned), sum(r.private for r in owned)

    # -- repositories ------------------------------------------------------------------
    def create_repo(self, viewer: UserRec, name: str, *, description: str | None, homepage: str | None,
                    private: bool, auto_init: bool) -> RepoRec:
        name = _REPO_NAME_BAD.sub("-", name.strip())
        if not name or name in {".", ".."}:
            raise ApiError(422, "Repository creation failed.", reason="empty repository name",
                           errors=[{"resource": "Repository", "code": "missing_field", "field": "name"}])
        if self.store.repo(viewer.login, name) is not None:
            raise ApiError(
                422, "Repository creation failed.", reason=f"{viewer.login}/{name} exists",
                errors=[{"resource": "Repository", "code": "custom", "field": "name",
                         "message": "name already exists on this account"}])
        now = now_iso()
        rec = RepoRec(id=self.store.next_id(), owner=viewer.login, name=name, description=description,
                      homepage=homepage, private=private, created_at=now, updated_at=now)
        rec.labels = [LabelRec(id=self.store.next_id(), name=n, color=c, description=d, default=True)
                      for n, c, d in DEFAULT_LABELS]
        gitops.init_bare(self.git(rec), rec.default_branch)
        if auto_init:
            readme = f"# {name}\n" + (f"\n{description}\n" if description else "")
            gitops.initial_commit(self.git(rec), rec.default_branch, {"README.md": readme},
                                  "Initial commit", gitops.author_for(viewer.login, viewer.id))
            rec.pushed_at = now
        self.store.add_repo(rec)
        return rec

    def fork(self, rec: RepoRec, viewer: UserRec, *, name: str | None, default_branch_only: bool) -> RepoRec:
        existing = next((r for r in self.forks_of(rec) if r.owner.lower() == viewer.login.lower()), None)
        if existing is not None:
            return existing
        if rec.owner.lower() == viewer.login.lower():
            raise validation_failed(
                [{"resource": "Repository", "code": "custom", "message": "You cannot fork your own repository."}],
                reason=f"{viewer.login} tried to fork own {rec.full_name}")
        name = _REPO_NAME_BAD.sub("-", name or rec.name)
        if self.store.repo(viewer.login, name) is not None:
            raise validation_failed(
                [{"resource": "Repository", "code": "custom", "field": "name",
                  "message": "name already exists on this account"}],
                reason=f"{viewer.login}/{name} exists")
        now = now_iso()
        fork = RepoRec(id=self.store.next_id(), owner=viewer.login, name=name, description=rec.description,
                       homepage=rec.homepage, private=rec.private, default_branch=rec.default_branch,
                       created_at=now, updated_at=now, pushed_at=rec.pushed_at, fork=True, parent=rec.key)
        fork.labels = [LabelRec(id=self.store.next_id(), name=lab.name, color=lab.color,
                                description=lab.description, default=lab.default) for lab in rec.labels]
        gitops.clone_bare(self.git(rec), self.git(fork))
        if default_branch_only:
            gitops.delete_branches_except(self.git(fork), fork.default_branch)
        self.store.add_repo(fork)
        return fork

    def mark_pushed(self, rec: RepoRec) -> None:
        rec.pushed_at = now_iso()
        self.store.save(rec)

    # -- collaborators ----------------------------------------------------------------
    def target_user(self, login: str) -> UserRec:
        target = self.users(login)
        if target is None:
            raise not_found(f"no user {login!r}")
        return target

    def set_collaborator(self, rec: RepoRec, target: UserRec, permission: str) -> bool:
        """Grant a role (invitations are accepted at once). True when newly added."""
        role = normalize_role(permission)
        if role is None:
            raise validation_failed(
                [{"resource": "Repository", "code": "invalid", "field": "permission", "value": permission}],
                reason=f"unknown permission {permission!r}")
        if target.login.lower() == rec.owner.lower():
            raise validation_failed(
                [{"resource": "Repository", "code": "custom",
                  "message": "Repository owner cannot be a collaborator"}],
                reason=f"{target.login} owns {rec.full_name}")
        added = target.login.lower() not in rec.collaborators
        rec.collaborators[target.login.lower()] = role
        self.store.save(rec)
        return added

    def remove_collaborator(self, rec: RepoRec, target: UserRec) -> None:
        rec.collaborators.pop(target.login.lower(), None)
        self.store.save(rec)

    # -- labels ----------------------------------------------------------------------------
    @staticmethod
    def check_color(color: str, resource: str = "Label") -> str:
        if not _COLOR.match(color):
            raise validation_failed([{"resource": resource, "code": "invalid", "field": "color"}],
                                    reason=f"bad label color {color!r}")
        return color.lstrip("#")

    def create_label(self, rec: RepoRec, name: str, color: str | None, description: str | None) -> LabelRec:
        if not name.strip():
            raise validation_failed([{"resource": "Label", "code": "missing_field", "field": "name"}],
                                    reason="empty label name")
        if self.find_label(rec, name) is not None:
            raise validation_failed([{"resource": "Label", "code": "already_exists", "field": "name"}],
                                    reason=f"label {name!r} exists in {rec.full_name}")
        lab = LabelRec(id=self.store.next_id(), name=name,
                       color=self.check_color(color) if color is not None else "ededed",
                       description=description)
        rec.labels.append(lab)
        self.store.save(rec)
        return lab

    def update_label(self, rec: RepoRec, lab: LabelRec, *, new_name: str | None, color: str | None,
                     description: str | None, set_description: bool) -> LabelRec:
        if new_name is not None and new_name.lower() != lab.name.lower() and self.find_label(rec, new_name):
            raise validation_failed([{"resource": "Label", "code": "already_exists", "field": "name"}],
                                    reason=f"label {new_name!r} exists in {rec.full_name}")
        if color is not None:
            lab.color = self.check_color(color)
        if new_name is not None and new_name.strip():
            lab.name = new_name
        if set_description:
            lab.description = description
        self.store.save(rec)
        return lab

    def delete_label(self, rec: RepoRec, lab: LabelRec) -> None:
        rec.labels = [x for x in rec.labels if x.id != lab.id]
        for it in rec.issues.values():
            if lab.id in it.labels:
                it.labels.remove(lab.id)
        self.store.save(rec)

    def ensure_label(self, rec: RepoRec, name: str) -> LabelRec:
        """Applying an unknown label creates it, as GitHub does."""
        lab = self.find_label(rec, name)
        if lab is None:
            lab = LabelRec(id=self.store.next_id(), name=name, color="ededed")
            rec.labels.append(lab)
        return lab

    # -- issues ----------------------------------------------------------------------------
    def _touch(self, rec: RepoRec, it: IssueRec) -> None:
        it.updated_at = now_iso()
        it.updated_seq = time.time_ns()
        rec.updated_at = it.updated_at

    def _event(self, it: IssueRec, kind: str, actor: str, **extra: Any) -> None:
        it.events.append(EventRec(id=self.store.next_id(), event=kind, actor=actor,
                                  created_at=now_iso(), **extra))

    def _apply_labels(self, rec: RepoRec, it: IssueRec, names: list[str], actor: str, *,
                      replace: bool) -> None:
        wanted = [self.ensure_label(rec, n) for n in names if n.strip()]
        wanted_ids = list(dict.fromkeys(lab.id for lab in wanted))
        by_id = {lab.id: lab for lab in rec.labels}
        if replace:
            for lab_id in [i for i in it.labels if i not in wanted_ids]:
                it.labels.remove(lab_id)
                lab = by_id[lab_id]
                self._event(it, "unlabeled", actor, label={"name": lab.name, "color": lab.color})
        for lab_id in wanted_ids:
            if lab_id not in it.labels:
                it.labels.append(lab_id)
                lab = by_id[lab_id]
                self._event(it, "labeled", actor, label={"name": lab.name, "color": lab.color})

    def create_issue(self, rec: RepoRec, viewer: UserRec, role: str, *, title: str, body: str | None,
                     labels: list[str], assignees: list[str]) -> IssueRec:
        if not title.strip():
            raise validation_failed([{"resource": "Issue", "code": "missing_field", "field": "title"}],
                                    reason="empty issue title")
        now = now_iso()
        it = IssueRec(id=self.store.next_id(), number=rec.next_number, title=title, body=body,
                      user=viewer.login, created_at=now, updated_at=now, updated_seq=time.time_ns())
        rec.next_number += 1
        if at_least(role, "triage"):  # GitHub silently drops these for others
            self._apply_labels(rec, it, labels, viewer.login, replace=False)
            it.assignees = self._assignable(rec, assignees)
        rec.issues[it.number] = it
        rec.updated_at = now
        self.store.save(rec)
        return it

    def _assignable(self, rec: RepoRec, logins: list[str]) -> list[str]:
        """Users who may be assigned (triage or better); GitHub drops the others silently."""
        found = [self.users(login) for login in logins]
        return list(dict.fromkeys(u.login for u in found
                                  if u is not None and at_least(role_of(rec, u.login), "triage")))

    def update_issue(self, rec: RepoRec, it: IssueRec, viewer: UserRec, role: str, changes: dict[str, Any]) -> IssueRec:
        """PATCH semantics: title, body, state, state_reason, labels, assignees."""
        is_author = viewer.login.lower() == it.user.lower()
        if not (is_author or at_least(role, "triage")):
            raise forbidden(f"{viewer.login} ({role}) may not edit #{it.number} of {rec.full_name}")
        if "title" in changes:
            if not changes["title"].strip():
                raise validation_failed([{"resource": "Issue", "code": "missing_field", "field": "title"}],
                                        reason="empty issue title")
            it.title = changes["title"]
        if "body" in changes:
            it.body = changes["body"]
        if at_least(role, "triage"):
            if "labels" in changes:
                self._apply_labels(rec, it, changes["labels"], viewer.login, replace=True)
            if "assignees" in changes:
                it.assignees = self._assignable(rec, changes["assignees"])
        state = changes.get("state")
        reason = changes.get("state_reason")
        if state == "closed" and it.state == "open":
            self.close(rec, it, viewer.login, reason if reason in ("completed", "not_planned", "duplicate")
                       else "completed")
        elif state == "open" and it.state == "closed":
            self.reopen(rec, it, viewer.login)
        elif state is None and reason and it.state == "closed" and reason != "reopened" and not it.pull:
            it.state_reason = reason
        self._touch(rec, it)
        self.store.save(rec)
        return it

    def close(self, rec: RepoRec, it: IssueRec, actor: str, reason: str | None, commit_id: str | None = None) -> None:
        if it.state == "closed":
            return
        it.state = "closed"
        it.closed_at = now_iso()
        it.closed_by = actor
        it.state_reason = None if it.pull else reason
        if it.pull and not it.pull.merged:
            self._freeze(rec, it)
        self._event(it, "closed", actor, commit_id=commit_id, state_reason=it.state_reason)
        self._touch(rec, it)

    def reopen(self, rec: RepoRec, it: IssueRec, actor: str) -> None:
        if it.pull is not None:
            if it.pull.merged:
                raise validation_failed([{"resource": "PullRequest", "code": "custom",
                                          "message": "Cannot reopen a merged pull request"}],
                                        reason=f"#{it.number} is merged")
            it.pull.merge_base_sha = None
        it.state = "open"
        it.closed_at = None
        it.closed_by = None
        it.state_reason = None if it.pull else "reopened"
        self._event(it, "reopened", actor)
        self._touch(rec, it)

    def add_labels(self, rec: RepoRec, it: IssueRec, viewer: UserRec, names: list[str], *, replace: bool) -> None:
        self._apply_labels(rec, it, names, viewer.login, replace=replace)
        self._touch(rec, it)
        self.store.save(rec)

    def remove_label(self, rec: RepoRec, it: IssueRec, viewer: UserRec, name: str) -> None:
        lab = self.find_label(rec, name)
        if lab is None or lab.id not in it.labels:
            raise ApiError(404, "Label does not exist", reason=f"#{it.number} has no label {name!r}")
        it.labels.remove(lab.id)
        self._event(it, "unlabeled", viewer.login, label={"name": lab.name, "color": lab.color})
        self._touch(rec, it)
        self.store.save(rec)

    def add_comment(self, rec: RepoRec, it: IssueRec, viewer: UserRec, body: str) -> CommentRec:
        if not body.strip():
            raise validation_failed([{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
                                    reason="empty comment")
        now = now_iso()
        c = CommentRec(id=self.store.next_id(), user=viewer.login, body=body, created_at=now, updated_at=now)
        it.comments.append(c)
        self._touch(rec, it)
        self.store.save(rec)
        return c

    def comment_for(self, rec: RepoRec, comment_id: int) -> tuple[IssueRec, CommentRec]:
        for it in rec.issues.values():
            for c in it.comments:
                if c.id == comment_id:
                    return it, c
        raise not_found(f"{rec.full_name} has no comment {comment_id}")

    def edit_comment(self, rec: RepoRec, comment_id: int, viewer: UserRec, role: str,
                     body: str | None) -> tuple[IssueRec, CommentRec]:
        it, c = self.comment_for(rec, comment_id)
        if c.user.lower() != viewer.login.lower() and not at_least(role, "write"):
            raise forbidden(f"{viewer.login} may not change comment {comment_id}")
        if body is None:
            it.comments.remove(c)
        else:
            c.body = body
            c.updated_at = now_iso()
        self.store.save(rec)
        return it, c

    # -- issue dependencies -----------------------------------------------------------
    def issue_by_id(self, issue_id: int) -> tuple[RepoRec, IssueRec] | None:
        """An issue or PR of any repository, by its database id."""
        for rec in self.store.repos.values():
            for it in rec.issues.values():
                if it.id == issue_id:
                    return rec, it
        return None

    def blocking(self, it: IssueRec) -> list[tuple[RepoRec, IssueRec]]:
        """The issues `it` blocks (those naming it in their `blocked_by`), by number."""
        return [(rec, other) for rec in self.store.repos.values() for other in rec.issues.values()
                if it.id in other.blocked_by]

    def blockers(self, it: IssueRec) -> list[tuple[RepoRec, IssueRec]]:
        """The issues blocking `it`, in the order they were added."""
        found = [self.issue_by_id(i) for i in it.blocked_by]
        return [f for f in found if f is not None]

    def dependency_summaries(self) -> dict[int, dict[str, int]]:
        """`issue_dependencies_summary` of every issue that has dependencies, by issue id:
        `blocked_by`/`blocking` count open issues, the totals count all."""
        by_id = {it.id: it for rec in self.store.repos.values() for it in rec.issues.values()}
        out: dict[int, dict[str, int]] = {}

        def entry(issue_id: int) -> dict[str, int]:
            return out.setdefault(issue_id, dict(render.NO_DEPENDENCIES))

        for it in by_id.values():
            for blocker_id in it.blocked_by:
                blocker = by_id.get(blocker_id)
                if blocker is None:
                    continue
                mine, theirs = entry(it.id), entry(blocker_id)
                mine["total_blocked_by"] += 1
                mine["blocked_by"] += blocker.state == "open"
                theirs["total_blocking"] += 1
                theirs["blocking"] += it.state == "open"
        return out

    def add_blocked_by(self, rec: RepoRec, it: IssueRec, issue_id: int) -> None:
        """`it` is now blocked by the issue with database id `issue_id` (any repository)."""
        found = self.issue_by_id(issue_id)
        if found is None:
            raise not_found(f"no issue with id {issue_id}")
        _, blocker = found
        if it.pull is not None or blocker.pull is not None:
            raise validation_failed(
                [{"resource": "IssueDependency", "code": "custom", "field": "issue_id",
                  "message": "Pull requests cannot be used as issue dependencies"}],
                reason=f"#{it.number} or id {issue_id} is a pull request")
        if blocker.id == it.id:
            raise validation_failed(
                [{"resource": "IssueDependency", "code": "custom", "field": "issue_id",
                  "message": "An issue cannot be blocked by itself"}],
                reason=f"#{it.number} blocked by itself")
        if issue_id in it.blocked_by:
            raise validation_failed(
                [{"resource": "IssueDependency", "code": "already_exists", "field": "issue_id"}],
                reason=f"#{it.number} is already blocked by id {issue_id}")
        it.blocked_by.append(issue_id)
        self._touch(rec, it)
        self.store.save(rec)

    def remove_blocked_by(self, rec: RepoRec, it: IssueRec, issue_id: int) -> None:
        if issue_id not in it.blocked_by:
            raise not_found(f"#{it.number} of {rec.full_name} is not blocked by id {issue_id}")
        it.blocked_by.remove(issue_id)
        self._touch(rec, it)
        self.store.save(rec)

    # -- issue listing (pure over records) --------------------------------------------
    def list_issues(self, rec: RepoRec, q: dict[str, str]) -> list[IssueRec]:
        state = q.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise validation_failed([{"resource": "Issue", "field": "state", "code": "invalid"}],
                                    reason=f"bad state filter {state!r}")
        items = [i for i in rec.issues.values() if state == "all" or i.state == state]
        if q.get("labels"):
            wanted = [w.strip().lower() for w in q["labels"].split(",") if w.strip()]
            names = {lab.id: lab.name.lower() for lab in rec.labels}
            items = [i for i in items if set(wanted) <= {names.get(x) for x in i.labels}]
        if q.get("since"):
            since = parse_time(q["since"])
            if since is None:
                raise validation_failed([{"resource": "Issue", "field": "since", "code": "invalid"}],
                                        reason=f"bad since {q['since']!r}")
            items = [i for i in items if parse_time(i.updated_at) >= since]
        if q.get("creator"):
            items = [i for i in items if i.user.lower() == q["creator"].lower()]
        assignee = q.get("assignee")
        if assignee == "none":
            items = [i for i in items if not i.assignees]
        elif assignee == "*":
            items = [i for i in items if i.assignees]
        elif assignee:
            items = [i for i in items if assignee.lower() in (a.lower() for a in i.assignees)]
        sort = q.get("sort", "created")
        keys = {
            "created": lambda i: i.number,
            "updated": lambda i: (i.updated_at, i.updated_seq),
            "comments": lambda i: (len(i.comments), i.number),
        }
        if sort not in keys:
            raise validation_failed([{"resource": "Issue", "field": "sort", "code": "invalid"}],
                                    reason=f"bad sort {sort!r}")
        return sorted(items, key=keys[sort], reverse=q.get("direction", "desc") != "asc")

    def list_repo_comments(self, rec: RepoRec, q: dict[str, str]) -> list[tuple[IssueRec, CommentRec]]:
        """Every issue and PR comment of the repository (`GET /repos/{o}/{r}/issues/comments`):
        `since` keeps those updated at or after it; `sort` (created, the default, or updated)
        with `direction` (desc unless `asc`; without `sort`, ascending by id as GitHub does)."""
        found = [(it, c) for it in rec.issues.values() for c in it.comments]
        if q.get("since"):
            since = parse_time(q["since"])
            if since is None:
                raise validation_failed([{"resource": "IssueComment", "field": "since", "code": "invalid"}],
                                        reason=f"bad since {q['since']!r}")
            found = [(it, c) for it, c in found if parse_time(c.updated_at) >= since]
        sort = q.get("sort")
        keys = {"created": lambda x: (x[1].created_at, x[1].id), "updated": lambda x: (x[1].updated_at, x[1].id)}
        if sort is not None and sort not in keys:
            raise validation_failed([{"resource": "IssueComment", "field": "sort", "code": "invalid"}],
                                    reason=f"bad sort {sort!r}")
        if sort is None:
            return sorted(found, key=lambda x: x[1].id)
        return sorted(found, key=keys[sort], reverse=q.get("direction", "desc") != "asc")

    def list_pulls(self, rec: RepoRec, q: dict[str, str]) -> list[IssueRec]:
        state = q.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise validation_failed([{"resource": "PullRequest", "field": "state", "code": "invalid"}],
                                    reason=f"bad state filter {state!r}")
        items = [i for i in rec.issues.values() if i.pull and (state == "all" or i.state == state)]
        self.sync_pulls(rec, [i for i in items if i.state == "open"])
        if q.get("head"):
            owner, _, ref = q["head"].rpartition(":")
            items = [i for i in items if i.pull.head_ref == ref and (
                not owner or self._head_owner(i).lower() == owner.lower())]
        if q.get("base"):
            items = [i for i in items if i.pull.base_ref == q["base"]]
        sort = q.get("sort", "created")
        keys = {
            "created": lambda i: i.number,
            "updated": lambda i: (i.updated_at, i.updated_seq),
            "popularity": lambda i: (len(i.comments), i.number),
            "long-running": lambda i: i.number,
        }
        if sort not in keys:
            raise validation_failed([{"resource": "PullRequest", "field": "sort", "code": "invalid"}],
                                    reason=f"bad sort {sort!r}")
        default = "desc" if sort == "created" else "asc"
        return sorted(items, key=keys[sort], reverse=q.get("direction", default) == "desc")

    def _head_owner(self, it: IssueRec) -> str:
        head = self.store.repos.get(it.pull.head_repo)
        return head.owner if head else it.pull.head_repo.split("/")[0]

    # -- pull requests ---------------------------------------------------------------
    def sync_pulls(self, rec: RepoRec, items: list[IssueRec]) -> None:
        """Follow pushes: an open PR's head/base sha are the current branch tips."""
        if not items:
            return
        changed = False
        tips: dict[str, dict[str, str]] = {}
        for it in items:
            pr = it.pull
            head_repo = self.store.repos.get(pr.head_repo)
            if head_repo is None:
                continue
            if head_repo.key not in tips:
                tips[head_repo.key] = gitops.branches(self.git(head_repo))
            if rec.key not in tips:
                tips[rec.key] = gitops.branches(self.git(rec))
            head = tips[head_repo.key].get(pr.head_ref)
            base = tips[rec.key].get(pr.base_ref)
            if head and head != pr.head_sha:
                self._pin_head(rec, it, head_repo, head)
                pr.head_sha = head
                self._touch(rec, it)
                changed = True
            if base and base != pr.base_sha:
                pr.base_sha = base
                changed = True
        if changed:
            self.store.save(rec)

    def _pin_head(self, rec: RepoRec, it: IssueRec, head_repo: RepoRec, sha: str) -> None:
        """`refs/pull/N/head` in the base repository, as GitHub keeps it."""
        ref = f"refs/pull/{it.number}/head"
        if head_repo.key == rec.key:
            gitops.set_ref(self.git(rec), ref, sha)
        else:
            gitops.fetch_ref(self.git(rec), self.git(head_repo), it.pull.head_ref, ref)

    def _freeze(self, rec: RepoRec, it: IssueRec) -> None:
        pr = it.pull
        self.sync_pulls(rec, [it])
        pr.merge_base_sha = gitops.merge_base(self.git(rec), pr.base_sha, pr.head_sha) or pr.base_sha

    def _diff_base(self, rec: RepoRec, it: IssueRec) -> str:
        """Where the PR's diff starts: merge base now if open, as frozen if closed."""
        pr = it.pull
        if it.state == "open":
            self.sync_pulls(rec, [it])
            return gitops.merge_base(self.git(rec), pr.base_sha, pr.head_sha) or pr.base_sha
        return pr.merge_base_sha or pr.base_sha

    def pull_files(self, rec: RepoRec, it: IssueRec) -> list[gitops.FileChange]:
        return gitops.diff(self.git(rec), self._diff_base(rec, it), it.pull.head_sha)

    def pull_diff(self, rec: RepoRec, it: IssueRec, *, patch: bool) -> str:
        """The PR as `git diff base...head` (or its commits as patches)."""
        return gitops.diff_text(self.git(rec), self._diff_base(rec, it), it.pull.head_sha, patch=patch)

    # -- reviews ---------------------------------------------------------------------
    REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}

    def add_review(self, rec: RepoRec, it: IssueRec, viewer: UserRec, *, event: str | None, body: str,
                   commit_id: str | None) -> ReviewRec:
        """A submitted review (`event` APPROVE, REQUEST_CHANGES, COMMENT) or a pending one (None)."""
        state = self.REVIEW_EVENTS.get(event, "PENDING") if event else "PENDING"
        own = viewer.login.lower() == it.user.lower()
        if own and state in ("APPROVED", "CHANGES_REQUESTED"):
            what = "approve" if state == "APPROVED" else "request changes on"
            raise ApiError(422, "Unprocessable Entity", errors=[f"Can not {what} your own pull request"],
                           reason=f"{viewer.login} reviewed own #{it.number} ({state})")
        if state in ("CHANGES_REQUESTED", "COMMENTED") and not body.strip():
            raise ApiError(422, "Unprocessable Entity", errors=[f"Review body can't be blank for {event}"],
                           reason=f"empty {event} review")
        self.sync_pulls(rec, [it])
        review = ReviewRec(id=self.store.next_id(), user=viewer.login, state=state, body=body,
                           commit_id=commit_id or it.pull.head_sha,
                           submitted_at=None if state == "PENDING" else now_iso())
        it.pull.reviews.append(review)
        self._touch(rec, it)
        self.store.save(rec)
        return review

    @staticmethod
    def visible_reviews(it: IssueRec, login: str | None) -> list[ReviewRec]:
        """The reviews `login` sees: the submitted ones, and a pending one only its author."""
        who = login.lower() if login else None
        return [r for r in it.pull.reviews if r.state != "PENDING" or r.user.lower() == who]

    @staticmethod
    def review_decision(it: IssueRec) -> str | None:
        """GraphQL's `reviewDecision`: each reviewer's latest approving or change-requesting review
        counts; None before there is one (the sandbox has no required reviews)."""
        latest: dict[str, str] = {}
        for review in it.pull.reviews:
            if review.state in ("APPROVED", "CHANGES_REQUESTED"):
                latest[review.user.lower()] = review.state
        if "CHANGES_REQUESTED" in latest.values():
            return "CHANGES_REQUESTED"
        return "APPROVED" if latest else None

    # -- search ------------------------------------------------------------------------
    def search_issues(self, text: str, viewer: UserRec | None) -> list[tuple[RepoRec, IssueRec]]:
        """Issues and pull requests the viewer can see that fit GitHub's search syntax."""
        try:
            q = parse_query(text)
        except SearchError as exc:
            raise validation_failed([{"resource": "Search", "field": "q", "code": "invalid",
                                      "message": str(exc)}], reason=str(exc)) from None
        login = viewer.login if viewer else None
        found = [(rec, it) for rec in self.store.repos.values() if role_of(rec, login) != NONE
                 for it in rec.issues.values()
                 if matches(q, rec, it, self._head_owner(it) if it.pull else None)]
        key = sort_key(q)
        return sorted(found, key=lambda pair: key(pair[1]), reverse=not q.ascending)

    def pull_git(self, rec: RepoRec, it: IssueRec) -> PullGit:
        pr = it.pull
        path = self.git(rec)
        base = self._diff_base(rec, it)
        files = gitops.diff(path, base, pr.head_sha)
        mergeable: bool | None = None
        state = "unknown"
        if it.state == "open":
            mergeable = gitops.merge_tree(path, pr.base_sha, pr.head_sha) is not None
            state = "draft" if pr.draft else ("clean" if mergeable else "dirty")
        return PullGit(
            mergeable=mergeable, mergeable_state=state,
            commits=gitops.commit_count(path, base, pr.head_sha),
            additions=sum(f.additions for f in files), deletions=sum(f.deletions for f in files),
            changed_files=len(files),
        )

    def root_of(self, rec: RepoRec) -> RepoRec:
        """The repository at the top of a fork network."""
        seen = {rec.key}
        while rec.parent and rec.parent in self.store.repos and rec.parent not in seen:
            rec = self.store.repos[rec.parent]
            seen.add(rec.key)
        return rec

    def resolve_head(self, rec: RepoRec, head: str, head_repo_name: str | None) -> RepoRec | None:
        """The repository `head` (`branch` or `OWNER:branch`) lives in: this one or a fork."""
        owner = head.rpartition(":")[0]
        if not owner or owner.lower() == rec.owner.lower():
            return rec
        root = self.root_of(rec).key
        candidates = [r for r in self.store.repos.values()
                      if r.owner.lower() == owner.lower() and self.root_of(r).key == root]
        if head_repo_name:
            candidates = [r for r in candidates if r.name.lower() == head_repo_name.lower()]
        return candidates[0] if candidates else None

    def create_pull(self, rec: RepoRec, viewer: UserRec, *, title: str, body: str | None, head: str,
                    base: str, draft: bool, maintainer_can_modify: bool,
                    head_repo_name: str | None) -> IssueRec:
        head_repo = self.resolve_head(rec, head, head_repo_name)
        head_ref = head.rpartition(":")[2]
        base_sha = gitops.branch_sha(self.git(rec), base)
        head_sha = gitops.branch_sha(self.git(head_repo), head_ref) if head_repo else None
        errors = []
        if base_sha is None:
            errors.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if head_sha is None:
            errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if errors:
            raise validation_failed(errors, reason=f"head {head!r} or base {base!r} missing in {rec.full_name}")
        label = f"{head_repo.owner}:{head_ref}"
        for other in rec.issues.values():
            pr = other.pull
            if (pr and other.state == "open" and pr.head_repo == head_repo.key
                    and pr.head_ref == head_ref and pr.base_ref == base):
                raise validation_failed(
                    [{"resource": "PullRequest", "code": "custom",
                      "message": f"A pull request already exists for {label}."}],
                    reason=f"#{other.number} already open for {label}")
        path = self.git(rec)
        incoming = "refs/sandbox/incoming"
        if head_repo.key == rec.key:
            gitops.set_ref(path, incoming, head_sha)
        else:
            gitops.fetch_ref(path, self.git(head_repo), head_ref, incoming)
        mb = gitops.merge_base(path, base_sha, head_sha)
        shown_head = head_ref if head_repo.key == rec.key else label
        if mb is None:
            raise validation_failed(
                [{"resource": "PullRequest", "code": "custom",
                  "message": f"The {shown_head} branch has no history in common with {base}"}],
                reason=f"{shown_head} and {base} are unrelated")
        if mb == head_sha:
            raise validation_failed(
                [{"resource": "PullRequest", "code": "custom",
                  "message": f"No commits between {base} and {shown_head}"}],
                reason=f"no commits between {base} and {shown_head}")
        now = now_iso()
        it = IssueRec(id=self.store.next_id(), number=rec.next_number, title=title, body=body,
                      user=viewer.login, created_at=now, updated_at=now, updated_seq=time.time_ns())
        it.pull = PullRec(id=self.store.next_id(), head_repo=head_repo.key, head_ref=head_ref,
                          head_sha=head_sha, base_ref=base, base_sha=base_sha, draft=draft,
                          maintainer_can_modify=maintainer_can_modify)
        rec.next_number += 1
        rec.issues[it.number] = it
        gitops.set_ref(path, f"refs/pull/{it.number}/head", head_sha)
        rec.updated_at = now
        self.store.save(rec)
        return it

    def update_pull(self, rec: RepoRec, it: IssueRec, viewer: UserRec, role: str, changes: dict[str, Any]) -> IssueRec:
        if not (viewer.login.lower() == it.user.lower() or at_least(role, "write")):
            raise forbidden(f"{viewer.login} ({role}) may not edit pull #{it.number} of {rec.full_name}")
        if "base" in changes and changes["base"] != it.pull.base_ref:
            sha = gitops.branch_sha(self.git(rec), changes["base"])
            if sha is None:
                raise validation_failed([{"resource": "PullRequest", "field": "base", "code": "invalid"}],
                                        reason=f"base {changes['base']!r} missing")
            it.pull.base_ref, it.pull.base_sha = changes["base"], sha
        if "title" in changes:
            it.title = changes["title"]
        if "body" in changes:
            it.body = changes["body"]
        if "maintainer_can_modify" in changes:
            it.pull.maintainer_can_modify = changes["maintainer_can_modify"]
        if changes.get("state") == "closed":
            self.close(rec, it, viewer.login, None)
        elif changes.get("state") == "open" and it.state == "closed":
            self.reopen(rec, it, viewer.login)
        self._touch(rec, it)
        self.store.save(rec)
        return it

    def merge_pull(self, rec: RepoRec, it: IssueRec, viewer: UserRec, *, method: str,
                   title: str | None, message: str | None, sha: str | None) -> str:
        pr = it.pull
        if it.state != "open":
            raise ApiError(405, "Pull Request is not mergeable", reason=f"#{it.number} is {it.state}")
        self.sync_pulls(rec, [it])
        if pr.draft:
            raise ApiError(405, "Pull Request is still a draft", reason=f"#{it.number} is a draft")
        if sha and sha != pr.head_sha:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.",
                           reason=f"sha {sha[:7]} is not head {pr.head_sha[:7]}")
        if method == "rebase":
            raise ApiError(405, "Rebase merges are not allowed on this repository.",
                           reason="rebase merges are disabled in the sandbox")
        path = self.git(rec)
        head_label = f"{self._head_owner(it)}/{pr.head_ref}"
        if method == "squash":
            default_title = f"{it.title} (#{it.number})"
            mb = gitops.merge_base(path, pr.base_sha, pr.head_sha) or pr.base_sha
            default_message = "\n\n".join(f"* {m}" for m in reversed(gitops.commit_messages(path, mb, pr.head_sha)))
        else:
            default_title = f"Merge pull request #{it.number} from {head_label}"
            default_message = it.title
        base_before = pr.base_sha
        merge_base_before = gitops.merge_base(path, pr.base_sha, pr.head_sha) or pr.base_sha
        closes = closing_references(it.body, rec.full_name)
        for text in gitops.commit_messages(path, merge_base_before, pr.head_sha):
            closes += [n for n in closing_references(text, rec.full_name) if n not in closes]
        try:
            merged_sha = gitops.merge_into(
                path, pr.base_ref, pr.head_sha, method=method, title=title or default_title,
                message=default_message if message is None else message,
                author=gitops.author_for(viewer.login, viewer.id))
        except gitops.MergeConflict as exc:
            raise ApiError(405, "Pull Request is not mergeable", reason=str(exc)) from None
        except gitops.RefMoved:
            raise ApiError(409, "Base branch was modified. Review and try the merge again.",
                           reason=f"{pr.base_ref} moved during merge") from None
        now = now_iso()
        pr.merged, pr.merged_at, pr.merged_by, pr.merge_commit_sha = True, now, viewer.login, merged_sha
        pr.base_sha, pr.merge_base_sha = base_before, merge_base_before
        self._event(it, "merged", viewer.login, commit_id=merged_sha)
        self.close(rec, it, viewer.login, None)
        if pr.base_ref == rec.default_branch:
            for number in closes:
                target = rec.issues.get(number)
                if target is not None and target.pull is None and target.state == "open":
                    self.close(rec, target, viewer.login, "completed", commit_id=merged_sha)
        rec.pushed_at = now
        self.store.save(rec)
        return merged_sha


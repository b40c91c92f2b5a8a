"""The GraphQL objects `gh` reads and the mutations it sends, over the sandbox's records.

Each class stands for one GraphQL type; its snake_case attributes and methods are the type's
fields (graphql_api.resolve_field maps `nameWithOwner` to `name_with_owner` and passes the
field's arguments). Writes go through `Service`, so GraphQL and REST share every rule. Node ids
are the REST objects' `node_id`s; lists are connections with cursor paging.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Callable

from graphql import GraphQLError

from . import gitops
from .errors import ApiError
from .faults import RateBook
from .permissions import author_association, role_of
from .render import GHOST, Urls, node_id
from .service import Service
from .state import CommentRec, IssueRec, LabelRec, RepoRec, ReviewRec, UserRec

_NODE = re.compile(r"^0:([A-Za-z]+?)(\d+)$")


@dataclass
class Ctx:
    svc: Service
    urls: Urls
    viewer: UserRec
    rates: RateBook


def not_implemented(info) -> GraphQLError:
    return GraphQLError(f"The sandbox does not implement {info.parent_type.name}.{info.field_name}",
                        extensions={"type": "NOT_IMPLEMENTED"})


def _error(kind: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"type": kind})


def _cursor(i: int) -> str:
    return base64.b64encode(f"cursor:{i}".encode()).decode()


def _offset(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return int(base64.b64decode(cursor).decode().removeprefix("cursor:"))
    except (ValueError, binascii.Error):
        raise _error("INVALID_CURSOR_ARGUMENTS", f"`{cursor}` does not appear to be a valid cursor.") from None


def connection(items: list[Any], first: int | None = None, after: str | None = None, last: int | None = None,
               before: str | None = None, **_ignored: Any) -> dict[str, Any]:
    """A GitHub connection over `items` (already in order): nodes, edges, pageInfo, totalCount."""
    start = (_offset(after) + 1) if after is not None else 0
    end = _offset(before) if before is not None else len(items)
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= 100:
            raise _error("EXCESSIVE_PAGE_SIZE" if value > 100 else "INVALID_ARGUMENTS",
                         f"Requesting {value} records on the connection exceeds the `{name}` limit of 100 records.")
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    window = list(range(start, min(end, len(items))))
    edges = [{"cursor": _cursor(i), "node": items[i]} for i in window]
    return {
        "nodes": [e["node"] for e in edges],
        "edges": edges,
        "totalCount": len(items),
        "pageInfo": {"hasNextPage": bool(window) and window[-1] + 1 < len(items),
                     "hasPreviousPage": bool(window) and window[0] > 0,
                     "startCursor": edges[0]["cursor"] if edges else None,
                     "endCursor": edges[-1]["cursor"] if edges else None},
    }


def _parse_node(value: str) -> tuple[str, int]:
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raw = ""
    found = _NODE.match(raw)
    if not found:
        raise _error("NOT_FOUND", f"Could not resolve to a node with the global id of '{value}'")
    return found.group(1), int(found.group(2))


def _enum(value: str | None) -> str | None:
    return value.upper() if value else None


class _Obj:
    typename = ""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx


# -- users --------------------------------------------------------------------------------------
class User(_Obj):
    typename = "User"

    def __init__(self, ctx: Ctx, rec: UserRec | None) -> None:
        super().__init__(ctx)
        self.rec = rec or GHOST
        self.id = node_id("User", self.rec.id)
        self.database_id = self.rec.id
        self.login = self.rec.login
        self.name = self.rec.login
        self.email = ""
        self.is_site_admin = self.rec.site_admin
        self.created_at = self.rec.created_at
        self.url = f"{ctx.urls.base}/{self.rec.login}"
        self.resource_path = f"/{self.rec.login}"
        self.is_viewer = ctx.viewer.id == self.rec.id

    def avatar_url(self, size: int | None = None) -> str:
        return f"{self.ctx.urls.base}/avatars/u/{self.rec.id}?v=4" + (f"&s={size}" if size else "")


def _user(ctx: Ctx, login: str | None) -> User | None:
    return User(ctx, ctx.svc.users(login)) if login else None


# -- repositories ---------------------------------------------------------------------------------
class Repository(_Obj):
    typename = "Repository"

    def __init__(self, ctx: Ctx, rec: RepoRec) -> None:
        super().__init__(ctx)
        self.rec = rec
        self.id = node_id("Repository", rec.id)
        self.database_id = rec.id
        self.name = rec.name
        self.name_with_owner = rec.full_name
        self.description = rec.description or ""
        self.homepage_url = rec.homepage or ""
        self.url = ctx.urls.repo_html(rec)
        self.ssh_url = f"git@{ctx.urls.host.split(':')[0]}:{rec.full_name}.git"
        self.is_private = rec.private
        self.visibility = "PRIVATE" if rec.private else "PUBLIC"
        self.is_fork = rec.fork
        self.created_at, self.updated_at, self.pushed_at = rec.created_at, rec.updated_at, rec.pushed_at
        self.is_archived = self.is_template = self.is_mirror = self.is_locked = self.is_disabled = False
        self.is_in_organization = False
        self.has_issues_enabled = True
        self.has_wiki_enabled = self.has_projects_enabled = self.has_discussions_enabled = False
        self.merge_commit_allowed = self.squash_merge_allowed = True
        self.rebase_merge_allowed = False  # as the sandbox's REST merge refuses rebase
        self.delete_branch_on_merge = False
        self.viewer_default_merge_method = "MERGE"
        self.stargazer_count = 0
        self.watchers = {"totalCount": 0}
        self.latest_release = None
        self.primary_language = None

    @property
    def owner(self) -> User:
        return User(self.ctx, self.ctx.svc.users(self.rec.owner))

    @property
    def viewer_permission(self) -> str:
        return role_of(self.rec, self.ctx.viewer.login).upper().replace("NONE", "READ")

    @property
    def viewer_can_administer(self) -> bool:
        return self.viewer_permission == "ADMIN"

    @property
    def parent(self) -> Repository | None:
        parent = self.ctx.svc.store.repos.get(self.rec.parent) if self.rec.parent else None
        return Repository(self.ctx, parent) if parent else None

    @property
    def fork_count(self) -> int:
        return len(self.ctx.svc.forks_of(self.rec))

    @property
    def is_empty(self) -> bool:
        return not gitops.branches(self.ctx.svc.git(self.rec))

    @property
    def default_branch_ref(self) -> Ref | None:
        return self.ref(f"refs/heads/{self.rec.default_branch}")

    def ref(self, qualified_name: str) -> Ref | None:
        name = qualified_name.removeprefix("refs/heads/")
        sha = gitops.branch_sha(self.ctx.svc.git(self.rec), name)
        return Ref(self.ctx, self.rec, name, sha) if sha else None

    def _item(self, number: int) -> IssueRec:
        it = self.rec.issues.get(number)
        if it is None:
            raise _error("NOT_FOUND", f"Could not resolve to an issue or pull request with the number of {number}.")
        return it

    def issue(self, number: int) -> Issue:
        it = self._item(number)
        if it.pull is not None:
            raise _error("NOT_FOUND", f"Could not resolve to an Issue with the number of {number}.")
        return Issue(self.ctx, self.rec, it)

    def pull_request(self, number: int) -> PullRequest:
        it = self._item(number)
        if it.pull is None:
            raise _error("NOT_FOUND", f"Could not resolve to a PullRequest with the number of {number}.")
        return PullRequest(self.ctx, self.rec, it)

    def issue_or_pull_request(self, number: int) -> Issue:
        return issueish(self.ctx, self.rec, self._item(number))

    def _listed(self, pulls: bool, states: list[str] | None, labels: list[str] | None,
                order_by: dict[str, str] | None) -> list[IssueRec]:
        wanted = {s.lower() for s in states} if states else None
        names = {lab.id: lab.name.lower() for lab in self.rec.labels}
        items = [it for it in self.rec.issues.values() if (it.pull is not None) == pulls]
        if wanted:
            items = [it for it in items if (it.pull is not None and it.pull.merged and "merged" in wanted)
                     or (it.state in wanted and not (it.pull is not None and it.pull.merged and it.state == "closed"
                                                     and "closed" not in wanted))]
        if labels:
            items = [it for it in items if {n.lower() for n in labels} & {names.get(i) for i in it.labels}]
        field = (order_by or {}).get("field", "CREATED_AT")
        key: Callable[[IssueRec], Any] = {"UPDATED_AT": lambda it: (it.updated_at, it.updated_seq),
                                          "COMMENTS": lambda it: len(it.comments)}.get(field, lambda it: it.number)
        return sorted(items, key=key, reverse=(order_by or {}).get("direction", "ASC") == "DESC")

    def issues(self, states=None, labels=None, order_by=None, filter_by=None, **page) -> dict[str, Any]:
        items = self._listed(False, states, labels, order_by)
        for key, attr in (("assignee", "assignees"), ("createdBy", "user")):
            who = (filter_by or {}).get(key)
            if who:
                items = [it for it in items if who.lower() in
                         [a.lower() for a in (it.assignees if attr == "assignees" else [it.user])]]
        if (filter_by or {}).get("labels"):
            items = [it for it in items if set(n.lower() for n in filter_by["labels"]) <=
                     {lab.name.lower() for lab in self.rec.labels if lab.id in it.labels}]
        return connection([Issue(self.ctx, self.rec, it) for it in items], **page)

    def pull_requests(self, states=None, labels=None, order_by=None, head_ref_name=None, base_ref_name=None,
                      **page) -> dict[str, Any]:
        items = self._listed(True, states, labels, order_by)
        self.ctx.svc.sync_pulls(self.rec, [it for it in items if it.state == "open"])
        items = [it for it in items if (head_ref_name is None or it.pull.head_ref == head_ref_name)
                 and (base_ref_name is None or it.pull.base_ref == base_ref_name)]
        return connection([PullRequest(self.ctx, self.rec, it) for it in items], **page)

    def labels(self, query: str | None = None, order_by=None, **page) -> dict[str, Any]:
        found = [lab for lab in self.rec.labels
                 if not query or query.lower() in lab.name.lower() or query.lower() in (lab.description or "").lower()]
        if (order_by or {}).get("field") == "NAME":
            found.sort(key=lambda lab: lab.name.lower(), reverse=order_by.get("direction") == "DESC")
        return connection([Label(self.ctx, self.rec, lab) for lab in found], **page)

    def label(self, name: str) -> Label | None:
        lab = self.ctx.svc.find_label(self.rec, name)
        return Label(self.ctx, self.rec, lab) if lab else None

    def assignable_users(self, query: str | None = None, **page) -> dict[str, Any]:
        logins = [self.rec.owner] + [login for login, role in self.rec.collaborators.items() if role != "read"]
        users = [User(self.ctx, self.ctx.svc.users(login)) for login in logins]
        return connection([u for u in users if not query or query.lower() in u.login.lower()], **page)

    mentionable_users = assignable_users

    def milestones(self, **page) -> dict[str, Any]:
        return connection([], **page)

    projects = projects_v2 = repository_topics = milestones


class Ref(_Obj):
    typename = "Ref"

    def __init__(self, ctx: Ctx, rec: RepoRec, name: str, sha: str) -> None:
        super().__init__(ctx)
        self.id = node_id("Ref", int(sha[:8], 16))
        self.name, self.prefix = name, "refs/heads/"
        self.target = Commit(ctx, rec, sha)
        self.repository = Repository(ctx, rec)


class Commit(_Obj):
    typename = "Commit"

    def __init__(self, ctx: Ctx, rec: RepoRec, sha: str) -> None:
        super().__init__(ctx)
        self.rec = rec
        self.oid = sha
        self.abbreviated_oid = sha[:7]
        self.url = f"{ctx.urls.repo_html(rec)}/commit/{sha}"
        self.status_check_rollup = None  # the sandbox runs no checks
        self.status = None

    def _info(self) -> dict[str, Any]:
        return gitops.commit_info(self.ctx.svc.git(self.rec), self.oid)

    @property
    def message(self) -> str:
        return self._info()["message"]

    @property
    def message_headline(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def message_body(self) -> str:
        return self.message.partition("\n")[2].strip()

    @property
    def committed_date(self) -> str:
        return self._info()["committer"]["date"]

    @property
    def authored_date(self) -> str:
        return self._info()["author"]["date"]

    def authors(self, **page) -> dict[str, Any]:
        author = self._info()["author"]
        login = author["name"]
        return connection([{"name": author["name"], "email": author["email"],
                            "user": _user(self.ctx, login) if self.ctx.svc.users(login) else None}], **page)

    @property
    def parents(self) -> Callable[..., dict[str, Any]]:
        shas = self._info()["parents"]
        return lambda **page: connection([Commit(self.ctx, self.rec, s) for s in shas], **page)


class Label(_Obj):
    typename = "Label"

    def __init__(self, ctx: Ctx, rec: RepoRec, lab: LabelRec) -> None:
        super().__init__(ctx)
        self.id = node_id("Label", lab.id)
        self.name, self.color, self.description = lab.name, lab.color, lab.description
        self.is_default = lab.default
        self.url = f"{ctx.urls.repo_html(rec)}/labels/{lab.name}"
        self.created_at = self.updated_at = rec.created_at


# -- issues and pull requests ------------------------------------------------------------------
class Issue(_Obj):
    typename = "Issue"

    def __init__(self, ctx: Ctx, rec: RepoRec, it: IssueRec) -> None:
        super().__init__(ctx)
        self.rec, self.it = rec, it
        self.id = node_id("Issue", it.id)
        self.database_id = it.id
        self.number, self.title = it.number, it.title
        self.body = it.body or ""
        self.state = it.state.upper()
        self.state_reason = _enum(it.state_reason)
        self.closed = it.state == "closed"
        self.closed_at, self.created_at, self.updated_at = it.closed_at, it.created_at, it.updated_at
        self.locked = it.locked
        self.is_pinned = False
        self.milestone = None
        self.reaction_groups: list[Any] = []
        self.url = f"{ctx.urls.repo_html(rec)}/issues/{it.number}"
        self.author_association = author_association(rec, it.user)

    @property
    def author(self) -> User | None:
        return _user(self.ctx, self.it.user)

    @property
    def repository(self) -> Repository:
        return Repository(self.ctx, self.rec)

    @property
    def viewer_can_update(self) -> bool:
        return True

    def labels(self, **page) -> dict[str, Any]:
        by_id = {lab.id: lab for lab in self.rec.labels}
        return connection([Label(self.ctx, self.rec, by_id[i]) for i in self.it.labels if i in by_id], **page)

    def assignees(self, **page) -> dict[str, Any]:
        return connection([User(self.ctx, self.ctx.svc.users(a)) for a in self.it.assignees], **page)

    def comments(self, **page) -> dict[str, Any]:
        return connection([IssueComment(self.ctx, self.rec, self.it, c) for c in self.it.comments], **page)

    def project_cards(self, **page) -> dict[str, Any]:
        return connection([], **page)

    project_items = tracked_issues = closed_by_pull_requests_references = project_cards


def issueish(ctx: Ctx, rec: RepoRec, it: IssueRec) -> Issue:
    return PullRequest(ctx, rec, it) if it.pull is not None else Issue(ctx, rec, it)


class PullRequest(Issue):
    typename = "PullRequest"

    def __init__(self, ctx: Ctx, rec: RepoRec, it: IssueRec) -> None:
        super().__init__(ctx, rec, it)
        pr = it.pull
        self.pr = pr
        self.id = node_id("PullRequest", pr.id)
        self.database_id = pr.id
        self.url = f"{ctx.urls.repo_html(rec)}/pull/{it.number}"
        self.state = "MERGED" if pr.merged else it.state.upper()
        self.head_ref_name, self.base_ref_name = pr.head_ref, pr.base_ref
        self.is_draft = pr.draft
        self.maintainer_can_modify = pr.maintainer_can_modify
        self.merged, self.merged_at = pr.merged, pr.merged_at
        self.auto_merge_request = None
        self.is_in_merge_queue = False
        self.is_merge_queue_enabled = False
        self.merge_queue_entry = None
        self.review_requests = connection([])
        self._git = None

    def _sync(self) -> None:
        if self.it.state == "open":
            self.ctx.svc.sync_pulls(self.rec, [self.it])

    @property
    def head_ref_oid(self) -> str:
        self._sync()
        return self.pr.head_sha

    @property
    def base_ref_oid(self) -> str:
        self._sync()
        return self.pr.base_sha

    @property
    def head_repository(self) -> Repository | None:
        head = self.ctx.svc.store.repos.get(self.pr.head_repo)
        return Repository(self.ctx, head) if head else None

    @property
    def head_repository_owner(self) -> User:
        head = self.ctx.svc.store.repos.get(self.pr.head_repo)
        return User(self.ctx, self.ctx.svc.users(head.owner if head else self.pr.head_repo.split("/")[0]))

    @property
    def is_cross_repository(self) -> bool:
        return self.pr.head_repo != self.rec.key

    @property
    def base_ref(self) -> Ref | None:
        return Repository(self.ctx, self.rec).ref(self.pr.base_ref)

    @property
    def head_ref(self) -> Ref | None:
        head = self.ctx.svc.store.repos.get(self.pr.head_repo)
        return Repository(self.ctx, head).ref(self.pr.head_ref) if head else None

    @property
    def merged_by(self) -> User | None:
        return _user(self.ctx, self.pr.merged_by)

    @property
    def merge_commit(self) -> Commit | None:
        return Commit(self.ctx, self.rec, self.pr.merge_commit_sha) if self.pr.merge_commit_sha else None

    @property
    def potential_merge_commit(self) -> None:
        return None

    def _pull_git(self):
        if self._git is None:
            self._git = self.ctx.svc.pull_git(self.rec, self.it)
        return self._git

    @property
    def mergeable(self) -> str:
        value = self._pull_git().mergeable
        return "UNKNOWN" if value is None else ("MERGEABLE" if value else "CONFLICTING")

    @property
    def merge_state_status(self) -> str:
        return self._pull_git().mergeable_state.upper()

    @property
    def additions(self) -> int:
        return self._pull_git().additions

    @property
    def deletions(self) -> int:
        return self._pull_git().deletions

    @property
    def changed_files(self) -> int:
        return self._pull_git().changed_files

    def files(self, **page) -> dict[str, Any]:
        files = self.ctx.svc.pull_files(self.rec, self.it)
        change = {"added": "ADDED", "removed": "DELETED", "renamed": "RENAMED", "copied": "COPIED"}
        return connection([{"path": f.filename, "additions": f.additions, "deletions": f.deletions,
                            "changeType": change.get(f.status, "MODIFIED")} for f in files], **page)

    def commits(self, **page) -> dict[str, Any]:
        self._sync()
        base = self.pr.merge_base_sha or gitops.merge_base(self.ctx.svc.git(self.rec), self.pr.base_sha,
                                                           self.pr.head_sha) or self.pr.base_sha
        shas = gitops.commit_shas(self.ctx.svc.git(self.rec), base, self.pr.head_sha)
        return connection([{"commit": Commit(self.ctx, self.rec, s), "id": node_id("PullRequestCommit", i),
                            "url": f"{self.url}/commits/{s}"} for i, s in enumerate(shas)], **page)

    @property
    def review_decision(self) -> str | None:
        return self.ctx.svc.review_decision(self.it)

    def reviews(self, states: list[str] | None = None, author: str | None = None, **page) -> dict[str, Any]:
        found = [r for r in self.ctx.svc.visible_reviews(self.it, self.ctx.viewer.login)
                 if (not states or r.state in states) and (not author or r.user.lower() == author.lower())]
        return connection([PullRequestReview(self.ctx, self.rec, self.it, r) for r in found], **page)

    def latest_reviews(self, **page) -> dict[str, Any]:
        latest: dict[str, ReviewRec] = {}
        for r in self.pr.reviews:
            if r.state != "PENDING":
                latest[r.user.lower()] = r
        return connection([PullRequestReview(self.ctx, self.rec, self.it, r) for r in latest.values()], **page)

    latest_opinionated_reviews = latest_reviews

    def closing_issues_references(self, **page) -> dict[str, Any]:
        from .closing import closing_references

        numbers = closing_references(self.it.body, self.rec.full_name)
        found = [self.rec.issues[n] for n in numbers if n in self.rec.issues and self.rec.issues[n].pull is None]
        return connection([Issue(self.ctx, self.rec, it) for it in found], **page)


class IssueComment(_Obj):
    typename = "IssueComment"

    def __init__(self, ctx: Ctx, rec: RepoRec, it: IssueRec, c: CommentRec) -> None:
        super().__init__(ctx)
        self.rec, self.it, self.c = rec, it, c
        self.id = node_id("IssueComment", c.id)
        self.database_id = c.id
        self.body = c.body
        self.created_at, self.updated_at = c.created_at, c.updated_at
        kind = "pull" if it.pull else "issues"
        self.url = f"{ctx.urls.repo_html(rec)}/{kind}/{it.number}#issuecomment-{c.id}"
        self.author_association = author_association(rec, c.user)
        self.includes_created_edit = False
        self.is_minimized = False
        self.minimized_reason = None
        self.reaction_groups: list[Any] = []
        self.viewer_did_author = c.user.lower() == ctx.viewer.login.lower()

    @property
    def author(self) -> User | None:
        return _user(self.ctx, self.c.user)

    @property
    def issue(self) -> Issue:
        return Issue(self.ctx, self.rec, self.it)


class PullRequestReview(_Obj):
    typename = "PullRequestReview"

    def __init__(self, ctx: Ctx, rec: RepoRec, it: IssueRec, r: ReviewRec) -> None:
        super().__init__(ctx)
        self.rec, self.r = rec, r
        self.id = node_id("PullRequestReview", r.id)
        self.database_id = r.id
        self.body, self.state = r.body, r.state
        self.submitted_at = r.submitted_at
        self.created_at = r.submitted_at
        self.url = f"{ctx.urls.repo_html(rec)}/pull/{it.number}#pullrequestreview-{r.id}"
        self.author_association = author_association(rec, r.user)
        self.includes_created_edit = False
        self.reaction_groups: list[Any] = []
        self.commit = Commit(ctx, rec, r.commit_id)

    @property
    def author(self) -> User | None:
        return _user(self.ctx, self.r.user)


# -- the roots --------------------------------------------------------------------------------------
def _api(call: Callable[[], Any]) -> Any:
    """Run a Service call; its ApiError reaches the client in GitHub's GraphQL error shape."""
    try:
        return call()
    except ApiError as exc:
        raise GraphQLError(exc.message, original_error=exc) from None


class Query(_Obj):
    typename = "Query"

    @property
    def viewer(self) -> User:
        return User(self.ctx, self.ctx.viewer)

    def user(self, login: str) -> User | None:
        return _user(self.ctx, login) if self.ctx.svc.users(login) else None

    repository_owner = user

    def repository(self, owner: str, name: str, follow_renames: bool = True) -> Repository:
        try:
            rec, _ = self.ctx.svc.repo_for(owner, name, self.ctx.viewer)
        except ApiError:
            raise _error("NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'.") from None
        return Repository(self.ctx, rec)

    def node(self, id: str) -> Any:  # noqa: A002 - the schema's name
        return find_node(self.ctx, id)

    def nodes(self, ids: list[str]) -> list[Any]:
        return [find_node(self.ctx, i) for i in ids]

    def search(self, query: str, type: str, **page) -> dict[str, Any]:  # noqa: A002
        if type != "ISSUE":
            raise _error("NOT_IMPLEMENTED", f"The sandbox searches issues and pull requests only, not {type}")
        found = _api(lambda: self.ctx.svc.search_issues(query, self.ctx.viewer))
        result = connection([issueish(self.ctx, rec, it) for rec, it in found], **page)
        return {**result, "issueCount": len(found)}

    def rate_limit(self, dry_run: bool = False) -> dict[str, Any]:
        from datetime import datetime, timezone

        peek = self.ctx.rates.peek(f"graphql:user:{self.ctx.viewer.login}")
        reset = datetime.fromtimestamp(peek["reset"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"limit": peek["limit"], "remaining": peek["remaining"], "used": peek["used"],
                "resetAt": reset, "cost": 1, "nodeCount": 0}


def _locate(ctx: Ctx, kind: str, ident: int) -> tuple[RepoRec, Any]:
    """The record a node id names, with its repository."""
    for rec in ctx.svc.store.repos.values():
        if kind == "Repository" and rec.id == ident:
            return rec, rec
        if kind == "Label":
            for lab in rec.labels:
                if lab.id == ident:
                    return rec, lab
        for it in rec.issues.values():
            if kind == "Issue" and it.id == ident or kind == "PullRequest" and it.pull and it.pull.id == ident:
                return rec, it
            for c in it.comments if kind == "IssueComment" else ():
                if c.id == ident:
                    return rec, (it, c)
            for r in it.pull.reviews if kind == "PullRequestReview" and it.pull else ():
                if r.id == ident:
                    return rec, (it, r)
    raise _error("NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id(kind, ident)}'")


def find_node(ctx: Ctx, value: str) -> Any:
    kind, ident = _parse_node(value)
    if kind == "User":
        found = next((u for u in ctx.svc.store.glob.users.values() if u.id == ident), None)
        if found is None:
            raise _error("NOT_FOUND", f"Could not resolve to a node with the global id of '{value}'")
        return User(ctx, found)
    rec, obj = _locate(ctx, kind, ident)
    if role_of(rec, ctx.viewer.login) == "none":
        raise _error("NOT_FOUND", f"Could not resolve to a node with the global id of '{value}'")
    if kind == "Repository":
        return Repository(ctx, rec)
    if kind == "Label":
        return Label(ctx, rec, obj)
    if kind in ("Issue", "PullRequest"):
        return issueish(ctx, rec, obj)
    if kind == "IssueComment":
        return IssueComment(ctx, rec, *obj)
    return PullRequestReview(ctx, rec, *obj)


class Mutation(_Obj):
    """The mutations `gh` sends; each answers its payload type as a dict."""

    def _issueish(self, value: str, need: str = "read") -> tuple[RepoRec, IssueRec, str]:
        kind, ident = _parse_node(value)
        if kind not in ("Issue", "PullRequest"):
            raise _error("NOT_FOUND", f"Could not resolve to an Issue or PullRequest with the global id of '{value}'")
        rec, it = _locate(self.ctx, kind, ident)
        _, role = _api(lambda: self.ctx.svc.repo_for(rec.owner, rec.name, self.ctx.viewer, need))
        return rec, it, role

    def _label_names(self, rec: RepoRec, ids: list[str]) -> list[str]:
        names = []
        for value in ids:
            kind, ident = _parse_node(value)
            lab = next((lab for lab in rec.labels if lab.id == ident), None) if kind == "Label" else None
            if lab is None:
                raise _error("NOT_FOUND", f"Could not resolve to a Label with the global id of '{value}'")
            names.append(lab.name)
        return names

    def _logins(self, ids: list[str] | None) -> list[str]:
        return [find_node(self.ctx, value).login for value in ids or []]

    def _payload(self, inp: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return {"clientMutationId": inp.get("clientMutationId"), **fields}

    def add_comment(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, _ = self._issueish(input["subjectId"])
        c = _api(lambda: self.ctx.svc.add_comment(rec, it, self.ctx.viewer, input["body"]))
        comment = IssueComment(self.ctx, rec, it, c)
        edge = {"cursor": _cursor(len(it.comments) - 1), "node": comment}
        return self._payload(input, commentEdge=edge, timelineEdge=edge, subject=issueish(self.ctx, rec, it))

    def add_labels_to_labelable(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, _ = self._issueish(input["labelableId"], "triage")
        names = self._label_names(rec, input.get("labelIds") or [])
        _api(lambda: self.ctx.svc.add_labels(rec, it, self.ctx.viewer, names, replace=False))
        return self._payload(input, labelable=issueish(self.ctx, rec, it))

    def remove_labels_from_labelable(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, _ = self._issueish(input["labelableId"], "triage")
        for name in self._label_names(rec, input.get("labelIds") or []):
            lab = self.ctx.svc.find_label(rec, name)
            if lab is not None and lab.id in it.labels:
                _api(lambda: self.ctx.svc.remove_label(rec, it, self.ctx.viewer, name))
        return self._payload(input, labelable=issueish(self.ctx, rec, it))

    def _repo(self, value: str) -> tuple[RepoRec, str]:
        kind, ident = _parse_node(value)
        if kind != "Repository":
            raise _error("NOT_FOUND", f"Could not resolve to a Repository with the global id of '{value}'")
        rec, _ = _locate(self.ctx, kind, ident)
        return _api(lambda: self.ctx.svc.repo_for(rec.owner, rec.name, self.ctx.viewer))

    def create_issue(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, role = self._repo(input["repositoryId"])
        for unsupported in ("milestoneId", "projectIds", "issueTemplate", "parentIssueId", "issueTypeId"):
            if input.get(unsupported):
                raise _error("NOT_IMPLEMENTED", f"The sandbox does not implement createIssue's {unsupported}")
        it = _api(lambda: self.ctx.svc.create_issue(
            rec, self.ctx.viewer, role, title=input["title"], body=input.get("body"),
            labels=self._label_names(rec, input.get("labelIds") or []), assignees=self._logins(input.get("assigneeIds"))))
        return self._payload(input, issue=Issue(self.ctx, rec, it))

    def _update(self, rec: RepoRec, it: IssueRec, role: str, inp: dict[str, Any]) -> None:
        changes: dict[str, Any] = {k: inp[k] for k in ("title", "body") if inp.get(k) is not None}
        if inp.get("labelIds") is not None:
            changes["labels"] = self._label_names(rec, inp["labelIds"])
        if inp.get("assigneeIds") is not None:
            changes["assignees"] = self._logins(inp["assigneeIds"])
        if inp.get("state"):
            changes["state"] = inp["state"].lower()
        for unsupported in ("milestoneId", "projectIds", "projectV2Ids"):
            if inp.get(unsupported):
                raise _error("NOT_IMPLEMENTED", f"The sandbox does not implement {unsupported}")
        if it.pull is not None:
            if inp.get("baseRefName"):
                changes["base"] = inp["baseRefName"]
            if changes.pop("assignees", None) is not None:
                raise _error("NOT_IMPLEMENTED", "The sandbox does not implement assignees on pull requests")
            labels = changes.pop("labels", None)
            _api(lambda: self.ctx.svc.update_pull(rec, it, self.ctx.viewer, role, changes))
            if labels is not None:
                _api(lambda: self.ctx.svc.add_labels(rec, it, self.ctx.viewer, labels, replace=True))
        else:
            _api(lambda: self.ctx.svc.update_issue(rec, it, self.ctx.viewer, role, changes))

    def update_issue(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, role = self._issueish(input["id"])
        self._update(rec, it, role, input)
        return self._payload(input, issue=Issue(self.ctx, rec, it))

    def close_issue(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, role = self._issueish(input["issueId"])
        reason = (input.get("stateReason") or "COMPLETED").lower()
        _api(lambda: self.ctx.svc.update_issue(rec, it, self.ctx.viewer, role,
                                               {"state": "closed", "state_reason": reason}))
        return self._payload(input, issue=Issue(self.ctx, rec, it))

    def reopen_issue(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, role = self._issueish(input["issueId"])
        _api(lambda: self.ctx.svc.update_issue(rec, it, self.ctx.viewer, role, {"state": "open"}))
        return self._payload(input, issue=Issue(self.ctx, rec, it))

    def create_pull_request(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, _ = self._repo(input["repositoryId"])
        head = input["headRefName"]
        if input.get("headRepositoryId"):
            head_rec, _ = self._repo(input["headRepositoryId"])
            if head_rec.key != rec.key and ":" not in head:
                head = f"{head_rec.owner}:{head}"
        it = _api(lambda: self.ctx.svc.create_pull(
            rec, self.ctx.viewer, title=input["title"], body=input.get("body"), head=head,
            base=input["baseRefName"], draft=bool(input.get("draft")),
            maintainer_can_modify=bool(input.get("maintainerCanModify")), head_repo_name=None))
        return self._payload(input, pullRequest=PullRequest(self.ctx, rec, it))

    def update_pull_request(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, role = self._issueish(input["pullRequestId"])
        self._update(rec, it, role, input)
        return self._payload(input, pullRequest=PullRequest(self.ctx, rec, it))

    def close_pull_request(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, role = self._issueish(input["pullRequestId"])
        _api(lambda: self.ctx.svc.update_pull(rec, it, self.ctx.viewer, role, {"state": "closed"}))
        return self._payload(input, pullRequest=PullRequest(self.ctx, rec, it))

    def reopen_pull_request(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, role = self._issueish(input["pullRequestId"])
        _api(lambda: self.ctx.svc.update_pull(rec, it, self.ctx.viewer, role, {"state": "open"}))
        return self._payload(input, pullRequest=PullRequest(self.ctx, rec, it))

    def merge_pull_request(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, _ = self._issueish(input["pullRequestId"], "write")
        _api(lambda: self.ctx.svc.merge_pull(
            rec, it, self.ctx.viewer, method=(input.get("mergeMethod") or "MERGE").lower(),
            title=input.get("commitHeadline"), message=input.get("commitBody"), sha=input.get("expectedHeadOid")))
        return self._payload(input, pullRequest=PullRequest(self.ctx, rec, it))

    def add_pull_request_review(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        rec, it, _ = self._issueish(input["pullRequestId"])
        if input.get("comments") or input.get("threads"):
            raise _error("NOT_IMPLEMENTED", "The sandbox does not implement review comments on lines")
        event = input.get("event")
        review = _api(lambda: self.ctx.svc.add_review(rec, it, self.ctx.viewer, event=event,
                                                      body=input.get("body") or "", commit_id=input.get("commitOID")))
        return self._payload(input, pullRequestReview=PullRequestReview(self.ctx, rec, it, review))

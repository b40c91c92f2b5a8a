"""GitHub REST endpoints (mounted under /api/v3): parse the request, call `Service`, render.

Path parameter names match GitHub's route templates so request counts and error
`documentation_url`s can be keyed by them.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from fastapi import APIRouter, Request
from starlette.responses import Response

from . import render
from .context import Sandbox, json_response
from .bodies import MISSING, field, one_of, parse_json, require_object
from .errors import ApiError, not_found, requires_auth
from .paging import link_header, page_params, page_slice
from .permissions import role_of
from .render import Urls
from .service import Service
from .state import UserRec

router = APIRouter()
REPO = "/repos/{owner}/{repo}"
PUSH_TO_VIEW = "Must have push access to view repository collaborators."


# -- request helpers ------------------------------------------------------------------------
def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox


def _svc(request: Request) -> Service:
    return _sb(request).service


def _viewer(request: Request) -> UserRec | None:
    return getattr(request.state, "viewer", None)


def _need_viewer(request: Request) -> UserRec:
    user = _viewer(request)
    if user is None:
        raise requires_auth()
    return user


def _urls(request: Request) -> Urls:
    return Urls(f"{request.url.scheme}://{request.url.netloc}")


async def _body(request: Request) -> dict[str, Any]:
    return require_object(parse_json(await request.body()))


def _query(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _paged(request: Request, items: Sequence[Any], render_one: Callable[[Any], Any],
           wrap: Callable[[list[Any], int], Any] = lambda page, _total: page) -> Response:
    """One page of `items` with GitHub's `link` header; `wrap(page, total)` shapes the body."""
    page, per_page = page_params(_query(request))
    chunk = page_slice(items, page, per_page)
    link = link_header(f"{request.url.scheme}://{request.url.netloc}{request.url.path}",
                       list(request.query_params.multi_items()), page, per_page, len(items))
    return json_response(wrap([render_one(x) for x in chunk], len(items)), headers={"link": link} if link else None)


def _issue_json(request: Request, rec: Any, it: Any,
                summaries: dict[int, dict[str, int]] | None = None) -> dict[str, Any]:
    """An issue with its `issue_dependencies_summary` (`summaries`: computed once per listing)."""
    svc = _svc(request)
    found = (svc.dependency_summaries() if summaries is None else summaries).get(it.id)
    return render.issue(_urls(request), rec, it, svc.users, found)


def _label_names(value: Any) -> list[str]:
    """A label list as GitHub accepts it: names, `{"name": ...}` objects, or one string."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ApiError(422, "Invalid request.\n\nFor 'properties/labels', value is not an array.",
                       reason=f"labels is {type(value).__name__}")
    names = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            names.append(item["name"])
        elif isinstance(item, str):
            names.append(item)
        else:
            raise ApiError(422, "Invalid request.\n\nFor 'items', the labels are not strings.",
                           reason=f"bad label item {item!r}")
    return names


def _str_or_int(value: Any) -> str:
    return str(value)


# -- users and limits -------------------------------------------------------------------------
@router.get("/user")
async def get_user(request: Request) -> Response:
    viewer = _need_viewer(request)
    public, private = _svc(request).repo_counts(viewer.login)
    return json_response(render.private_user(_urls(request), viewer, public, private))


@router.get("/users/{username}")
async def get_a_user(request: Request, username: str) -> Response:
    svc = _svc(request)
    user = svc.users(username)
    if user is None:
        raise not_found(f"no user {username!r}")
    return json_response(render.public_user(_urls(request), user, svc.repo_counts(user.login)[0]))


@router.get("/rate_limit")
async def rate_limit(request: Request) -> Response:
    viewer = _viewer(request)
    client = request.client.host if request.client else "unknown"
    key = f"user:{viewer.login}" if viewer else f"ip:{client}"
    return json_response(render.rate_limit(_sb(request).rates.peek(key)))


# -- repositories ------------------------------------------------------------------------------
@router.post("/user/repos")
async def create_repo(request: Request) -> Response:
    viewer = _need_viewer(request)
    body = await _body(request)
    name = field(body, "name", "string", required=True)
    description = field(body, "description", "string", "null")
    homepage = field(body, "homepage", "string", "null")
    private = field(body, "private", "boolean")
    auto_init = field(body, "auto_init", "boolean")
    svc = _svc(request)
    rec = svc.create_repo(
        viewer, name, description=None if description is MISSING else description,
        homepage=None if homepage is MISSING else homepage,
        private=private is True, auto_init=auto_init is True)
    return json_response(svc.repo_json(_urls(request), rec, viewer, full=True), 201,
                         {"location": f"{_urls(request).repo_api(rec)}"})


@router.get(REPO)
async def get_repo(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    return json_response(svc.repo_json(_urls(request), rec, _viewer(request), full=True))


@router.get(REPO + "/forks")
async def list_forks(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    viewer = _viewer(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    forks = [f for f in svc.forks_of(rec) if role_of(f, viewer.login if viewer else None) != "none"]
    forks.sort(key=lambda f: f.created_at, reverse=True)
    return _paged(request, forks, lambda f: svc.repo_json(_urls(request), f, viewer, full=False))


@router.post(REPO + "/forks")
async def create_fork(request: Request, owner: str, repo: str) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    body = await _body(request)
    name = field(body, "name", "string")
    only = field(body, "default_branch_only", "boolean")
    fork = svc.fork(rec, viewer, name=None if name is MISSING else name, default_branch_only=only is True)
    return json_response(svc.repo_json(_urls(request), fork, viewer, full=True), 202)


@router.get(REPO + "/branches")
async def list_branches(request: Request, owner: str, repo: str) -> Response:
    from . import gitops
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    tips = sorted(gitops.branches(svc.git(rec)).items())
    return _paged(request, tips, lambda t: render.short_branch(_urls(request), rec, t[0], t[1]))


@router.get(REPO + "/branches/{branch:path}")
async def get_branch(request: Request, owner: str, repo: str, branch: str) -> Response:
    from . import gitops
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    sha = gitops.branch_sha(svc.git(rec), branch)
    if sha is None:
        raise ApiError(404, "Branch not found", reason=f"{rec.full_name} has no branch {branch!r}")
    info = gitops.commit_info(svc.git(rec), sha)
    return json_response(render.branch(_urls(request), rec, branch, info, svc.users))


# -- collaborators -----------------------------------------------------------------------------
@router.get(REPO + "/collaborators")
async def list_collaborators(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request), "write", PUSH_TO_VIEW)
    people = [(svc.users(rec.owner), "admin")] + [
        (svc.users(login), role) for login, role in sorted(rec.collaborators.items())]
    people = [(u, r) for u, r in people if u is not None]
    return _paged(request, people, lambda p: render.collaborator(_urls(request), p[0], p[1]))


@router.get(REPO + "/collaborators/{username}")
async def check_collaborator(request: Request, owner: str, repo: str, username: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request), "write", PUSH_TO_VIEW)
    if username.lower() == rec.owner.lower() or username.lower() in rec.collaborators:
        return json_response(None, 204)
    raise not_found(f"{username} is not a collaborator on {rec.full_name}")


@router.put(REPO + "/collaborators/{username}")
async def add_collaborator(request: Request, owner: str, repo: str, username: str) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer, "admin")
    body = await _body(request)
    permission = field(body, "permission", "string")
    target = svc.target_user(username)
    added = svc.set_collaborator(rec, target, "push" if permission is MISSING else permission)
    if not added:
        return json_response(None, 204)
    inv = render.invitation(_urls(request), rec, svc.users, svc.store.next_id(), target, viewer,
                            rec.collaborators[target.login.lower()], rec.updated_at)
    svc.store.save_global()
    return json_response(inv, 201)


@router.delete(REPO + "/collaborators/{username}")
async def remove_collaborator(request: Request, owner: str, repo: str, username: str) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    target = svc.target_user(username)
    need = "read" if target.login.lower() == viewer.login.lower() else "admin"
    rec, _ = svc.repo_for(owner, repo, viewer, need)
    svc.remove_collaborator(rec, target)
    return json_response(None, 204)


@router.get(REPO + "/collaborators/{username}/permission")
async def collaborator_permission(request: Request, owner: str, repo: str, username: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request), "write",
                          "Must have push access to view collaborator permission.")
    target = svc.target_user(username)
    return json_response(render.permission(_urls(request), target, role_of(rec, target.login)))


# -- labels ---------------------------------------------------------------------------------------
@router.get(REPO + "/labels")
async def list_labels(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    return _paged(request, rec.labels, lambda lab: render.label(_urls(request), rec, lab))


@router.post(REPO + "/labels")
async def create_label(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request), "write")
    body = await _body(request)
    name = field(body, "name", "string", required=True)
    color = field(body, "color", "string")
    description = field(body, "description", "string", "null")
    lab = svc.create_label(rec, name, None if color is MISSING else color,
                           None if description is MISSING else description)
    return json_response(render.label(_urls(request), rec, lab), 201,
                         {"location": render.label_url(_urls(request), rec, lab.name)})


@router.get(REPO + "/labels/{name:path}")
async def get_label(request: Request, owner: str, repo: str, name: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    return json_response(render.label(_urls(request), rec, svc.label_for(rec, name)))


@router.patch(REPO + "/labels/{name:path}")
async def update_label(request: Request, owner: str, repo: str, name: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request), "write")
    lab = svc.label_for(rec, name)
    body = await _body(request)
    new_name = field(body, "new_name", "string")
    color = field(body, "color", "string")
    description = field(body, "description", "string", "null")
    svc.update_label(rec, lab, new_name=None if new_name is MISSING else new_name,
                     color=None if color is MISSING else color,
                     description=None if description is MISSING else description,
                     set_description=description is not MISSING)
    return json_response(render.label(_urls(request), rec, lab))


@router.delete(REPO + "/labels/{name:path}")
async def delete_label(request: Request, owner: str, repo: str, name: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request), "write")
    svc.delete_label(rec, svc.label_for(rec, name))
    return json_response(None, 204)


# -- search -----------------------------------------------------------------------------------------
@router.get("/search/issues")
async def search_issues(request: Request) -> Response:
    svc = _svc(request)
    q = _query(request).get("q")
    if not q:
        raise ApiError(422, "Validation Failed", reason="search without q",
                       errors=[{"resource": "Search", "field": "q", "code": "missing"}])
    found = svc.search_issues(q, _viewer(request))
    summaries = svc.dependency_summaries()
    return _paged(request, found, lambda pair: _issue_json(request, pair[0], pair[1], summaries),
                  render.search_result)


# -- issues -----------------------------------------------------------------------------------------
@router.get(REPO + "/issues")
async def list_issues(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    items = svc.list_issues(rec, _query(request))
    summaries = svc.dependency_summaries()
    return _paged(request, items, lambda it: _issue_json(request, rec, it, summaries))


@router.post(REPO + "/issues")
async def create_issue(request: Request, owner: str, repo: str) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, role = svc.repo_for(owner, repo, viewer)
    body = await _body(request)
    title = field(body, "title", "string", "integer", required=True)
    text = field(body, "body", "string", "null")
    labels = field(body, "labels", "array")
    assignees = field(body, "assignees", "array")
    assignee = field(body, "assignee", "string", "null")
    who = [] if assignees is MISSING else [a for a in assignees if isinstance(a, str)]
    if isinstance(assignee, str):
        who.append(assignee)
    it = svc.create_issue(rec, viewer, role, title=_str_or_int(title),
                          body=None if text is MISSING else text,
                          labels=[] if labels is MISSING else _label_names(labels), assignees=who)
    data = _issue_json(request, rec, it)
    return json_response(data, 201, {"location": data["url"]})


@router.get(REPO + "/issues/comments")
async def list_repo_comments(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    found = svc.list_repo_comments(rec, _query(request))
    return _paged(request, found, lambda x: render.comment(_urls(request), rec, x[0], x[1], svc.users))


@router.get(REPO + "/issues/comments/{comment_id:int}")
async def get_comment(request: Request, owner: str, repo: str, comment_id: int) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it, c = svc.comment_for(rec, comment_id)
    return json_response(render.comment(_urls(request), rec, it, c, svc.users))


@router.patch(REPO + "/issues/comments/{comment_id:int}")
async def update_comment(request: Request, owner: str, repo: str, comment_id: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, role = svc.repo_for(owner, repo, viewer)
    body = await _body(request)
    text = field(body, "body", "string", required=True)
    it, c = svc.edit_comment(rec, comment_id, viewer, role, text)
    return json_response(render.comment(_urls(request), rec, it, c, svc.users))


@router.delete(REPO + "/issues/comments/{comment_id:int}")
async def delete_comment(request: Request, owner: str, repo: str, comment_id: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, role = svc.repo_for(owner, repo, viewer)
    svc.edit_comment(rec, comment_id, viewer, role, None)
    return json_response(None, 204)


@router.get(REPO + "/issues/{issue_number:int}")
async def get_issue(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it = svc.issue_for(rec, issue_number)
    return json_response(_issue_json(request, rec, it))


@router.patch(REPO + "/issues/{issue_number:int}")
async def update_issue(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, role = svc.repo_for(owner, repo, viewer)
    it = svc.issue_for(rec, issue_number)
    body = await _body(request)
    changes: dict[str, Any] = {}
    title = field(body, "title", "string", "integer", "null")
    if title is not MISSING and title is not None:
        changes["title"] = _str_or_int(title)
    text = field(body, "body", "string", "null")
    if text is not MISSING:
        changes["body"] = text
    state = one_of(body, "state", ("open", "closed"))
    if state is not MISSING:
        changes["state"] = state
    reason = one_of(body, "state_reason", ("completed", "not_planned", "duplicate", "reopened"),
                    nullable=True)
    if reason is not MISSING:
        changes["state_reason"] = reason
    labels = field(body, "labels", "array", "null")
    if labels is not MISSING:
        changes["labels"] = _label_names(labels or [])
    assignees = field(body, "assignees", "array", "null")
    if assignees is not MISSING:
        changes["assignees"] = [a for a in assignees or [] if isinstance(a, str)]
    assignee = field(body, "assignee", "string", "null")
    if assignee is not MISSING and "assignees" not in changes:
        changes["assignees"] = [assignee] if assignee else []
    svc.update_issue(rec, it, viewer, role, changes)
    return json_response(_issue_json(request, rec, it))


@router.get(REPO + "/issues/{issue_number:int}/labels")
async def list_issue_labels(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it = svc.issue_for(rec, issue_number)
    by_id = {lab.id: lab for lab in rec.labels}
    labels = [by_id[i] for i in it.labels if i in by_id]
    return _paged(request, labels, lambda lab: render.label(_urls(request), rec, lab))


async def _labels_body(request: Request) -> list[str]:
    body = parse_json(await request.body())
    if isinstance(body, dict):
        if "labels" not in body:
            raise ApiError(422, 'Invalid request.\n\n"labels" wasn\'t supplied.', reason="no labels key")
        body = body["labels"]
    return _label_names(body)


async def _change_labels(request: Request, owner: str, repo: str, issue_number: int,
                         *, replace: bool) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer, "triage")
    it = svc.issue_for(rec, issue_number)
    svc.add_labels(rec, it, viewer, await _labels_body(request), replace=replace)
    return json_response(render.issue_labels(_urls(request), rec, it))


@router.post(REPO + "/issues/{issue_number:int}/labels")
async def add_issue_labels(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    return await _change_labels(request, owner, repo, issue_number, replace=False)


@router.put(REPO + "/issues/{issue_number:int}/labels")
async def set_issue_labels(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    return await _change_labels(request, owner, repo, issue_number, replace=True)


@router.delete(REPO + "/issues/{issue_number:int}/labels")
async def clear_issue_labels(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer, "triage")
    it = svc.issue_for(rec, issue_number)
    svc.add_labels(rec, it, viewer, [], replace=True)
    return json_response(None, 204)


@router.delete(REPO + "/issues/{issue_number:int}/labels/{name:path}")
async def remove_issue_label(request: Request, owner: str, repo: str, issue_number: int,
                             name: str) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer, "triage")
    it = svc.issue_for(rec, issue_number)
    svc.remove_label(rec, it, viewer, name)
    return json_response(render.issue_labels(_urls(request), rec, it))


@router.get(REPO + "/issues/{issue_number:int}/comments")
async def list_comments(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it = svc.issue_for(rec, issue_number)
    comments = it.comments
    since = _query(request).get("since")
    if since:
        from .service import parse_time
        when = parse_time(since)
        if when is None:
            raise ApiError(422, "Validation Failed", reason=f"bad since {since!r}",
                           errors=[{"resource": "IssueComment", "field": "since", "code": "invalid"}])
        comments = [c for c in comments if parse_time(c.updated_at) >= when]
    return _paged(request, comments, lambda c: render.comment(_urls(request), rec, it, c, svc.users))


@router.post(REPO + "/issues/{issue_number:int}/comments")
async def create_comment(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    it = svc.issue_for(rec, issue_number)
    body = await _body(request)
    text = field(body, "body", "string", required=True)
    c = svc.add_comment(rec, it, viewer, text)
    data = render.comment(_urls(request), rec, it, c, svc.users)
    return json_response(data, 201, {"location": data["url"]})


@router.get(REPO + "/issues/{issue_number:int}/events")
async def list_events(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it = svc.issue_for(rec, issue_number)
    return _paged(request, it.events, lambda ev: render.event(_urls(request), rec, ev, svc.users))


# -- issue dependencies ----------------------------------------------------------------------------
# GitHub's "blocked by" relations. Blockers are named by database id (`issue_id`), not number,
# and may live in another repository. A pull request can be neither side (422). POST and DELETE
# answer with the blocked issue (the one in the path), its summary already updated.
def _visible(request: Request, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    viewer = _viewer(request)
    return [(r, i) for r, i in found if role_of(r, viewer.login if viewer else None) != "none"]


def _related(request: Request, owner: str, repo: str, issue_number: int, which: str) -> Response:
    """The issues blocking (`blockers`) or blocked by (`blocking`) one issue, paged."""
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it = svc.issue_for(rec, issue_number)
    summaries = svc.dependency_summaries()
    found = _visible(request, getattr(svc, which)(it))
    return _paged(request, found, lambda pair: _issue_json(request, pair[0], pair[1], summaries))


@router.get(REPO + "/issues/{issue_number:int}/dependencies/blocked_by")
async def list_blocked_by(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    return _related(request, owner, repo, issue_number, "blockers")


@router.get(REPO + "/issues/{issue_number:int}/dependencies/blocking")
async def list_blocking(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    return _related(request, owner, repo, issue_number, "blocking")


@router.post(REPO + "/issues/{issue_number:int}/dependencies/blocked_by")
async def add_blocked_by(request: Request, owner: str, repo: str, issue_number: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer, "triage")
    it = svc.issue_for(rec, issue_number)
    body = await _body(request)
    issue_id = field(body, "issue_id", "integer", required=True)
    svc.add_blocked_by(rec, it, issue_id)
    return json_response(_issue_json(request, rec, it), 201)


@router.delete(REPO + "/issues/{issue_number:int}/dependencies/blocked_by/{issue_id:int}")
async def remove_blocked_by(request: Request, owner: str, repo: str, issue_number: int,
                            issue_id: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer, "triage")
    it = svc.issue_for(rec, issue_number)
    svc.remove_blocked_by(rec, it, issue_id)
    return json_response(_issue_json(request, rec, it))


# -- pull requests -----------------------------------------------------------------------------------
@router.get(REPO + "/pulls")
async def list_pulls(request: Request, owner: str, repo: str) -> Response:
    svc = _svc(request)
    viewer = _viewer(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    items = svc.list_pulls(rec, _query(request))
    return _paged(request, items, lambda it: svc.pull_json(_urls(request), rec, it, viewer, full=False))


@router.post(REPO + "/pulls")
async def create_pull(request: Request, owner: str, repo: str) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    body = await _body(request)
    head = field(body, "head", "string", required=True)
    base = field(body, "base", "string", required=True)
    title = field(body, "title", "string", required=True)
    text = field(body, "body", "string", "null")
    draft = field(body, "draft", "boolean")
    mcm = field(body, "maintainer_can_modify", "boolean")
    head_repo = field(body, "head_repo", "string")
    it = svc.create_pull(rec, viewer, title=title, body=None if text is MISSING else text, head=head,
                         base=base, draft=draft is True, maintainer_can_modify=mcm is True,
                         head_repo_name=None if head_repo is MISSING else head_repo)
    data = svc.pull_json(_urls(request), rec, it, viewer, full=True)
    return json_response(data, 201, {"location": data["url"]})


@router.get(REPO + "/pulls/{pull_number:int}")
async def get_pull(request: Request, owner: str, repo: str, pull_number: int) -> Response:
    svc = _svc(request)
    viewer = _viewer(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    it = svc.pull_for(rec, pull_number)
    accept = request.headers.get("accept", "")
    for kind in ("diff", "patch"):  # application/vnd.github[.v3].diff
        if f".{kind}" in accept:
            text = svc.pull_diff(rec, it, patch=kind == "patch")
            return Response(text.encode(), media_type=f"text/x-{kind}; charset=utf-8",
                            headers={"x-github-media-type": f"github.v3; format={kind}"})
    return json_response(svc.pull_json(_urls(request), rec, it, viewer, full=True))


@router.patch(REPO + "/pulls/{pull_number:int}")
async def update_pull(request: Request, owner: str, repo: str, pull_number: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, role = svc.repo_for(owner, repo, viewer)
    it = svc.pull_for(rec, pull_number)
    body = await _body(request)
    changes: dict[str, Any] = {}
    for name, kinds in (("title", ("string",)), ("body", ("string", "null")), ("base", ("string",)),
                        ("maintainer_can_modify", ("boolean",))):
        value = field(body, name, *kinds)
        if value is not MISSING:
            changes[name] = value
    state = one_of(body, "state", ("open", "closed"))
    if state is not MISSING:
        changes["state"] = state
    svc.update_pull(rec, it, viewer, role, changes)
    return json_response(svc.pull_json(_urls(request), rec, it, viewer, full=True))


@router.get(REPO + "/pulls/{pull_number:int}/files")
async def list_pull_files(request: Request, owner: str, repo: str, pull_number: int) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it = svc.pull_for(rec, pull_number)
    files = svc.pull_files(rec, it)
    head_sha = it.pull.head_sha
    return _paged(request, files, lambda f: render.diff_entry(_urls(request), rec, head_sha, f))


@router.get(REPO + "/pulls/{pull_number:int}/reviews")
async def list_reviews(request: Request, owner: str, repo: str, pull_number: int) -> Response:
    svc = _svc(request)
    viewer = _viewer(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    it = svc.pull_for(rec, pull_number)
    shown = svc.visible_reviews(it, viewer.login if viewer else None)
    return _paged(request, shown, lambda r: render.review(_urls(request), rec, it, r, svc.users))


@router.post(REPO + "/pulls/{pull_number:int}/reviews")
async def create_review(request: Request, owner: str, repo: str, pull_number: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer)
    it = svc.pull_for(rec, pull_number)
    body = await _body(request)
    event = one_of(body, "event", tuple(Service.REVIEW_EVENTS))
    text = field(body, "body", "string", "null")
    commit_id = field(body, "commit_id", "string")
    review = svc.add_review(rec, it, viewer, event=None if event is MISSING else event,
                            body="" if text in (MISSING, None) else text,
                            commit_id=None if commit_id is MISSING else commit_id)
    return json_response(render.review(_urls(request), rec, it, review, svc.users))


@router.get(REPO + "/pulls/{pull_number:int}/merge")
async def check_merged(request: Request, owner: str, repo: str, pull_number: int) -> Response:
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, _viewer(request))
    it = svc.pull_for(rec, pull_number)
    if it.pull.merged:
        return json_response(None, 204)
    raise not_found(f"#{pull_number} of {rec.full_name} is not merged")


@router.put(REPO + "/pulls/{pull_number:int}/merge")
async def merge_pull(request: Request, owner: str, repo: str, pull_number: int) -> Response:
    viewer = _need_viewer(request)
    svc = _svc(request)
    rec, _ = svc.repo_for(owner, repo, viewer, "write")
    it = svc.pull_for(rec, pull_number)
    body = await _body(request)
    title = field(body, "commit_title", "string")
    message = field(body, "commit_message", "string")
    sha = field(body, "sha", "string")
    method = one_of(body, "merge_method", ("merge", "squash", "rebase"))
    merged = svc.merge_pull(rec, it, viewer, method="merge" if method is MISSING else method,
                            title=None if title is MISSING else title,
                            message=None if message is MISSING else message,
                            sha=None if sha is MISSING else sha)
    return json_response(render.merge_result(merged))



# -- webhooks (github_sandbox/hooks.py delivers them) ------------------------------------------
def _hook_json(request: Request, rec: Any, hook: dict[str, Any]) -> dict[str, Any]:
    base = f"{_urls(request).repo_api(rec)}/hooks/{hook['id']}"
    shown = {k: v for k, v in hook.items() if k != "secret"}
    config = dict(shown["config"])
    if hook["secret"]:
        config["secret"] = "********"
    return {**shown, "type": "Repository", "config": config, "url": base, "test_url": f"{base}/test",
            "ping_url": f"{base}/pings", "deliveries_url": f"{base}/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None}}


@router.post(REPO + "/hooks")
async def create_hook(request: Request, owner: str, repo: str) -> Response:
    rec, _ = _svc(request).repo_for(owner, repo, _need_viewer(request), "admin")
    data = await _body(request)
    config = data.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("url"), str) or not config["url"]:
        raise ApiError(422, "Validation Failed", reason="hook without config.url",
                       errors=[{"resource": "Hook", "code": "custom", "message": "Config must contain url"}])
    if config.get("content_type", "json") not in ("json", "form"):
        raise ApiError(422, "Validation Failed", reason="bad content_type",
                       errors=[{"resource": "Hook", "code": "invalid", "field": "content_type"}])
    events = data.get("events", ["push"])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ApiError(422, "Validation Failed", reason="events is not a list of strings",
                       errors=[{"resource": "Hook", "code": "invalid", "field": "events"}])
    hook = _sb(request).hooks.create(rec.key, config, events, bool(data.get("active", True)))
    return json_response(_hook_json(request, rec, hook), 201)


@router.get(REPO + "/hooks")
async def list_hooks(request: Request, owner: str, repo: str) -> Response:
    rec, _ = _svc(request).repo_for(owner, repo, _need_viewer(request), "admin")
    return json_response([_hook_json(request, rec, h) for h in _sb(request).hooks.hooks.get(rec.key, [])])


@router.delete(REPO + "/hooks/{hook_id:int}")
async def delete_hook(request: Request, owner: str, repo: str, hook_id: int) -> Response:
    rec, _ = _svc(request).repo_for(owner, repo, _need_viewer(request), "admin")
    if not _sb(request).hooks.delete(rec.key, hook_id):
        raise not_found(f"{rec.full_name} has no hook {hook_id}")
    return json_response(None, 204)

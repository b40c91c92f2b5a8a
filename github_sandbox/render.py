"""Records -> GitHub's JSON shapes (REST API version 2022-11-28). Pure functions.

URLs are built from the address the client used (`Urls`), so `url` fields point into
`/api/v3` and `html_url` fields look like `http://HOST:PORT/OWNER/REPO/issues/N`.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

from .gitops import FileChange
from .permissions import author_association, legacy_permission, permission_flags
from .state import CommentRec, EventRec, IssueRec, LabelRec, RepoRec, ReviewRec, UserRec

GHOST = UserRec(id=10137, login="ghost", token_sha256="", site_admin=False)
UserLookup = Callable[[str], UserRec | None]


@dataclass(frozen=True)
class Urls:
    base: str  # e.g. http://127.0.0.1:8765

    @property
    def api(self) -> str:
        return f"{self.base}/api/v3"

    @property
    def host(self) -> str:
        return self.base.split("://", 1)[-1]

    def repo_api(self, repo: RepoRec) -> str:
        return f"{self.api}/repos/{repo.owner}/{repo.name}"

    def repo_html(self, repo: RepoRec) -> str:
        return f"{self.base}/{repo.owner}/{repo.name}"

    def clone_url(self, repo: RepoRec) -> str:
        return f"{self.base}/{repo.owner}/{repo.name}.git"


@dataclass(frozen=True)
class PullGit:
    """What git says about an open or closed pull request."""

    mergeable: bool | None
    mergeable_state: str
    commits: int
    additions: int
    deletions: int
    changed_files: int


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode().rstrip("=")


def user(urls: Urls, rec: UserRec | None) -> dict[str, Any]:
    rec = rec or GHOST
    u = f"{urls.api}/users/{rec.login}"
    return {
        "login": rec.login,
        "id": rec.id,
        "node_id": node_id("User", rec.id),
        "avatar_url": f"{urls.base}/avatars/u/{rec.id}?v=4",
        "gravatar_id": "",
        "url": u,
        "html_url": f"{urls.base}/{rec.login}",
        "followers_url": f"{u}/followers",
        "following_url": f"{u}/following{{/other_user}}",
        "gists_url": f"{u}/gists{{/gist_id}}",
        "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{u}/subscriptions",
        "organizations_url": f"{u}/orgs",
        "repos_url": f"{u}/repos",
        "events_url": f"{u}/events{{/privacy}}",
        "received_events_url": f"{u}/received_events",
        "type": "User",
        "user_view_type": "public",
        "site_admin": rec.site_admin,
    }


def public_user(urls: Urls, rec: UserRec, public_repos: int) -> dict[str, Any]:
    return {
        **user(urls, rec),
        "name": rec.login, "company": None, "blog": "", "location": None, "email": None,
        "hireable": None, "bio": None, "twitter_username": None,
        "public_repos": public_repos, "public_gists": 0, "followers": 0, "following": 0,
        "created_at": rec.created_at, "updated_at": rec.created_at,
    }


def private_user(urls: Urls, rec: UserRec, public_repos: int, private_repos: int) -> dict[str, Any]:
    return {
        **public_user(urls, rec, public_repos),
        "private_gists": 0, "total_private_repos": private_repos,
        "owned_private_repos": private_repos, "disk_usage": 0, "collaborators": 0,
        "two_factor_authentication": False,
        "plan": {"name": "free", "space": 976562499, "private_repos": 10000, "collaborators": 0},
    }


def repo(urls: Urls, rec: RepoRec, users: UserLookup, *, role: str | None,
         parent: RepoRec | None = None, source: RepoRec | None = None,
         forks: int = 0, full: bool = False) -> dict[str, Any]:
    u = urls.repo_api(rec)
    html = urls.repo_html(rec)
    open_count = sum(1 for i in rec.issues.values() if i.state == "open")
    out: dict[str, Any] = {
        "id": rec.id,
        "node_id": node_id("Repository", rec.id),
        "name": rec.name,
        "full_name": rec.full_name,
        "private": rec.private,
        "owner": user(urls, users(rec.owner)),
        "html_url": html,
        "description": rec.description,
        "fork": rec.fork,
        "url": u,
        "forks_url": f"{u}/forks",
        "keys_url": f"{u}/keys{{/key_id}}",
        "collaborators_url": f"{u}/collaborators{{/collaborator}}",
        "teams_url": f"{u}/teams",
        "hooks_url": f"{u}/hooks",
        "issue_events_url": f"{u}/issues/events{{/number}}",
        "events_url": f"{u}/events",
        "assignees_url": f"{u}/assignees{{/user}}",
        "branches_url": f"{u}/branches{{/branch}}",
        "tags_url": f"{u}/tags",
        "blobs_url": f"{u}/git/blobs{{/sha}}",
        "git_tags_url": f"{u}/git/tags{{/sha}}",
        "git_refs_url": f"{u}/git/refs{{/sha}}",
        "trees_url": f"{u}/git/trees{{/sha}}",
        "statuses_url": f"{u}/statuses/{{sha}}",
        "languages_url": f"{u}/languages",
        "stargazers_url": f"{u}/stargazers",
        "contributors_url": f"{u}/contributors",
        "subscribers_url": f"{u}/subscribers",
        "subscription_url": f"{u}/subscription",
        "commits_url": f"{u}/commits{{/sha}}",
        "git_commits_url": f"{u}/git/commits{{/sha}}",
        "comments_url": f"{u}/comments{{/number}}",
        "issue_comment_url": f"{u}/issues/comments{{/number}}",
        "contents_url": f"{u}/contents/{{+path}}",
        "compare_url": f"{u}/compare/{{base}}...{{head}}",
        "merges_url": f"{u}/merges",
        "archive_url": f"{u}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{u}/downloads",
        "issues_url": f"{u}/issues{{/number}}",
        "pulls_url": f"{u}/pulls{{/number}}",
        "milestones_url": f"{u}/milestones{{/number}}",
        "notifications_url": f"{u}/notifications{{?since,all,participating}}",
        "labels_url": f"{u}/labels{{/name}}",
        "releases_url": f"{u}/releases{{/id}}",
        "deployments_url": f"{u}/deployments",
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "pushed_at": rec.pushed_at or rec.created_at,
        "git_url": f"git://{urls.host}/{rec.full_name}.git",
        "ssh_url": f"git@{urls.host.split(':')[0]}:{rec.full_name}.git",
        "clone_url": urls.clone_url(rec),
        "svn_url": html,
        "homepage": rec.homepage,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": forks,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_count,
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if rec.private else "public",
        "forks": forks,
        "open_issues": open_count,
        "watchers": 0,
        "default_branch": rec.default_branch,
    }
    if role is not None:
        out["permissions"] = permission_flags(role)
    if full:
        out.update({
            "allow_squash_merge": True,
            "allow_merge_commit": True,
            "allow_rebase_merge": False,
            "allow_auto_merge": False,
            "delete_branch_on_merge": False,
            "allow_update_branch": False,
            "use_squash_pr_title_as_default": False,
            "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
            "squash_merge_commit_message": "COMMIT_MESSAGES",
            "merge_commit_title": "MERGE_MESSAGE",
            "merge_commit_message": "PR_TITLE",
            "network_count": forks,
            "subscribers_count": 0,
        })
        if parent is not None:
            out["parent"] = repo(urls, parent, users, role=None)
        if source is not None:
            out["source"] = repo(urls, source, users, role=None)
    return out


def label_url(urls: Urls, rec: RepoRec, name: str) -> str:
    return f"{urls.repo_api(rec)}/labels/{quote(name, safe='')}"


def label(urls: Urls, rec: RepoRec, lab: LabelRec) -> dict[str, Any]:
    return {
        "id": lab.id,
        "node_id": node_id("Label", lab.id),
        "url": label_url(urls, rec, lab.name),
        "name": lab.name,
        "color": lab.color,
        "default": lab.default,
        "description": lab.description,
        "archived_at": None,
        "archived_by": None,
    }


def _reactions(url: str) -> dict[str, Any]:
    keys = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")
    return {"url": f"{url}/reactions", "total_count": 0, **{k: 0 for k in keys}}


def issue_labels(urls: Urls, rec: RepoRec, issue: IssueRec) -> list[dict[str, Any]]:
    by_id = {lab.id: lab for lab in rec.labels}
    return [label(urls, rec, by_id[i]) for i in issue.labels if i in by_id]


NO_DEPENDENCIES = {"blocked_by": 0, "blocking": 0, "total_blocked_by": 0, "total_blocking": 0}


def issue(urls: Urls, rec: RepoRec, it: IssueRec, users: UserLookup,
          dependencies: dict[str, int] | None = None) -> dict[str, Any]:
    """An issue (or a PR as the issues API shows it). `dependencies`: its
    `issue_dependencies_summary` (open and total blockers and blocked issues)."""
    u = f"{urls.repo_api(rec)}/issues/{it.number}"
    kind = "pull" if it.pull else "issues"
    html = f"{urls.repo_html(rec)}/{kind}/{it.number}"
    assignees = [user(urls, users(a)) for a in it.assignees]
    out: dict[str, Any] = {
        "url": u,
        "repository_url": urls.repo_api(rec),
        "labels_url": f"{u}/labels{{/name}}",
        "comments_url": f"{u}/comments",
        "events_url": f"{u}/events",
        "html_url": html,
        "id": it.id,
        "node_id": node_id("Issue", it.id),
        "number": it.number,
        "title": it.title,
        "user": user(urls, users(it.user)),
        "labels": issue_labels(urls, rec, it),
        "state": it.state,
        "locked": it.locked,
        "assignee": assignees[0] if assignees else None,
        "assignees": assignees,
        "milestone": None,
        "comments": len(it.comments),
        "created_at": it.created_at,
        "updated_at": it.updated_at,
        "closed_at": it.closed_at,
        "author_association": author_association(rec, it.user),
        "type": None,
        "active_lock_reason": None,
        "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
        "issue_dependencies_summary": dict(dependencies or NO_DEPENDENCIES),
        "body": it.body,
        "closed_by": user(urls, users(it.closed_by)) if it.closed_by else None,
        "reactions": _reactions(u),
        "timeline_url": f"{u}/timeline",
        "performed_via_github_app": None,
        "state_reason": it.state_reason,
    }
    if it.pull:
        pu = f"{urls.repo_api(rec)}/pulls/{it.number}"
        out["draft"] = it.pull.draft
        out["pull_request"] = {
            "url": pu,
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": it.pull.merged_at,
        }
    return out


def comment(urls: Urls, rec: RepoRec, it: IssueRec, c: CommentRec, users: UserLookup) -> dict[str, Any]:
    u = f"{urls.repo_api(rec)}/issues/comments/{c.id}"
    kind = "pull" if it.pull else "issues"
    return {
        "url": u,
        "html_url": f"{urls.repo_html(rec)}/{kind}/{it.number}#issuecomment-{c.id}",
        "issue_url": f"{urls.repo_api(rec)}/issues/{it.number}",
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "user": user(urls, users(c.user)),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "author_association": author_association(rec, c.user),
        "body": c.body,
        "reactions": _reactions(u),
        "performed_via_github_app": None,
    }


def event(urls: Urls, rec: RepoRec, ev: EventRec, users: UserLookup) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ev.id,
        "node_id": node_id("Event", ev.id),
        "url": f"{urls.repo_api(rec)}/issues/events/{ev.id}",
        "actor": user(urls, users(ev.actor)),
        "event": ev.event,
        "commit_id": ev.commit_id,
        "commit_url": f"{urls.repo_api(rec)}/commits/{ev.commit_id}" if ev.commit_id else None,
        "created_at": ev.created_at,
        "performed_via_github_app": None,
    }
    if ev.label is not None:
        out["label"] = dict(ev.label)
    if ev.event == "closed":
        out["state_reason"] = ev.state_reason
    return out


def pull(urls: Urls, rec: RepoRec, it: IssueRec, users: UserLookup, *, head_repo: RepoRec | None,
         head_role: str | None, base_role: str | None, git: PullGit | None) -> dict[str, Any]:
    """A pull request: `pull-request` when `git` is given, else `pull-request-simple`."""
    pr = it.pull
    assert pr is not None
    api = urls.repo_api(rec)
    u = f"{api}/pulls/{it.number}"
    html = f"{urls.repo_html(rec)}/pull/{it.number}"
    issue_url = f"{api}/issues/{it.number}"
    assignees = [user(urls, users(a)) for a in it.assignees]
    head_owner = head_repo.owner if head_repo else rec.owner

    def side(ref: str, sha: str, owner: str, side_repo: RepoRec | None, role: str | None) -> dict[str, Any]:
        return {
            "label": f"{owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": user(urls, users(owner)),
            "repo": repo(urls, side_repo, users, role=role) if side_repo else None,
        }

    out: dict[str, Any] = {
        "url": u,
        "id": pr.id,
        "node_id": node_id("PullRequest", pr.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue_url,
        "commits_url": f"{u}/commits",
        "review_comments_url": f"{u}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{issue_url}/comments",
        "statuses_url": f"{api}/statuses/{pr.head_sha}",
        "number": it.number,
        "state": it.state,
        "locked": it.locked,
        "title": it.title,
        "user": user(urls, users(it.user)),
        "body": it.body,
        "labels": issue_labels(urls, rec, it),
        "milestone": None,
        "active_lock_reason": None,
        "created_at": it.created_at,
        "updated_at": it.updated_at,
        "closed_at": it.closed_at,
        "merged_at": pr.merged_at,
        "merge_commit_sha": pr.merge_commit_sha,
        "assignee": assignees[0] if assignees else None,
        "assignees": assignees,
        "requested_reviewers": [],
        "requested_teams": [],
        "head": side(pr.head_ref, pr.head_sha, head_owner, head_repo, head_role),
        "base": side(pr.base_ref, pr.base_sha, rec.owner, rec, base_role),
        "_links": {
            "self": {"href": u},
            "html": {"href": html},
            "issue": {"href": issue_url},
            "comments": {"href": f"{issue_url}/comments"},
            "review_comments": {"href": f"{u}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{u}/commits"},
            "statuses": {"href": f"{api}/statuses/{pr.head_sha}"},
        },
        "author_association": author_association(rec, it.user),
        "auto_merge": None,
        "draft": pr.draft,
    }
    if git is not None:
        out.update({
            "merged": pr.merged,
            "mergeable": git.mergeable,
            "rebaseable": False if git.mergeable is not None else None,
            "mergeable_state": git.mergeable_state,
            "merged_by": user(urls, users(pr.merged_by)) if pr.merged_by else None,
            "comments": len(it.comments),
            "review_comments": 0,
            "maintainer_can_modify": pr.maintainer_can_modify,
            "commits": git.commits,
            "additions": git.additions,
            "deletions": git.deletions,
            "changed_files": git.changed_files,
        })
    return out


def diff_entry(urls: Urls, rec: RepoRec, head_sha: str, f: FileChange) -> dict[str, Any]:
    path = quote(f.filename)
    out: dict[str, Any] = {
        "sha": f.sha,
        "filename": f.filename,
        "status": f.status,
        "additions": f.additions,
        "deletions": f.deletions,
        "changes": f.additions + f.deletions,
        "blob_url": f"{urls.repo_html(rec)}/blob/{head_sha}/{path}",
        "raw_url": f"{urls.repo_html(rec)}/raw/{head_sha}/{path}",
        "contents_url": f"{urls.repo_api(rec)}/contents/{path}?ref={head_sha}",
    }
    if f.patch is not None:
        out["patch"] = f.patch
    if f.previous_filename is not None:
        out["previous_filename"] = f.previous_filename
    return out


def collaborator(urls: Urls, rec: UserRec, role: str) -> dict[str, Any]:
    return {**user(urls, rec), "permissions": permission_flags(role), "role_name": role}


def permission(urls: Urls, rec: UserRec, role: str) -> dict[str, Any]:
    return {
        "permission": legacy_permission(role),
        "role_name": role,
        "user": collaborator(urls, rec, role),
    }


def invitation(urls: Urls, repo_rec: RepoRec, users: UserLookup, inv_id: int, invitee: UserRec,
               inviter: UserRec, role: str, created_at: str) -> dict[str, Any]:
    permissions = {"read": "read", "triage": "triage", "write": "write",
                   "maintain": "maintain", "admin": "admin"}[role]
    return {
        "id": inv_id,
        "node_id": node_id("RepositoryInvitation", inv_id),
        "repository": repo(urls, repo_rec, users, role=None),
        "invitee": user(urls, invitee),
        "inviter": user(urls, inviter),
        "permissions": permissions,
        "created_at": created_at,
        "expired": False,
        "url": f"{urls.api}/user/repository_invitations/{inv_id}",
        "html_url": f"{urls.repo_html(repo_rec)}/invitations",
    }


def review(urls: Urls, rec: RepoRec, it: IssueRec, r: ReviewRec, users: UserLookup) -> dict[str, Any]:
    html = f"{urls.repo_html(rec)}/pull/{it.number}"
    return {
        "id": r.id,
        "node_id": node_id("PullRequestReview", r.id),
        "user": user(urls, users(r.user)),
        "body": r.body,
        "state": r.state,
        "html_url": f"{html}#pullrequestreview-{r.id}",
        "pull_request_url": f"{urls.repo_api(rec)}/pulls/{it.number}",
        "author_association": author_association(rec, r.user),
        "_links": {"html": {"href": f"{html}#pullrequestreview-{r.id}"},
                   "pull_request": {"href": f"{urls.repo_api(rec)}/pulls/{it.number}"}},
        "submitted_at": r.submitted_at,
        "commit_id": r.commit_id,
    }


def search_result(items: list[dict[str, Any]], total: int) -> dict[str, Any]:
    return {"total_count": total, "incomplete_results": False, "items": items}


def merge_result(sha: str) -> dict[str, Any]:
    return {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}


def rate_limit(core: dict[str, int]) -> dict[str, Any]:
    def res(limit: int, name: str) -> dict[str, int | str]:
        return {"limit": limit, "used": 0, "remaining": limit, "reset": core["reset"], "resource": name}

    core_out = {**core, "resource": "core"}
    return {
        "resources": {
            "core": core_out,
            "search": res(30, "search"),
            "graphql": res(5000, "graphql"),
            "integration_manifest": res(5000, "integration_manifest"),
            "source_import": res(100, "source_import"),
            "code_scanning_upload": res(1000, "code_scanning_upload"),
            "actions_runner_registration": res(10000, "actions_runner_registration"),
            "scim": res(15000, "scim"),
            "dependency_snapshots": res(100, "dependency_snapshots"),
            "code_search": res(10, "code_search"),
        },
        "rate": core_out,
    }


def short_branch(urls: Urls, rec: RepoRec, name: str, sha: str) -> dict[str, Any]:
    return {
        "name": name,
        "commit": {"sha": sha, "url": f"{urls.repo_api(rec)}/commits/{sha}"},
        "protected": False,
    }


def branch(urls: Urls, rec: RepoRec, name: str, commit: dict[str, Any], users: UserLookup) -> dict[str, Any]:
    """`branch-with-protection`; `commit` holds sha, tree, parents, message and the two people."""
    api = urls.repo_api(rec)
    sha = commit["sha"]

    def person(p: dict[str, str]) -> dict[str, str]:
        return {"name": p["name"], "email": p["email"], "date": p["date"]}

    def account(p: dict[str, str]) -> dict[str, Any] | None:
        found = users(p["name"])
        return user(urls, found) if found else None

    return {
        "name": name,
        "commit": {
            "sha": sha,
            "node_id": node_id("Commit", int(sha[:8], 16)),
            "url": f"{api}/commits/{sha}",
            "html_url": f"{urls.repo_html(rec)}/commit/{sha}",
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{sha}",
                "author": person(commit["author"]),
                "committer": person(commit["committer"]),
                "message": commit["message"],
                "comment_count": 0,
                "tree": {"sha": commit["tree"], "url": f"{api}/git/trees/{commit['tree']}"},
                "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                 "payload": None, "verified_at": None},
            },
            "author": account(commit["author"]),
            "committer": account(commit["committer"]),
            "parents": [{"sha": p, "url": f"{api}/commits/{p}",
                         "html_url": f"{urls.repo_html(rec)}/commit/{p}"} for p in commit["parents"]],
        },
        "_links": {"self": f"{api}/branches/{quote(name, safe='')}",
                   "html": f"{urls.repo_html(rec)}/tree/{name}"},
        "protected": False,
        "protection": {"enabled": False, "required_status_checks": {
            "enforcement_level": "off", "contexts": [], "checks": []}},
        "protection_url": f"{api}/branches/{quote(name, safe='')}/protection",
    }

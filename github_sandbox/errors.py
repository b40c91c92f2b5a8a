"""GitHub's error answers: `{"message", "documentation_url", "status"}` (+ `errors`)."""
from __future__ import annotations

from typing import Any

DOCS = "https://docs.github.com/rest"
_D = "https://docs.github.com/rest/"

# Route template (without /api/v3) -> the page GitHub links in its errors.
DOC_URLS: dict[str, str] = {
    "GET /user": _D + "users/users#get-the-authenticated-user",
    "GET /users/{username}": _D + "users/users#get-a-user",
    "GET /rate_limit": _D + "rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user",
    "POST /user/repos": _D + "repos/repos#create-a-repository-for-the-authenticated-user",
    "GET /repos/{owner}/{repo}": _D + "repos/repos#get-a-repository",
    "GET /repos/{owner}/{repo}/forks": _D + "repos/forks#list-forks",
    "POST /repos/{owner}/{repo}/forks": _D + "repos/forks#create-a-fork",
    "GET /repos/{owner}/{repo}/branches": _D + "branches/branches#list-branches",
    "GET /repos/{owner}/{repo}/branches/{branch}": _D + "branches/branches#get-a-branch",
    "GET /repos/{owner}/{repo}/collaborators":
        _D + "collaborators/collaborators#list-repository-collaborators",
    "GET /repos/{owner}/{repo}/collaborators/{username}":
        _D + "collaborators/collaborators#check-if-a-user-is-a-repository-collaborator",
    "PUT /repos/{owner}/{repo}/collaborators/{username}":
        _D + "collaborators/collaborators#add-a-repository-collaborator",
    "DELETE /repos/{owner}/{repo}/collaborators/{username}":
        _D + "collaborators/collaborators#remove-a-repository-collaborator",
    "GET /repos/{owner}/{repo}/collaborators/{username}/permission":
        _D + "collaborators/collaborators#get-repository-permissions-for-a-user",
    "GET /repos/{owner}/{repo}/labels": _D + "issues/labels#list-labels-for-a-repository",
    "POST /repos/{owner}/{repo}/labels": _D + "issues/labels#create-a-label",
    "GET /repos/{owner}/{repo}/labels/{name}": _D + "issues/labels#get-a-label",
    "PATCH /repos/{owner}/{repo}/labels/{name}": _D + "issues/labels#update-a-label",
    "DELETE /repos/{owner}/{repo}/labels/{name}": _D + "issues/labels#delete-a-label",
    "GET /repos/{owner}/{repo}/issues": _D + "issues/issues#list-repository-issues",
    "POST /repos/{owner}/{repo}/issues": _D + "issues/issues#create-an-issue",
    "GET /repos/{owner}/{repo}/issues/{issue_number}": _D + "issues/issues#get-an-issue",
    "PATCH /repos/{owner}/{repo}/issues/{issue_number}": _D + "issues/issues#update-an-issue",
    "GET /repos/{owner}/{repo}/issues/{issue_number}/labels":
        _D + "issues/labels#list-labels-for-an-issue",
    "POST /repos/{owner}/{repo}/issues/{issue_number}/labels":
        _D + "issues/labels#add-labels-to-an-issue",
    "PUT /repos/{owner}/{repo}/issues/{issue_number}/labels":
        _D + "issues/labels#set-labels-for-an-issue",
    "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels":
        _D + "issues/labels#remove-all-labels-from-an-issue",
    "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}":
        _D + "issues/labels#remove-a-label-from-an-issue",
    "GET /repos/{owner}/{repo}/issues/{issue_number}/comments":
        _D + "issues/comments#list-issue-comments",
    "POST /repos/{owner}/{repo}/issues/{issue_number}/comments":
        _D + "issues/comments#create-an-issue-comment",
    "GET /repos/{owner}/{repo}/issues/comments/{comment_id}":
        _D + "issues/comments#get-an-issue-comment",
    "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}":
        _D + "issues/comments#update-an-issue-comment",
    "DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}":
        _D + "issues/comments#delete-an-issue-comment",
    "GET /repos/{owner}/{repo}/issues/{issue_number}/events": _D + "issues/events#list-issue-events",
    "GET /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by":
        _D + "issues/issue-dependencies#list-dependencies-an-issue-is-blocked-by",
    "POST /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by":
        _D + "issues/issue-dependencies#add-a-dependency-an-issue-is-blocked-by",
    "DELETE /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by/{issue_id}":
        _D + "issues/issue-dependencies#remove-dependency-an-issue-is-blocked-by",
    "GET /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocking":
        _D + "issues/issue-dependencies#list-dependencies-an-issue-is-blocking",
    "GET /repos/{owner}/{repo}/pulls": _D + "pulls/pulls#list-pull-requests",
    "POST /repos/{owner}/{repo}/pulls": _D + "pulls/pulls#create-a-pull-request",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}": _D + "pulls/pulls#get-a-pull-request",
    "PATCH /repos/{owner}/{repo}/pulls/{pull_number}": _D + "pulls/pulls#update-a-pull-request",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/files":
        _D + "pulls/pulls#list-pull-requests-files",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/merge":
        _D + "pulls/pulls#check-if-a-pull-request-has-been-merged",
    "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge": _D + "pulls/pulls#merge-a-pull-request",
}

SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)
SECONDARY_DOCS = _D + "overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
PRIMARY_DOCS = _D + "overview/rate-limits-for-the-rest-api#about-the-rate-limits-for-the-rest-api"
NO_RIGHTS = "Must have admin rights to Repository."


class ApiError(Exception):
    """An answer GitHub would give instead of the resource.

    `message` is what the client sees; `reason` is the sandbox's own log line.
    """

    def __init__(self, status: int, message: str, *, reason: str = "",
                 errors: list[dict[str, Any]] | None = None, doc: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or message
        self.errors = errors
        self.doc = doc
        self.headers = headers or {}


def error_body(status: int, message: str, doc: str | None,
               errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = errors
    body["documentation_url"] = doc or DOCS
    body["status"] = str(status)
    return body


def not_found(reason: str) -> ApiError:
    return ApiError(404, "Not Found", reason=reason)


def forbidden(reason: str, message: str = NO_RIGHTS) -> ApiError:
    return ApiError(403, message, reason=reason)


def requires_auth(reason: str = "no credentials") -> ApiError:
    return ApiError(401, "Requires authentication", reason=reason)


def validation_failed(errors: list[dict[str, Any]], reason: str) -> ApiError:
    return ApiError(422, "Validation Failed", errors=errors, reason=reason)


def invalid_request(detail: str) -> ApiError:
    """GitHub's schema-validation answer, e.g. `"title" wasn't supplied.`"""
    return ApiError(422, f"Invalid request.\n\n{detail}", reason=detail)

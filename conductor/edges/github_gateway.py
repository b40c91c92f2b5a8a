"""The one module that talks to GitHub (through PyGithub).

Everything else receives plain models from here. Reads are listings with
per_page=100 (never the search API, never one request per issue); every HTTP
request, retries included, is counted. Writes are idempotent: the gateway looks
before it creates, so a pass killed at any point can simply be run again.
"""
from __future__ import annotations

import contextvars
import logging
import time
from urllib.parse import quote
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from pydantic import SecretStr
from github import Auth, Github, GithubException, GithubRetry
from github.Issue import Issue as GhIssue
from github.Requester import (
    HTTPRequestsConnectionClass,
    HTTPSRequestsConnectionClass,
    Requester,
    RequestsResponse,
)

from conductor.core.constants import GITHUB_BODY_LIMIT
from conductor.core.errors import GitHubError
from conductor.core.leaf import IssueItem, PullItem
from conductor.edges.http_cache import CURRENT as _CURRENT_CONDITIONAL
from conductor.edges.http_cache import Conditional, EtagCache, conditional
from conductor.core.linking import linked_issues
from conductor.core.models import Issue, NumberKind, PipelineState, PullRequest
from conductor.core.ports import Comment, IssueRef, MergedPull
from conductor.core.settings import GitHubSettings
from conductor.core.verify import PullFacts

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


FAULT_STATUSES = frozenset({429, *range(500, 600)})


class _RequestCounter:
    def __init__(self) -> None:
        self.count = 0
        self.faults = 0  # answers 5xx/429 and unreachable tries, retried ones included

    def add(self, response: requests.Response) -> None:
        retries = getattr(getattr(response, "raw", None), "retries", None)
        history = getattr(retries, "history", ()) or ()
        self.count += 1 + len(history)
        self.faults += sum(1 for h in history if h.status in FAULT_STATUSES or (h.status is None and h.error))
        self.faults += response.status_code in FAULT_STATUSES


# PyGithub copies its Requester for every object it builds, so counting is installed on
# the connection classes once, and each request is charged to the gateway whose call is
# running (a context variable: threads and tasks each see their own).
_CURRENT_COUNTER: contextvars.ContextVar[_RequestCounter | None] = contextvars.ContextVar(
    "conductor_github_counter", default=None)


def _body(item: Any) -> str:
    """The body of an issue, PR or comment as it enters the conductor: at most GitHub's own
    limit (`GITHUB_BODY_LIMIT` characters), so no parser of it ever reads more."""
    return (item.body or "")[:GITHUB_BODY_LIMIT]


def _counting(base: type) -> type:
    class Counting(base):  # type: ignore[misc, valid-type]
        def getresponse(self) -> RequestsResponse:
            response = super().getresponse()
            counter = _CURRENT_COUNTER.get()
            if counter is not None:
                counter.add(response.response)
            return response

    Counting.__name__ = Counting.__qualname__ = f"Counting{base.__name__}"
    return Counting


Requester.injectConnectionClasses(_counting(conditional(HTTPRequestsConnectionClass)),
                                  _counting(conditional(HTTPSRequestsConnectionClass)))
Requester._Requester__persist = True  # type: ignore[attr-defined]  # keep connections alive


class _TellingRetry(GithubRetry):
    """GithubRetry that says each retry in one line ("GitHub unreachable, retry 2/6 in 4 s"):
    a person watching a pass sees why it waits instead of silence."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[override]
        new = super().increment(method=method, url=url, response=response, error=error,
                                _pool=_pool, _stacktrace=_stacktrace)
        attempt = len(new.history)
        limit = attempt + (new.total if isinstance(new.total, int) else 0)
        wait = new.get_retry_after(response) if response is not None else None
        wait = new.get_backoff_time() if wait is None else wait
        why = "GitHub unreachable" if response is None else f"GitHub answered {response.status}"
        log.warning("%s, retry %d/%d in %.1f s", why, attempt, limit, wait)
        return new


class GitHubGateway:
    """PyGithub bound to one repository, with request counting and idempotent writes."""

    def __init__(self, settings: GitHubSettings, repo: str, fence: Callable[[], None] | None = None) -> None:
        if settings.token is None:
            raise GitHubError("no GitHub token: set GITHUB_TOKEN (or GH_TOKEN), or save a Prefect Secret block "
                              "`github-token` or a GitHubCredentials block `github-credentials`")
        self.repo_name = repo
        self._verify: bool | str = str(settings.ca_bundle) if settings.ca_bundle else True
        self._counter = _RequestCounter()
        self._conditional = Conditional(  # ETags across passes (conductor/edges/http_cache.py)
            EtagCache(settings.etag_cache_dir) if settings.conditional_reads and settings.etag_cache_dir else None)
        retry = _TellingRetry(
            total=settings.retries,
            backoff_factor=settings.backoff_factor,
            status_forcelist=sorted(FAULT_STATUSES),
            # POST is left out on purpose: a retried creation can duplicate an issue.
            allowed_methods=frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
        )
        self._gh = Github(
            base_url=settings.api_url,
            auth=Auth.Token(settings.token.get_secret_value()),
            per_page=100,
            timeout=int(max(1, settings.timeout)),
            retry=retry,
            seconds_between_requests=settings.seconds_between_requests or None,
            seconds_between_writes=settings.seconds_between_writes or None,
            verify=self._verify,
        )
        self._repo = self._gh.get_repo(repo, lazy=True)
        self._api_url = settings.api_url
        self._timeout = int(max(1, settings.timeout))
        self._retry = retry
        self._login: str | None = None
        self._fence = fence

    # ------------------------------------------------------------------ basics
    @property
    def requests_made(self) -> int:
        return self._counter.count

    @property
    def faults_met(self) -> int:
        """Answers 5xx/429 (and tries that could not reach GitHub) this gateway met, retries included."""
        return self._counter.faults

    @property
    def rate_points(self) -> int:
        """Rate-limit points this gateway spent, from GitHub's X-RateLimit-* headers."""
        return self._conditional.meter.points

    @property
    def not_modified(self) -> int:
        """GETs answered 304 (served from the ETag cache, free of rate limit)."""
        return self._conditional.not_modified

    def close(self) -> None:
        self._gh.close()

    def __enter__(self) -> GitHubGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one PyGithub call, counting its requests and turning its failures into
        one-line GitHubErrors."""
        token = _CURRENT_COUNTER.set(self._counter)
        conditional_token = _CURRENT_CONDITIONAL.set(self._conditional)
        try:
            return fn()
        except GithubException as exc:
            raise GitHubError(_explain(exc, what, self.repo_name)) from None
        except requests.exceptions.RequestException as exc:
            raise GitHubError(
                f"cannot reach GitHub at {self._api_url} while trying to {what} "
                f"({type(exc).__name__}); check --github-url and the network"
            ) from None
        finally:
            _CURRENT_CONDITIONAL.reset(conditional_token)
            _CURRENT_COUNTER.reset(token)

    def _write(self, what: str, fn: Callable[[], T]) -> T:
        """The one door of every write: `fence()` first (a pass holding the lock on GitHub:
        `PassLock.assure`, which raises `LockLost` once another pass took the lock over, so
        nothing is sent), then the call itself."""
        if self._fence is not None:
            self._fence()
        return self._call(what, fn)

    def default_branch(self) -> str:
        return self._call("read the repository", lambda: self._gh.get_repo(self.repo_name).default_branch)

    # ------------------------------------------------------------------ reading
    def read_state(self) -> PipelineState:
        """All open issues and PRs in two listings (GitHub's native issue dependencies come
        with them: `issue_dependencies_summary`). Changed files are read per PR (`pull_files`)."""
        start = self.requests_made

        def listings() -> PipelineState:
            raw_issues = list(self._repo.get_issues(state="open", sort="created", direction="asc"))
            raw_pulls = {p.number: p for p in self._repo.get_pulls(state="open", sort="created", direction="asc")}
            issues: list[Issue] = []
            pulls: list[PullRequest] = []
            for item in raw_issues:
                labels = [label.name for label in item.labels]
                if not _is_pull(item):
                    issues.append(Issue(number=item.number, title=item.title or "", labels=labels,
                                        body=_body(item), native_blockers=_open_blockers(item),
                                        created_at=_aware(item.created_at) if item.created_at else None))
                    continue
                pr = raw_pulls.get(item.number)
                if pr is None:  # closed between the two listings: not open any more
                    continue
                head_repo = pr.head.repo.full_name if pr.head.repo is not None else ""
                pulls.append(PullRequest(
                    number=pr.number, title=pr.title or "", labels=labels, body=_body(pr),
                    draft=bool(pr.draft), fork=head_repo.lower() != self.repo_name.lower(),
                    head_ref=pr.head.ref, base_ref=pr.base.ref, head_sha=pr.head.sha or "",
                ))
            return PipelineState(repo=self.repo_name, issues=issues, pull_requests=pulls)

        state = self._call("list open issues and pull requests", listings)
        return state.model_copy(update={"api_requests": self.requests_made - start})

    def pull_files(self, number: int) -> list[str]:
        return self._call(f"list the files of PR #{number}",
                          lambda: [f.filename for f in self._repo.get_pull(number).get_files()])

    def number_kind(self, number: int) -> NumberKind:
        """What the repository has under `number` (one `GET /issues/N`, which serves PRs too):
        `missing` when GitHub answers 404 or 410 (deleted)."""
        url = f"{self._repo.url}/issues/{number}"

        def fetch() -> NumberKind:
            try:
                _, data = self._gh.requester.requestJsonAndCheck("GET", url)
            except GithubException as exc:
                if exc.status in (404, 410):
                    return "missing"
                raise
            if "pull_request" in data:
                return "pull_request"
            return "open_issue" if data.get("state") == "open" else "closed_issue"

        return self._call(f"read #{number}", fetch)

    def comments(self, number: int) -> list[Comment]:
        return self._call(f"read the comments of #{number}",
                          lambda: [_comment(c, number) for c in self._repo.get_issue(number).get_comments()])

    def comments_since(self, since: datetime | None) -> list[Comment]:
        """One paginated listing of the repository's comments, most recently updated first
        (a comment updated while the pages are read moves to page 1: read twice or next
        time, never skipped). With an unchanged `since` and nothing new, page 1 answers 304."""

        def fetch() -> list[Comment]:
            bound = {} if since is None else {"since": since.astimezone(UTC)}
            listing = self._repo.get_issues_comments(sort="updated", direction="desc", **bound)
            return [_comment(c, int(str(c._rawData.get("issue_url", "")).rsplit("/", 1)[-1] or 0))
                    for c in listing]

        return self._call("list the repository's comments", fetch)

    def recall(self, name: str) -> str | None:
        cache = self._conditional.cache
        return None if cache is None else cache.get_text(self._kept_name(name))

    def remember(self, name: str, text: str) -> None:
        if self._conditional.cache is not None:
            self._conditional.cache.put_text(self._kept_name(name), text)

    def _kept_name(self, name: str) -> str:
        return f"{self._api_url}/repos/{self.repo_name.lower()}#{name}"

    def add_comment(self, number: int, body: str) -> None:
        self._write(f"comment on #{number}", lambda: self._repo.get_issue(number).create_comment(body))

    def list_issues_labelled(self, label: str, state: str = "open") -> list[IssueRef]:
        def fetch() -> list[IssueRef]:
            return [
                IssueRef(i.number, i.title or "", _body(i), tuple(lbl.name for lbl in i.labels),
                         author=_author(i))
                for i in self._repo.get_issues(state=state, labels=[label])
                if not _is_pull(i)
            ]

        return self._call(f"list issues labelled {label}", fetch)

    def pull_facts(self, number: int) -> PullFacts:
        """What GitHub says about PR `number` (exists=False when there is none)."""

        def fetch() -> PullFacts:
            # the repository is lazy, so the PR may be fetched on the first attribute read:
            # a 404 anywhere here means there is no such PR (a claim to be refused, not a crash)
            try:
                pr = self._repo.get_pull(number)
                body = _body(pr)
                return PullFacts(
                    number=number, exists=True, repo_full_name=pr.base.repo.full_name,
                    html_url=pr.html_url, title=pr.title or "", state=pr.state, merged=bool(pr.merged),
                    head_ref=pr.head.ref,
                    head_repo_full_name=pr.head.repo.full_name if pr.head.repo is not None else "",
                    base_ref=pr.base.ref, head_sha=pr.head.sha or "", mergeable=pr.mergeable,
                    mergeable_state=pr.mergeable_state or "unknown",
                    body=body, linked_issues=linked_issues(body, self.repo_name),
                )
            except GithubException as exc:
                if exc.status == 404:
                    return PullFacts(number=number, exists=False)
                raise

        return self._call(f"read PR #{number}", fetch)

    def issue_item(self, number: int) -> IssueItem:
        """What an issue leaf needs: title, URL, labels, body (one request)."""

        def fetch() -> IssueItem:
            issue = self._repo.get_issue(number)
            return IssueItem(number=number, title=issue.title or "", url=issue.html_url or "",
                             labels=[label.name for label in issue.labels], body=_body(issue))

        return self._call(f"read issue #{number}", fetch)

    def pull_item(self, number: int, files: list[str] | None = None) -> PullItem:
        """What a review leaf needs: title, URL, branch, the issues it closes, its files."""

        def fetch() -> PullItem:
            pr = self._repo.get_pull(number)
            changed = files if files is not None else [f.filename for f in pr.get_files()]
            return PullItem(number=number, title=pr.title or "", url=pr.html_url or "",
                            head_ref=pr.head.ref, closes=linked_issues(_body(pr), self.repo_name),
                            files=changed)

        return self._call(f"read PR #{number}", fetch)

    def login(self) -> str:
        """The login of the token's user."""
        if self._login is None:
            self._login = self._call("read the authenticated user", lambda: self._gh.get_user().login)
        return self._login

    def token_login(self, token: SecretStr | None) -> str | None:
        """The login of another token's user (the agent's), one `GET /user`; None without one."""
        if token is None:
            return None

        def fetch() -> str:
            other = Github(base_url=self._api_url, auth=Auth.Token(token.get_secret_value()),
                           timeout=self._timeout, retry=self._retry, verify=self._verify)
            try:
                return other.get_user().login
            finally:
                other.close()

        return self._call("read the agent token's user", fetch)

    def labels_of(self, number: int) -> list[str]:
        """The labels issue/PR `number` carries now (one request; a re-read before a claim)."""
        return self._call(f"read the labels of #{number}",
                          lambda: [label.name for label in self._repo.get_issue(number).get_labels()])

    def clone_url(self) -> str:
        """The repository's git URL (for the pass lock ref)."""
        return self._call("read the repository", lambda: self._gh.get_repo(self.repo_name).clone_url)

    def closed_pulls_since(self, since: datetime) -> list[MergedPull]:
        """Closed PRs, most recently updated first, until one last updated before `since`
        (one bounded listing: pages stop as soon as they are older)."""

        def fetch() -> list[MergedPull]:
            found = []
            for pr in self._repo.get_pulls(state="closed", sort="updated", direction="desc"):
                updated = _aware(pr.updated_at)
                if updated < since:
                    break
                found.append(MergedPull(number=pr.number, merged=pr.merged_at is not None,
                                        base_ref=pr.base.ref, body=_body(pr), updated_at=updated))
            return found

        return self._call("list recently closed pull requests", fetch)

    def last_labeler(self, number: int, label: str) -> str | None:
        """The login that most recently added `label` to issue/PR `number`, if any."""

        def fetch() -> str | None:
            actor = None
            for event in self._repo.get_issue(number).get_events():
                name = getattr(event.label, "name", None) if event.label is not None else None
                if name != label:
                    continue
                if event.event == "labeled":
                    actor = event.actor.login if event.actor is not None else None
                elif event.event == "unlabeled":
                    actor = None
            return actor

        return self._call(f"read the events of #{number}", fetch)

    def has_write_access(self, login: str) -> bool:
        def fetch() -> bool:
            try:
                return self._repo.get_collaborator_permission(login) in WRITE_PERMISSIONS
            except GithubException as exc:
                if exc.status in (404, 403):
                    return False
                raise

        return self._call(f"read {login}'s permission", fetch)

    # ------------------------------------------------------------------ writing
    def ensure_labels(self, wanted: dict[str, tuple[str, str]]) -> list[str]:
        """Create the labels in `wanted` (name -> (color, description)) that are missing."""

        def run() -> list[str]:
            existing = {label.name.lower() for label in self._repo.get_labels()}
            created = []
            for name, (color, description) in wanted.items():
                if name.lower() in existing:
                    continue
                try:
                    self._repo.create_label(name=name, color=color, description=description)
                except GithubException as exc:
                    if exc.status != 422:  # 422 already_exists: someone else made it
                        raise
                created.append(name)
            return created

        return self._write("create labels", run)

    def set_labels(self, number: int, add: Iterable[str] = (), remove: Iterable[str] = (),
                   current: Iterable[str] | None = None) -> list[str]:
        """Idempotent status transition: add what is missing, remove what is present.

        Without `current` it writes blind, which GitHub makes safe: adding a label the item
        has, or deleting one it lacks (404), changes nothing; so no read is needed first."""
        requester = self._gh.requester
        url = f"{self._repo.url}/issues/{number}/labels"

        def run() -> list[str]:
            have = None if current is None else set(current)
            missing = [name for name in add if have is None or name not in have]
            labels = set(have or ())
            if missing:
                _, data = _retry_post(lambda: requester.requestJsonAndCheck("POST", url, input=missing))
                labels = {label["name"] for label in data}
            for name in remove:
                if have is not None and name not in have:
                    continue
                try:
                    requester.requestJsonAndCheck("DELETE", f"{url}/{quote(name, safe='')}")
                except GithubException as exc:
                    if exc.status != 404:
                        raise
            return sorted(labels - set(remove))

        return self._write(f"update the labels of #{number}", run)

    def create_issue(self, title: str, body: str, labels: list[str]) -> int:
        return self._write("create an issue",
                          lambda: self._repo.create_issue(title=title, body=body, labels=labels).number)

    def edit_issue_body(self, number: int, body: str, title: str | None = None) -> None:
        def run() -> None:
            kwargs: dict[str, Any] = {"body": body}
            if title is not None:
                kwargs["title"] = title
            self._repo.get_issue(number).edit(**kwargs)

        self._write(f"edit issue #{number}", run)

    def close_with_comment(self, number: int, comment: str, state_reason: str = "not_planned") -> None:
        """Comment (unless our last comment already says it) and close. Safe to repeat."""

        def run() -> None:
            issue: GhIssue = self._repo.get_issue(number)
            if issue.state == "closed":
                return
            comments = list(issue.get_comments())
            if not comments or (comments[-1].body or "").strip() != comment.strip():
                issue.create_comment(comment)
            issue.edit(state="closed", state_reason=state_reason)

        self._write(f"close issue #{number}", run)


def _comment(c: Any, number: int) -> Comment:
    return Comment(author=c.user.login if c.user else "", body=_body(c), id=c.id, number=number,
                   updated_at=_aware(c.updated_at) if c.updated_at else None, url=c.html_url or "")


def _author(item: GhIssue) -> str:
    """The login that opened an issue, from the listing's own data (no extra request)."""
    user = item._rawData.get("user") or {}
    return str(user.get("login") or "")


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _open_blockers(item: GhIssue) -> int:
    """`issue_dependencies_summary.blocked_by` from the listing's own data (reading
    PyGithub's attribute when GitHub omitted it would refetch the issue)."""
    summary = item._rawData.get("issue_dependencies_summary")
    value = summary.get("blocked_by") if isinstance(summary, dict) else None
    return value if isinstance(value, int) and value > 0 else 0


def _is_pull(item: GhIssue) -> bool:
    """Whether an issues-listing entry is a PR. GitHub omits `pull_request` on plain
    issues, and reading PyGithub's `.pull_request` then refetches the issue (one request
    per issue), so the key is looked up in the listing's own data."""
    return "pull_request" in item._rawData


def _retry_post(fn: Callable[[], T], attempts: int = 4, pause: float = 0.5) -> T:
    """Retry a POST that is idempotent on GitHub's side (adding labels)."""
    for attempt in range(attempts):
        try:
            return fn()
        except GithubException as exc:
            if exc.status not in (429, 500, 502, 503, 504) or attempt == attempts - 1:
                raise
            time.sleep(pause * 2**attempt)
    raise AssertionError("unreachable")


def _explain(exc: GithubException, what: str, repo: str) -> str:
    status = exc.status
    message = ""
    if isinstance(exc.data, dict):
        message = str(exc.data.get("message", ""))
    if status == 401:
        return f"GitHub rejected the token (401 {message or 'Bad credentials'}); set GITHUB_TOKEN to a valid token"
    if status == 404:
        return (f"GitHub answered 404 while trying to {what} in {repo}: the repository does not exist "
                "or the token cannot see it; check --repo and the token's access")
    if status == 403:
        return (f"GitHub refused to {what} in {repo} (403 {message}); give the token write access "
                "or wait for the rate limit to reset")
    return f"GitHub failed to {what} in {repo} ({status} {message}); retry later"

"""GitHub's issue search syntax (`GET /search/issues` and GraphQL `search(type: ISSUE)` share it).

`parse_query` turns `repo:o/r is:pr is:open label:bug head:b closes #3` into a `SearchQuery`;
`matches` tells whether one issue or pull request fits it. Pure: no store, no I/O.
A qualifier the sandbox does not know is refused (`SearchError`), never ignored.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from .state import IssueRec, LabelRec, RepoRec

SORTS = {"created", "updated", "comments"}


class SearchError(ValueError):
    """A query the sandbox cannot answer faithfully; the message names the part."""


@dataclass
class SearchQuery:
    repos: list[str] = field(default_factory=list)  # lower-case owner/name
    kind: str | None = None  # "issue" | "pr"
    state: str | None = None  # "open" | "closed"
    merged: bool | None = None
    labels: list[str] = field(default_factory=list)  # lower case, all required
    no_labels: list[str] = field(default_factory=list)
    head: str | None = None
    base: str | None = None
    author: str | None = None
    assignee: str | None = None
    draft: bool | None = None
    words: list[str] = field(default_factory=list)  # lower case, all required in title or body
    sort: str = "created"
    ascending: bool = False


def parse_query(text: str) -> SearchQuery:
    q = SearchQuery()
    try:
        terms = shlex.split(text)
    except ValueError:
        terms = text.split()
    for term in terms:
        key, sep, value = term.partition(":")
        negated = key.startswith("-")
        key = key.lstrip("-").lower()
        if not sep or not value or " " in key:
            q.words.append(term.lower())
            continue
        lowered = value.lower()
        if key == "repo":
            q.repos.append(lowered)
        elif key in ("type", "is") and lowered in ("issue", "pr"):
            q.kind = lowered
        elif key == "is" and lowered == "pull-request":
            q.kind = "pr"
        elif key in ("is", "state") and lowered in ("open", "closed"):
            q.state = lowered
        elif key == "is" and lowered in ("merged", "unmerged"):
            q.kind, q.merged = "pr", lowered == "merged"
        elif key == "draft" and lowered in ("true", "false"):
            q.draft = lowered == "true"
        elif key == "is" and lowered == "draft":
            q.draft = True
        elif key == "label":
            (q.no_labels if negated else q.labels).extend(v.strip().lower() for v in value.split(","))
        elif key in ("head", "base", "author", "assignee"):
            setattr(q, key, value)
        elif key == "sort":
            name, _, direction = lowered.partition("-")
            if name not in SORTS or direction not in ("", "asc", "desc"):
                raise SearchError(f"sort:{value} is not a sort the sandbox knows ({', '.join(sorted(SORTS))})")
            q.sort, q.ascending = name, direction == "asc"
        elif key == "in" and lowered in ("title", "body", "title,body"):
            continue  # free text is matched in the title and the body anyway
        else:
            raise SearchError(f"the sandbox does not support the search qualifier {term!r}")
    return q


def matches(q: SearchQuery, repo: RepoRec, it: IssueRec, head_owner: str | None = None) -> bool:
    """Whether `it` (an issue or a pull request of `repo`) fits the query."""
    if q.repos and repo.key not in q.repos:
        return False
    if q.kind == "issue" and it.pull is not None or q.kind == "pr" and it.pull is None:
        return False
    if q.state and it.state != q.state:
        return False
    pr = it.pull
    if q.merged is not None and (pr is None or pr.merged != q.merged):
        return False
    if q.draft is not None and (pr is None or pr.draft != q.draft):
        return False
    if q.head is not None:
        owner, _, ref = q.head.rpartition(":")
        if pr is None or pr.head_ref != ref or owner and (head_owner or "").lower() != owner.lower():
            return False
    if q.base is not None and (pr is None or pr.base_ref != q.base):
        return False
    if q.author and it.user.lower() != q.author.lower():
        return False
    if q.assignee and q.assignee.lower() not in (a.lower() for a in it.assignees):
        return False
    names = _label_names(repo.labels, it.labels)
    if not set(q.labels) <= names or set(q.no_labels) & names:
        return False
    text = f"{it.title}\n{it.body or ''}".lower()
    return all(word in text for word in q.words)


def sort_key(q: SearchQuery):
    keys = {"created": lambda it: it.number, "updated": lambda it: (it.updated_at, it.updated_seq),
            "comments": lambda it: (len(it.comments), it.number)}
    return keys[q.sort]


def _label_names(labels: list[LabelRec], ids: list[int]) -> set[str]:
    by_id = {lab.id: lab.name.lower() for lab in labels}
    return {by_id[i] for i in ids if i in by_id}

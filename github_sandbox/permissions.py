"""Who may do what on a repository, as GitHub decides it. Pure functions."""
from __future__ import annotations

from .state import ROLES, RepoRec

NONE = "none"
_RANK = {NONE: 0, **{role: i + 1 for i, role in enumerate(ROLES)}}
# GitHub's API accepts both vocabularies when granting a role.
_ALIASES = {"pull": "read", "push": "write", **{r: r for r in ROLES}}


def normalize_role(value: str) -> str | None:
    """`push` -> `write`, `pull` -> `read`; None for anything GitHub would refuse."""
    return _ALIASES.get(value.lower()) if isinstance(value, str) else None


def role_of(repo: RepoRec, login: str | None) -> str:
    """The viewer's role: owner admin, collaborators their grant, others read if public."""
    if login is not None:
        if login.lower() == repo.owner.lower():
            return "admin"
        role = repo.collaborators.get(login.lower())
        if role:
            return role
    return NONE if repo.private else "read"


def at_least(role: str, needed: str) -> bool:
    return _RANK[role] >= _RANK[needed]


def legacy_permission(role: str) -> str:
    """The `permission` field of the permission endpoint: admin, write, read or none."""
    return {"maintain": "write", "triage": "read"}.get(role, role)


def permission_flags(role: str) -> dict[str, bool]:
    return {
        "admin": at_least(role, "admin"),
        "maintain": at_least(role, "maintain"),
        "push": at_least(role, "write"),
        "triage": at_least(role, "triage"),
        "pull": at_least(role, "read"),
    }


def author_association(repo: RepoRec, login: str) -> str:
    if login.lower() == repo.owner.lower():
        return "OWNER"
    if login.lower() in repo.collaborators:
        return "COLLABORATOR"
    return "NONE"

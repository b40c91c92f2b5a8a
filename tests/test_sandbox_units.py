"""The sandbox's pure rules, as tables: closing keywords, pagination, permissions,
credentials, fault matching, request bodies, diff parsing, CLI input."""
from __future__ import annotations

import base64

import pytest

from github_sandbox.app import BadCredentials, credentials
from github_sandbox.bodies import MISSING, field, one_of, parse_json
from github_sandbox.closing import closing_references
from github_sandbox.errors import ApiError, error_body
from github_sandbox.faults import FaultBook, FaultSpec, RateBook, matches
from github_sandbox.gitops import _parse_numstat, _parse_raw, _split_patch
from github_sandbox.paging import link_header, page_params
from github_sandbox.permissions import (author_association, legacy_permission, normalize_role,
                                           permission_flags, role_of)
from github_sandbox.server import SandboxUsageError, parse_user
from github_sandbox.state import RepoRec

REPO = "octo/app"


@pytest.mark.parametrize("text,expected", [
    ("Fixes #12", [12]),
    ("fixes #12, closes #3 and RESOLVED #4", [12, 3, 4]),
    ("close #1 closed #2 closes #3 fix #4 fixed #5 resolve #6 resolves #7", [1, 2, 3, 4, 5, 6, 7]),
    ("Closes: #9", [9]),
    ("Fixes octo/app#8", [8]),
    ("Fixes OCTO/App#8", [8]),
    ("Fixes other/repo#8", []),
    ("Refs #5", []),
    ("prefixes #5 and suffixes #6", []),
    ("fixes#5", []),
    ("Fixes #5 fixes #5", [5]),
    ("Fixes #0", []),
    ("", []),
    (None, []),
])
def test_closing_references(text, expected):
    assert closing_references(text, REPO) == expected


@pytest.mark.parametrize("query,expected", [
    ({}, (1, 30)),
    ({"per_page": "20", "page": "3"}, (3, 20)),
    ({"per_page": "500"}, (1, 100)),
    ({"per_page": "0"}, (1, 30)),
    ({"per_page": "abc", "page": "-2"}, (1, 30)),
])
def test_page_params(query, expected):
    assert page_params(query) == expected


@pytest.mark.parametrize("page,total,rels", [
    (1, 45, ["next", "last"]),
    (2, 45, ["prev", "next", "last", "first"]),
    (3, 45, ["prev", "first"]),
    (1, 20, []),
    (1, 0, []),
])
def test_link_header_relations(page, total, rels):
    header = link_header("http://h/api/v3/x", [("state", "all"), ("per_page", "20")], page, 20, total)
    found = [part.split('rel="')[1].rstrip('"') for part in header.split(", ")] if header else []
    assert found == rels
    if header and "next" in rels:
        assert f"<http://h/api/v3/x?state=all&per_page=20&page={page + 1}>; rel=\"next\"" in header


def _repo(**kw) -> RepoRec:
    return RepoRec(id=1, owner="octo", name="app", created_at="t", updated_at="t", **kw)


@pytest.mark.parametrize("private,collaborators,login,role", [
    (False, {}, "octo", "admin"),
    (False, {}, "OCTO", "admin"),
    (False, {}, "stranger", "read"),
    (False, {}, None, "read"),
    (True, {}, "stranger", "none"),
    (True, {}, None, "none"),
    (True, {"bob": "triage"}, "Bob", "triage"),
    (False, {"bob": "maintain"}, "bob", "maintain"),
])
def test_role_of(private, collaborators, login, role):
    assert role_of(_repo(private=private, collaborators=collaborators), login) == role


@pytest.mark.parametrize("given,role,legacy", [
    ("pull", "read", "read"), ("read", "read", "read"), ("triage", "triage", "read"),
    ("push", "write", "write"), ("WRITE", "write", "write"), ("maintain", "maintain", "write"),
    ("admin", "admin", "admin"), ("owner", None, None), (3, None, None),
])
def test_role_vocabularies(given, role, legacy):
    assert normalize_role(given) == role
    if role:
        assert legacy_permission(role) == legacy


def test_permission_flags_and_association():
    assert permission_flags("triage") == {"admin": False, "maintain": False, "push": False,
                                          "triage": True, "pull": True}
    repo = _repo(collaborators={"bob": "write"})
    assert [author_association(repo, x) for x in ("octo", "bob", "eve")] == ["OWNER", "COLLABORATOR", "NONE"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("header,token", [
    (None, None),
    ("", None),
    ("token abc", "abc"),
    ("Bearer abc", "abc"),
    ("bearer  abc ", "abc"),
    (_basic("x-access-token", "abc"), "abc"),
    (_basic("octo", "abc"), "abc"),
    (_basic("abc", ""), "abc"),
    (_basic("abc", "x-oauth-basic"), "abc"),
])
def test_credentials(header, token):
    assert credentials(header) == token


@pytest.mark.parametrize("header", ["Digest abc", "Basic !!!notbase64", "token"])
def test_unreadable_credentials_are_refused(header):
    with pytest.raises(BadCredentials):
        credentials(header)


@pytest.mark.parametrize("spec,method,path,template,is_api,hit", [
    ({}, "GET", "/api/v3/user", "/user", True, True),
    ({}, "GET", "/octo/app.git/info/refs", "/{owner}/{repo}.git/{rest}", False, False),
    ({"method": "post"}, "GET", "/api/v3/user", "/user", True, False),
    ({"method": "get"}, "GET", "/api/v3/user", "/user", True, True),
    ({"path": "/repos/*/issues"}, "GET", "/api/v3/repos/o/r/issues", "/repos/{owner}/{repo}/issues", True, True),
    ({"path": "/repos/*/issues"}, "GET", "/api/v3/repos/o/r/issues/1", "/repos/{owner}/{repo}/issues/{issue_number}",
     True, False),
    ({"path": "/repos/{owner}/{repo}/issues"}, "GET", "/api/v3/repos/o/r/issues", "/repos/{owner}/{repo}/issues",
     True, True),
    ({"path": "/octo/*.git/*"}, "POST", "/octo/app.git/git-receive-pack", None, False, True),
])
def test_fault_matching(spec, method, path, template, is_api, hit):
    assert matches(FaultSpec(**spec), method, path, template, is_api) is hit


def test_fault_book_counts_down_and_clears():
    book = FaultBook()
    twice = book.add(FaultSpec(status=502, times=2))
    forever = book.add(FaultSpec(status=500, path="/x", times=None))
    assert [book.take("GET", "/api/v3/user", "/user", True).id for _ in range(2)] == [twice.id, twice.id]
    assert book.take("GET", "/api/v3/user", "/user", True) is None
    assert [book.take("GET", "/x", None, False).id for _ in range(3)] == [forever.id] * 3
    assert book.clear(forever.id) == 1 and book.list() == []


def test_rate_book_spends_and_resets():
    book = RateBook(limit=3)
    book.spend("user:a")
    book.spend("user:a")
    assert book.peek("user:a")["remaining"] == 1 and book.peek("user:b")["used"] == 0
    assert book.peek("ip:1.2.3.4")["limit"] == 60
    book.set(used={"user:a": 3})
    assert book.peek("user:a")["remaining"] == 0
    book.set(limit=10)
    assert book.peek("user:a") | {"reset": 0} == {"limit": 10, "used": 0, "remaining": 10, "reset": 0}


@pytest.mark.parametrize("raw,status,message", [
    (b"{bad", 400, "Problems parsing JSON"),
    (b"\xff\xfe", 400, "Problems parsing JSON"),
])
def test_parse_json_refuses_non_json(raw, status, message):
    with pytest.raises(ApiError) as exc:
        parse_json(raw)
    assert (exc.value.status, exc.value.message) == (status, message)


@pytest.mark.parametrize("body,kinds,required,expected", [
    ({"a": "x"}, ("string",), False, "x"),
    ({}, ("string",), False, MISSING),
    ({"a": None}, ("string", "null"), False, None),
    ({"a": 1}, ("integer",), False, 1),
])
def test_field_accepts(body, kinds, required, expected):
    assert field(body, "a", *kinds, required=required) == expected


@pytest.mark.parametrize("body,kinds,message", [
    ({}, ("string",), 'Invalid request.\n\n"a" wasn\'t supplied.'),
    ({"a": True}, ("integer",), "Invalid request.\n\nFor 'properties/a', true is not an integer."),
    ({"a": [1]}, ("string", "null"), "Invalid request.\n\nFor 'properties/a', [1] is not a string or null."),
])
def test_field_refuses(body, kinds, message):
    with pytest.raises(ApiError) as exc:
        field(body, "a", *kinds, required=True)
    assert (exc.value.status, exc.value.message) == (422, message)


def test_one_of_lists_the_choices():
    assert one_of({"s": "open"}, "s", ("open", "closed")) == "open"
    with pytest.raises(ApiError) as exc:
        one_of({"s": "gone"}, "s", ("open", "closed"))
    assert exc.value.message.endswith('"gone" is not one of ["open", "closed"].')


def test_error_body_shape():
    assert error_body(422, "Validation Failed", None, [{"code": "invalid"}]) == {
        "message": "Validation Failed", "errors": [{"code": "invalid"}],
        "documentation_url": "https://docs.github.com/rest", "status": "422"}


def test_diff_parsing_pairs_raw_numstat_and_patches():
    a, b = "1" * 40, "2" * 40
    raw = f":100644 100644 {a} {b} M\x00x.py\x00:100644 100644 {a} {b} R090\x00old.py\x00new.py\x00"
    numstat = "3\t1\tx.py\x00-\t-\t\x00old.py\x00new.py\x00"
    patch = "diff --git a/x.py b/x.py\nindex 1..2\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n" \
            "diff --git a/old.py b/new.py\nsimilarity index 90%\nrename from old.py\nrename to new.py\n"
    assert _parse_raw(raw) == [("M", a, b, "x.py", "x.py"), ("R090", a, b, "old.py", "new.py")]
    assert _parse_numstat(numstat) == [(3, 1), (0, 0)]
    assert _split_patch(patch) == ["@@ -1 +1 @@\n-a\n+b", None]


@pytest.mark.parametrize("text,ok", [
    ("admin=tok", True), ("a-b=t=x", True), ("admin=", False), ("admin", False), ("-bad=t", False),
    ("x" * 40 + "=t", False), ("sp ace=t", False),
])
def test_parse_user(text, ok):
    if ok:
        login, token = parse_user(text)
        assert f"{login}={token.get_secret_value()}" == text
        assert token.get_secret_value() not in repr(token)
    else:
        with pytest.raises(SandboxUsageError) as exc:
            parse_user(text)
        assert "\n" not in str(exc.value) and "--user" in str(exc.value)

"""Repository webhooks, delivered as GitHub delivers them.

`POST/GET/DELETE /repos/{owner}/{repo}/hooks` keep hooks (config `url`, `content_type: json`,
`secret`, `events`). After a write under `/repos/{owner}/{repo}/` answers 2xx, `after_write`
compares the repository's issues with what they were before the request and sends one
delivery per change (`issues` and `pull_request`: opened, closed, reopened, labeled,
unlabeled, edited) to each active hook that subscribed to the event: JSON body, headers
`X-GitHub-Event`, `X-GitHub-Delivery` (a GUID), `X-Hub-Signature-256` (HMAC-SHA256 of the
body under the hook's secret). Deliveries run in the background after the response, are
never retried (as on GitHub), and are listed under `/_sandbox/hooks/deliveries`.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

import httpx

from . import render
from .render import Urls
from .state import IssueRec, RepoRec

REPO_PATH = re.compile(r"^/api/v3/repos/([^/]+)/([^/]+)(?:/|$)")
HOOK_EVENTS = {"issues", "pull_request", "*"}


def repo_of(path: str) -> tuple[str, str] | None:
    match = REPO_PATH.match(path)
    return (match.group(1), match.group(2)) if match else None


def snapshot(rec: RepoRec) -> dict[int, tuple[int, str, str | None, str]]:
    """Per issue: (events so far, title, body, state), to diff after a write."""
    return {n: (len(it.events), it.title, it.body, it.state) for n, it in rec.issues.items()}


def changes(rec: RepoRec, before: dict[int, tuple[int, str, str | None, str]]) -> list[tuple[IssueRec, str, dict[str, Any], str | None]]:
    """(issue, action, extra payload, actor) for every change since `before`."""
    out: list[tuple[IssueRec, str, dict[str, Any], str | None]] = []
    for number, it in rec.issues.items():
        seen, title, body, _ = before.get(number, (0, it.title, it.body, it.state))
        if number not in before:
            out.append((it, "opened", {}, it.user))
        elif (title, body) != (it.title, it.body):
            changed = {}
            if title != it.title:
                changed["title"] = {"from": title}
            if body != it.body:
                changed["body"] = {"from": body or ""}
            out.append((it, "edited", {"changes": changed}, None))
        for ev in it.events[seen:]:
            if ev.event in ("labeled", "unlabeled"):
                out.append((it, ev.event, {"label": ev.label}, ev.actor))
            elif ev.event in ("closed", "reopened"):
                out.append((it, ev.event, {}, ev.actor))
    return out


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HookBook:
    """Hooks per repository key, and the deliveries sent (newest last)."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[dict[str, Any]]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._next = 1
        self._tasks: set[asyncio.Task] = set()

    def create(self, repo_key: str, config: dict[str, Any], events: list[str], active: bool) -> dict[str, Any]:
        hook = {"id": self._next, "name": "web", "active": active, "events": events,
                "config": {"url": config["url"], "content_type": config.get("content_type", "json"),
                           "insecure_ssl": str(config.get("insecure_ssl", "0"))},
                "secret": config.get("secret") or "",
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        hook["updated_at"] = hook["created_at"]
        self._next += 1
        self.hooks.setdefault(repo_key, []).append(hook)
        return hook

    def delete(self, repo_key: str, hook_id: int) -> bool:
        hooks = self.hooks.get(repo_key, [])
        kept = [h for h in hooks if h["id"] != hook_id]
        self.hooks[repo_key] = kept
        return len(kept) != len(hooks)

    def send(self, repo_key: str, event: str, payload: dict[str, Any]) -> None:
        for hook in self.hooks.get(repo_key, []):
            if hook["active"] and (event in hook["events"] or "*" in hook["events"]):
                task = asyncio.get_running_loop().create_task(self._deliver(hook, event, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, hook: dict[str, Any], event: str, payload: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # after the response that caused it
        body = json.dumps(payload).encode()
        guid = str(uuid.uuid4())
        headers = {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/sandbox",
                   "X-GitHub-Event": event, "X-GitHub-Delivery": guid,
                   "X-GitHub-Hook-ID": str(hook["id"])}
        if hook["secret"]:
            headers["X-Hub-Signature-256"] = sign(hook["secret"], body)
        record = {"guid": guid, "hook_id": hook["id"], "event": event, "action": payload.get("action"),
                  "url": hook["config"]["url"], "status_code": None, "error": None,
                  "delivered_at": time.time()}
        self.deliveries.append(record)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(hook["config"]["url"], content=body, headers=headers)
            record["status_code"] = answer.status_code
        except httpx.HTTPError as exc:  # never retried, as on GitHub
            record["error"] = type(exc).__name__


def _label(svc: Any, urls: Urls, rec: RepoRec, seen: dict[str, Any]) -> dict[str, Any]:
    found = svc.find_label(rec, str(seen.get("name", "")))
    if found is None:  # deleted since: what the event kept
        data = {"id": 0, "node_id": "", "url": render.label_url(urls, rec, str(seen.get("name", ""))),
                "name": seen.get("name", ""), "color": seen.get("color", "ededed"),
                "default": False, "description": None}
    else:
        data = render.label(urls, rec, found)
    return {**data, "archived_at": None, "archived_by": None}  # webhook labels carry these


def payloads(svc: Any, urls: Urls, rec: RepoRec, before: dict, viewer_login: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(event name, payload) for every change a write made, in GitHub's shapes."""
    out = []
    repo_json = svc.repo_json(urls, rec, None, full=False)
    for it, action, extra, actor in changes(rec, before):
        if "label" in extra:
            extra = {**extra, "label": _label(svc, urls, rec, extra["label"] or {})}
        sender = render.user(urls, svc.users(actor or viewer_login or "")) if (actor or viewer_login) else None
        if it.pull is None:
            payload = {"action": action, "issue": render.issue(urls, rec, it, svc.users), **extra}
            event = "issues"
        else:
            payload = {"action": action, "number": it.number,
                       "pull_request": svc.pull_json(urls, rec, it, None, full=True), **extra}
            event = "pull_request"
        payload["repository"] = repo_json
        payload["sender"] = sender
        out.append((event, payload))
    return out

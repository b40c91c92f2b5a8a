"""A scripted model server for driving the real agent CLIs offline (test support).

It speaks just enough of three vendors' wire formats, streaming, to walk a CLI through a
tool-use script the test chooses:

* Anthropic Messages (Claude Code): ``POST /v1/messages`` with ``stream: true`` answers
  server-sent events (message_start, content_block_*, message_delta, message_stop).
* OpenAI Responses (Codex): ``POST /v1/responses`` answers response.created,
  response.output_item.added/done and response.completed (with usage).
* Gemini (Gemini CLI): ``POST /v1beta/models/M:generateContent`` (its routing call) and
  ``:streamGenerateContent?alt=sse``.

A script is a function ``(prompt, results) -> Action``: `prompt` is the first user text of
the conversation (the CLI's prompt, naming the task file), `results` the text of every tool
result the CLI has sent back so far, in order. So a script can read the `.agent-task` and
learn its issue number from the first result. The server turns the neutral actions
(`Read`, `Shell`, `Write`, `Say`, `Hang`) into each CLI's own tool calls, records every
request, and reports token usage figures (`USAGE`) on every answer.

Requests without tools (title generation, routing) get a short neutral answer.
"""
from __future__ import annotations

import itertools
import json
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prompt_commands import example_commands, typed


@dataclass(frozen=True)
class Read:
    path: str


@dataclass(frozen=True)
class Shell:
    command: str


@dataclass(frozen=True)
class Write:
    path: str
    content: str


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (a model that stops answering)."""


Action = Read | Shell | Write | Say | Hang
Script = Callable[[str, list[str]], Action]

# Token figures of every answer: what a CLI must add up in its own report.
INPUT_TOKENS = 1000
OUTPUT_TOKENS = 50
CACHED_TOKENS = 0


@dataclass
class Recorded:
    api: str  # "anthropic", "openai", "gemini"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    tools: list[str]
    action: str = ""


@dataclass
class ScriptedModel:
    """Routes each conversation to a script; `script_for(prompt)` picks it."""

    script_for: Callable[[str], Script]
    requests: list[Recorded] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)  # api -> answers with usage
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def answered(self, api: str) -> None:
        with self._lock:
            self.answers[api] = self.answers.get(api, 0) + 1


_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


def _text_of(content: Any) -> str:
    """Text of a tool result in any of the three formats."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(c) for c in content)
    if isinstance(content, dict):
        for key in ("text", "output", "content", "llmContent", "stdout", "result", "response"):
            if key in content:
                return _text_of(content[key])
        return json.dumps(content)
    return str(content)


# ── each API: the conversation in, the action out ────────────────────────────


def _anthropic_conversation(body: dict[str, Any]) -> tuple[str, list[str]]:
    prompt, results = "", []
    for message in body.get("messages", []):
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for block in blocks:
            if message.get("role") == "user" and block.get("type") == "text" and not prompt \
                    and "coordinator" in block.get("text", ""):
                prompt = block["text"]
            if block.get("type") == "tool_result":
                results.append(_text_of(block.get("content")))
    if not prompt:  # the prompt may sit in a later text block (after system reminders)
        prompt = json.dumps(body.get("messages", [])[:1])
    return prompt, results


def _openai_conversation(body: dict[str, Any]) -> tuple[str, list[str]]:
    prompt, results = "", []
    items = body.get("input")
    items = [{"type": "message", "role": "user", "content": items}] if isinstance(items, str) else items or []
    for item in items:
        if item.get("type") == "message" and item.get("role") == "user":
            text = _text_of(item.get("content"))
            if "coordinator" in text and not prompt:
                prompt = text
        if item.get("type") in ("function_call_output", "custom_tool_call_output"):
            results.append(_text_of(item.get("output")))
    return prompt, results


def _gemini_conversation(body: dict[str, Any]) -> tuple[str, list[str]]:
    prompt, results = "", []
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            if content.get("role") == "user" and "text" in part and "coordinator" in part["text"] and not prompt:
                prompt = part["text"]
            if "functionResponse" in part:
                results.append(_text_of(part["functionResponse"].get("response")))
    return prompt, results


def _tool_names_anthropic(body: dict[str, Any]) -> list[str]:
    return [t.get("name", "") for t in body.get("tools", [])]


def _tool_names_openai(body: dict[str, Any]) -> list[str]:
    return [t.get("name", "") for t in body.get("tools", []) if t.get("type") == "function"]


def _gemini_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for tool in body.get("tools", []) or []:
        for decl in tool.get("functionDeclarations", []) or []:
            found[decl["name"]] = decl
    return found


def anthropic_call(action: Action) -> tuple[str, dict[str, Any]]:
    if isinstance(action, Read):
        return "Read", {"file_path": action.path}
    if isinstance(action, Write):
        return "Write", {"file_path": action.path, "content": action.content}
    assert isinstance(action, Shell)
    return "Bash", {"command": action.command, "description": "scripted step"}


def openai_call(action: Action, tools: list[str]) -> tuple[str, dict[str, Any]]:
    if isinstance(action, Read):
        command = f"cat {shlex.quote(action.path)}"
    elif isinstance(action, Write):
        folder = action.path.rsplit("/", 1)[0] or "/"
        command = (f"mkdir -p {shlex.quote(folder)} && "
                   f"printf %s {shlex.quote(action.content)} > {shlex.quote(action.path)}")
    else:
        assert isinstance(action, Shell)
        command = action.command
    if "exec_command" in tools:
        return "exec_command", {"cmd": command}
    if "shell_command" in tools:
        return "shell_command", {"command": command}
    return "shell", {"command": ["bash", "-lc", command]}


def _param(decl: dict[str, Any], *candidates: str) -> str:
    props = (decl.get("parametersJsonSchema") or decl.get("parameters") or {}).get("properties", {})
    for name in candidates:
        if name in props:
            return name
    return candidates[0]


def gemini_call(action: Action, tools: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    if isinstance(action, Read):
        decl = tools.get("read_file", {})
        return "read_file", {_param(decl, "file_path", "absolute_path", "path"): action.path}
    if isinstance(action, Write):
        decl = tools.get("write_file", {})
        return "write_file", {_param(decl, "file_path", "absolute_path", "path"): action.path,
                              "content": action.content}
    assert isinstance(action, Shell)
    return "run_shell_command", {"command": action.command, "description": "scripted step"}


# ── the HTTP server ──────────────────────────────────────────────────────────


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: ScriptedModel  # set on the subclass

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("content-encoding") == "zstd":
            raise ValueError("zstd request bodies are not supported")
        return json.loads(raw or b"{}")

    def do_GET(self) -> None:  # model listings and the like
        self._json(200, {"data": [], "models": []})

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError as exc:
            self._json(400, {"error": {"message": str(exc)}})
            return
        path = self.path
        if "/v1/messages" in path:
            self._anthropic(body)
        elif path.rstrip("/").endswith("/responses"):
            self._openai(body)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            self._gemini(body, stream=":streamGenerateContent" in path)
        elif ":countTokens" in path:
            self._json(200, {"totalTokens": INPUT_TOKENS})
        elif path.startswith("/v1/messages/count_tokens"):
            self._json(200, {"input_tokens": INPUT_TOKENS})
        else:
            self._json(404, {"error": {"message": f"no scripted route for {path}"}})

    # helpers
    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse_start(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, payload: dict[str, Any], event: str | None = None) -> None:
        head = f"event: {event}\n" if event else ""
        self.wfile.write(f"{head}data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def _hang(self) -> None:
        """Never answer: wait until the client goes away or the test ends."""
        while not self.model.stop.wait(0.2):
            try:
                self.connection.settimeout(0.01)
                if self.connection.recv(1, 2) == b"":  # MSG_PEEK: b"" means the client closed
                    return
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return

    def _decide(self, api: str, body: dict[str, Any], prompt: str, results: list[str],
                tools: list[str]) -> Action:
        rec = Recorded(api=api, path=self.path, body=body, tools=tools,
                       headers={k.lower(): v for k, v in self.headers.items()})
        if not tools or not prompt:
            action: Action = Say("OK")
        else:
            action = self.model.script_for(prompt)(prompt, results)
        rec.action = type(action).__name__
        self.model.record(rec)
        return action

    # Anthropic Messages
    def _anthropic(self, body: dict[str, Any]) -> None:
        prompt, results = _anthropic_conversation(body)
        action = self._decide("anthropic", body, prompt, results, _tool_names_anthropic(body))
        if isinstance(action, Hang):
            self._hang()
            return
        model = body.get("model", "scripted")
        usage = {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": CACHED_TOKENS}
        if isinstance(action, Say):
            block = {"type": "text", "text": action.text}
            stop = "end_turn"
        else:
            name, args = anthropic_call(action)
            block = {"type": "tool_use", "id": _id("toolu"), "name": name, "input": args}
            stop = "tool_use"
        message = {"id": _id("msg"), "type": "message", "role": "assistant", "model": model,
                   "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
        self.model.answered("anthropic")
        if not body.get("stream"):
            self._json(200, message)
            return
        self._sse_start()
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1}}
        self._sse({"type": "message_start", "message": start}, "message_start")
        if block["type"] == "text":
            self._sse({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}, "content_block_start")
            self._sse({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": block["text"]}}, "content_block_delta")
        else:
            self._sse({"type": "content_block_start", "index": 0,
                       "content_block": {**block, "input": {}}}, "content_block_start")
            self._sse({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                      "content_block_delta")
        self._sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        self._sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": {"output_tokens": OUTPUT_TOKENS}}, "message_delta")
        self._sse({"type": "message_stop"}, "message_stop")

    # OpenAI Responses
    def _openai(self, body: dict[str, Any]) -> None:
        prompt, results = _openai_conversation(body)
        tools = _tool_names_openai(body)
        action = self._decide("openai", body, prompt, results, tools)
        if isinstance(action, Hang):
            self._hang()
            return
        response_id = _id("resp")
        if isinstance(action, Say):
            item = {"type": "message", "id": _id("msg"), "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": action.text, "annotations": []}]}
        else:
            name, args = openai_call(action, tools)
            item = {"type": "function_call", "id": _id("fc"), "call_id": _id("call"), "name": name,
                    "arguments": json.dumps(args), "status": "completed"}
        usage = {"input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
                 "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}
        self.model.answered("openai")
        self._sse_start()
        base = {"id": response_id, "object": "response", "created_at": int(time.time()),
                "model": body.get("model", "scripted"), "status": "in_progress", "output": []}
        self._sse({"type": "response.created", "response": base}, "response.created")
        self._sse({"type": "response.output_item.added", "output_index": 0,
                   "item": {**item, "status": "in_progress"}}, "response.output_item.added")
        if item["type"] == "message":
            self._sse({"type": "response.output_text.delta", "item_id": item["id"], "output_index": 0,
                       "content_index": 0, "delta": action.text}, "response.output_text.delta")
        self._sse({"type": "response.output_item.done", "output_index": 0, "item": item},
                  "response.output_item.done")
        done = {**base, "status": "completed", "output": [item], "usage": usage}
        self._sse({"type": "response.completed", "response": done}, "response.completed")

    # Gemini
    def _gemini(self, body: dict[str, Any], stream: bool) -> None:
        prompt, results = _gemini_conversation(body)
        tools = _gemini_tools(body)
        schema = (body.get("generationConfig") or {}).get("responseJsonSchema") or \
            (body.get("generationConfig") or {}).get("responseSchema")
        action = self._decide("gemini", body, prompt, results, list(tools))
        if isinstance(action, Hang):
            self._hang()
            return
        if schema:  # a structured side call (model routing): a small valid answer
            props = schema.get("properties", {})
            answer = {k: (10 if v.get("type", "").upper() in ("INTEGER", "NUMBER") else "scripted")
                      for k, v in props.items()}
            part: dict[str, Any] = {"text": json.dumps(answer)}
        elif isinstance(action, Say):
            part = {"text": action.text}
        else:
            name, args = gemini_call(action, tools)
            part = {"functionCall": {"name": name, "args": args}}
        payload = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP",
                                   "index": 0}],
                   "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
                                     "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS,
                                     "cachedContentTokenCount": CACHED_TOKENS},
                   "modelVersion": "scripted"}
        if not schema:
            self.model.answered("gemini")
        if not stream:
            self._json(200, payload)
            return
        self._sse_start()
        self._sse(payload)


class ModelServer:
    """`with ModelServer(model) as server:` serves on 127.0.0.1:`server.port`."""

    def __init__(self, model: ScriptedModel, port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"model": model})
        self.model = model
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-model", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.model.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ── scripts for the conductor's two leaf kinds ───────────────────────────────


def task_of(results: list[str]) -> dict[str, str]:
    """KEY=value lines of the .agent-task, from the first tool result (any line prefix,
    such as Claude's line numbers or Codex's output header, is ignored)."""
    found: dict[str, str] = {}
    for line in results[0].splitlines() if results else []:
        match = re.search(r"\b([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def task_path(prompt: str) -> str:
    match = re.search(r"task file at (\S+?\.agent-task)", prompt)
    assert match, f"no task file in the prompt: {prompt[:300]}"
    return match.group(1)


def first_item(task: dict[str, str], *keys: str) -> int:
    for key in keys:
        if task.get(key):
            return int(task[key].split(",")[0])
    raise AssertionError(f"task names none of {keys}: {task}")


def _html_url(text: str) -> str | None:
    match = re.search(r'"html_url"\s*:\s*"([^"]+/pull/\d+)"', text)
    return match.group(1) if match else None


def _issue_report(workflow: str, issue: int, url: str) -> dict[str, Any]:
    if "-" in workflow:  # a leaf (issue-to-pr): the single-item form
        return {"workflow": workflow, "status": "done", "issue": issue, "pr_url": url}
    return {"workflow": workflow, "status": "done", "issues": [{"issue": issue, "pr_url": url}]}


def issue_to_pr_script(*, lie: bool = False) -> Script:
    """Read the task; branch, write, commit, push; open the PR with `gh api` (REST, full
    URL: `gh pr create` speaks GraphQL and https only); write the report. With `lie`, write
    a report claiming a PR that was never opened, and do nothing else."""

    def script(prompt: str, results: list[str]) -> Action:
        if not results:
            return Read(task_path(prompt))
        task = task_of(results)
        issue = first_item(task, "ISSUE_NUMBER", "ISSUE", "ISSUES")
        worktree = task_path(prompt).rsplit("/", 1)[0]
        report = task.get("REPORT_PATH") or f"{worktree}/.agent-report.json"
        api_url, repo = task["GITHUB_API_URL"], task["GH_REPO"]
        web = api_url.removesuffix("/api/v3")
        workflow = task.get("WORKFLOW", "issue_to_pr")
        if lie:
            steps: list[Action] = [Write(report, json.dumps(_issue_report(workflow, issue, f"{web}/{repo}/pull/999")))]
        else:
            branch = f"agent/issue-{issue}"
            steps = [
                Shell(f"git checkout -b {branch}"),
                Write(f"{worktree}/changes/issue-{issue}.md", f"Implements #{issue}.\n"),
                Shell(f"git add changes && git -c user.name=scripted-agent -c user.email=agent@sandbox.invalid "
                      f"commit -q -m 'Implement #{issue}'"),
                Shell(f"git push -q origin HEAD:refs/heads/{branch}"),
                Shell(f"gh api --method POST {api_url}/repos/{repo}/pulls -f title='Implement #{issue}' "
                      f"-f head={branch} -f base={task.get('BASE') or task.get('INTEGRATION_BRANCH') or 'dev'} "
                      f"-f body='Closes #{issue}'"),
            ]
            if len(results) > len(steps):  # the gh output is in: report the PR it made
                url = _html_url(results[len(steps)])
                assert url, f"no PR URL in the gh output: {results[len(steps)][:500]}"
                steps.append(Write(report, json.dumps(_issue_report(workflow, issue, url))))
        step = len(results) - 1
        return steps[step] if step < len(steps) else Say("Done: the report is written.")

    return script


def pr_review_script(grade: str = "A") -> Script:
    """Read the task; read the PR; merge it (grade A); close the issue it fixes (the base is
    not the default branch, so no closing keyword does); write the report."""

    def script(prompt: str, results: list[str]) -> Action:
        if not results:
            return Read(task_path(prompt))
        task = task_of(results)
        pr = first_item(task, "PR_NUMBER", "PR", "PRS")
        worktree = task_path(prompt).rsplit("/", 1)[0]
        report = task.get("REPORT_PATH") or f"{worktree}/.agent-report.json"
        api_url, repo = task["GITHUB_API_URL"], task["GH_REPO"]
        steps: list[Action] = [Shell(f"gh api {api_url}/repos/{repo}/pulls/{pr}")]
        if len(results) >= 2:
            closes = re.search(r"(?i)closes #(\d+)", results[1])
            steps.append(Shell(f"gh api --method PUT {api_url}/repos/{repo}/pulls/{pr}/merge -f merge_method=merge"))
            if closes:
                steps.append(Shell(f"gh api --method PATCH {api_url}/repos/{repo}/issues/{closes.group(1)} "
                                   f"-f state=closed -f state_reason=completed"))
            merged = bool(len(results) > 2 and re.search(r'"merged"\s*:\s*true', results[2]))
            workflow = task.get("WORKFLOW", "pr_review")
            steps.append(Write(report, json.dumps(
                {"workflow": workflow, "status": "done", "pr": pr, "grade": grade, "merged": merged}
                if "-" in workflow else  # a leaf: the single-item form
                {"workflow": workflow, "status": "done", "reviews": [{"pr": pr, "grade": grade, "merged": merged}]})))
        step = len(results) - 1
        return steps[step] if step < len(steps) else Say("Done: reviewed and merged.")

    return script


class PromptScript:
    """Follow the prompt the task names (PROMPT) to the letter: read it, type each of its
    example commands (tests/prompt_commands.py) with the task's values, writing a change
    before the first `git add`, then report: issue-to-pr the PR `gh pr create` printed,
    pr-review graded `grade` and merged. `typed[item]` holds the commands it typed."""

    def __init__(self, grade: str = "A") -> None:
        self.grade = grade
        self.typed: dict[int, list[str]] = {}

    def __call__(self, prompt: str, results: list[str]) -> Action:
        if not results:
            return Read(task_path(prompt))
        task = task_of(results)
        item = first_item(task, "ISSUE_NUMBER", "PR_NUMBER")
        worktree = task_path(prompt).rsplit("/", 1)[0]
        commands = [c for c in (typed(c, task, {"grade": self.grade})
                                for c in example_commands(Path(task["PROMPT"]).read_text(encoding="utf-8"))) if c]
        self.typed[item] = commands
        steps: list[Action] = [Read(task["PROMPT"])]
        for command in commands:
            if command.startswith("git add"):
                steps.append(Write(f"{worktree}/changes/{item}.md", f"Implements #{item}.\n"))
            steps.append(Shell(command))
        if len(results) > len(steps):  # every command's output is in
            steps.append(Write(task["REPORT_PATH"], json.dumps(self._report(task, item, steps, results))))
        step = len(results) - 1
        return steps[step] if step < len(steps) else Say("Done: the report is written.")

    def _report(self, task: dict[str, str], item: int, steps: list[Action], results: list[str]) -> dict[str, Any]:
        if task["WORKFLOW"] == "pr-review":
            return {"workflow": "pr-review", "status": "done", "pr": item, "grade": self.grade,
                    "merged": self.grade in "AB", "pr_url": task["PR_URL"]}
        [create] = [i for i, a in enumerate(steps) if isinstance(a, Shell) and a.command.startswith("gh pr create")]
        url = re.search(r"\S+/pull/\d+", results[create + 1])
        assert url, f"no PR URL in the output of gh pr create: {results[create + 1][:500]}"
        return _issue_report(task["WORKFLOW"], item, url.group(0))


def bash_results(model: ScriptedModel) -> dict[str, tuple[bool, str]]:
    """Each command Claude Code ran through its Bash tool for `model`: whether its result was
    an error (a refused command is one) and its text."""
    commands: dict[str, str] = {}
    results: dict[str, tuple[bool, str]] = {}
    for rec in model.requests:
        for message in rec.body.get("messages", []):
            for block in message.get("content") if isinstance(message.get("content"), list) else []:
                if block.get("type") == "tool_use" and block.get("name") == "Bash":
                    commands[block["id"]] = block["input"]["command"]
                elif block.get("type") == "tool_result":
                    results[block["tool_use_id"]] = (bool(block.get("is_error")), _text_of(block.get("content")))
    return {command: results[i] for i, command in commands.items() if i in results}


def hang_script() -> Script:
    def script(prompt: str, results: list[str]) -> Action:
        return Hang()

    return script

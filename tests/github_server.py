"""A fake GitHub REST API on 127.0.0.1 for the comment poster: issue comments with pagination, deletes, failures on
cue, and list latency (list_delay: each answer to a listing is held back, as a slow API does, so posters that start
together all see the same old list)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACTIONS_TOKEN = "ghs_FakeActionsToken0123456789abcdefXYZ"  # an Actions/App token: GET /user is refused
USER_TOKEN = "ghp_FakeUserToken0123456789abcdefXYZ"  # a personal access token of alice
ACTIONS_BOT = "github-actions[bot]"
REPO = "octo/demo"
LIMIT = 65536


@dataclass
class Failure:
    """An answer to give instead of the real one, to the next request that matches."""

    status: int
    method: str | None = None
    path: str | None = None  # a substring of the path
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "Server Error"
    apply: bool = False  # handle the request for real first, then answer with the failure: a lost answer

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path in path)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any


class FakeGitHub:
    """State and behaviour of the fake API; the HTTP plumbing is in _Handler."""

    def __init__(self) -> None:
        self.repos = {REPO}
        self.tokens = {ACTIONS_TOKEN: (ACTIONS_BOT, False), USER_TOKEN: ("alice", True)}  # token: (login, is user)
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self.next_id = 1000
        self.lock = threading.Lock()
        self.url = ""
        self.list_delay = 0.0  # seconds each comment listing is held back after it is read
        self.created: dict[tuple[str, int], list[int]] = {}  # every comment id ever created, deleted ones too

    # ------------------------------------------------------------ set-up helpers

    def add_comment(self, body: str, login: str, *, repo: str = REPO, number: int = 7) -> dict[str, Any]:
        with self.lock:
            return self._create(repo, number, body, login)

    def fail(self, status: int, *, times: int = 1, **kwargs: Any) -> None:
        """Answer the next `times` matching requests with `status` (see Failure for the keywords)."""
        self.failures.extend(Failure(status, **kwargs) for _ in range(times))

    def thread(self, number: int = 7, repo: str = REPO) -> list[dict[str, Any]]:
        return self.comments.get((repo, number), [])

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]

    def _create(self, repo: str, number: int, body: str, login: str) -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
            "html_url": f"https://github.com/{repo}/pull/{number}#issuecomment-{self.next_id}",
        }
        self.comments.setdefault((repo, number), []).append(comment)
        self.created.setdefault((repo, number), []).append(self.next_id)
        return comment

    # ------------------------------------------------------------ the API

    def handle(self, method: str, target: str, authorization: str | None, body: Any) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(target)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append(Request(method, path, query, authorization, body))
            failure = next((f for f in self.failures if f.matches(method, path)), None)
            if failure is not None:
                self.failures.remove(failure)
                if failure.apply:
                    self._route(method, path, query, authorization, body)
                return failure.status, failure.headers, {"message": failure.message}
            answer = self._route(method, path, query, authorization, body)
        if method == "GET" and path.endswith("/comments") and self.list_delay:
            time.sleep(self.list_delay)  # outside the lock: the others go on while this answer is on its way
        return answer

    def _route(
        self, method: str, path: str, query: dict[str, str], authorization: str | None, body: Any
    ) -> tuple[int, dict[str, str], Any]:
        login, is_user = None, False
        if authorization is not None:
            token = authorization.removeprefix("Bearer ")
            if token not in self.tokens:
                return 401, {}, {"message": "Bad credentials"}
            login, is_user = self.tokens[token]
        if path == "/user" and method == "GET":
            if login is None:
                return 401, {}, {"message": "Requires authentication"}
            if not is_user:
                return 403, {}, {"message": "Resource not accessible by integration"}
            return 200, {}, {"login": login, "type": "User"}
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(?:(\d+)/comments|comments/(\d+))", path)
        if not m or m.group(1) not in self.repos:
            return 404, {}, {"message": "Not Found"}
        repo = m.group(1)
        if method != "GET" and login is None:
            return 401, {}, {"message": "Requires authentication"}
        if m.group(2) and method == "GET":
            return self._list(repo, int(m.group(2)), query)
        if isinstance(body, dict) and len(str(body.get("body", ""))) > LIMIT:
            return (
                422,
                {},
                {
                    "message": "Validation Failed",
                    "errors": [{"code": "custom", "field": "body", "message": "body is too long"}],
                },
            )
        if m.group(2) and method == "POST":
            assert login is not None
            return 201, {}, self._create(repo, int(m.group(2)), body["body"], login)
        if m.group(3) and method == "DELETE":
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(m.group(3)):
                        comments.remove(comment)
                        return 204, {}, None
            return 404, {}, {"message": "Not Found"}
        if m.group(3) and method == "PATCH":
            # Like GitHub, a token with write access may edit anyone's comment: the poster must not.
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(m.group(3)):
                        comment["body"] = body["body"]
                        return 200, {}, comment
            return 404, {}, {"message": "Not Found"}
        return 404, {}, {"message": "Not Found"}

    def _list(self, repo: str, number: int, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        comments = self.comments.get((repo, number), [])
        last = max(1, -(-len(comments) // per_page))
        headers = {}
        if page < last:
            base = f"{self.url}/repos/{repo}/issues/{number}/comments?per_page={per_page}"
            headers["Link"] = f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
        return 200, headers, comments[(page - 1) * per_page : page * per_page]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body in one send: with separate ones, delayed ACKs cost 40 ms per request
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        status, headers, payload = self.server.fake.handle(
            self.command, self.path, self.headers.get("Authorization"), body
        )
        data = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub


def start() -> tuple[FakeGitHub, _Server]:
    """Serve a FakeGitHub on 127.0.0.1 on a free port, in a background thread."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeGitHub()
    server.fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server.fake, server

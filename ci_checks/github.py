"""A small GitHub REST client for one pull request's comments: retries with backoff, timeouts, one-line errors."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from ci_checks._errors import UserError

if TYPE_CHECKING:
    import requests

GITHUB_COMMENT_LIMIT = 65536  # characters, after the marker is appended
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_RETRY_BASE = 1.0
DEFAULT_ATTEMPTS = 4  # waits of 1, 2 and 4 seconds between them with the default base
MAX_WAIT = 60.0  # a longer Retry-After or rate-limit reset fails the step rather than stall the job
TIMEOUT = (10.0, 30.0)  # connect, read (seconds)
MAX_PAGES = 1000  # 100,000 comments: a guard against a Link header that loops
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class PostError(Exception):
    """The comment could not be posted after the retries: exit 1."""


class MaybeApplied(Exception):
    """A create request failed in a way that may still have created the comment (5xx, timeout, broken connection)."""


def comment_id(data: dict[str, Any]) -> int:
    value = data.get("id")
    if not isinstance(value, int):
        raise PostError(f"GitHub's answer has no comment id: {json.dumps(data)[:200]}")
    return value


class BearerAuth:
    """requests auth hook: an explicit auth object also stops requests from replacing it with ~/.netrc entries."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:  # never show the token, in a traceback or a debugger
        return "BearerAuth(***)"


class Client:
    """A small GitHub REST client for one pull request: retries, timeouts and one-line errors."""

    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        repo: str,
        pr: int,
        session: requests.Session | None,
        retry_base: float,
        attempts: int,
        max_wait: float,
        timeout: tuple[float, float],
        sleep: Callable[[float], None],
    ) -> None:
        try:
            import requests
        except ImportError:
            raise UserError("ci-checks comment needs the requests package: pip install requests") from None

        self._requests = requests
        self.api_url = check_api_url(api_url)
        self.repo, self.pr = repo, pr
        self.retry_base, self.attempts, self.max_wait = max(0.0, retry_base), max(1, attempts), max_wait
        self.timeout, self.sleep = timeout, sleep
        self.authenticated = token is not None
        self._own_session = session is None
        self.session = requests.Session() if session is None else session
        if token is not None:
            self.session.auth = BearerAuth(token)
        from ci_checks import __version__

        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"ci-checks/{__version__}",
            }
        )

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def backoff(self, attempt: int) -> float:
        return self.retry_base * 2.0**attempt

    # ------------------------------------------------------------ the calls

    def login(self) -> str | None:
        """The login of a user token; None for a GitHub App or Actions token, which cannot call /user."""
        if not self.authenticated:
            return None
        response = self.request("GET", f"{self.api_url}/user")
        if response.status_code == 200:
            login = _json(response).get("login")
            return login if isinstance(login, str) else None
        if response.status_code == 401:
            self.raise_for(response, "GET", "/user")
        return None  # 403 "Resource not accessible by integration": an app or Actions token

    def find(self, matches: Callable[[str], bool], author: str | None) -> dict[str, Any] | None:
        """The oldest comment, on any page, whose body matches and whose author is author."""
        found = self.find_all(matches, author)
        return found[0] if found else None

    def find_all(self, matches: Callable[[str], bool], author: str | None) -> list[dict[str, Any]]:
        """Every comment, on every page, whose body matches and whose author is author, oldest first.

        With no author known the token is an app's (a user token would have told its login), so any bot's
        comment qualifies and a person's never does.
        """
        found = []
        for comment in self._comments():
            if not matches(str(comment.get("body") or "")):
                continue
            user = comment.get("user") or {}
            if author is None:
                if user.get("type") == "Bot":
                    found.append(comment)
            elif str(user.get("login") or "").lower() == author.lower():
                found.append(comment)
        # Comment ids grow with creation time: the oldest has the smallest, whatever order the pages come in.
        return sorted(found, key=_id_or_zero)

    def delete(self, number: int) -> None:
        """Delete one issue comment; one already gone is fine (another poster deleted it)."""
        path = f"/repos/{self.repo}/issues/comments/{number}"
        response = self.request("DELETE", self.api_url + path)
        if response.status_code not in (204, 404):
            self.raise_for(response, "DELETE", path)

    def _comments(self) -> Iterator[dict[str, Any]]:
        url: str | None = f"{self.api_url}/repos/{self.repo}/issues/{self.pr}/comments?per_page=100"
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise PostError(f"GitHub's comment pages do not end (at {url}); rerun the job")
            seen.add(url)
            response = self.request("GET", url)
            if response.status_code != 200:
                self.raise_for(response, "GET", f"/repos/{self.repo}/issues/{self.pr}/comments")
            page = _json(response, expect=list)
            yield from (c for c in page if isinstance(c, dict))
            url = response.links.get("next", {}).get("url")
            if url is not None and _origin(url) != _origin(self.api_url):
                # The token must only ever go to --api-url.
                raise PostError(f"GitHub's next-page link points elsewhere ({_origin(url)}); refusing to follow it")

    def json(
        self, method: str, path: str, payload: dict[str, Any], *, safe_to_repeat: bool = True, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """Send a write; return GitHub's JSON object, or None for a 404 when missing_ok."""
        response = self.request(method, self.api_url + path, payload, safe_to_repeat=safe_to_repeat)
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code not in (200, 201):
            self.raise_for(response, method, path)
        data: dict[str, Any] = _json(response)
        return data

    # ------------------------------------------------------------ transport

    def request(
        self, method: str, url: str, payload: dict[str, Any] | None = None, *, safe_to_repeat: bool = True
    ) -> requests.Response:
        """Send one request, retrying on 5xx, 429, rate-limit 403s and network errors; return the last answer."""
        path = urlsplit(url).path
        for attempt in range(self.attempts):
            try:
                response = self.session.request(method, url, json=payload, timeout=self.timeout)
            except self._requests.RequestException as e:
                problem = _network_problem(e, self.api_url)
                if not safe_to_repeat:
                    raise MaybeApplied(problem) from None
                wait = self.backoff(attempt)
            else:
                retry_wait = self._retry_wait(response, attempt)
                if retry_wait is None:
                    return response
                problem = f"{method} {path}: {_describe(response)}"
                if not safe_to_repeat and response.status_code >= 500:
                    raise MaybeApplied(problem)
                wait = retry_wait
            if wait > self.max_wait:
                raise PostError(
                    f"{problem}; GitHub asks to wait {wait:.0f}s, more than this job waits "
                    f"({self.max_wait:.0f}s): rerun the job later"
                )
            if attempt + 1 == self.attempts:
                raise PostError(f"{problem} (gave up after {self.attempts} attempts)")
            self.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _retry_wait(self, response: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying this answer, or None when it is final."""
        code = response.status_code
        retry_after = _retry_after(response.headers.get("retry-after"))
        if code not in (403, 429) and code < 500:
            return None
        if retry_after is not None:
            return retry_after
        if code in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
            # The primary rate limit: GitHub says not to retry before x-ratelimit-reset (epoch seconds).
            reset = response.headers.get("x-ratelimit-reset", "")
            return max(0.0, int(reset) - time.time()) + 1.0 if reset.isdigit() else self.backoff(attempt)
        if code == 403:
            return None  # a plain 403 is a permission problem: retrying cannot fix it
        return self.backoff(attempt)

    def raise_for(self, response: requests.Response, method: str, path: str) -> NoReturn:
        """Raise the one-line error that explains a final non-success answer."""
        code = response.status_code
        what = f"{method} {path} ({_describe(response)})"
        where = f"{self.repo}#{self.pr}"
        if code == 401:
            raise UserError(
                f"GitHub rejected the token: {what}; it is wrong, expired or revoked - pass a valid "
                "one through --token-env"
            )
        if code == 403:
            raise UserError(
                f"GitHub refused {what} on {where}: the job needs 'permissions: pull-requests: "
                "write', and a pull request from a fork gets a read-only GITHUB_TOKEN - there, write the "
                "report to the job summary or an artifact instead of commenting"
            )
        if code == 404:
            raise UserError(
                f"{where} not found at {self.api_url}: {what}; check --repo and --pr, and that the "
                "token can see the repository"
            )
        if 400 <= code < 500:
            raise UserError(f"GitHub rejected the request: {what}")
        raise PostError(f"unexpected answer from GitHub: {what}")


def _id_or_zero(comment: dict[str, Any]) -> int:
    value = comment.get("id")
    return value if isinstance(value, int) else 0


def check_api_url(api_url: str) -> str:
    url = api_url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--api-url {api_url!r}: expected an http(s) URL such as {DEFAULT_API_URL}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise UserError(f"--api-url {api_url!r}: refusing to send the token over plain http; use https")
    return url


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _json(response: requests.Response, expect: type = dict) -> Any:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, expect):
        raise PostError(
            f"GitHub answered {response.status_code} with something that is not a JSON "
            f"{expect.__name__}: {response.text[:120]!r}"
        )
    return data


def _describe(response: requests.Response) -> str:
    """'403 Resource not accessible by integration': the status and GitHub's message, on one line."""
    try:
        message = response.json().get("message", "")
    except (ValueError, AttributeError):
        message = ""
    text = " ".join(str(message or response.reason or "").split())[:200]
    return f"{response.status_code} {text}".strip()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _network_problem(error: Exception, api_url: str) -> str:
    import requests

    if isinstance(error, requests.Timeout):
        return f"no answer from {api_url} in time ({type(error).__name__})"
    reason = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(error))
    detail = reason.group(1).strip() if reason else type(error).__name__
    return f"cannot reach {api_url}: {detail}"

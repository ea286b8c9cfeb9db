"""comment: post the report as one sticky pull-request comment, updated in place on every run.

The comment ends with a hidden marker line, ``<!-- ci-checks:report id=MARKER -->``. Each run reads every page
of the pull request's comments, takes the oldest one whose last line is that marker and whose author is the
token's identity, and edits it (or leaves it alone when the body is the same); if there is none it creates one.
Two runs that post at once can both find none and both create one: so after creating, the poster lists again,
keeps the oldest of its own marked comments (updated with its body) and deletes the others, and every run deletes
the duplicates an earlier race left behind. All posters keep the same (the oldest), so they never undo each other.
The identity is ``--author`` when given, else the login GitHub reports for the token (``GET /user``: a personal
access token), else ``github-actions[bot]`` inside GitHub Actions (the GITHUB_TOKEN cannot call ``/user``).
Comments by anyone else are never edited, even when they carry the marker. (When no identity can be learned,
an app's token outside Actions, any bot's marked comment qualifies, a person's never; ``--author`` narrows it.)

Exit codes:
  0  created, updated or unchanged (or, with --dry-run, what would happen was printed)
  1  the comment could not be posted: GitHub kept answering 5xx or rate-limiting, or the network failed,
     after the retries (a transient failure: rerunning the job may work)
  2  bad input or a refusal that retrying cannot fix: no/oversized/unreadable body, bad --repo/--pr/--marker/
     --api-url, no token, 401 (bad token), 403 (no ``pull-requests: write`` permission, or a pull request from a
     fork, whose GITHUB_TOKEN is read-only), 404 (repository or pull request not found or not visible), 422
  3  a bug in ci-checks
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ci_checks._errors import EXIT_FINDINGS, EXIT_OK, UserError
from ci_checks.github import (
    GITHUB_COMMENT_LIMIT,
    DEFAULT_API_URL,
    DEFAULT_ATTEMPTS,
    DEFAULT_RETRY_BASE,
    MAX_WAIT,
    TIMEOUT,
)
from ci_checks.github import Client, MaybeApplied, PostError, comment_id

if TYPE_CHECKING:
    import requests

HELP = "post the Markdown report as one sticky pull-request comment, updated in place on every run"

DEFAULT_MARKER = "ci-checks-report"
ACTIONS_BOT = "github-actions[bot]"
RETRY_BASE_ENV = "CI_CHECKS_RETRY_BASE_SECONDS"
_MARKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")


@dataclass(frozen=True)
class Result:
    """What the poster did (or, with dry_run, would do) and the comment it concerns."""

    action: str  # "created", "updated" or "unchanged"
    id: int | None  # None only for a dry-run create
    url: str | None
    author: str | None = None  # the identity whose comments were eligible; None when it could not be learned
    dry_run: bool = False


def marker_line(marker: str) -> str:
    """Return the hidden HTML comment that identifies the sticky comment with this id."""
    if not _MARKER_ID.fullmatch(marker) or "--" in marker:
        raise UserError(
            f"--marker {marker!r}: use 1-100 letters, digits, '.', '_' or '-' (no '--'), " f"e.g. {DEFAULT_MARKER}"
        )
    return f"<!-- ci-checks:report id={marker} -->"


def compose(body: str, marker: str) -> str:
    """Return the comment text: the body, then the marker as its last line."""
    line = marker_line(marker)
    kept = "\n".join(x for x in _normalize(body).split("\n") if x.strip() != line)
    return f"{kept.rstrip()}\n\n{line}"


def _normalize(text: str) -> str:
    # Comments edited in the web UI come back with CRLF; trailing whitespace does not render.
    return text.replace("\r\n", "\n").rstrip()


def _has_marker(body: str, line: str) -> bool:
    """True when the marker is the comment's last line, as compose() writes it (a quote of it is not)."""
    return _normalize(body).rsplit("\n", 1)[-1].strip() == line


def post_sticky_comment(
    body: str,
    *,
    repo: str,
    pr: int,
    token: str | None,
    api_url: str = DEFAULT_API_URL,
    marker: str = DEFAULT_MARKER,
    author: str | None = None,
    fallback_author: str | None = None,
    dry_run: bool = False,
    session: requests.Session | None = None,
    retry_base: float = DEFAULT_RETRY_BASE,
    attempts: int = DEFAULT_ATTEMPTS,
    max_wait: float = MAX_WAIT,
    timeout: tuple[float, float] = TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Create or update the one comment on REPO#PR that carries the marker and is by the token's identity.

    Raises UserError for bad input and refusals that a retry cannot fix, PostError when GitHub or the network
    kept failing. With dry_run, only reads: the Result says what would happen. token may be None only with dry_run
    (anonymous reads work on public repositories).
    """
    text = compose(body, marker)
    if len(text) > GITHUB_COMMENT_LIMIT:
        raise UserError(
            f"the comment would be {len(text):,} characters with the marker, over GitHub's "
            f"{GITHUB_COMMENT_LIMIT:,} limit; trim the report (ci-checks report --max-chars) - "
            "nothing was posted"
        )
    if not _REPO.fullmatch(repo):
        raise UserError(f"--repo {repo!r}: expected OWNER/NAME, e.g. octo-org/octo-repo")
    if pr <= 0:
        raise UserError(f"--pr {pr}: expected a pull request number, e.g. 42")
    if token is None and not dry_run:
        raise UserError("no token: set the token's environment variable (see --token-env)")
    client = Client(
        api_url,
        token,
        repo=repo,
        pr=pr,
        session=session,
        retry_base=retry_base,
        attempts=attempts,
        max_wait=max_wait,
        timeout=timeout,
        sleep=sleep,
    )
    try:
        return _post(client, text, marker_line(marker), author=author, fallback_author=fallback_author, dry_run=dry_run)
    finally:
        client.close()


def _post(
    client: Client, text: str, line: str, *, author: str | None, fallback_author: str | None, dry_run: bool
) -> Result:
    who = author or client.login() or fallback_author

    def ours() -> list[dict[str, Any]]:
        return client.find_all(lambda body: _has_marker(body, line), who)

    found = ours()
    existing = found[0] if found else None
    maybe_created = False
    for attempt in range(client.attempts):
        if existing is not None:
            if _normalize(str(existing.get("body") or "")) == _normalize(text):
                action = "created" if maybe_created else "unchanged"
                result = Result(action, comment_id(existing), existing.get("html_url"), who, dry_run)
                return result if dry_run else _drop_duplicates(client, found, result)
            if dry_run:
                return Result("updated", comment_id(existing), existing.get("html_url"), who, dry_run)
            data = client.json(
                "PATCH", f"/repos/{client.repo}/issues/comments/{comment_id(existing)}", {"body": text}, missing_ok=True
            )
            if data is not None:
                return _drop_duplicates(client, found, Result("updated", comment_id(data), data.get("html_url"), who))
            existing = None  # deleted since it was listed: post a new one
        if dry_run:
            return Result("created", None, None, who, dry_run)
        try:
            data = client.json(
                "POST", f"/repos/{client.repo}/issues/{client.pr}/comments", {"body": text}, safe_to_repeat=False
            )
        except MaybeApplied as e:
            # The comment may exist although the answer was lost: look again before posting again, or a flaky
            # gateway leaves two sticky comments behind.
            if attempt + 1 == client.attempts:
                raise PostError(f"{e} (gave up after {client.attempts} attempts)") from None
            client.sleep(client.backoff(attempt))
            found = ours()
            existing = found[0] if found else None
            maybe_created = True
            continue
        if data is None:  # pragma: no cover - only PATCH passes missing_ok
            raise PostError("GitHub answered the create request with 404")
        return _reconcile(client, text, ours, Result("created", comment_id(data), data.get("html_url"), who))
    raise PostError(f"could not post the comment on {client.repo}#{client.pr} in {client.attempts} attempts")


def _drop_duplicates(client: Client, found: list[dict[str, Any]], result: Result) -> Result:
    """Delete the marked comments of ours other than the one kept (left behind by an earlier race)."""
    for duplicate in found:
        if comment_id(duplicate) != result.id:
            client.delete(comment_id(duplicate))
    return result


def _reconcile(client: Client, text: str, ours: Callable[[], list[dict[str, Any]]], created: Result) -> Result:
    """After a create: if another poster created one too, keep the oldest of ours with this body, delete the rest.

    Every poster keeps the oldest, so concurrent posters converge on one comment instead of deleting each
    other's; the last to write decides its body.
    """
    for _ in range(client.attempts):
        found = ours()
        if len(found) <= 1 or comment_id(found[0]) == created.id:
            return _drop_duplicates(client, found, created)
        keep = found[0]
        if _normalize(str(keep.get("body") or "")) != _normalize(text):
            data = client.json(
                "PATCH", f"/repos/{client.repo}/issues/comments/{comment_id(keep)}", {"body": text}, missing_ok=True
            )
            if data is None:
                continue  # the oldest was deleted since it was listed: look again
            keep = data
        return _drop_duplicates(
            client, found, Result("updated", comment_id(keep), keep.get("html_url"), created.author)
        )
    raise PostError(f"could not settle on one comment on {client.repo}#{client.pr} in {client.attempts} attempts")


# ---------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a pull request number, e.g. 42, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--body-file",
        required=True,
        metavar="FILE",
        help="the Markdown to post, e.g. the output of ci-checks report; '-' reads stdin",
    )
    parser.add_argument("--repo", metavar="OWNER/NAME", help="repository (default: $GITHUB_REPOSITORY)")
    parser.add_argument(
        "--pr",
        type=_positive_int,
        metavar="N",
        help="pull request number (default: pull_request.number, else issue.number, from the event "
        "JSON at $GITHUB_EVENT_PATH)",
    )
    parser.add_argument(
        "--token-env",
        default="GITHUB_TOKEN",
        metavar="NAME",
        help="name of the environment variable that holds the token (default: %(default)s); the "
        "token itself is never taken as an argument",
    )
    parser.add_argument(
        "--api-url", metavar="URL", help=f"GitHub REST API root (default: $GITHUB_API_URL, else {DEFAULT_API_URL})"
    )
    parser.add_argument(
        "--marker",
        default=DEFAULT_MARKER,
        metavar="ID",
        help="id of the hidden marker that makes the comment sticky; one comment per id " "(default: %(default)s)",
    )
    parser.add_argument(
        "--author",
        metavar="LOGIN",
        help="login whose comments may be updated (default: the token's user, else "
        f"{ACTIONS_BOT} in GitHub Actions)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read the comments and print what would be done, without writing (default: off)",
    )


def run(args: argparse.Namespace) -> int:
    body = _read_body(args.body_file)
    repo = args.repo or os.environ.get("GITHUB_REPOSITORY") or ""
    if not repo:
        raise UserError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
    pr = args.pr or _pr_from_event(os.environ.get("GITHUB_EVENT_PATH"))
    token = _token(args.token_env, required=not args.dry_run)
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    try:
        result = post_sticky_comment(
            body,
            repo=repo,
            pr=pr,
            token=token,
            api_url=api_url,
            marker=args.marker,
            author=args.author,
            fallback_author=ACTIONS_BOT if in_actions else None,
            dry_run=args.dry_run,
            retry_base=_retry_base(),
        )
    except PostError as e:
        print(f"ci-checks: error: {e}", file=sys.stderr)
        return EXIT_FINDINGS
    if result.author is None:
        print(
            "ci-checks comment: the token's login is unknown (an app's token?), so any bot's comment with the "
            "marker was eligible; pass --author LOGIN to update only that account's comments",
            file=sys.stderr,
        )
    if result.dry_run:
        target = result.url or f"{repo}#{pr}"
        verb = {"created": "would create a comment on", "updated": "would update", "unchanged": "unchanged"}
        print(f"dry run: {verb[result.action]} {target}")
        return EXIT_OK
    print(f"{result.action} {result.url}")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        try:
            with open(output, "a", encoding="utf-8") as fh:
                fh.write(f"comment-id={result.id}\ncomment-url={result.url}\ncomment-action={result.action}\n")
        except OSError as e:
            raise UserError(f"{output}: cannot write the step outputs to GITHUB_OUTPUT ({e.strerror})") from None
    return EXIT_OK


def _read_body(path: str) -> str:
    if path == "-":
        body = sys.stdin.read()
        source = "stdin"
    else:
        source = path
        try:
            with open(path, encoding="utf-8") as fh:
                body = fh.read()
        except FileNotFoundError:
            raise UserError(
                f"{path}: body file not found; write it first, e.g. ci-checks report ... --output " f"{path}"
            ) from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; pass the Markdown report") from None
        except OSError as e:
            raise UserError(f"{path}: cannot read the body file ({e.strerror})") from None
    if not body.strip():
        raise UserError(f"{source}: the body is empty; refusing to replace the comment with nothing")
    return body


def _pr_from_event(path: str | None) -> int:
    hint = "pass --pr N, or run on a pull_request (or issue_comment) event"
    if not path:
        raise UserError(f"no pull request number: {hint}")
    try:
        with open(path, encoding="utf-8") as fh:
            event = json.load(fh)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the event JSON from GITHUB_EVENT_PATH ({e}); {hint}") from None
    for key in ("pull_request", "issue"):
        number = (event.get(key) or {}).get("number") if isinstance(event, dict) else None
        if isinstance(number, int) and number > 0:
            return number
    raise UserError(f"{path}: the event has no pull_request.number or issue.number; {hint}")


def _token(name: str, *, required: bool) -> str | None:
    looks_like_token = name.startswith(_TOKEN_PREFIXES) or len(name) >= 40
    if looks_like_token or not _ENV_NAME.fullmatch(name):
        # Never echo the value: it may be the secret itself.
        raise UserError(
            "--token-env takes the NAME of an environment variable that holds the token "
            "(e.g. GITHUB_TOKEN), not the token itself"
        )
    token = os.environ.get(name, "").strip()
    if token:
        return token
    if not required:
        return None
    raise UserError(
        f"no token in ${name}: set it in the step, e.g. env: {name}: ${{{{ github.token }}}}, or name "
        "another variable with --token-env"
    )


def _retry_base() -> float:
    raw = os.environ.get(RETRY_BASE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_RETRY_BASE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UserError(f"{RETRY_BASE_ENV}={raw!r}: expected seconds >= 0, e.g. 1")
    return value

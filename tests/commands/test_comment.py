"""comment: the sticky PR comment, posted over real HTTP to a fake GitHub on 127.0.0.1."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github_server import ACTIONS_BOT, ACTIONS_TOKEN, REPO, USER_TOKEN, FakeGitHub, start

from ci_checks.commands.comment import GITHUB_COMMENT_LIMIT, PostError, compose, marker_line, post_sticky_comment
from ci_checks.main import main

MARKER = marker_line("ci-checks-report")
TOKENS = (ACTIONS_TOKEN, USER_TOKEN)


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """A running fake GitHub, and the environment of a GitHub Actions job on pull request 7 pointing at it."""
    fake, server = start()
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("GITHUB_TOKEN", ACTIONS_TOKEN)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("CI_CHECKS_RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("GITHUB_OUTPUT", "GITHUB_EVENT_PATH", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def body(tmp_path: Path) -> Any:
    def write(text: str = "## ci-checks report\n\nall checks passed\n", name: str = "report.md") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def comment(*args: str) -> int:
    return main(["comment", *args])


def marked(gh: FakeGitHub) -> list[dict[str, Any]]:
    return [c for c in gh.thread() if c["body"].endswith(MARKER)]


def one_line(text: str) -> str:
    assert len(text.strip().splitlines()) == 1, text
    return text.strip()


def assert_no_token(*texts: str) -> None:
    for text in texts:
        for token in TOKENS:
            assert token not in text


# ---------------------------------------------------------------- create, update, unchanged


def test_first_run_creates_then_updates_the_same_comment(
    gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert comment("--body-file", body("first"), "--pr", "7") == 0
    out = one_line(capsys.readouterr().out)
    (created,) = gh.thread()
    assert out == f"created {created['html_url']}"
    assert created["body"] == f"first\n\n{MARKER}" and created["user"]["login"] == ACTIONS_BOT
    for text in ("second", "third"):
        assert comment("--body-file", body(text), "--pr", "7") == 0
        assert one_line(capsys.readouterr().out) == f"updated {created['html_url']}"
    assert [c["id"] for c in marked(gh)] == [created["id"]] and created["body"].startswith("third")
    assert [r.method for r in gh.writes()] == ["POST", "PATCH", "PATCH"]


def test_identical_body_is_left_unchanged(gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert comment("--body-file", body("same\n"), "--pr", "7") == 0
    capsys.readouterr()
    assert comment("--body-file", body("same\r\n\n"), "--pr", "7") == 0
    assert one_line(capsys.readouterr().out) == f"unchanged {gh.thread()[0]['html_url']}"
    assert [r.method for r in gh.writes()] == ["POST"]


def test_comment_on_page_3_of_250_is_found_and_updated(gh: FakeGitHub, body: Any) -> None:
    for i in range(250):
        if i == 230:
            ours = gh.add_comment(f"old report\n\n{MARKER}", ACTIONS_BOT)
        else:
            gh.add_comment(f"review comment {i}", "reviewer")
    assert comment("--body-file", body("new report"), "--pr", "7") == 0
    assert [r.method for r in gh.writes()] == ["PATCH"]
    assert gh.writes()[0].path.endswith(f"/comments/{ours['id']}")
    pages = [r.query for r in gh.requests if r.method == "GET" and r.path.endswith("/7/comments")]
    assert pages == [{"per_page": "100"}, {"per_page": "100", "page": "2"}, {"per_page": "100", "page": "3"}]
    assert ours["body"].startswith("new report") and len(gh.thread()) == 250


def test_comments_by_others_that_carry_the_marker_are_never_touched(gh: FakeGitHub, body: Any) -> None:
    theirs = [
        gh.add_comment(f"copied it\n\n{MARKER}", "mallory"),
        gh.add_comment(f"> old report\n> {MARKER}\n\nwhy did this fail?", "reviewer"),
    ]
    before = [dict(c) for c in theirs]
    for text in ("one", "two"):
        assert comment("--body-file", body(text), "--pr", "7") == 0
    assert theirs == before
    ours = [c for c in marked(gh) if c["user"]["login"] == ACTIONS_BOT]
    assert len(ours) == 1 and ours[0]["body"].startswith("two")
    assert [r.method for r in gh.writes()] == ["POST", "PATCH"]


def test_a_personal_token_updates_its_own_login_s_comment(
    gh: FakeGitHub, body: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PAT", USER_TOKEN)
    bot = gh.add_comment(f"bot report\n\n{MARKER}", ACTIONS_BOT)
    alices = gh.add_comment(f"alice report\n\n{MARKER}", "alice")
    assert comment("--body-file", body("new"), "--pr", "7", "--token-env", "MY_PAT") == 0
    assert alices["body"].startswith("new") and bot["body"].startswith("bot report")


def test_author_option_chooses_whose_comment_is_updated(gh: FakeGitHub, body: Any) -> None:
    gh.add_comment(f"bot report\n\n{MARKER}", ACTIONS_BOT)
    app = gh.add_comment(f"app report\n\n{MARKER}", "my-app[bot]")
    gh.tokens[ACTIONS_TOKEN] = ("my-app[bot]", False)
    assert comment("--body-file", body("new"), "--pr", "7", "--author", "my-app[bot]") == 0
    assert app["body"].startswith("new") and not any(r.path == "/user" for r in gh.requests)


def test_unknown_identity_updates_a_bot_s_comment_never_a_person_s(
    gh: FakeGitHub, body: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS")  # an app token outside Actions: GET /user is refused, no --author
    person = gh.add_comment(f"pasted\n\n{MARKER}", "mallory")
    bot = gh.add_comment(f"old\n\n{MARKER}", "my-app[bot]")
    assert comment("--body-file", body("new"), "--pr", "7") == 0
    assert "--author" in one_line(capsys.readouterr().err)
    assert bot["body"].startswith("new") and person["body"].startswith("pasted")


def test_separate_markers_keep_separate_comments(gh: FakeGitHub, body: Any) -> None:
    assert comment("--body-file", body("train"), "--pr", "7", "--marker", "train") == 0
    assert comment("--body-file", body("bench"), "--pr", "7", "--marker", "bench") == 0
    assert comment("--body-file", body("train 2"), "--pr", "7", "--marker", "train") == 0
    assert [c["body"].split("\n")[0] for c in gh.thread()] == ["train 2", "bench"]


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "failures",
    [
        pytest.param([{"status": 500}, {"status": 502}], id="5xx"),
        pytest.param([{"status": 429, "headers": {"Retry-After": "0"}}], id="429"),
        pytest.param(
            [{"status": 403, "headers": {"x-ratelimit-remaining": "0"}, "message": "API rate limit exceeded"}],
            id="403-rate-limit",
        ),
        pytest.param(
            [{"status": 403, "headers": {"Retry-After": "0"}, "message": "You have exceeded a secondary rate limit"}],
            id="403-secondary",
        ),
        pytest.param([{"status": 503, "method": "PATCH"}], id="5xx-on-update"),
    ],
)
def test_transient_failures_are_retried(gh: FakeGitHub, body: Any, failures: list[dict[str, Any]]) -> None:
    if any(f.get("method") == "PATCH" for f in failures):
        gh.add_comment(f"old\n\n{MARKER}", ACTIONS_BOT)
    for f in failures:
        gh.fail(f.pop("status"), method=f.pop("method", "GET"), path="/comments", **f)
    assert comment("--body-file", body("new"), "--pr", "7") == 0
    assert len(marked(gh)) == 1 and marked(gh)[0]["body"].startswith("new")


def test_retry_after_is_honoured_and_backoff_grows(gh: FakeGitHub) -> None:
    gh.fail(429, method="GET", path="/comments", headers={"Retry-After": "3"})
    gh.fail(500, method="GET", path="/comments", times=2)
    waits: list[float] = []
    result = post_sticky_comment(
        "report",
        repo=REPO,
        pr=7,
        token=ACTIONS_TOKEN,
        api_url=gh.url,
        author=ACTIONS_BOT,
        retry_base=0.5,
        attempts=4,
        sleep=waits.append,
    )
    assert result.action == "created" and waits == [3.0, 1.0, 2.0]


def test_a_lost_create_answer_does_not_post_twice(
    gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.fail(502, method="POST", apply=True)  # GitHub created it, the gateway lost the answer
    assert comment("--body-file", body(), "--pr", "7") == 0
    assert len(gh.thread()) == 1
    assert one_line(capsys.readouterr().out) == f"created {gh.thread()[0]['html_url']}"


def test_persistent_5xx_gives_up_with_exit_1(gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gh.fail(503, times=10, message="Service Unavailable")
    assert comment("--body-file", body(), "--pr", "7") == 1
    err = one_line(capsys.readouterr().err)
    assert "503 Service Unavailable" in err and "gave up after 4 attempts" in err
    assert len(gh.requests) == 4 and not gh.thread()


def test_a_long_retry_after_fails_rather_than_stall(
    gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.fail(403, headers={"Retry-After": "3600"}, message="You have exceeded a secondary rate limit")
    assert comment("--body-file", body(), "--pr", "7") == 1
    assert "wait 3600s" in one_line(capsys.readouterr().err) and len(gh.requests) == 1


def test_network_error_is_one_line_and_exit_1(gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gh_url = gh.url
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert gh_url != f"http://127.0.0.1:{port}"
    assert comment("--body-file", body(), "--pr", "7", "--api-url", f"http://127.0.0.1:{port}") == 1
    err = one_line(capsys.readouterr().err)
    assert "cannot reach http://127.0.0.1" in err and "gave up" in err


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        pytest.param(403, "Resource not accessible by integration", ["pull-requests: write", "fork"], id="403"),
        pytest.param(401, "Bad credentials", ["rejected the token", "--token-env"], id="401"),
        pytest.param(404, "Not Found", ["octo/demo#7 not found", "--repo"], id="404"),
        pytest.param(422, "Validation Failed", ["422 Validation Failed"], id="422"),
    ],
)
def test_refusals_exit_2_with_one_line(
    gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str], status: int, message: str, expected: list[str]
) -> None:
    gh.fail(status, method="POST", message=message)
    assert comment("--body-file", body(), "--pr", "7") == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    assert all(e in line for e in expected), line
    assert out == "" and not gh.thread()
    assert len([r for r in gh.requests if r.method == "POST"]) == 1  # no retry of a refusal
    assert_no_token(out, err)


def test_unknown_repository_exits_2(gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert comment("--body-file", body(), "--pr", "7", "--repo", "octo/missing") == 2
    assert "octo/missing#7 not found" in one_line(capsys.readouterr().err)


def test_oversized_body_is_refused_and_nothing_is_sent(
    gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fits = "x" * (GITHUB_COMMENT_LIMIT - len(compose("", "ci-checks-report")))
    assert len(compose(fits, "ci-checks-report")) == GITHUB_COMMENT_LIMIT
    assert comment("--body-file", body(fits + "y"), "--pr", "7") == 2
    assert "65,536" in one_line(capsys.readouterr().err) and gh.requests == []
    assert comment("--body-file", body(fits), "--pr", "7") == 0
    assert len(gh.thread()[0]["body"]) == GITHUB_COMMENT_LIMIT


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["--body-file", "missing.md"], {}, "body file not found", id="no-body-file"),
        pytest.param([], {"GITHUB_TOKEN": ""}, "no token in $GITHUB_TOKEN", id="no-token"),
        pytest.param(["--token-env", ACTIONS_TOKEN], {}, "not the token itself", id="token-as-argument"),
        pytest.param(["--repo", "not-a-repo"], {}, "expected OWNER/NAME", id="bad-repo"),
        pytest.param(["--marker", "a-->b"], {}, "--marker", id="bad-marker"),
        pytest.param(["--api-url", "http://api.example.com"], {}, "plain http", id="cleartext-api-url"),
        pytest.param([], {"GITHUB_REPOSITORY": ""}, "no repository", id="no-repo"),
        pytest.param([], {"CI_CHECKS_RETRY_BASE_SECONDS": "soon"}, "CI_CHECKS_RETRY_BASE_SECONDS", id="bad-retry"),
    ],
)
def test_bad_input_exits_2_before_any_request(
    gh: FakeGitHub,
    body: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "--body-file" not in args:
        args = ["--body-file", body(), *args]
    assert comment(*args, "--pr", "7") == 2
    out, err = capsys.readouterr()
    assert message in one_line(err) and gh.requests == []
    assert_no_token(out, err)


def test_empty_body_is_refused(gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gh.add_comment(f"report\n\n{MARKER}", ACTIONS_BOT)
    assert comment("--body-file", body("  \n"), "--pr", "7") == 2
    assert "empty" in one_line(capsys.readouterr().err) and gh.requests == []


def test_body_from_stdin(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("from a pipe\n"))
    assert comment("--body-file", "-", "--pr", "7") == 0
    assert gh.thread()[0]["body"] == f"from a pipe\n\n{MARKER}"


def test_token_never_appears_in_output(
    gh: FakeGitHub, body: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PAT", USER_TOKEN)
    gh.fail(500, times=10)
    for args in (["--debug"], ["--dry-run"], ["--token-env", "MY_PAT"], []):
        comment("--body-file", body(), "--pr", "7", *args)
    comment("--body-file", body(), "--pr", "7")
    out, err = capsys.readouterr()
    assert out or err
    assert_no_token(out, err)
    assert all(r.authorization in (f"Bearer {ACTIONS_TOKEN}", f"Bearer {USER_TOKEN}") for r in gh.requests)


# ---------------------------------------------------------------- event, dry run, outputs


@pytest.mark.parametrize(
    ("event", "number"),
    [
        pytest.param({"pull_request": {"number": 7}}, 7, id="pull_request"),
        pytest.param({"issue": {"number": 9, "pull_request": {}}}, 9, id="issue_comment"),
    ],
)
def test_pr_number_comes_from_the_event(
    gh: FakeGitHub, body: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any], number: int
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))
    assert comment("--body-file", body()) == 0
    assert len(gh.thread(number)) == 1


def test_no_pr_number_in_a_push_event_exits_2(
    gh: FakeGitHub, body: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"ref": "refs/heads/main"}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))
    assert comment("--body-file", body()) == 2
    assert "--pr N" in one_line(capsys.readouterr().err) and gh.requests == []


@pytest.mark.parametrize("existing", [pytest.param(False, id="would-create"), pytest.param(True, id="would-update")])
def test_dry_run_writes_nothing(
    gh: FakeGitHub,
    body: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    existing: bool,
) -> None:
    if existing:
        old = gh.add_comment(f"old\n\n{MARKER}", ACTIONS_BOT)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    assert comment("--body-file", body("new"), "--pr", "7", "--dry-run") == 0
    out = one_line(capsys.readouterr().out)
    assert out == (
        f"dry run: would update {old['html_url']}" if existing else "dry run: would create a comment on octo/demo#7"
    )
    assert gh.writes() == [] and not (tmp_path / "out").exists()


def test_dry_run_needs_no_token(gh: FakeGitHub, body: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    assert comment("--body-file", body(), "--pr", "7", "--dry-run") == 0
    assert gh.writes() == [] and all(r.authorization is None for r in gh.requests)


def test_outputs_are_written_to_github_output(
    gh: FakeGitHub, body: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert comment("--body-file", body(), "--pr", "7") == 0
    created = gh.thread()[0]
    assert output.read_text() == (
        f"comment-id={created['id']}\ncomment-url={created['html_url']}\n" "comment-action=created\n"
    )


def test_post_sticky_comment_raises_post_error_without_printing(
    gh: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.fail(500, times=2)
    with pytest.raises(PostError, match="gave up after 2 attempts"):
        post_sticky_comment(
            "x", repo=REPO, pr=7, token=ACTIONS_TOKEN, api_url=gh.url, author=ACTIONS_BOT, retry_base=0, attempts=2
        )
    assert capsys.readouterr() == ("", "")


def test_help_does_not_import_requests() -> None:
    code = "import sys; from ci_checks.main import build_parser; build_parser(); print('requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------- concurrent posters


def test_concurrent_posters_leave_one_sticky_comment(gh: FakeGitHub) -> None:
    """Posters that start together on a fresh pull request all list before anyone posts (the API is slow), so
    each creates a comment; after it, they must settle on one: the oldest, with one of their bodies."""
    import threading

    gh.list_delay = 0.03
    posters, trials, raced = 3, 10, 0
    for pr in range(100, 100 + trials):
        start, errors = threading.Barrier(posters), []

        def post(i: int, pr: int = pr, start: threading.Barrier = start, errors: list[Any] = errors) -> None:
            try:
                start.wait()
                post_sticky_comment(f"report {pr}.{i}", repo=REPO, pr=pr, token=ACTIONS_TOKEN, api_url=gh.url)
            except BaseException as e:  # noqa: BLE001 - the test thread asserts on it
                errors.append(e)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(posters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert errors == []
        created = gh.created[(REPO, pr)]
        thread = [c for c in gh.thread(pr) if c["body"].endswith(MARKER)]
        assert len(thread) == 1, f"pull request {pr}: {len(thread)} sticky comments"
        assert thread[0]["id"] == min(created)  # the oldest is kept: no poster deletes what another keeps
        assert thread[0]["body"].split("\n")[0] in {f"report {pr}.{i}" for i in range(posters)}
        raced += len(created) > 1
    assert raced >= trials // 2  # the race did happen (each poster created a comment), and was settled


def test_a_later_run_deletes_duplicates_an_earlier_race_left(gh: FakeGitHub, body: Any) -> None:
    oldest = gh.add_comment(f"old 1\n\n{MARKER}", ACTIONS_BOT)
    gh.add_comment(f"old 2\n\n{MARKER}", ACTIONS_BOT)
    theirs = gh.add_comment(f"quoted\n\n{MARKER}", "mallory")
    assert comment("--body-file", body("new"), "--pr", "7") == 0
    assert [c["id"] for c in marked(gh)] == [oldest["id"], theirs["id"]]
    assert oldest["body"].startswith("new") and theirs["body"].startswith("quoted")
    assert [r.method for r in gh.writes()] == ["PATCH", "DELETE"]

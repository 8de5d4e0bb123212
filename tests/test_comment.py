"""`mlops comment` against a local double of GitHub's REST API (real HTTP, PyGithub on the client side)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from mlops.cli import app
from mlops.github import is_ours, watermark
from tests.github_double import SPEC, GitHubDouble, response_schema
from tests.helpers import commit_all, git, init_repo, runner

REPORT = "## ✅ mlops report\n\n| metric | main | this branch |\n| --- | --- | --- |\n| roc_auc | 0.84 | 0.85 |\n"


@pytest.fixture
def gh() -> Iterator[GitHubDouble]:
    double = GitHubDouble().start()
    yield double
    double.stop()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: GitHubDouble) -> Path:
    root = init_repo(tmp_path / "repo")
    (root / "reports").mkdir()
    (root / "reports" / "report.md").write_text(REPORT)
    commit_all(root, "init")
    monkeypatch.chdir(root)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
    monkeypatch.setenv("GITHUB_REPOSITORY", f"{gh.owner}/{gh.repo}")
    monkeypatch.setenv("GITHUB_API_URL", gh.url)
    return root


def _event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: dict[str, object]) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))


def _ours(comments: list[dict[str, object]]) -> list[dict[str, object]]:
    return [c for c in comments if is_ours(str(c["body"]))]


def test_comment_twice_leaves_one_comment_edited_the_second_time(repo: Path, gh: GitHubDouble, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _event(tmp_path, monkeypatch, {"action": "synchronize", "pull_request": {"number": 7}})
    first = runner.invoke(app, ["comment"])
    assert first.exit_code == 0, first.output
    assert "created on pull request #7" in first.output
    (repo / "reports" / "report.md").write_text(REPORT.replace("0.85", "0.86"))
    second = runner.invoke(app, ["comment"])
    assert second.exit_code == 0, second.output
    assert "updated on pull request #7" in second.output
    ours = _ours(gh.issue_comments[7])
    assert len(ours) == 1
    assert "0.86" in str(ours[0]["body"])
    assert len(gh.requests_for("POST", r"/issues/7/comments$")) == 1
    assert len(gh.requests_for("PATCH", r"/issues/comments/\d+$")) == 1


def test_sticky_comment_found_beyond_the_first_100_comments(repo: Path, gh: GitHubDouble, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(130):
        gh.add_issue_comment(3, f"comment {i} from a reviewer")
    _event(tmp_path, monkeypatch, {"pull_request": {"number": 3}})
    assert runner.invoke(app, ["comment"]).exit_code == 0
    for i in range(40):
        gh.add_issue_comment(3, f"later comment {i}")
    result = runner.invoke(app, ["comment"])
    assert result.exit_code == 0, result.output
    assert "updated" in result.output
    assert len(_ours(gh.issue_comments[3])) == 1
    assert len(gh.issue_comments[3]) == 171
    pages = {r.query.get("page", ["1"])[0] for r in gh.requests_for("GET", r"/issues/3/comments$")}
    assert {"1", "2"} <= pages  # the Link header's next page was followed


def test_cml_comment_is_taken_over(repo: Path, gh: GitHubDouble, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cml = gh.add_issue_comment(5, "old CML report\n\n" + watermark("0123abc"), "github-actions[bot]")
    gh.add_issue_comment(5, "labelled CML report\n\n" + watermark("0123abc", "other"), "github-actions[bot]")
    _event(tmp_path, monkeypatch, {"pull_request": {"number": 5}})
    result = runner.invoke(app, ["comment"])
    assert result.exit_code == 0, result.output
    assert "updated" in result.output
    assert "roc_auc" in str(cml["body"]) and watermark(git(repo, "rev-parse", "HEAD")) in str(cml["body"])
    assert "labelled CML report" in str(gh.issue_comments[5][1]["body"])


def test_pr_found_from_the_commit_else_a_commit_comment(repo: Path, gh: GitHubDouble) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    result = runner.invoke(app, ["comment"])
    assert result.exit_code == 0, result.output
    assert f"created on commit {sha[:12]}" in result.output
    assert len(gh.commit_comments[sha]) == 1
    again = runner.invoke(app, ["comment"])
    assert "updated on commit" in again.output
    assert len(gh.commit_comments[sha]) == 1
    gh.commit_pulls[sha] = [12]
    on_pr = runner.invoke(app, ["comment"])
    assert "created on pull request #12" in on_pr.output
    assert gh.requests_for("GET", rf"/commits/{sha}/pulls$")


def test_explicit_target_and_job_summary(repo: Path, gh: GitHubDouble, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = runner.invoke(app, ["comment", "--target", "pr/42"])
    assert result.exit_code == 0, result.output
    assert len(gh.issue_comments[42]) == 1
    assert summary.read_text().startswith("earlier step\n## ✅ mlops report")
    bad = runner.invoke(app, ["comment", "--target", "issue/4"])
    assert bad.exit_code == 1
    assert "--target 'issue/4'" in bad.output


def test_read_only_token_fails_naming_the_permission(repo: Path, gh: GitHubDouble) -> None:
    gh.read_only = True
    result = runner.invoke(app, ["comment", "--target", "pr/9"])
    assert result.exit_code == 1, result.output
    assert "error: GitHub refused to comment on pull request #9 (403)" in result.output
    assert "pull-requests: write" in result.output
    assert "hint:" in result.output


@pytest.mark.parametrize(("status", "says"), [(401, "rejected the token (401)"), (404, "answered 404")])
def test_unauthorised_and_not_found_are_clear(repo: Path, gh: GitHubDouble, status: int, says: str) -> None:
    gh.status_override = status
    result = runner.invoke(app, ["comment", "--target", "pr/9"])
    assert result.exit_code == 1, result.output
    assert says in result.output


def test_secondary_rate_limit_and_5xx_are_retried(repo: Path, gh: GitHubDouble) -> None:
    gh.secondary_limit = 1
    gh.server_errors = 2
    result = runner.invoke(app, ["comment", "--target", "pr/2"])
    assert result.exit_code == 0, result.output
    assert len(gh.issue_comments[2]) == 1
    assert len(gh.requests_for("GET", r"/issues/2/comments$")) == 4  # 502, 502, 403 limit, then the answer


def test_missing_token_is_a_clear_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    result = runner.invoke(app, ["comment"])
    assert result.exit_code == 1
    assert "error: no GitHub token" in result.output


def _nullable(schema: object) -> object:
    """OpenAPI 3.0 `nullable: true` as JSON Schema's type union."""
    if isinstance(schema, dict):
        out = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
        if schema.get("nullable") and isinstance(schema.get("type"), str):
            out["type"] = [schema["type"], "null"]
        return out
    if isinstance(schema, list):
        return [_nullable(v) for v in schema]
    return schema


def test_the_double_answers_githubs_own_shapes(repo: Path, gh: GitHubDouble) -> None:
    assert runner.invoke(app, ["comment", "--target", "pr/1"]).exit_code == 0
    assert runner.invoke(app, ["comment", "--target", f"commit/{git(repo, 'rev-parse', 'HEAD')}"]).exit_code == 0
    posted = gh.issue_comments[1][0]
    jsonschema.validate(posted, _nullable(response_schema("/repos/{owner}/{repo}/issues/{issue_number}/comments",
                                                          "post", "201")))
    commit_comment = next(iter(gh.commit_comments.values()))[0]
    jsonschema.validate(commit_comment, _nullable(response_schema(
        "/repos/{owner}/{repo}/commits/{commit_sha}/comments", "post", "201")))
    pull = gh._pull(4)
    jsonschema.validate([pull], _nullable(response_schema("/repos/{owner}/{repo}/commits/{commit_sha}/pulls",
                                                          "get", "200")))
    body_schema = SPEC["paths"]["/repos/{owner}/{repo}/issues/{issue_number}/comments"]["post"]["requestBody"]
    for req in gh.requests_for("POST", r"/comments$"):
        assert set(req.body) <= set(body_schema["content"]["application/json"]["schema"]["properties"])
        assert req.headers.get("Authorization") == "token ghs_test" or "ghs_test" in req.headers["Authorization"]


# --- whose comment is ours: the watermark alone proves nothing ---------------------------------------------------

def test_a_users_comment_carrying_the_watermark_is_never_edited(repo: Path, gh: GitHubDouble) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    bait = gh.add_issue_comment(8, "lgtm\n\n" + watermark(sha), "mallory")  # pasted by anyone who can comment
    result = runner.invoke(app, ["comment", "--target", "pr/8"])
    assert result.exit_code == 0, result.output
    assert "created on pull request #8" in result.output
    assert str(bait["body"]).startswith("lgtm")  # mallory's comment untouched
    ours = [c for c in gh.issue_comments[8] if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1 and "roc_auc" in str(ours[0]["body"])
    # GITHUB_TOKEN is an installation token: GET /user answers 403, so only a bot's comment can be ours.
    assert gh.authenticated_user("ghs_test")[0] == 403
    again = runner.invoke(app, ["comment", "--target", "pr/8"])
    assert "updated on pull request #8" in again.output, again.output
    assert str(bait["body"]).startswith("lgtm")
    assert not gh.requests_for("PATCH", rf"/issues/comments/{bait['id']}$")
    assert len(gh.issue_comments[8]) == 2


def test_a_personal_token_edits_only_its_own_users_comment(repo: Path, gh: GitHubDouble,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_alice")
    gh.pat_users["ghp_alice"] = "alice"
    sha = git(repo, "rev-parse", "HEAD")
    status, user = gh.authenticated_user("ghp_alice")
    jsonschema.validate(user, _nullable(response_schema("/user", "get", "200")))
    assert status == 200 and user["login"] == "alice" and user["type"] == "User"
    bot = gh.add_issue_comment(6, "a bot's report\n\n" + watermark(sha), "some-app[bot]")
    mallory = gh.add_issue_comment(6, "bait\n\n" + watermark(sha), "mallory")
    alices = gh.add_issue_comment(6, "old report\n\n" + watermark(sha), "alice")
    result = runner.invoke(app, ["comment", "--target", "pr/6"])
    assert result.exit_code == 0, result.output
    assert "updated" in result.output
    assert "roc_auc" in str(alices["body"])
    assert str(bot["body"]).startswith("a bot's") and str(mallory["body"]).startswith("bait")
    assert gh.requests_for("GET", r"/user$")
    # --author names the identity outright (no GET /user): here the App's bot.
    gh.requests.clear()
    named = runner.invoke(app, ["comment", "--target", "pr/6", "--author", "some-app[bot]"])
    assert named.exit_code == 0, named.output
    assert "roc_auc" in str(bot["body"]) and str(mallory["body"]).startswith("bait")
    assert not gh.requests_for("GET", r"/user$")


# --- retries never duplicate the comment ----------------------------------------------------------------------

def test_a_502_after_github_created_the_comment_leaves_one_comment(repo: Path, gh: GitHubDouble) -> None:
    gh.create_then_fail = 1
    result = runner.invoke(app, ["comment", "--target", "pr/4"])
    assert result.exit_code == 0, result.output
    assert len(gh.issue_comments[4]) == 1
    assert len(gh.requests_for("POST", r"/issues/4/comments$")) == 1  # looked again instead of posting again
    assert len(gh.requests_for("GET", r"/issues/4/comments$")) == 2


def test_a_502_before_creating_is_retried_once_the_comment_is_known_absent(repo: Path, gh: GitHubDouble) -> None:
    gh.create_fail = 1
    result = runner.invoke(app, ["comment", "--target", "pr/4"])
    assert result.exit_code == 0, result.output
    assert len(gh.issue_comments[4]) == 1
    assert len(gh.requests_for("POST", r"/issues/4/comments$")) == 2


# --- bad input: one-line errors, exit 1 -----------------------------------------------------------------------

@pytest.mark.parametrize("title", ['say "hi"', "two\nlines", "back\\slash"])
def test_watermark_title_that_breaks_the_marker_is_refused(repo: Path, gh: GitHubDouble, title: str) -> None:
    result = runner.invoke(app, ["comment", "--target", "pr/3", "--watermark-title", title])
    assert result.exit_code == 1, result.output
    assert "error: --watermark-title" in result.output
    assert not gh.requests
    for _ in range(2):  # a label with spaces and brackets is fine, and stays one comment
        ok = runner.invoke(app, ["comment", "--target", "pr/3", "--watermark-title", "nightly (gpu) #2"])
        assert ok.exit_code == 0, ok.output
    assert len(gh.issue_comments[3]) == 1


def test_report_that_is_not_utf8_is_a_clear_error(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"## report\n\xff\xfe latin-1 \xe9\n")
    result = runner.invoke(app, ["comment", "--report", str(bad)])
    assert result.exit_code == 1, result.output
    assert f"error: {bad}: not UTF-8 text" in result.output


@pytest.mark.parametrize("where", ["directory", "missing-folder"])
def test_unwritable_job_summary_is_a_clear_error(repo: Path, gh: GitHubDouble, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    path = tmp_path if where == "directory" else tmp_path / "nope" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    result = runner.invoke(app, ["comment", "--target", "pr/5"])
    assert result.exit_code == 1, result.output
    assert f"error: GITHUB_STEP_SUMMARY {path}: cannot write the job summary" in result.output
    assert not gh.issue_comments


@pytest.mark.parametrize("kind", ["directory", "not-json"])
def test_bad_event_file_is_a_clear_error(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         kind: str) -> None:
    path = tmp_path / "event"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_text("{not json")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))
    result = runner.invoke(app, ["comment"])
    assert result.exit_code == 1, result.output
    assert f"error: GITHUB_EVENT_PATH {path}:" in result.output
    assert "internal error" not in result.output


def test_a_token_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops.github.client import redact

    message = "InvalidHeader: ... in header value: 'token ghs_SECRET123\n'"
    assert "SECRET123" not in redact(message)
    assert redact("Authorization: Bearer abc.def, ghp_ABC123, github_pat_11AB_x") == (
        "Authorization: Bearer ***, ***, ***")


@pytest.mark.parametrize("token", ["ghs_abc\nX-Injected: 1", "ghs_a b"])
def test_a_token_with_whitespace_inside_is_refused_without_printing_it(
        token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "report.md").write_text("## report\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/repo")
    result = runner.invoke(app, ["comment", "--report", "report.md", "--target", "pr/7"])
    assert result.exit_code == 1
    assert "contains whitespace or control characters" in result.output
    assert "ghs_" not in result.output

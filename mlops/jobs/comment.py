"""`mlops comment`: post the report as the one sticky comment (PR from the event or the commit, else a commit
comment), and write the job summary in Actions. Everything about the run comes from the CIContext it is given."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlops import git
from mlops.errors import GitHubError, ReportError
from mlops.github import (
    DEFAULT_API,
    LOCAL,
    CIContext,
    Client,
    Posted,
    Target,
    check_label,
    parse_target,
    pr_from_event,
    watermark,
)
from mlops.github.context import dispatched_pr, write_summary
from mlops.progress import Progress, silent
from mlops.report import GITHUB_LIMIT, fit


def _repo_from_remote(root: Path) -> str | None:
    url = git.remote_url("origin", root) or ""
    m = re.search(r"[:/]([A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+?)(?:\.git)?/?$", url)
    return m.group(1) if m else None


def open_client(root: Path, ci: CIContext, *, author: str | None = None, retries: int = 5) -> tuple[Client, str]:
    """A GitHub client for the repository of CI (GITHUB_REPOSITORY, else origin's URL) with its token checked; the
    one way `mlops comment` and `mlops monitor`'s alarm issue reach GitHub."""
    token = ci.token or ""
    if token and any(ch.isspace() or not ch.isprintable() for ch in token):
        raise GitHubError("the GitHub token (GITHUB_TOKEN or GH_TOKEN) contains whitespace or control characters",
                          hint="set it from the secret alone, e.g. `env: GITHUB_TOKEN: ${{ github.token }}`")
    if not token:
        raise GitHubError("no GitHub token: GITHUB_TOKEN (or GH_TOKEN) is not set",
                          hint="in a workflow: `env: GITHUB_TOKEN: ${{ github.token }}` with "
                               "`permissions: pull-requests: write`")
    repo = ci.repository or _repo_from_remote(root)
    if not repo:
        raise GitHubError("cannot tell the GitHub repository: GITHUB_REPOSITORY is not set and origin is not GitHub",
                          hint="set GITHUB_REPOSITORY=owner/name")
    return Client(repo, token, ci.api_url or DEFAULT_API, retries=retries, author=author or ci.comment_author), repo


def marked_body(text: str, sha: str, label: str, link: str) -> str:
    """TEXT cut to fit GitHub's body limit (pointing at LINK for the rest), then our marker: what a sticky comment
    or issue carries."""
    mark = watermark(sha, label)
    return fit(text, GITHUB_LIMIT - len(mark) - 4, link).rstrip("\n") + "\n\n" + mark


def _dispatched(client: Client, ci: CIContext, sha: str) -> int | None:
    """The pull request a workflow_dispatch run reports on (input `pull-request`, what `mlops monitor --retrain`
    dispatches), once checked to be this repository's branch that the run is on (or to have the reported commit
    SHA as its head): anyone who may dispatch the workflow could otherwise post one branch's report on another
    pull request."""
    number = dispatched_pr(ci.event_path)
    if number is None:
        return None
    pull = client.get_pull(number)
    own = client.repo_name.split("/")[0] + ":"
    ours = pull.label.startswith(own) and (pull.head == ci.ref_name or pull.sha == sha)
    if not ours:
        raise GitHubError(f"workflow_dispatch input pull-request: #{number} is {pull.label or pull.head} at "
                          f"{pull.sha[:12] or '?'}, not this run's branch {ci.ref_name or '(unknown)'} of "
                          f"{client.repo_name} at {sha[:12]}", hint="dispatch the workflow on the pull request's "
                          "own branch")
    return number


@dataclass(frozen=True)
class CommentResult:
    posted: Posted | None
    summary: Path | None  # the job summary written to, in Actions


def comment(root: Path = Path("."), *, report_file: Path | None = None, target: str = "auto", label: str = "",
            author: str | None = None, progress: Progress = silent, retries: int = 5,
            ci: CIContext = LOCAL) -> CommentResult:
    """Post REPORT_FILE as the one sticky comment (PR from the event or the commit, else a commit comment).

    Only a comment written by AUTHOR (default: MLOPS_COMMENT_AUTHOR, else the token's own user, else any bot
    account for installation tokens such as GITHUB_TOKEN) is ever edited: copying the watermark into a comment
    does not make it ours.
    """
    root = root.resolve()
    check_label(label)
    author = author or ci.comment_author
    path = report_file or root / "reports" / "report.md"
    if not path.is_file():
        raise ReportError(f"{path}: report not found", hint="build it first with `mlops report` (or `mlops run`)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not UTF-8 text (byte {exc.start})",
                          hint="pass the markdown report that `mlops report` wrote (reports/report.md)") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    summary = write_summary(ci, text)
    if summary is not None:
        progress(f"comment: report written to the job summary ({summary})")
    client, repo = open_client(root, ci, author=author, retries=retries)
    sha = git.head(root)
    body = marked_body(text, sha, label, ci.run_url or str(path.with_suffix(".html")))
    try:
        chosen = parse_target(target)
        if chosen is None:
            number = pr_from_event(ci.event_path)
            if number is None:
                number = _dispatched(client, ci, sha)
            if number is None:
                number = client.pr_of_commit(sha)
            chosen = Target("pr", number=number) if number is not None else Target("commit", sha=sha)
        progress(f"comment: posting on {chosen} of {repo}")
        posted = client.upsert(chosen, body, label)
    finally:
        client.close()
    return CommentResult(posted, summary)

"""The sticky pull-request comment and the sticky alarm issue on GitHub, through PyGithub.

The comment carries CML's watermark (`![](https://cml.dev/watermark.png#SHA "CML watermark LABEL")`), so
`cml comment update` and `mlops comment` edit each other's comment. All pages of comments are read (CML reads only
the first and loses its comment on busy pull requests); the newest comment with our watermark is edited. The
alarm issue of `mlops monitor` is found the same way (mlops.github.marker): our watermark, written by us.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.errors import GitHubError, GitHubPermissionError
from mlops.github.context import read_event
from mlops.github.marker import WATERMARK_RE, Identity, check_label, is_ours, newest, ours, watermark

__all__ = [
    "DEFAULT_API",
    "WATERMARK_RE",
    "Client",
    "Identity",
    "IssueRef",
    "Posted",
    "PullRef",
    "Target",
    "check_label",
    "is_ours",
    "parse_target",
    "pr_from_event",
    "redact",
    "watermark",
]

DEFAULT_API = "https://api.github.com"


# --- the Actions event (pydantic at the edge) -------------------------------------------------------------------

class _Edge(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Number(_Edge):
    number: int


class _Issue(_Edge):
    number: int
    pull_request: dict[str, Any] | None = None


class _WorkflowRun(_Edge):
    pull_requests: list[_Number] = []
    head_sha: str | None = None


class Event(_Edge):
    pull_request: _Number | None = None
    issue: _Issue | None = None
    workflow_run: _WorkflowRun | None = None


def pr_from_event(path: str | None) -> int | None:
    """The pull request number of the Actions event at PATH (pull_request, issue_comment, workflow_run)."""
    if not path:
        return None
    try:
        event = Event.model_validate(read_event(path))
    except ValidationError as exc:
        raise GitHubError(f"GITHUB_EVENT_PATH {path}: not a GitHub event payload ({type(exc).__name__})") from None
    if event.pull_request is not None:
        return event.pull_request.number
    if event.issue is not None and event.issue.pull_request is not None:
        return event.issue.number
    if event.workflow_run is not None and event.workflow_run.pull_requests:
        return event.workflow_run.pull_requests[0].number
    return None


@dataclass(frozen=True)
class Target:
    kind: str  # "pr" or "commit"
    number: int | None = None
    sha: str | None = None

    def __str__(self) -> str:
        return f"pull request #{self.number}" if self.kind == "pr" else f"commit {str(self.sha)[:12]}"


def parse_target(text: str) -> Target | None:
    """'auto' -> None; 'pr/N' and 'commit/SHA' -> Target; GitHubError otherwise."""
    if text == "auto":
        return None
    kind, _, value = text.partition("/")
    if kind == "pr" and value.isdigit() and int(value) > 0:
        return Target("pr", number=int(value))
    if kind == "commit" and re.fullmatch(r"[0-9a-fA-F]{7,40}", value):
        return Target("commit", sha=value.lower())
    raise GitHubError(f"--target '{text}': expected auto, pr/NUMBER or commit/SHA")


@dataclass(frozen=True)
class Posted:
    target: Target
    action: str  # "created" or "updated"
    comment_id: int
    url: str


_PERMISSION = {"pr": "pull-requests: write (or issues: write)", "commit": "contents: write",
               "issue": "issues: write"}


def _fail(exc: Exception, what: str, kind: str, repo: str) -> GitHubError:
    from github import GithubException

    if isinstance(exc, GithubException):
        status = exc.status
        if status == 401:
            return GitHubPermissionError(f"GitHub rejected the token (401) while trying to {what}",
                                         hint="check GITHUB_TOKEN: it is missing, expired or revoked")
        if status == 403:
            return GitHubPermissionError(f"GitHub refused to {what} (403): the token lacks {_PERMISSION[kind]} "
                                         f"on {repo}",
                                         hint=f"grant `permissions: {_PERMISSION[kind].split(' (')[0]}` to the job"
                                              + (" (fork pull requests get a read-only token: comment from a "
                                                 "workflow_run job)" if kind != "issue" else ""))
        if status == 410 and kind == "issue":
            return GitHubError(f"GitHub refused to {what} (410): issues are disabled on {repo}",
                               hint="enable issues in the repository's settings, or run monitor with "
                                    "--no-alarm-issue")
        if status == 404:
            return GitHubPermissionError(f"GitHub answered 404 while trying to {what}: {repo} or the target is not "
                                         "visible to the token",
                                         hint="check GITHUB_REPOSITORY and the target, and that the token can read "
                                              "the repository (`contents: read`)")
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        return GitHubError(f"GitHub refused to {what} ({status}{': ' + str(message) if message else ''})",
                           hint="retried with backoff; try again later")
    return GitHubError(f"cannot reach GitHub to {what}: {type(exc).__name__}: {redact(str(exc))}",
                       hint="check GITHUB_API_URL and the network")


# requests puts the offending header value into some errors (InvalidHeader): never print a credential.
_SECRET = re.compile(r"(?i)((?:token|bearer|basic)\s+)[^\s'\",]+|\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]+")


def redact(text: str) -> str:
    """TEXT with anything shaped like a GitHub credential or an Authorization value replaced by ***."""
    return _SECRET.sub(lambda m: (m.group(1) or "") + "***", text)


def _status(exc: Exception) -> int | None:
    from github import GithubException

    return exc.status if isinstance(exc, GithubException) else None


def _ambiguous(exc: Exception) -> bool:
    """True when a failed create may still have created the comment: a 5xx, a timeout or a dropped connection."""
    status = _status(exc)
    if status is not None:
        return status >= 500
    return isinstance(exc, OSError) or type(exc).__module__.startswith(("requests", "urllib3"))


def _rate_limited(exc: Exception) -> bool:
    """A 403/429 secondary (or primary) rate limit: GitHub did not act on the request."""
    from github import GithubException

    if not isinstance(exc, GithubException) or exc.status not in (403, 429):
        return False
    message = str(exc.data.get("message", "")) if isinstance(exc.data, dict) else ""
    return "rate limit" in message.lower()


def _wait(exc: Exception, backoff: float) -> float:
    """Seconds before trying again: GitHub's Retry-After when it sent one (at most 5 minutes), else BACKOFF."""
    headers = getattr(exc, "headers", None) or {}
    after = str(headers.get("Retry-After") or headers.get("retry-after") or "")
    return min(float(after), 300.0) if after.isdigit() else min(backoff, 30.0)


class Client:
    """One repository on one GitHub (or GitHub Enterprise) API, with retries on 5xx and secondary rate limits.

    Reads and edits are retried by PyGithub's GithubRetry. Creating a comment is not (a POST that fails with a 5xx
    may have created it): `upsert` lists the comments again and creates only when ours is still absent.
    """

    def __init__(self, repo: str, token: str, api_url: str = DEFAULT_API, *, retries: int = 5,
                 backoff: float = 1.0, timeout: float = 30.0, author: str | None = None) -> None:
        from github import Auth, Github, GithubRetry

        if not re.fullmatch(r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+", repo):
            raise GitHubError(f"repository '{repo}' is not OWNER/NAME", hint="set GITHUB_REPOSITORY=owner/name")
        if author is not None and not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\[bot\])?",
                                                   author):
            raise GitHubError(f"--author '{author}': not a GitHub login",
                              hint="the login that posts the comment, e.g. github-actions[bot] or octocat")
        retry = GithubRetry(total=retries, backoff_factor=backoff, secondary_rate_wait=60.0,
                            max_rate_limit_wait=300.0,
                            allowed_methods={"GET", "PATCH", "PUT", "DELETE", "HEAD"})  # never POST: see upsert
        self.repo_name = repo
        self.retries = retries
        self.backoff = backoff
        self._identity = Identity(author) if author else None
        self._gh = Github(auth=Auth.Token(token), base_url=api_url.rstrip("/"), retry=retry, timeout=int(timeout),
                          per_page=100, lazy=True)
        self._repo = self._gh.get_repo(repo, lazy=True)

    def close(self) -> None:
        self._gh.close()

    def _call(self, what: str, kind: str, fn: Any) -> Any:
        from github import GithubException

        try:
            return fn()
        except GithubException as exc:
            raise _fail(exc, what, kind, self.repo_name) from None
        except OSError as exc:
            raise _fail(exc, what, kind, self.repo_name) from None
        except Exception as exc:  # requests' and urllib3's errors (retries exhausted, connection refused)
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise _fail(exc, what, kind, self.repo_name) from None
            raise

    def identity(self) -> Identity:
        """The author whose comments are ours: --author, else GET /user's login, else (403 for an installation
        token such as GITHUB_TOKEN) any bot account."""
        if self._identity is None:
            from github import GithubException

            try:
                login = self._call("read the token's user (GET /user)", "pr", lambda: self._gh.get_user().login)
            except GitHubPermissionError as exc:
                cause = exc.__context__
                if not isinstance(cause, GithubException) or cause.status not in (403, 404):
                    raise
                login = None  # an installation token: /user is "not accessible by integration"
            self._identity = Identity(str(login) if login else None)
        return self._identity

    def pr_of_commit(self, sha: str) -> int | None:
        """The open pull request a commit belongs to (the first GitHub lists), else None."""
        pulls = self._call("list the pull requests of a commit", "pr",
                           lambda: list(self._repo.get_commit(sha).get_pulls()))
        open_ = [p for p in pulls if getattr(p, "state", "open") == "open"] or pulls
        return int(open_[0].number) if open_ else None

    def _ours(self, items: list[Any], label: str) -> list[Any]:
        return ours(items, label, self.identity)

    def _create_once(self, create: Any, find_again: Any, what: str, kind: str) -> tuple[Any, bool]:
        """CREATE() (a POST), retried only where that cannot make a second one: after a rate limit (GitHub did
        not act), or after an ambiguous failure (5xx, timeout) once FIND_AGAIN() shows it is still absent.
        (the item, True) when made now; (the item FIND_AGAIN returned, False) when an earlier try had made it."""
        for attempt in range(self.retries + 1):
            try:
                return create(), True
            except Exception as exc:  # classified here, re-raised as GitHubError
                if _status(exc) is None and not _ambiguous(exc):
                    raise  # not GitHub's answer nor the network: a bug, shown as such
                retry_safe = _rate_limited(exc)  # GitHub did not act: simply try again after the wait
                if attempt >= self.retries or not (retry_safe or _ambiguous(exc)):
                    raise _fail(exc, what, kind, self.repo_name) from None
                wait = _wait(exc, self.backoff * 2 ** attempt)
            time.sleep(wait)
            if not retry_safe:
                # The create may have gone through before the error (a 502 from a proxy, a timeout): look again
                # and create only when ours is still absent.
                found = find_again()
                if found is not None:
                    return found, False
        raise AssertionError("unreachable: the last attempt returns or raises")

    def upsert(self, target: Target, body: str, label: str = "") -> Posted:
        """Create the sticky comment on TARGET, or edit the newest one that carries our watermark and was written
        by us (never someone else's comment that only copies the watermark)."""
        if target.kind == "pr":
            assert target.number is not None  # Target("pr") always has a number
            issue = self._repo.get_issue(target.number)
            what = f"list the comments of pull request #{target.number}"
            listing: Any = issue.get_comments
            create = issue.create_comment
        else:
            assert target.sha is not None
            commit = self._repo.get_commit(target.sha)
            what = f"list the comments of commit {target.sha[:12]}"
            listing = commit.get_comments
            create = commit.create_comment
        mine = self._ours(self._call(what, target.kind, lambda: list(listing())), label)
        if mine:
            last = newest(mine)
            self._call(f"edit comment {last.id}", target.kind, lambda: last.edit(body))
            return Posted(target, "updated", int(last.id), str(last.html_url))

        def again() -> Any:
            found = self._ours(self._call(what, target.kind, lambda: list(listing())), label)
            return newest(found) if found else None

        made, _ = self._create_once(lambda: create(body), again, f"comment on {target}", target.kind)
        return Posted(target, "created", int(made.id), str(made.html_url))

    # --- the sticky alarm issue (mlops monitor) and the delivery figures (mlops registry stats) ------------------

    def _issues(self, state: str, labels: tuple[str, ...] = (), since: datetime | None = None) -> list[Any]:
        """Issues (not pull requests, which GitHub lists here too) in STATE, every page."""
        kwargs: dict[str, Any] = {"state": state}
        if labels:
            kwargs["labels"] = list(labels)
        if since is not None:
            kwargs["since"] = since
        found = self._call(f"list the {state} issues", "issue", lambda: list(self._repo.get_issues(**kwargs)))
        return [i for i in found if getattr(i, "pull_request", None) is None]

    def find_issue(self, label: str, labels: tuple[str, ...] = ()) -> IssueRef | None:
        """The newest open issue that carries our marker with LABEL and was opened by us (else None)."""
        mine = self._ours(self._issues("open", labels), label)
        return _issue_ref(newest(mine)) if mine else None

    def create_issue(self, title: str, body: str, label: str, labels: tuple[str, ...] = ()) -> IssueRef:
        """Open an issue whose BODY carries our marker with LABEL; never a second one after an ambiguous failure."""
        def again() -> Any:
            found = self._ours(self._issues("open", labels), label)
            return newest(found) if found else None

        made, _ = self._create_once(lambda: self._repo.create_issue(title=title, body=body, labels=list(labels)),
                                    again, f"open an issue '{title}'", "issue")
        return _issue_ref(made)

    def edit_issue(self, number: int, *, body: str | None = None, close: bool = False) -> IssueRef:
        """Replace issue NUMBER's body and/or close it as completed (PATCH: retried, idempotent)."""
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["body"] = body
        if close:
            kwargs.update(state="closed", state_reason="completed")
        issue = self._repo.get_issue(number)
        self._call(f"edit issue #{number}", "issue", lambda: issue.edit(**kwargs))
        return _issue_ref(issue)

    def comment_issue(self, number: int, body: str) -> str:
        """Add a comment to issue NUMBER (a plain, non-sticky one: the issue's history); its html_url."""
        issue = self._repo.get_issue(number)
        made = self._call(f"comment on issue #{number}", "issue", lambda: issue.create_comment(body))
        return str(made.html_url)

    def issues_marked(self, label: str, labels: tuple[str, ...] = (), since: datetime | None = None
                      ) -> list[IssueRef]:
        """Every issue, open or closed, that carries our marker with LABEL and was opened by us, oldest first."""
        mine = self._ours(self._issues("all", labels, since), label)
        return sorted((_issue_ref(i) for i in mine), key=lambda r: (r.created_at, r.number))

    def first_commit_time(self, number: int) -> datetime | None:
        """When the first commit of pull request NUMBER was authored (GET /pulls/{n}/commits), None when it has
        none. GitHub lists at most 250 commits of a pull request, oldest first: the first is always among them."""
        pull = self._repo.get_pull(number)
        commits = self._call(f"list the commits of pull request #{number}", "pr",
                             lambda: list(pull.get_commits()[:1]))
        if not commits:
            return None
        inner = getattr(commits[0], "commit", None)
        author = getattr(inner, "author", None)
        when = getattr(author, "date", None)
        return when if isinstance(when, datetime) else None

    # --- monitor --retrain: open pull requests by head branch, and a new one (appended) ---------------------------

    def open_pulls(self, head_prefix: str = "") -> list[PullRef]:
        """The open pull requests (every page) from a branch of this repository (not a fork: anyone can open
        one from a fork's branch of any name) whose name starts with HEAD_PREFIX."""
        pulls = self._call("list the open pull requests", "pr", lambda: list(self._repo.get_pulls(state="open")))
        own = self.repo_name.split("/")[0] + ":"  # GitHub's head label is OWNER:BRANCH
        return [r for r in map(_pull_ref, pulls) if r.head.startswith(head_prefix) and r.label.startswith(own)]

    def create_pull(self, *, title: str, body: str, head: str, base: str) -> PullRef:
        """Open a pull request from HEAD into BASE. POST is not retried (it may have gone through): after an
        ambiguous failure the open pull requests are listed, and one from HEAD is the one made."""
        try:
            return _pull_ref(self._repo.create_pull(base=base, head=head, title=title, body=body,
                                                    maintainer_can_modify=False))
        except Exception as exc:  # classified here, re-raised as GitHubError
            if _status(exc) is None and not _ambiguous(exc):
                raise  # not GitHub's answer nor the network: a bug, shown as such
            if _ambiguous(exc) or (_status(exc) or 0) >= 500:
                made = [r for r in self.open_pulls(head) if r.head == head]
                if made:
                    return made[0]
            if _status(exc) == 422:  # GitHub's "Validation Failed": no such head or base branch, or no change
                raise GitHubError(f"GitHub refused to open a pull request from {head} into {base} (422: "
                                  f"{_errors(exc)})", hint=f"check that {head} was pushed to {self.repo_name} and "
                                  f"that {base} exists there") from None
            raise _fail(exc, f"open a pull request from {head} into {base}", "pr", self.repo_name) from None

    # --- the retraining pull request's workflow: dispatched on its branch, and the pull request it reports on
    # (appended) ------------------------------------------------------------------------------------------------

    def dispatch_workflow(self, workflow: str, ref: str, inputs: dict[str, str]) -> None:
        """`POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches` (GitHub answers 204): run WORKFLOW
        (its file name) on branch REF with INPUTS. workflow_dispatch is one of the two events that a run's own
        GITHUB_TOKEN does start. Not retried: a POST that failed with a 5xx may have started the run."""
        from github import GithubException

        what = f"dispatch workflow {workflow} on {ref}"
        try:
            self._repo.get_workflow(workflow).create_dispatch(ref, inputs, throw=True)
        except GithubException as exc:
            if exc.status == 403 and not _rate_limited(exc):
                raise GitHubPermissionError(f"GitHub refused to {what} (403): the token lacks actions: write on "
                                            f"{self.repo_name}", hint="grant `permissions: actions: write` to the "
                                            "job, or use a GitHub App token") from None
            if exc.status == 404:
                raise GitHubError(f"GitHub answered 404 while trying to {what}: no workflow {workflow} in "
                                  f"{self.repo_name} (or the token cannot see it)",
                                  hint="name the pull-request workflow's file with MLOPS_PR_WORKFLOW") from None
            if exc.status == 422:
                message = exc.data.get("message") if isinstance(exc.data, dict) else None
                raise GitHubError(f"GitHub refused to {what} (422: {message or 'Unprocessable Entity'})",
                                  hint=f"{workflow} needs an `on: workflow_dispatch` trigger with the input "
                                       f"{', '.join(inputs)} on {ref}") from None
            raise _fail(exc, what, "pr", self.repo_name) from None
        except Exception as exc:
            if isinstance(exc, OSError) or type(exc).__module__.startswith(("requests", "urllib3")):
                raise _fail(exc, what, "pr", self.repo_name) from None
            raise

    def get_pull(self, number: int) -> PullRef:
        """Pull request NUMBER (`GET /repos/{owner}/{repo}/pulls/{number}`)."""
        return _pull_ref(self._call(f"read pull request #{number}", "pr", lambda: self._repo.get_pull(number)))


    # --- mlops sweep: `/mlops` comment commands (appended) ------------------------------------------------------

    def pull(self, number: int) -> PullInfo:
        """Pull request NUMBER: its head (commit, branch, repository) and base repository (GET /pulls/{n})."""
        return self._call(f"read pull request #{number}", "pr",  # type: ignore[no-any-return]
                          lambda: _pull_info_of(self._repo.get_pull(number)))

    def permission(self, login: str) -> str:
        """LOGIN's permission on this repository: admin, maintain, write, triage, read or none
        (GET /collaborators/{user}/permission; a user who is no collaborator reads as none)."""
        from github import GithubException

        try:
            value = self._repo.get_collaborator_permission(login)
        except GithubException as exc:
            if exc.status == 404:
                return "none"
            raise _fail(exc, f"read the permission of {login}", "pr", self.repo_name) from None
        except Exception as exc:  # the network, classified as _call does
            if isinstance(exc, OSError) or type(exc).__module__.startswith(("requests", "urllib3")):
                raise _fail(exc, f"read the permission of {login}", "pr", self.repo_name) from None
            raise
        return str(value or "none")

    def marked_comment(self, number: int, label: str) -> str | None:
        """The body of the newest comment on pull request NUMBER that carries our marker with LABEL and was
        written by us (never someone else's copy of it), or None."""
        issue = self._repo.get_issue(number)
        mine = self._ours(self._call(f"list the comments of pull request #{number}", "pr",
                                     lambda: list(issue.get_comments())), label)
        return str(newest(mine).body) if mine else None

@dataclass(frozen=True)
class IssueRef:
    number: int
    url: str                     # html_url
    state: str                   # "open" or "closed"
    created_at: datetime
    closed_at: datetime | None
    title: str = ""


def _issue_ref(i: Any) -> IssueRef:
    return IssueRef(int(i.number), str(i.html_url), str(i.state), _utc(i.created_at),
                    _utc(i.closed_at) if i.closed_at else None, str(i.title or ""))


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PullRef:
    number: int
    head: str        # the head branch's name
    url: str         # html_url
    label: str = ""  # OWNER:BRANCH of the head (a fork's owner for a fork's pull request)
    sha: str = ""    # the head commit


def _pull_ref(p: Any) -> PullRef:
    return PullRef(int(p.number), str(p.head.ref), str(p.html_url), str(p.head.label or ""), str(p.head.sha or ""))


def _errors(exc: Exception) -> str:
    """GitHub's validation errors of a 422, in one line."""
    data = getattr(exc, "data", None)
    if not isinstance(data, dict):
        return "Validation Failed"
    parts = [str(e.get("message") or f"{e.get('field')} {e.get('code')}") for e in data.get("errors") or []
             if isinstance(e, dict)]
    return "; ".join(parts) or str(data.get("message") or "Validation Failed")


# --- mlops sweep: `/mlops` comment commands on pull requests (appended) ---------------------------------------------

class _Login(_Edge):
    login: str


class _Repo(_Edge):
    full_name: str


class _Side(_Edge):
    ref: str = ""
    sha: str = ""
    repo: _Repo | None = None  # None when the fork was deleted


class _EventPull(_Edge):
    number: int
    body: str | None = None
    head: _Side
    base: _Side
    state: str = "open"


class _Comment(_Edge):
    body: str | None = None
    user: _Login
    author_association: str = "NONE"


class _Label(_Edge):
    name: str


class _CommandEvent(_Edge):
    action: str | None = None
    comment: _Comment | None = None
    issue: _Issue | None = None
    pull_request: _EventPull | None = None
    label: _Label | None = None
    sender: _Login | None = None


@dataclass(frozen=True)
class CommandEvent:
    """What asked for a command: a comment on a pull request, or a label put on one. BODY is untrusted text."""

    kind: str  # "comment" or "label"
    number: int | None  # the pull request (None: a comment on a plain issue)
    author: str  # who commented, or who labelled
    association: str  # the comment's author_association (labels: "" — ask the permission endpoint)
    body: str  # the comment, or the pull request's description for a label
    label: str = ""
    head_repo: str | None = None  # label events carry the pull request; comments do not (see Client.pull)
    base_repo: str | None = None
    head_sha: str | None = None
    head_ref: str | None = None


def command_event(path: str | None) -> CommandEvent | None:
    """The issue_comment or pull_request (labeled) event at PATH as a CommandEvent; None for any other event."""
    if not path:
        return None
    try:
        event = _CommandEvent.model_validate(read_event(path))
    except ValidationError as exc:
        raise GitHubError(f"GITHUB_EVENT_PATH {path}: not a GitHub event payload ({type(exc).__name__})") from None
    if event.comment is not None and event.issue is not None:
        number = event.issue.number if event.issue.pull_request is not None else None
        return CommandEvent("comment", number, event.comment.user.login, event.comment.author_association,
                            event.comment.body or "")
    if event.pull_request is not None and event.label is not None and event.sender is not None:
        pr = event.pull_request
        return CommandEvent("label", pr.number, event.sender.login, "", pr.body or "", event.label.name,
                            pr.head.repo.full_name if pr.head.repo else None,
                            pr.base.repo.full_name if pr.base.repo else None, pr.head.sha, pr.head.ref)
    return None


@dataclass(frozen=True)
class PullInfo:
    number: int
    state: str
    head_sha: str
    head_ref: str
    head_repo: str | None  # None when the fork is gone
    base_repo: str | None
    base_ref: str


def _pull_info_of(p: Any) -> PullInfo:
    def repo_of(side: Any) -> str | None:
        repo = getattr(side, "repo", None)
        return str(repo.full_name) if repo is not None and getattr(repo, "full_name", None) else None

    return PullInfo(int(p.number), str(p.state), str(p.head.sha), str(p.head.ref), repo_of(p.head), repo_of(p.base),
                    str(p.base.ref))

"""The GitHub Actions context, read from the environment in one place and passed into the jobs as a value.

Jobs never read `GITHUB_*` variables themselves: the CLI builds a `CIContext.from_env()` and hands it down, so a
job's behaviour depends only on its arguments (and tests pass a context instead of patching the environment).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import GitHubError


@dataclass(frozen=True)
class CIContext:
    token: str | None = None  # GITHUB_TOKEN, else GH_TOKEN (stripped; checked where it is used)
    repository: str | None = None  # owner/name
    event_path: str | None = None
    api_url: str = "https://api.github.com"
    server_url: str | None = None
    run_id: str | None = None
    head_ref: str | None = None  # the PR's branch on pull_request events
    actor: str | None = None
    step_summary: str | None = None  # GITHUB_STEP_SUMMARY: the job summary file
    pr_number: int | None = None  # MLOPS_PR_NUMBER: the PR a merge came from, when the workflow knows it
    comment_author: str | None = None  # MLOPS_COMMENT_AUTHOR: the login whose comments are ours
    ref_name: str | None = None  # GITHUB_REF_NAME: the branch a workflow_dispatch run is on
    # How a retraining pull request starts the PR workflow: "app" (opened with a GitHub App token, so GitHub
    # starts it) or "dispatch" (the default: GITHUB_TOKEN's pull request starts nothing, so it is dispatched).
    pr_trigger: str | None = None  # MLOPS_PR_TRIGGER
    pr_workflow: str | None = None  # MLOPS_PR_WORKFLOW: the PR workflow's file name (default pr.yml)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CIContext:
        e = os.environ if env is None else env

        def get(key: str) -> str | None:
            value = e.get(key, "")
            return value or None

        pr = (get("MLOPS_PR_NUMBER") or "").strip()
        return cls(token=(get("GITHUB_TOKEN") or get("GH_TOKEN") or "").strip() or None,
                   repository=get("GITHUB_REPOSITORY"), event_path=get("GITHUB_EVENT_PATH"),
                   api_url=get("GITHUB_API_URL") or "https://api.github.com", server_url=get("GITHUB_SERVER_URL"),
                   run_id=get("GITHUB_RUN_ID"), head_ref=get("GITHUB_HEAD_REF"), actor=get("GITHUB_ACTOR"),
                   step_summary=get("GITHUB_STEP_SUMMARY"), pr_number=int(pr) if pr.isdigit() else None,
                   comment_author=get("MLOPS_COMMENT_AUTHOR"), ref_name=get("GITHUB_REF_NAME"),
                   pr_trigger=get("MLOPS_PR_TRIGGER"), pr_workflow=get("MLOPS_PR_WORKFLOW"))

    @property
    def run_url(self) -> str | None:
        """The workflow run's page, when the context names one (and the server URL is http(s))."""
        server, repo, run = self.server_url or "", self.repository or "", self.run_id or ""
        if server.startswith(("https://", "http://")) and repo and run.isdigit():
            return f"{server.rstrip('/')}/{repo}/actions/runs/{run}"
        return None


LOCAL = CIContext()  # outside Actions: no token, no run, no event


def write_summary(ci: CIContext, text: str) -> Path | None:
    """Append TEXT (markdown) to the job summary of CI's step, when there is one (GITHUB_STEP_SUMMARY); its path."""
    if not ci.step_summary:
        return None
    try:
        with open(ci.step_summary, "a", encoding="utf-8") as fh:
            fh.write(text.rstrip("\n") + "\n")
    except OSError as exc:
        raise GitHubError(f"GITHUB_STEP_SUMMARY {ci.step_summary}: cannot write the job summary "
                          f"({exc.strerror or type(exc).__name__})",
                          hint="GITHUB_STEP_SUMMARY must name a writable file (Actions sets it); unset it outside "
                               "Actions") from None
    return Path(ci.step_summary)


def read_event(path: str) -> Any:
    """The Actions event payload at PATH (GITHUB_EVENT_PATH), parsed JSON: the one reader of that file, whose
    callers validate the part they use. GitHubError naming the path when it cannot be read or is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GitHubError(f"GITHUB_EVENT_PATH {path}: file not found",
                          hint="GITHUB_EVENT_PATH must name the event's JSON file (Actions sets it)") from None
    except OSError as exc:
        raise GitHubError(f"GITHUB_EVENT_PATH {path}: cannot read it ({type(exc).__name__}: {exc.strerror})",
                          hint="GITHUB_EVENT_PATH must name the event's JSON file (Actions sets it)") from None
    except ValueError as exc:
        raise GitHubError(f"GITHUB_EVENT_PATH {path}: not a GitHub event payload ({type(exc).__name__})") from None


DISPATCH_INPUT = "pull-request"  # the PR workflow's workflow_dispatch input: the pull request to report on
_PR_NUMBER = re.compile(r"[1-9][0-9]{0,9}")


def dispatched_pr(event_path: str | None) -> int | None:
    """The pull request a workflow_dispatch run was asked to report on (its input `pull-request`), else None;
    GitHubError when that input is not a pull request number. Whether the pull request is this run's branch is
    the caller's check (mlops.jobs.comment)."""
    if not event_path:
        return None
    try:
        raw = read_event(event_path)
    except GitHubError:
        return None  # pr_from_event, which reads the same file first, says what is wrong with it
    inputs = raw.get("inputs") if isinstance(raw, dict) else None
    if not isinstance(inputs, dict) or inputs.get(DISPATCH_INPUT) in (None, ""):
        return None
    value = str(inputs[DISPATCH_INPUT]).strip()
    if not _PR_NUMBER.fullmatch(value):
        raise GitHubError(f"workflow_dispatch input '{DISPATCH_INPUT}': {value[:40]!r} is not a pull request number",
                          hint="dispatch the workflow with inputs: {\"pull-request\": \"NUMBER\"}")
    return int(value)

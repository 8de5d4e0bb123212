"""The GitHub double of the workflow tests, also answering `POST /repos/{owner}/{repo}/actions/workflows/
{workflow_id}/dispatches` (GitHub's OpenAPI description: body `ref` (required) and `inputs`, answer 204 without a
body), which stage-tag.yml calls. Each accepted dispatch is kept in `dispatches`; act does not chain runs, so a test
runs the dispatched workflow itself."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from tests.github_double import PREFIX, GitHubDoubleWithPulls


@dataclass
class GitHubDoubleWithDispatch(GitHubDoubleWithPulls):
    dispatches: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, method: str, raw_path: str, body: Any, token: str = "") -> tuple[int, Any, dict[str, str]]:
        path = urlparse(raw_path).path.removeprefix(PREFIX)
        m = re.fullmatch(rf"/repos/{re.escape(self.owner)}/{re.escape(self.repo)}/actions/workflows/([^/]+)/dispatches",
                         path)
        if m and method == "POST" and self.status_override is None and not self.read_only:
            if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not isinstance(
                    body.get("inputs", {}), dict):
                return 422, {"message": "Invalid request.", "documentation_url": "https://docs.github.com/rest",
                             "status": "422"}, {}
            self.dispatches.append({"workflow": m[1], "ref": body["ref"], "inputs": dict(body.get("inputs") or {})})
            return 204, None, {}
        return super().handle(method, raw_path, body, token)


# --- appended for the whole loop (tests/e2e/test_e2e_loop.py): dispatches, pull requests listed and opened, issues

from tests.github_double import GitHubDoubleWithIssues  # noqa: E402


@dataclass
class GitHubDoubleForLoop(GitHubDoubleWithDispatch, GitHubDoubleWithIssues):
    """The double that monitor, retrain, the PR workflow, promote, deploy and stats all talk to in one run of the
    loop: workflow dispatches (recorded), pull requests (listed, opened, read, their commits) and issues."""

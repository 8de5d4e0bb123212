"""The sticky alarm issue of `mlops monitor`: one open issue per model while it alarms.

- an alarm and no open issue of ours for the model: open one (title, the monitoring report as its body, label
  `mlops-alarm`);
- an alarm and our issue open: replace its body with the latest report and comment that the alarm recurred;
- healthy and our issue open: comment that it is healthy again and close it (completed);
- healthy and none open: nothing.

"Ours" is the PR comment's rule (mlops.github.marker): the issue carries our watermark with the label
`mlops-monitor MODEL` and was opened by our identity. A later alarm after a close opens a new issue: each issue is
one incident, which is what `mlops registry stats` counts for the time to restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlops.errors import GitHubError
from mlops.github.client import Client, IssueRef
from mlops.github.marker import check_label, is_ours

ALARM_LABEL = "mlops-alarm"  # the GitHub label on every alarm issue: people filter by it, stats lists by it

Action = Literal["opened", "updated", "closed", "none"]


def marker_label(model: str) -> str:
    """The watermark title's label of MODEL's alarm issue (one issue per model)."""
    return check_label(f"mlops-monitor {model}")


def issue_title(model: str) -> str:
    return f"Monitoring alarm: {model}"


@dataclass(frozen=True)
class AlarmIssue:
    action: Action
    number: int | None = None
    url: str | None = None
    comment_url: str | None = None

    def message(self, model: str) -> str:
        if self.action == "none":
            return f"alarm issue: {model} is healthy and has no open alarm issue"
        return f"alarm issue: {self.action} #{self.number} for {model} ({self.url})"


def sync(client: Client, model: str, *, healthy: bool, body: str, note: str) -> AlarmIssue:
    """Bring MODEL's alarm issue in line with this run: BODY (the monitoring report, fit for GitHub's size limit,
    ending with our marker for `marker_label(MODEL)`) becomes the issue's body; NOTE (one line: what happened,
    when, the run's link) the comment."""
    label = marker_label(model)
    if not is_ours(body, label):
        raise GitHubError(f"the alarm issue's body lacks the marker of {model}: the next run could not find it",
                          hint="a bug in mlops: please report it")
    found: IssueRef | None = client.find_issue(label, (ALARM_LABEL,))
    if healthy:
        if found is None:
            return AlarmIssue("none")
        comment = client.comment_issue(found.number, f"🟢 Healthy again: {note}")
        client.edit_issue(found.number, body=body, close=True)
        return AlarmIssue("closed", found.number, found.url, comment)
    if found is None:
        made = client.create_issue(issue_title(model), body, label, (ALARM_LABEL,))
        return AlarmIssue("opened", made.number, made.url)
    client.edit_issue(found.number, body=body)
    comment = client.comment_issue(found.number, f"🔴 The alarm recurred: {note}")
    return AlarmIssue("updated", found.number, found.url, comment)

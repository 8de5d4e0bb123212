"""What `mlops monitor` tells people after each check: the report in the job summary (every run), the sticky alarm
issue on GitHub (mlops.github.alarm: opened or updated while alarming, closed once healthy), and the delivery
figures of the registry (a short section of the report, and gauges beside the monitor's)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from mlops import git, project
from mlops.config import PARAMS_FILE, ParamsFile, read_params
from mlops.errors import GitHubError, MlopsError
from mlops.github.alarm import AlarmIssue, marker_label, sync
from mlops.github.context import CIContext, write_summary
from mlops.monitor import MonitorResult
from mlops.progress import Progress, silent
from mlops.registry.stats import DeliveryStats

DELIVERY_WINDOW = timedelta(days=90)  # the monitor report's delivery section: the last quarter


def wanted(ci: CIContext, alarm_issue: bool | None) -> bool:
    """Whether this run keeps the alarm issue: ALARM_ISSUE when given, else (auto) in Actions with a token. Asked
    for without a token is an error before anything is checked or written."""
    if alarm_issue is None:
        return bool(ci.token and ci.repository and ci.run_id)
    if alarm_issue and not ci.token:
        raise GitHubError("--alarm-issue needs a GitHub token: GITHUB_TOKEN (or GH_TOKEN) is not set",
                          hint="in a workflow: `env: GITHUB_TOKEN: ${{ github.token }}` with `permissions: issues: "
                               "write`; or --no-alarm-issue")
    return alarm_issue


def _model(root: Path, config: ParamsFile | None) -> str | None:
    try:
        return project.artifact_name(root, (config or read_params(root / PARAMS_FILE)).sections.registry)
    except MlopsError:
        return None


def delivery(root: Path, ci: CIContext, now: datetime, *, use_github: bool, progress: Progress = silent,
             config: ParamsFile | None = None) -> tuple[DeliveryStats | None, str | None]:
    """The delivery figures of the project's model over the last DELIVERY_WINDOW, or None and why not (a monitor
    run never fails for them). CONFIG: the command's params.yaml (read here when not given)."""
    from mlops.jobs.stats import delivery_stats

    config = config or read_params(root / PARAMS_FILE)
    name = _model(root, config)
    if name is None:
        return None, "delivery figures: the project declares no model artifact"
    try:
        return delivery_stats(root, name, since=now - DELIVERY_WINDOW, now=now, ci=ci, use_github=use_github,
                              progress=progress, config=config), None
    except MlopsError as exc:
        return None, f"delivery figures not computed: {exc.message}"


def publish(root: Path, result: MonitorResult, ci: CIContext, *, issue: bool, now: datetime,
            progress: Progress = silent, config: ParamsFile | None = None) -> AlarmIssue | None:
    """The markdown report into the job summary (when in Actions), then, with ISSUE, the alarm issue brought in
    line with RESULT. A GitHub failure while alarming is reported and left to the alarm's own exit; while healthy
    it is raised (the issue would stay open unnoticed)."""
    report = next((p for p in result.files if p.suffix == ".md"), None)
    text = report.read_text(encoding="utf-8") if report is not None else result.summary()
    written = write_summary(ci, text)
    if written is not None:
        progress(f"monitor: report written to the job summary ({written})")
    if not issue:
        return None
    name = _model(root, config)
    if name is None:
        raise GitHubError("--alarm-issue: cannot tell which model the issue is about (no model artifact in "
                          "dvc.yaml)", hint="declare it under artifacts: with type: model, or set "
                                            "registry.artifact in params.yaml; or --no-alarm-issue")
    from mlops.jobs.comment import marked_body, open_client

    link = ci.run_url or (str(report) if report else "reports/monitor.html")
    when = now.strftime("%Y-%m-%d %H:%M UTC")
    note = f"{result.summary()} ({when}{', run ' + ci.run_url if ci.run_url else ''})"
    try:
        client, repo = open_client(root, ci)
        try:
            progress(f"monitor: keeping the alarm issue of {name} on {repo}")
            body = marked_body(text, git.head(root), marker_label(name), link)
            done = sync(client, name, healthy=result.healthy, body=body, note=note)
        finally:
            client.close()
    except MlopsError as exc:
        if result.healthy:
            raise
        progress(f"monitor: the alarm issue could not be updated: {exc.message}")
        return None
    progress(f"monitor: {done.message(name)}")
    return done

"""`mlops monitor`: registered on `app` on import (mlops.cli registers this module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlops.cli import app, echo, handled, progress

if TYPE_CHECKING:
    from mlops.monitor import MonitorResult


def print_result(result: MonitorResult, as_json: bool) -> None:
    if as_json:
        echo(json.dumps(result.as_json(), indent=2))
        return
    echo(result.summary())
    for a in result.alarms:
        echo(f"  {a.check}: {a.message}")
    perf = result.performance
    est = perf.estimated.get("roc_auc")
    real = (perf.realised or {}).get("roc_auc")
    ref = perf.reference.get("roc_auc")
    if est is not None or real is not None:
        parts = [f"estimated {est:.3f}" if est is not None else "",
                 f"realised {real:.3f} on {perf.labelled:,} labelled rows" if real is not None else "",
                 f"reference {ref:.3f}" if ref is not None else ""]
        echo("roc_auc: " + ", ".join(p for p in parts if p))
    if result.files:
        echo(f"report: {', '.join(str(p) for p in result.files)}")


@app.command("monitor")
@handled
def monitor_cmd(
    log: str = typer.Option(None, "--log", help="The server's request log directory (requests-*.jsonl)."),
    current: str = typer.Option(None, "--current", help="A CSV or Parquet file of raw records instead (with the "
                                "label column when known)."),
    reference: str = typer.Option(None, "--reference", help="The reference profile (default: monitor.reference, "
                                  "models/reference.json)."),
    since: str = typer.Option(None, "--since", help="Only log lines newer than this: 30m, 24h, 7d, 2w."),
    labels: str = typer.Option(None, "--labels", help="CSV of late labels: request_id, label (1/0 or the class "
                               "name), optionally row."),
    out: str = typer.Option(None, "--out", help="Folder for monitor.md, monitor.html and monitor.json "
                            "(default: reports/)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    scheduler: str = typer.Option(None, "--scheduler", envvar="MLOPS_DASK_SCHEDULER", help="Read the window on "
                                  "a Dask cluster (tcp://HOST:8786, or `local`): one task per log share or file."),
    store: str = typer.Option(None, "--store", help="Publish the gauges into this model store (`mlops serve "
                              "--store`): the server's /metrics then exports drift, decay and health."),
    retrain: bool = typer.Option(False, "--retrain", help="When the check alarms over the last "
                                 "monitor.consecutive time windows: snapshot the labelled rows into DVC, push a "
                                 "branch mlops/retrain-<stamp> and open a pull request (none while one is open)."),
    alarm_issue: bool = typer.Option(None, "--alarm-issue/--no-alarm-issue", help="Keep one GitHub issue per model "
                                     "while it alarms: opened (the report as its body), updated with a comment when "
                                     "the alarm recurs, closed once healthy. Default: on in GitHub Actions when "
                                     "GITHUB_TOKEN is set (needs `permissions: issues: write`)."),
) -> None:
    """Drift, decay and staleness of served traffic against the reference profile; exit 1 when a threshold of
    `monitor:` in params.yaml is crossed."""
    from mlops.github.context import CIContext
    from mlops.jobs.monitor import monitor
    from mlops.jobs.retrain import RetrainAlert
    from mlops.monitor import MonitorAlert

    try:
        result = monitor(Path("."), log=Path(log) if log else None, current=Path(current) if current else None,
                         reference=Path(reference) if reference else None, since=since,
                         labels=Path(labels) if labels else None, out=Path(out) if out else None, progress=progress,
                         retrain=retrain, ci=CIContext.from_env(), publish=Path(store) if store else None,
                         alarm_issue=alarm_issue, scheduler=scheduler or None)
    except RetrainAlert as alert:
        if as_json:
            echo(json.dumps({**alert.result.as_json(), "retrain": alert.retrain.as_json()}, indent=2))
        else:
            print_result(alert.result, False)
            echo(alert.retrain.message)
            if alert.retrain.pr_url:
                echo(f"pull request: {alert.retrain.pr_url}")
        raise
    except MonitorAlert as alert:
        print_result(alert.result, as_json)  # the findings first; the handler then prints the cause, exits 1
        raise
    if retrain and as_json:
        echo(json.dumps({**result.as_json(), "retrain": {"action": "healthy", "message": "retrain: healthy, "
                                                          "nothing to retrain"}}, indent=2))
        return
    print_result(result, as_json)
    if retrain:
        echo("retrain: healthy, nothing to retrain")

"""`mlops run` and `mlops stage`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlops.cli import app, ci_context, echo, handled, progress
from mlops.stages import STAGES

if TYPE_CHECKING:  # the jobs are imported when a command runs: `mlops --help` stays fast
    from mlops.jobs.run import RunSummary

_SHOWN = 8  # metrics printed in the summary; the report has them all


def print_summary(s: RunSummary) -> None:
    ran = ", ".join(s.stages_run) if s.stages_run else "none (all up to date)"
    echo(f"stages run: {ran}")
    if s.recomputed:  # --pull: why each stage had to run (read by the pipeline action for the job summary)
        echo("stages recomputed: " + ", ".join(f"{stage} ({why})" for stage, why in s.recomputed))
    if s.headline is not None:
        echo(f"headline: {s.headline[0]} = {s.headline[1]:.4f}")
    if s.metrics:
        shown = "  ".join(f"{k}={v:.4f}" for k, v in list(s.metrics.items())[:_SHOWN])
        more = f"  (+{len(s.metrics) - _SHOWN} more)" if len(s.metrics) > _SHOWN else ""
        echo(f"metrics ({', '.join(s.metrics_files)}): {shown}{more}")
    elif s.metrics_files:
        echo(f"metrics: none found in {', '.join(s.metrics_files)}")
    if s.validation_passed is not None:
        verdict = "passed" if s.validation_passed else f"FAILED ({', '.join(s.validation_failed)})"
        echo(f"validation: {verdict}")
    if s.outputs:
        echo(f"outputs: {', '.join(s.outputs)}")


@app.command("run")
@handled
def run_cmd(
    pull: bool = typer.Option(False, "--pull", help="Pull what the DVC cache and remote hold and restore what the "
                              "run cache holds, then recompute every stage whose outputs are still missing."),
    base: str = typer.Option(None, "--base", help="Git ref the report compares with (default: the merge-base of "
                             "HEAD with the main branch)."),
    production: str = typer.Option("auto", "--production", help="auto, a git ref, or none: what the report calls "
                                   "production."),
    report: bool = typer.Option(True, "--report/--no-report", help="Build the report after the pipeline."),
) -> None:
    """Run the main job: reproduce the pipeline (dvc repro), then build the report vs main and production."""
    from mlops.cli.report import print_report
    from mlops.jobs.run import run_with_report

    summary, result = run_with_report(Path("."), progress, pull=pull, base=base, production=production,
                                      report=report, ci=ci_context())
    print_summary(summary)
    if result is not None:
        print_report(result)


@app.command("stage")
@handled
def stage_cmd(
    name: str = typer.Argument(..., help=f"Stage to run: one of {', '.join(STAGES)}."),
) -> None:
    """Run one pipeline stage in this process (what dvc.yaml calls)."""
    from mlops.jobs import stage

    stage.run_stage(name, Path("."), progress)

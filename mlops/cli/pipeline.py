"""`mlops run` and `mlops stage`."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops.cli import app, echo, handled, progress
from mlops.jobs.pipeline import RunSummary, run_pipeline, run_stage
from mlops.stages import STAGES


def print_summary(s: RunSummary) -> None:
    ran = ", ".join(s.stages_run) if s.stages_run else "none (all up to date)"
    echo(f"stages run: {ran}")
    test = s.metrics.get("test", {}) if isinstance(s.metrics, dict) else {}
    if test:
        shown = "  ".join(f"{k}={v:.4f}" for k, v in test.items() if isinstance(v, int | float))
        echo(f"test metrics: {shown}")
    if s.validation_passed is not None:
        verdict = "passed" if s.validation_passed else f"FAILED ({', '.join(s.validation_failed)})"
        echo(f"validation: {verdict}")
    if s.device:
        echo(f"trained on: {s.device}")
    if s.outputs:
        echo(f"outputs: {', '.join(s.outputs)}")


@app.command("run")
@handled
def run_cmd(
    pull: bool = typer.Option(False, "--pull", help="Fetch cached outputs and run-cache entries from the DVC remote "
                              "before reproducing."),
) -> None:
    """Run the main job: reproduce the pipeline (dvc repro) and summarise metrics, validation and outputs."""
    summary = run_pipeline(Path("."), progress, pull=pull)
    print_summary(summary)


@app.command("stage")
@handled
def stage_cmd(
    name: str = typer.Argument(..., help=f"Stage to run: one of {', '.join(STAGES)}."),
) -> None:
    """Run one pipeline stage in this process (what dvc.yaml calls)."""
    run_stage(name, Path("."), progress)

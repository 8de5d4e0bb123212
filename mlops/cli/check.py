"""`mlops check`: registered on `app` on import (mlops.cli registers this module)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops.cli import app, echo, handled, progress


@app.command("check")
@handled
def check_cmd(
    model: str = typer.Option(..., "--model", help="The model directory: a package (mlops-model.yaml) or a "
                              "churn-stage model (model.ubj + feature_schema.json)."),
    data: str = typer.Option(..., "--data", help="Held-out rows (CSV or Parquet) with the target column."),
    target: str = typer.Option(None, "--target", help="The label column of --data (default: the manifest's "
                               "target)."),
    train: str = typer.Option(None, "--train", help="Training rows with the target column: adds "
                              "checks.train_test_gap."),
    out: str = typer.Option("reports/checks.json", "--out", help="Where to write the checks (declare it as a "
                            "metrics file of a DVC stage to diff and gate it)."),
    params: str = typer.Option(None, "--params", help="The params file with `checks:` and `report.sensitive` "
                               "(default: params.yaml, optional)."),
) -> None:
    """Model checks as metrics: lift over a prior baseline, train-test gap, features that contribute nothing, weak
    segments, fairness gaps over report.sensitive, and global attributions (TreeSHAP or permutation)."""
    from mlops.jobs.check import check

    outcome = check(Path(model), Path(data), target=target, train=Path(train) if train else None, out=Path(out),
                    params_file=Path(params) if params else None, progress=progress)
    r = outcome.result
    echo(f"wrote {outcome.written}: {r.rows} held-out rows, {r.task}")
    echo(f"baseline lift ({r.primary}): {r.baseline_lift:+.4f} ({r.model_score:.4f} against the prior's "
         f"{r.baseline_score:.4f})")
    if r.train_test_gap is not None:
        echo(f"train-test gap ({r.primary}): {r.train_test_gap:+.4f}")
    echo(f"features that contribute nothing: {', '.join(r.useless) or 'none'}")
    echo(f"weak segments (mean loss >= the overall's x ratio): {r.weak}"
         + (f"; worst {r.segments[0].column} = {r.segments[0].value} (x{r.segments[0].ratio:.2f}, "
            f"{r.segments[0].rows} rows)" if r.segments else ""))
    for column, gaps in r.fairness.items():
        echo(f"fairness over {column}: " + "  ".join(f"{k}={v:.4f}" for k, v in gaps.items() if k != "groups"))
    top = ", ".join(f"{a.feature} {a.share:.1%}" for a in r.attributions[:5])
    echo(f"attributions ({r.method}): {top}")

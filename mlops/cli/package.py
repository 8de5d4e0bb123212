"""`mlops package`: registered on `app` on import (mlops.cli registers this module)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer

from mlops.cli import app, echo, handled, progress


@app.command("package")
@handled
def package_cmd(
    model: str = typer.Option(..., "--model", help="The trained model file (.skops/.joblib/.pkl: sklearn, .ubj: "
                               "xgboost, .txt/.lgb: lightgbm with --runtime, .onnx: onnx; any file with --code)."),
    data: str = typer.Option(..., "--data", help="Held-out rows (CSV or Parquet) with the target column: they "
                              "give the interface, the golden records and the reference profile."),
    target: str = typer.Option(..., "--target", help="The label column of --data (not an input of the model)."),
    task: str = typer.Option(..., "--task", help="binary, multiclass or regression."),
    runtime: str = typer.Option(None, "--runtime", help="xgboost, lightgbm, sklearn, onnx or python (default: "
                                "from the model file's suffix)."),
    out: str = typer.Option(None, "--out", help="The package directory (default: the model file's directory; "
                             "the model file is copied into another)."),
    code: str = typer.Option(None, "--code", help="python runtime: FILE.py:CLASS, the class with load(directory) "
                             "and predict(records); the file is copied into the package."),
    params: str = typer.Option(None, "--params", help="The params file whose `package:` section overrides what "
                                "is inferred (default: params.yaml, optional)."),
) -> None:
    """Write the model package for any model: mlops-model.yaml, golden.json and reference.json beside it."""
    from mlops.errors import MlopsError
    from mlops.formats.manifest import RUNTIMES, TASKS, RuntimeName
    from mlops.jobs.package import package

    if task not in TASKS:
        raise MlopsError(f"--task: {task!r} is not a task", hint=f"one of {', '.join(TASKS)}")
    if runtime is not None and runtime not in RUNTIMES:
        raise MlopsError(f"--runtime: {runtime!r} is not a runtime", hint=f"one of {', '.join(RUNTIMES)}")
    result = package(Path(model), Path(data), target, task, runtime=cast("RuntimeName | None", runtime),
                     out=Path(out) if out else None, code=code, params_file=Path(params) if params else None,
                     progress=progress)
    m = result.manifest
    echo(f"packaged {model} ({m.runtime}, {m.task}) in {result.directory}: {', '.join(p.name for p in result.written)}")
    echo(f"golden records: {result.golden_rows}; reference profile: {result.rows} rows")
    shown = {k: v for k, v in result.metrics.items() if isinstance(v, float)}
    if shown:
        echo("held-out: " + "  ".join(f"{k}={v:.4f}" for k, v in shown.items()))

"""`mlops predict`: registered on `app` on import (mlops.cli registers this module)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlops.cli import app, echo, handled, progress


@app.command("predict")
@handled
def predict_cmd(
    input_: str = typer.Option(..., "--input", help="Parquet or CSV: a file or a directory of part files; a local "
                               "path or an fsspec URL (s3://, gs://...)."),
    output: str = typer.Option(..., "--output", help="A .parquet/.csv file, or a directory of part files (one per "
                               "input partition; what a Dask run writes)."),
    ref: str = typer.Option(None, "--ref", help="The version to score with: NAME@vX.Y.Z."),
    stage: str = typer.Option(None, "--stage", help="Or the version a stage points at (e.g. production)."),
    rejects: str = typer.Option(None, "--rejects", help="Write rows that break the model's interface to this "
                                ".csv/.parquet file (row number, field, reason) and score the rest. Default: "
                                "such a row refuses the run."),
    scheduler: str = typer.Option(None, "--scheduler", envvar="MLOPS_DASK_SCHEDULER",
                                  help="Run on a Dask cluster: the scheduler's address (tcp://HOST:8786), or "
                                  "`local` for a LocalCluster of this machine's cores."),
    inputs: bool = typer.Option(True, "--inputs/--no-inputs", help="Copy the input columns beside the "
                                "predictions (what `mlops monitor --current` checks)."),
    id_column: str = typer.Option(None, "--id-column", help="An input column to copy beside `row` (with "
                                  "--no-inputs)."),
    fmt: str = typer.Option(None, "--format", help="Format of a directory output: parquet (default) or csv."),
    batch_rows: int = typer.Option(65_536, "--batch-rows", min=1, help="Rows read and scored at a time (bounds "
                                   "the memory)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Score a table with a registered model version, verified against its tag; locally in record batches, or on
    a Dask cluster (one task per partition). Exit 1 when a row breaks the model's interface (see --rejects)."""
    from mlops.jobs.predict import PredictOptions, predict

    result = predict(Path("."), PredictOptions(input=input_, output=output, ref=ref, stage=stage, rejects=rejects,
                                               scheduler=scheduler or None, keep_inputs=inputs,
                                               id_column=id_column, format=fmt, batch_rows=batch_rows),
                     progress=progress)
    if as_json:
        echo(json.dumps(result.as_json(), indent=2))
        return
    rate = result.rows / result.seconds if result.seconds > 0 else 0.0
    echo(f"scored {result.written:,} of {result.rows:,} rows with {result.model} in {result.seconds:.1f} s "
         f"({rate:,.0f} rows/s, {result.partitions} partition(s), {result.where}) -> {result.output}")
    if result.rejects:
        echo(f"{result.rejected:,} rows broke the model's interface: {result.rejects}")

"""`mlops predict`: batch scoring of a registered model version, composed of the registry, deploy and predict.

The version (NAME@vX.Y.Z, or the one a stage points at) is resolved exactly as `mlops deploy` resolves it (the
registry's provenance rule included) and fetched through deploy's verified fetch: its sha256 is checked against the
tag before anything loads. The verified files then go to mlops.predict as a ModelSource (the bytes and the sha256 of
each), which every process that predicts checks again before it loads the model: this process for a local run, each
Dask worker for a cluster run.

The Dask client is made here (`dask_client`): `--scheduler ADDRESS` connects to a running cluster; `local` starts a
LocalCluster of this machine's cores for the run. `mlops monitor --scheduler` uses the same.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.config import PARAMS_FILE, ParamsFile, read_params
from mlops.deploy import fetch_release
from mlops.errors import MissingExtra, MlopsError
from mlops.predict import BatchResult, OutputSpec, PredictError, format_of, run_dask, run_local, source_from_directory
from mlops.progress import Progress, silent

DASK_HINT = 'pip install "mlops[dask]"'


@dataclass(frozen=True)
class PredictOptions:
    input: str
    output: str
    ref: str | None = None  # NAME@vX.Y.Z
    stage: str | None = None  # or the version this stage points at
    rejects: str | None = None  # write bad rows here (default: a bad row refuses the run)
    scheduler: str | None = None  # a Dask scheduler's address, or `local`
    keep_inputs: bool = True
    id_column: str | None = None
    format: str | None = None  # of a directory output: parquet (default) or csv
    batch_rows: int = 65_536
    partition_rows: int = 1_000_000


@contextmanager
def dask_client(address: str, workers: int | None = None) -> Iterator[Any]:
    """A distributed.Client of the cluster at ADDRESS (`local`: a LocalCluster here, one process per core)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtra("--scheduler needs Dask, which is not installed", hint=DASK_HINT) from None
    if address == "local":
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            yield client
        return
    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise MlopsError(f"cannot reach the Dask scheduler at {address}: {exc}",
                         hint="start it (`dask scheduler`) or check the address (tcp://HOST:8786)") from None
    try:
        yield client
    finally:
        client.close()


def _classes(config: ParamsFile) -> tuple[str, ...] | None:
    """The built-in stages' label classes (`data.columns[target].values`), for a model directory without a
    manifest; None when params.yaml does not say."""
    if config.error is not None:
        return None
    try:
        raw = config.raw or {}
        data = raw.get("data") or {}
        values = (data.get("columns") or {}).get(data.get("target"), {}).get("values")
    except AttributeError:
        return None
    if isinstance(values, list) and len(values) == 2 and all(isinstance(v, str) for v in values):
        pos = data.get("positive")
        return (values[0], values[1]) if pos in (None, values[1]) else (values[1], values[0])
    return None


def output_spec(options: PredictOptions) -> OutputSpec:
    fmt = format_of(options.output)
    if options.format is not None and options.format not in ("parquet", "csv"):
        raise PredictError(f"--format {options.format!r}: expected parquet or csv")
    if fmt is not None and options.format is not None and options.format != fmt:
        raise PredictError(f"--output {options.output} is a .{fmt} file but --format says {options.format}")
    if options.rejects is not None and format_of(options.rejects) is None:
        raise PredictError(f"--rejects {options.rejects}: name a .csv or .parquet file")
    chosen = fmt or options.format or "parquet"
    return OutputSpec(url=_absolute(options.output), format="csv" if chosen == "csv" else "parquet",
                      single=fmt is not None, keep_inputs=options.keep_inputs, id_column=options.id_column,
                      rejects=options.rejects, batch_rows=options.batch_rows)


def _absolute(url: str) -> str:
    return url if "://" in url else str(Path(url).expanduser().resolve())


def predict(root: Path, options: PredictOptions, progress: Progress = silent, client: Any = None) -> BatchResult:
    """Score OPTIONS.input with the version OPTIONS names; CLIENT: a Dask client to use instead of
    OPTIONS.scheduler (tests, notebooks)."""
    from mlops.jobs.deploy import DeployOptions, resolve

    if (options.ref is None) == (options.stage is None):
        raise PredictError("name exactly one of --ref NAME@vX.Y.Z and --stage STAGE",
                           hint="e.g. mlops predict --ref churn-model@v1.2.0 --input data.parquet --output out/")
    spec = output_spec(options)
    config = read_params(root / PARAMS_FILE)
    reg = config.sections.registry
    release, _ = resolve(root, reg, DeployOptions(ref=options.ref, stage=options.stage, push=False), progress)
    tmp = Path(tempfile.mkdtemp(prefix="mlops-predict-"))
    try:
        fetched = fetch_release(root, release, tmp / "model", progress)
        progress(f"predict: {release.ref} verified against its tag ({fetched.source})")
        source = source_from_directory(fetched.directory, release.artifact, release.version,
                                       model_file=fetched.serve_file,
                                       trusted={fetched.serve_file: fetched.serve_sha256},
                                       classes=_classes(config))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    input_url = _absolute(options.input)
    if client is not None:
        return run_dask(client, source, input_url, spec, progress, options.partition_rows)
    if options.scheduler:
        with dask_client(options.scheduler) as c:
            return run_dask(c, source, input_url, spec, progress, options.partition_rows)
    return run_local(source, input_url, spec, progress, options.partition_rows)

"""Batch scoring: every row checked by the server's rules (mlops.features through the model's runtime), predicted,
and written with its row number, the task's prediction columns and the model version.

A row that breaks the model's interface is never dropped silently: it refuses the run (PredictError naming the
row, the field and the reason, nothing written), or, with a rejects file, is written there with its row number.

Locally the partitions are scored one after another in record batches (memory bounded by the batch size). On a
Dask cluster each partition is one task: the worker loads the model through mlops.predict.model (verified
against the tag's sha256, cached per worker), writes its own part file, and returns counts and rejected rows. A
task whose worker dies is run again by the scheduler and rewrites the same part file: no duplicate rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.errors import MlopsError
from mlops.features import FeatureError
from mlops.predict import tables
from mlops.predict.encode import arrow_values, bulk_capable, encode_column
from mlops.predict.model import ModelSource, ModelTampered, PredictError, load
from mlops.predict.tables import Format, Partition, Writer
from mlops.progress import Progress, silent
from mlops.runtimes import Predictions, Runtime

if TYPE_CHECKING:
    import pyarrow as pa

ROW = "row"
MODEL = "model"
VERSION = "model_version"
REJECT_COLUMNS = (ROW, "field", "error")
MAX_SHOWN = 5


@dataclass(frozen=True)
class OutputSpec:
    """Where and how predictions are written. SINGLE: one file at URL; else a directory of part files."""

    url: str
    format: Format = "parquet"
    single: bool = False
    keep_inputs: bool = True  # every input column beside the predictions (what `mlops monitor --current` reads)
    id_column: str | None = None  # an input column copied beside `row` even without keep_inputs
    rejects: str | None = None  # None: a bad row refuses the run
    batch_rows: int = tables.BATCH_ROWS


@dataclass(frozen=True)
class Reject:
    row: int
    field: str
    error: str


@dataclass(frozen=True)
class PartResult:
    index: int
    rows: int = 0
    written: int = 0
    rejects: tuple[Reject, ...] = ()
    file: str = ""
    error: str | None = None  # an MlopsError on the worker: (class name, message, hint), reraised by the client
    error_kind: str = ""
    hint: str | None = None


@dataclass(frozen=True)
class BatchResult:
    model: str  # NAME@vX.Y.Z
    rows: int
    written: int
    rejected: int
    partitions: int
    output: str
    files: tuple[str, ...]
    rejects: str | None
    where: str  # "local" or the scheduler's address
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "rows": self.rows, "written": self.written, "rejected": self.rejected,
                "partitions": self.partitions, "output": self.output, "files": list(self.files),
                "rejects": self.rejects, "where": self.where, "seconds": round(self.seconds, 3),
                "notes": list(self.notes)}


# --- one batch ---------------------------------------------------------------------------------------------------


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # the rule refuses it, naming the value


_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}


def _csv_values(arr: Any, ftype: str) -> list[Any]:
    """A CSV column (text) as the values a JSON request would carry, by the feature's type; text that is not one
    stays text, for the rule to refuse with the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if ftype in ("category", "string"):
        return list(arr.to_pylist())
    if ftype == "bool":
        return [None if v is None else _BOOL_TEXT.get(v.strip().lower(), v) for v in arr.to_pylist()]
    try:
        return list(pc.cast(arr, pa.int64() if ftype == "int" else pa.float64()).to_pylist())
    except pa.ArrowException:
        return [None if v is None else _number(v.strip()) for v in arr.to_pylist()]


def _require_columns(runtime: Runtime, table: pa.Table, where: str) -> None:
    for spec in runtime.interface.features:
        if spec.name not in table.column_names:
            raise PredictError(f"{where}: column '{spec.name}' of the model's interface is not in the input",
                               hint=f"the model {'takes'} {', '.join(runtime.interface.names[:6])}...")


def _columns(runtime: Runtime, table: pa.Table, fmt: Format, where: str) -> dict[str, list[Any]]:
    _require_columns(runtime, table, where)
    cols: dict[str, list[Any]] = {}
    for spec in runtime.interface.features:
        col = table.column(spec.name)
        cols[spec.name] = _csv_values(col, spec.type) if fmt == "csv" else list(col.to_pylist())
    return cols


def _shown(v: Any) -> str:
    text = repr(v)
    return (text[:57] + "...") if len(text) > 60 else text


def _find_bad(runtime: Runtime, cols: dict[str, list[Any]], offset: int,
              rows: Any = None) -> dict[int, Reject]:
    """Every row whose values break the interface, with the first reason (the server's rules, value by value),
    keyed by position in COLS; ROWS: each position's row in the batch (default: the position)."""
    bad: dict[int, Reject] = {}
    for spec in runtime.interface.features:
        conv = spec.value_converter()
        for i, v in enumerate(cols[spec.name]):
            if i in bad:
                continue
            try:
                conv(v)
            except Exception as exc:  # the rule's own reason (mlops.features raises a private type)
                got = "null" if v is None else f"{_shown(v)} ({type(v).__name__})"
                row = offset + (i if rows is None else int(rows[i]))
                bad[i] = Reject(row, spec.name, f"field '{spec.name}': {exc}, got {got}")
    return bad


def prediction_columns(preds: Predictions) -> dict[str, Any]:
    """The task's output columns as Arrow arrays: binary probability and label, multiclass one
    probability_<class> per class and label, regression value. Labels are Predictions.labels()'s, taken in bulk
    (binary: positive when P >= threshold; multiclass: the first argmax)."""
    import numpy as np
    import pyarrow as pa

    if preds.task == "regression":
        return {"value": pa.array(preds.values, pa.float64())}
    classes = pa.array(list(preds.classes or ()), pa.string())
    if preds.task == "binary":
        pick = (preds.values >= preds.threshold).astype(np.int64)
        return {"probability": pa.array(preds.values, pa.float64()), "label": classes.take(pa.array(pick))}
    out: dict[str, Any] = {f"probability_{c}": pa.array(np.ascontiguousarray(preds.values[:, k]), pa.float64())
                           for k, c in enumerate(preds.classes or ())}
    out["label"] = classes.take(pa.array(np.argmax(preds.values, axis=1).astype(np.int64)))
    return out


def output_names(runtime: Runtime) -> list[str]:
    m = runtime.manifest
    if m.task == "regression":
        return ["value"]
    if m.task == "binary":
        return ["probability", "label"]
    return [f"probability_{c}" for c in m.classes or ()] + ["label"]


@dataclass(frozen=True)
class _Scored:
    """A batch after validation and prediction: the good rows' table, their row numbers, predictions (None when
    no row is left), the rejected rows, and for CSV the features typed as the model read them."""

    table: pa.Table
    rows: Any  # int64 ndarray
    preds: Predictions | None
    rejects: list[Reject]
    typed: dict[str, Any]


def _per_row(runtime: Runtime, table: pa.Table, offset: int, fmt: Format, where: str) -> _Scored:
    """The definition: every value as a Python object through the interface's converters (the server's path)."""
    import numpy as np
    import pyarrow as pa

    n = table.num_rows
    cols = _columns(runtime, table, fmt, where)
    keep: Any = None
    rejects: list[Reject] = []
    try:
        preds = runtime.predict_columns(cols) if n else None
    except FeatureError:
        bad = _find_bad(runtime, cols, offset)
        if not bad:
            raise
        rejects = [bad[i] for i in sorted(bad)]
        keep = np.setdiff1d(np.arange(n), np.fromiter(bad, dtype=np.int64, count=len(bad)))
        cols = {k: [v[i] for i in keep.tolist()] for k, v in cols.items()}
        table = table.take(pa.array(keep))
        preds = runtime.predict_columns(cols) if len(keep) else None
    rows = np.arange(offset, offset + n, dtype=np.int64) if keep is None else keep.astype(np.int64) + offset
    typed = {k: pa.array(v) for k, v in cols.items()} if fmt == "csv" and len(rows) else {}
    return _Scored(table, rows, preds, rejects, typed)


def _bulk(runtime: Runtime, table: pa.Table, offset: int, fmt: Format) -> _Scored | None:
    """The same as `_per_row`, with the matrix built from Arrow buffers (mlops.predict.encode); only suspect rows
    meet the per-row converters. None: a column this path leaves to `_per_row` (CSV text that does not cast)."""
    import numpy as np
    import pyarrow as pa

    features = runtime.interface.features
    arrays: dict[str, Any] = {}
    for f in features:
        arr = arrow_values(table.column(f.name), f.type, fmt)
        if arr is None:
            return None
        arrays[f.name] = arr
    n = table.num_rows
    matrix = np.empty((n, len(features)), dtype=getattr(runtime, "dtype", None) or np.float32)
    suspect = np.zeros(n, dtype=bool)
    for j, f in enumerate(features):
        codes, sus = encode_column(f, arrays[f.name])
        matrix[:, j] = codes
        suspect |= sus
    rejects: list[Reject] = []
    keep: Any = None
    if suspect.any():
        idx = np.flatnonzero(suspect)
        at = pa.array(idx)
        cols = {f.name: arrays[f.name].take(at).to_pylist() for f in features}
        bad = _find_bad(runtime, cols, offset, idx)
        rejects = [bad[i] for i in sorted(bad)]
        good = [i for i in range(len(idx)) if i not in bad]
        if good:
            for j, f in enumerate(features):
                conv = f.converter()
                values = cols[f.name]
                matrix[idx[good], j] = np.array([conv(values[i]) for i in good], dtype=np.float64)
        if bad:
            keep = np.setdiff1d(np.arange(n), idx[sorted(bad)])
            matrix = matrix[keep]
            table = table.take(pa.array(keep))
            arrays = {k: v.take(pa.array(keep)) for k, v in arrays.items()}
    m = matrix.shape[0]
    preds = runtime.predict_matrix(matrix) if m else None
    rows = np.arange(offset, offset + n, dtype=np.int64) if keep is None else keep.astype(np.int64) + offset
    typed: dict[str, Any] = {}
    if fmt == "csv" and m:
        # what pa.array() of the per-row values infers: the cast type, or `null` when every value is missing
        typed = {k: pa.nulls(m) if v.null_count == m else v for k, v in arrays.items()}
    return _Scored(table, rows, preds, rejects, typed)


def score_table(runtime: Runtime, source: ModelSource, table: pa.Table, offset: int, spec: OutputSpec,
                fmt: Format, where: str, bulk: bool = True) -> tuple[pa.Table, list[Reject]]:
    """TABLE's rows checked and predicted: the output table of the good rows, and the bad ones. BULK=False: the
    per-row path only (the definition the bulk path is tested against)."""
    import pyarrow as pa

    _require_columns(runtime, table, where)
    scored = _bulk(runtime, table, offset, fmt) if bulk and table.num_rows and bulk_capable(runtime) else None
    if scored is None:
        scored = _per_row(runtime, table, offset, fmt, where)
    table, preds = scored.table, scored.preds
    m = len(scored.rows)
    out: dict[str, Any] = {ROW: pa.array(scored.rows, pa.int64())}
    if spec.id_column is not None and not spec.keep_inputs:
        if spec.id_column not in table.column_names:
            raise PredictError(f"{where}: --id-column '{spec.id_column}' is not a column of the input")
        out[spec.id_column] = table.column(spec.id_column)
    if spec.keep_inputs:
        for name in table.column_names:
            if name in out:
                raise PredictError(f"{where}: input column '{name}' has the name of an output column",
                                   hint="rename it, or pass --no-inputs")
            # CSV: the features typed as the model read them; other columns as text
            out[name] = scored.typed[name] if name in scored.typed else table.column(name)
    names = output_names(runtime)
    for name in [*names, MODEL, VERSION]:
        if name in out:
            raise PredictError(f"{where}: input column '{name}' has the name of an output column",
                               hint="rename it, or pass --no-inputs")
    if preds is not None:
        out.update(prediction_columns(preds))
    else:
        for name in names:
            out[name] = pa.array([], pa.string() if name == "label" else pa.float64())
    out[MODEL] = pa.repeat(pa.scalar(source.name, pa.string()), m)
    out[VERSION] = pa.repeat(pa.scalar(source.version, pa.string()), m)
    return pa.table(out), scored.rejects


def _refuse(rejects: Sequence[Reject], where: str) -> PredictError:
    first = rejects[0]
    more = f" (and {len(rejects) - 1} more bad rows in this batch)" if len(rejects) > 1 else ""
    return PredictError(f"{where}: row {first.row}: {first.error}{more}: refused, nothing written",
                        hint="fix the rows, or pass --rejects PATH to write them there and score the rest")


# --- one partition -----------------------------------------------------------------------------------------------


def score_partition(source: ModelSource, part: Partition, spec: OutputSpec, target: str,
                    runtime: Runtime | None = None) -> PartResult:
    """PART scored into the file TARGET (its own: a retry replaces it); raises on a refused row."""
    rt = runtime if runtime is not None else load(source)
    writer = Writer(target, spec.format)
    try:
        rows, _, rejects, empty = _score_batches(rt, source, part, spec, writer, part.offset or 0)
        file = writer.commit(empty.schema if empty is not None else None)
    except BaseException:
        writer.abort()
        raise
    return PartResult(part.index, rows, writer.rows, tuple(rejects), file)


def _score_batches(rt: Runtime, source: ModelSource, part: Partition, spec: OutputSpec, writer: Writer,
                   first_row: int, on_batch: Callable[[int, int], None] | None = None
                   ) -> tuple[int, int, list[Reject], pa.Table | None]:
    """PART's batches scored into WRITER, rows numbered from FIRST_ROW; ON_BATCH(rows done, batch rows) after each.
    Returns (rows read, rows written, rejects, an empty output table when a batch wrote nothing: its schema names
    the columns); raises on a refused row when no rejects file is set."""
    rows = written = 0
    rejects: list[Reject] = []
    empty: pa.Table | None = None
    for table in tables.read_batches(part, spec.batch_rows):
        out, bad = score_table(rt, source, table, first_row + rows, spec, part.format, part.url)
        rows += table.num_rows
        if bad and spec.rejects is None:
            raise _refuse(bad, part.url)
        rejects.extend(bad)
        if out.num_rows:
            writer.write(out)
            written += out.num_rows
        elif empty is None:
            empty = out
        if on_batch is not None:
            on_batch(first_row + rows, table.num_rows)
    return rows, written, rejects, empty


def _one_thread(runtime: Runtime) -> Runtime:
    """RUNTIME predicting on one thread: a Dask worker runs one task per thread, so a model that spreads each
    prediction over every core (xgboost's default) would make the workers' tasks fight over the same cores."""
    booster = getattr(runtime, "booster", None)
    if booster is not None and runtime.name == "xgboost" and not getattr(runtime, "_mlops_one_thread", False):
        booster.set_param({"nthread": 1})
        runtime._mlops_one_thread = True  # type: ignore[attr-defined]
    return runtime


def _task(part: Partition, target: str, source: ModelSource, spec: OutputSpec) -> PartResult:
    """The Dask task: an expected failure comes back as data (exceptions lose their hint on the way)."""
    try:
        return score_partition(source, part, spec, target, _one_thread(load(source)))
    except MlopsError as exc:
        return PartResult(part.index, error=exc.message, error_kind=type(exc).__name__, hint=exc.hint)


def _count_task(part: Partition) -> int:
    return tables.count_rows(part)


# --- the run -----------------------------------------------------------------------------------------------------


def _write_rejects(url: str, rejects: Sequence[Reject]) -> str:
    import pyarrow as pa

    fmt = tables.format_of(url) or "csv"
    w = Writer(tables.normalise(url), fmt)
    try:
        w.write(pa.table({ROW: pa.array([r.row for r in rejects], pa.int64()),
                          "field": pa.array([r.field for r in rejects], pa.string()),
                          "error": pa.array([r.error for r in rejects], pa.string())}))
        return w.commit()
    except BaseException:
        w.abort()
        raise


class _Staging:
    """The output directory is built beside its final place and swapped in at the end: a failed or refused run
    leaves the previous output (or nothing) in place."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.path = tables.fs_of(url)
        self.tmp_path = f"{self.path.rstrip('/')}.staging-{uuid.uuid4().hex[:12]}"
        proto = self.fs.protocol[0] if isinstance(self.fs.protocol, tuple | list) else self.fs.protocol
        self.tmp_url = self.tmp_path if proto in ("file", "local") else f"{proto}://{self.tmp_path}"
        self.fs.makedirs(self.tmp_path, exist_ok=True)

    def file(self, name: str) -> str:
        return f"{self.tmp_url}/{name}"

    def commit(self, names: Sequence[str]) -> list[str]:
        for p in self.fs.ls(self.tmp_path, detail=False):  # leftovers of killed tasks: never part of the output
            if ".tmp-" in p.rsplit("/", 1)[-1]:
                self.fs.rm(p)
        if self.fs.exists(self.path):
            if not self.fs.isdir(self.path):
                raise PredictError(f"--output {self.url}: a file is in the way of the output directory")
            self.fs.rm(self.path, recursive=True)
        self.fs.mv(self.tmp_path, self.path, recursive=True)
        return [f"{self.url.rstrip('/')}/{n}" for n in names if n]

    def abort(self) -> None:
        if self.fs.exists(self.tmp_path):
            self.fs.rm(self.tmp_path, recursive=True)


def _raise_part(r: PartResult) -> None:
    if r.error is None:
        return
    kind = ModelTampered if r.error_kind == "ModelTampered" else PredictError
    raise kind(r.error, hint=r.hint)


def _result(source: ModelSource, spec: OutputSpec, parts: Sequence[Partition], results: Sequence[PartResult],
            files: Sequence[str], where: str, started: float) -> BatchResult:
    rejects = [r for res in results for r in res.rejects]
    rej_file = _write_rejects(spec.rejects, rejects) if spec.rejects is not None else None
    return BatchResult(source.ref, sum(r.rows for r in results), sum(r.written for r in results), len(rejects),
                       len(parts), spec.url, tuple(files), rej_file, where, time.perf_counter() - started)


def run_local(source: ModelSource, input_url: str, spec: OutputSpec, progress: Progress = silent,
              partition_rows: int = tables.PARTITION_ROWS) -> BatchResult:
    """Score INPUT_URL into SPEC in this process, one record batch at a time."""
    started = time.perf_counter()
    runtime = load(source)
    parts = tables.plan_partitions(tables.normalise(input_url), partition_rows)
    progress(f"predict: {source.ref} ({runtime.name}, {runtime.manifest.task}) on {len(parts)} partition(s)")
    results: list[PartResult] = []
    if spec.single:
        results, file = _single(runtime, source, parts, spec, progress)
        return _result(source, spec, parts, results, [file], "local", started)
    staging = _Staging(spec.url)
    try:
        offset = 0
        for part in parts:
            p = Partition(part.index, part.url, part.format, part.row_groups, offset, part.rows)
            name = tables.part_name(part.index, spec.format)
            res = score_partition(source, p, spec, staging.file(name), runtime)
            results.append(res)
            offset += res.rows
            progress(f"predict: {offset:,} rows scored")
        files = staging.commit([tables.part_name(r.index, spec.format) if r.file else "" for r in results])
    except BaseException:
        staging.abort()
        raise
    return _result(source, spec, parts, results, files, "local", started)


def _single(runtime: Runtime, source: ModelSource, parts: Sequence[Partition], spec: OutputSpec,
            progress: Progress) -> tuple[list[PartResult], str]:
    writer = Writer(spec.url, spec.format)
    results: list[PartResult] = []
    offset = 0
    empty: pa.Table | None = None
    try:
        def report(done: int, batch: int) -> None:
            if done % 1_000_000 < batch:
                progress(f"predict: {done:,} rows scored")

        for part in parts:
            rows, written, rejects, part_empty = _score_batches(runtime, source, part, spec, writer, offset, report)
            offset += rows
            if empty is None:
                empty = part_empty
            results.append(PartResult(part.index, rows, written, tuple(rejects), spec.url))
        file = writer.commit(empty.schema if empty is not None else None)
    except BaseException:
        writer.abort()
        raise
    return results, file


def run_dask(client: Any, source: ModelSource, input_url: str, spec: OutputSpec, progress: Progress = silent,
             partition_rows: int = tables.PARTITION_ROWS, retries: int = 2,
             on_submit: Callable[[list[Any]], None] | None = None) -> BatchResult:
    """Score INPUT_URL into SPEC on the Dask cluster of CLIENT (a distributed.Client): one task per partition,
    each writing its own part file into a staging directory that replaces the output when every task is done."""
    started = time.perf_counter()
    if spec.single:
        raise PredictError(f"--output {spec.url}: a Dask run writes one file per partition",
                           hint="give a directory as --output (e.g. predictions/)")
    parts = tables.plan_partitions(tables.normalise(input_url), partition_rows)
    threads = max(1, sum(client.nthreads().values()))
    known = [p.rows for p in parts if p.rows is not None]
    if len(parts) < 2 * threads and len(known) == len(parts) and sum(known) > 2 * threads:
        # Fewer partitions than the cluster has threads would leave workers idle (one 200,000-row file is one
        # partition at the default size): cut the Parquet row groups finer, two partitions per thread.
        finer = tables.plan_partitions(tables.normalise(input_url), -(-sum(known) // (2 * threads)))
        parts = finer if len(finer) > len(parts) else parts
    if any(p.offset is None or p.rows is None for p in parts):
        progress("predict: counting the rows of the CSV files (each row's number in the whole input)")
        counts = client.gather(client.map(_count_task, [p for p in parts], pure=False))
        parts = tables.with_offsets(parts, counts)
    staging = _Staging(spec.url)
    progress(f"predict: {source.ref} on {len(parts)} partition(s), Dask scheduler {client.scheduler.address}")
    try:
        shipped = client.scatter(source, broadcast=True, hash=False)
        run = uuid.uuid4().hex[:8]
        futures = client.map(_task, parts, [staging.file(tables.part_name(p.index, spec.format)) for p in parts],
                             source=shipped, spec=spec, key=[f"mlops-predict-{run}-{p.index}" for p in parts],
                             retries=retries, pure=False)
        if on_submit is not None:
            on_submit(futures)
        results: list[PartResult] = client.gather(futures)
        for r in results:
            _raise_part(r)
        if spec.rejects is None:
            bad = [r for res in results for r in res.rejects]
            if bad:
                raise _refuse(bad, input_url)
        files = staging.commit([tables.part_name(r.index, spec.format) if r.file else "" for r in results])
    except BaseException:
        staging.abort()
        raise
    return _result(source, spec, parts, results, files, str(client.scheduler.address), started)

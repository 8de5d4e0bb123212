"""A model version loaded for serving: verified against the store's sha256, loaded by its runtime, warmed up.

What is loaded depends on the installed artifact:
- a model package (`mlops-model.yaml`, mlops.formats.manifest): the runtime its manifest names (xgboost, lightgbm,
  sklearn, onnx, python), given the store's verified sha256 of every file, so that pickles and Python code are loaded
  only when they are the installed bytes; the task (binary, multiclass, regression) shapes the outputs;
- an artifact of this repo's churn stages before packages (`feature_schema.json` beside `model.ubj`): the xgboost
  binary classifier on its fast path (xgboost's C prediction of the float32 matrix), its one output the probability.

A LoadedModel exists only after its warm-up answered: its golden records (golden.json) must predict as they did
offline (mlops.formats.golden), else one example record must give a finite answer. That is what "ready" means.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops import modelstore
from mlops.errors import MlopsError, ModelInvalid, ModelStoreError
from mlops.features import (
    ModelInterface,
    bind_booster,
    encode_records,
    encode_v2,
    interface_of,
    make_predictor,
    parse_model_interface,
    read_model_interface,
    v2_columns,
    values_of_columns,
    values_of_records,
)
from mlops.formats.golden import GoldenInvalid, read_golden
from mlops.formats.manifest import MANIFEST_FILE, Manifest, Task, read_manifest

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from mlops.runtimes import Runtime

log = logging.getLogger("mlops.serve")

GOLDEN_FILE = "golden.json"
SCHEMA_FILE = "feature_schema.json"
WARMUP_TOLERANCE = 1e-5
MAX_BATCH_ROWS = 4096

# What a model answers, per task (the V2 output tensors; the records endpoint's keys).
PRIMARY: dict[Task, str] = {"binary": "probability", "multiclass": "probabilities", "regression": "value"}
Predictor = Callable[[Any], Any]


SMALL_BATCH = 16  # rows up to which per-request bookkeeping (labels, histogram) is done without numpy


def _row_max(rows: list[list[float]]) -> list[float]:
    """Each row's maximum as numpy's max(axis=1) gives it: NaN for a row with a NaN anywhere (Python's max() would
    skip a NaN that is not first)."""
    return [max(r) if all(v == v for v in r) else math.nan for r in rows]


class Batcher:
    """Requests for one model version that are in the event loop together are predicted in one call.

    A runtime pays a fixed cost per prediction call (about 0.1 ms for the churn model, whatever the row count), so
    under concurrency it is paid once per batch instead of once per request. A request registers its matrix and
    awaits; the batch is predicted by a callback that runs after every request that was ready in the same loop
    iteration has registered. No timer: a lone request waits for nothing but one loop iteration.
    """

    def __init__(self, predictor: Predictor, max_rows: int = MAX_BATCH_ROWS) -> None:
        self._predict = predictor
        self._max_rows = max_rows
        self._pending: list[tuple[NDArray[Any], asyncio.Future[tuple[NDArray[Any], float]]]] = []
        self._rows = 0
        self._scheduled = False

    def submit(self, matrix: NDArray[Any]) -> asyncio.Future[tuple[NDArray[Any], float]]:
        """A future of (predictions, seconds the batch's prediction took)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[NDArray[Any], float]] = loop.create_future()
        self._pending.append((matrix, fut))
        self._rows += len(matrix)
        if self._rows >= self._max_rows:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)
        return fut

    def flush(self) -> None:
        import numpy as np

        self._scheduled = False
        batch, self._pending, self._rows = self._pending, [], 0
        if not batch:
            return
        t0 = time.perf_counter()
        try:
            if len(batch) == 1:
                parts = [self._predict(batch[0][0])]
            else:
                preds = self._predict(np.concatenate([m for m, _ in batch]))
                parts, start = [], 0
                for m, _ in batch:  # slices, not np.split: a few microseconds less per batch
                    parts.append(preds[start:start + len(m)])
                    start += len(m)
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        took = time.perf_counter() - t0
        for (_, fut), part in zip(batch, parts, strict=True):
            if not fut.done():
                fut.set_result((part, took))


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A servable version. `predict` takes what `encode_records`/`encode_v2` made of a request (the float matrix for
    a runtime that takes one, else checked columns) and answers the task's values: binary P(positive) (n,),
    multiclass (n, k) in `classes` order, regression (n,)."""

    name: str
    version: str
    sha256: str
    path: Path
    iface: ModelInterface
    task: Task
    warmup: str  # how it was warmed up: "golden (32 records)" or "example record"
    predictor: Predictor = field(repr=False)
    batcher: Batcher | None = field(repr=False)  # None: the runtime takes columns (predicted per request)
    names: tuple[str, ...] = ()  # the raw feature names, in order (what the request log keeps of a record)
    classes: tuple[str, ...] | None = None  # classifiers: the label of each probability column
    threshold: float = 0.5  # binary: label = classes[1] when P >= threshold
    runtime_name: str = "xgboost"
    runtime: Any = field(default=None, repr=False)  # the mlops.runtimes Runtime (None: the churn fast path)
    booster: Any = field(default=None, repr=False)

    @property
    def takes_matrix(self) -> bool:
        return self.batcher is not None

    @property
    def primary(self) -> str:
        """The name of the task's main output (the probability, the probabilities or the value)."""
        return self.iface.output_name if self.runtime is None else PRIMARY[self.task]

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output tensors it answers: the primary one, then `label` for a classifier with named classes."""
        return (self.primary, "label") if self.classes is not None and self.task != "regression" \
            else (self.primary,)

    @property
    def platform(self) -> str:
        return self.runtime_name

    def encode_records(self, records: Any) -> Any:
        if self.takes_matrix:
            return encode_records(self.iface, records, self._dtype)
        return values_of_records(self.iface, records)

    def encode_v2(self, inputs: Any) -> tuple[Any, dict[str, list[Any]]]:
        """(what `predict` takes, the raw columns for the request log)."""
        if self.takes_matrix and self._dtype is None:
            return encode_v2(self.iface, inputs)  # the churn fast path: float32, as xgboost computes
        columns = v2_columns(self.iface, inputs)
        return self.encode_columns(columns), columns

    def encode_columns(self, columns: Mapping[str, Any]) -> Any:
        """Columns the request log kept (raw values) as `predict` takes them (the shadow's path)."""
        from mlops.features import encode_columns

        if self.takes_matrix:
            return encode_columns(self.iface, columns, self._dtype)
        return values_of_columns(self.iface, columns)

    @property
    def _dtype(self) -> Any:
        return getattr(self.runtime, "dtype", None) if self.runtime is not None else None

    def predict(self, payload: Any) -> NDArray[Any]:
        return self.predictor(payload)  # type: ignore[no-any-return]

    def labels(self, values: NDArray[Any]) -> list[str] | None:
        """The predicted class per row (binary: positive at the threshold; multiclass: the argmax)."""
        import numpy as np

        if self.classes is None or self.task == "regression":
            return None
        if self.task == "binary":
            neg, pos = self.classes
            return [pos if p >= self.threshold else neg for p in values.tolist()]
        if len(values) <= SMALL_BATCH:  # a few rows: plain Python (each numpy call costs about a microsecond)
            rows = values.tolist()
            tops = _row_max(rows)
            if all(t == t for t in tops):  # no NaN: index() of the max is argmax's first maximum
                return [self.classes[r.index(t)] for r, t in zip(rows, tops, strict=True)]
        return [self.classes[int(k)] for k in np.argmax(values, axis=1)]

    def score(self, values: NDArray[Any]) -> NDArray[Any] | list[float]:
        """One number per row for the prediction histogram: the probability, the top probability, the value (a
        list for a few rows, which the histogram takes without numpy)."""
        if len(values) <= SMALL_BATCH:
            return values.tolist() if values.ndim == 1 else _row_max(values.tolist())  # type: ignore[no-any-return]
        return values.max(axis=1) if values.ndim == 2 else values

    def v2_outputs(self) -> list[dict[str, Any]]:
        """The Open Inference Protocol metadata of the outputs."""
        # float32 where the answer is: the legacy path and a binary xgboost package (mlops.runtimes.base keeps a
        # binary model's float32 probabilities as they are); float64 otherwise
        datatype = "FP32" if self.runtime is None or (self.task == "binary" and self.runtime_name == "xgboost") \
            else "FP64"
        if self.task == "multiclass":
            k = len(self.classes or ())
            out: list[dict[str, Any]] = [{"name": self.primary, "datatype": datatype, "shape": [-1, k],
                                          "parameters": {"classes": list(self.classes or ())}}]
        else:
            out = [{"name": self.primary, "datatype": datatype, "shape": [-1]}]
            if self.task == "binary" and self.classes is not None:
                out[0]["parameters"] = {"positive": self.classes[1], "threshold": self.threshold}
        if "label" in self.outputs:
            out.append({"name": "label", "datatype": "BYTES", "shape": [-1],
                        "parameters": {"categories": list(self.classes or ())}})
        return out

    def parameters(self) -> dict[str, Any]:
        """What the metadata says of the model besides its tensors: runtime and task (and classes, threshold)."""
        out: dict[str, Any] = {"runtime": self.runtime_name, "task": self.task}
        if self.classes is not None:
            out["classes"] = list(self.classes)
        if self.task == "binary" and self.classes is not None:
            out["threshold"] = self.threshold
        return out


def _legacy_interface(stored: modelstore.StoredModel) -> ModelInterface:
    """The interface registered with the version (store metadata), cross-checked with the artifact's own file."""
    source = f"{stored.path / modelstore.META_FILE}: key 'interface'"
    registered = parse_model_interface(stored.interface, source) if stored.interface is not None else None
    on_disk = read_model_interface(stored.path / SCHEMA_FILE) if (stored.path / SCHEMA_FILE).is_file() else None
    if registered is None and on_disk is None:
        raise ModelStoreError(f"{stored.path}: no interface: no {MANIFEST_FILE}, and neither the store metadata nor "
                              f"{SCHEMA_FILE} has one",
                              hint="package the model with `mlops package` (it writes mlops-model.yaml), then "
                                   "deploy it again")
    if registered is not None and on_disk is not None and registered.features != on_disk.features:
        raise ModelStoreError(f"{stored.path / SCHEMA_FILE}: differs from the interface registered with "
                              f"{stored.name} {stored.version}", hint="reinstall the version with `mlops deploy`")
    iface = registered or on_disk
    assert iface is not None  # narrowed above
    return iface


def _rows(values: NDArray[Any]) -> list[Any]:
    return [list(r) for r in values.tolist()] if values.ndim == 2 else values.tolist()


def _warm_up(stored: modelstore.StoredModel, model: LoadedModel) -> str:
    golden_path = stored.path / GOLDEN_FILE
    label = f"{stored.name} {stored.version}"
    if golden_path.is_file():
        try:
            golden = read_golden(golden_path)
        except GoldenInvalid as exc:
            raise ModelStoreError(exc.message, hint=exc.hint) from None
        golden = dataclasses.replace(golden, tolerance=max(golden.tolerance, WARMUP_TOLERANCE))
        got = model.predict(model.encode_records([dict(r) for r in golden.records]))
        try:
            bad = golden.compare(_rows(got))
        except GoldenInvalid as exc:
            raise ModelStoreError(f"{label}: warm-up: {exc.message}",
                                  hint="the model's outputs do not fit its golden records: check `task` and "
                                       "`classes` in mlops-model.yaml") from None
        if bad:
            worst = max(m.diff for m in bad)
            raise ModelStoreError(f"{label}: warm-up answers differ from the golden predictions in {len(bad)} of "
                                  f"{len(golden.records)} records (worst by {worst:.3g}, tolerance "
                                  f"{golden.tolerance:g})",
                                  hint="the model file and golden.json are from different trainings")
        return f"golden ({len(golden.records)} records)"
    got = model.predict(model.encode_records([model.iface.example_record()]))
    first = float(model.score(got)[0])
    if not math.isfinite(first):
        raise ModelStoreError(f"{label}: warm-up prediction is {first}")
    return "example record"


def _load_legacy(stored: modelstore.StoredModel) -> LoadedModel:
    """An artifact of the churn stages before packages: xgboost, binary, on the C fast path."""
    try:
        import xgboost as xgb
    except ImportError:
        raise ModelStoreError(f"{stored.model_path}: an xgboost model, and xgboost is not installed",
                              hint='pip install "mlops[xgboost]"') from None
    try:
        iface = _legacy_interface(stored)
    except ModelInvalid as exc:
        raise ModelStoreError(exc.message, hint=exc.hint) from None
    booster = xgb.Booster()
    try:
        booster.load_model(str(stored.model_path))
    except xgb.core.XGBoostError as exc:
        raise ModelStoreError(f"{stored.model_path}: not a readable xgboost model: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    # One worker process per core: xgboost's own threads would only fight the other workers for the cores.
    booster.set_param({"nthread": 1})
    bind_booster(booster, iface, str(stored.model_path))
    predictor = make_predictor(booster)
    return LoadedModel(stored.name, stored.version, stored.model_sha256, stored.path, iface, "binary", "",
                       predictor, Batcher(predictor), tuple(iface.names), booster=booster)


def _load_package(stored: modelstore.StoredModel, manifest: Manifest) -> LoadedModel:
    from mlops.runtimes import load_runtime

    # The store checked every file against the sha256 it recorded at install (after deploy checked them against
    # the tag): those are the trusted hashes that let a runtime load a pickle or a module.
    rt: Runtime = load_runtime(stored.path, manifest, sha256=stored.files)
    booster = getattr(rt, "booster", None)
    if manifest.runtime == "xgboost" and booster is not None:
        booster.set_param({"nthread": 1})
    predictor: Predictor
    if rt.takes_matrix:
        def predictor(matrix: Any) -> Any:
            return rt.predict_matrix(matrix).values
    else:
        def predictor(columns: Any) -> Any:
            return rt.predict_columns(columns).values
    iface = interface_of(manifest.interface, manifest.output_description())
    classes = manifest.classes if manifest.task != "regression" else None
    return LoadedModel(stored.name, stored.version, stored.model_sha256, stored.path, iface, manifest.task, "",
                       predictor, Batcher(predictor) if rt.takes_matrix else None, tuple(iface.names),
                       classes=classes, threshold=manifest.decision_threshold, runtime_name=manifest.runtime,
                       runtime=rt, booster=booster)


def load_model(store: Path, name: str, version: str) -> LoadedModel:
    """Load NAME VERSION from STORE: every file verified, the model loaded by its runtime, warmed up.
    ModelStoreError (NotInStore when absent) when it cannot be served."""
    stored = modelstore.get(store, name, version)
    try:
        if (stored.path / MANIFEST_FILE).is_file():
            manifest = read_manifest(stored.path)
            model = _load_package(stored, manifest)
        else:
            model = _load_legacy(stored)
        model = dataclasses.replace(model, warmup=_warm_up(stored, model))
    except ModelStoreError:
        raise
    except MlopsError as exc:
        raise ModelStoreError(f"{name} {version}: {exc.message}", hint=exc.hint) from None
    log.info("model loaded", extra={"model": name, "version": version, "sha256": stored.model_sha256,
                                    "runtime": model.runtime_name, "task": model.task, "warmup": model.warmup,
                                    "fast_predict": getattr(model.predictor, "__name__", "") == "fast"})
    return model

"""A model version loaded for serving: verified against the store's sha256, bound to its interface, warmed up.

A LoadedModel exists only after its warm-up answered: its golden records (golden.json, written by train) must
predict as they did offline, else one example record must give a probability. That is what "ready" means.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops import modelstore
from mlops.errors import MlopsError, ModelInvalid, ModelStoreError
from mlops.features import (
    ModelInterface,
    Predictor,
    bind_booster,
    encode_records,
    make_predictor,
    parse_interface,
    read_interface,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger("mlops.serve")

GOLDEN_FILE = "golden.json"
SCHEMA_FILE = "feature_schema.json"
WARMUP_TOLERANCE = 1e-5
MAX_BATCH_ROWS = 4096


class Batcher:
    """Requests for one model version that are in the event loop together are predicted in one call.

    xgboost pays a fixed cost per prediction call (about 0.1 ms for the churn model, whatever the row count), so
    under concurrency it is paid once per batch instead of once per request. A request registers its matrix and
    awaits; the batch is predicted by a callback that runs after every request that was ready in the same loop
    iteration has registered. No timer: a lone request waits for nothing but one loop iteration.
    """

    def __init__(self, predictor: Predictor, max_rows: int = MAX_BATCH_ROWS) -> None:
        self._predict = predictor
        self._max_rows = max_rows
        self._pending: list[tuple[NDArray[np.float32], asyncio.Future[tuple[NDArray[np.float32], float]]]] = []
        self._rows = 0
        self._scheduled = False

    def submit(self, matrix: NDArray[np.float32]) -> asyncio.Future[tuple[NDArray[np.float32], float]]:
        """A future of (predictions, seconds the batch's prediction took)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[NDArray[np.float32], float]] = loop.create_future()
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
                bounds = np.cumsum([len(m) for m, _ in batch])[:-1]
                parts = np.split(preds, bounds)
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
    name: str
    version: str
    sha256: str
    path: Path
    iface: ModelInterface
    booster: Any
    warmup: str  # how it was warmed up: "golden (32 records)" or "example record"
    predictor: Predictor = field(repr=False)
    batcher: Batcher = field(repr=False)

    def predict(self, matrix: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.predictor(matrix)


def _interface(stored: modelstore.StoredModel) -> ModelInterface:
    """The interface registered with the version (store metadata), cross-checked with the artifact's own file."""
    source = f"{stored.path / modelstore.META_FILE}: key 'interface'"
    registered = parse_interface(stored.interface, source) if stored.interface is not None else None
    on_disk = read_interface(stored.path / SCHEMA_FILE) if (stored.path / SCHEMA_FILE).is_file() else None
    if registered is None and on_disk is None:
        raise ModelStoreError(f"{stored.path}: no interface: neither the store metadata nor {SCHEMA_FILE} has one",
                              hint="reinstall the version with `mlops deploy`")
    if registered is not None and on_disk is not None and registered.features != on_disk.features:
        raise ModelStoreError(f"{stored.path / SCHEMA_FILE}: differs from the interface registered with "
                              f"{stored.name} {stored.version}", hint="reinstall the version with `mlops deploy`")
    iface = registered or on_disk
    assert iface is not None  # narrowed above
    return iface


def _warm_up(stored: modelstore.StoredModel, iface: ModelInterface, predict: Predictor) -> str:
    golden_path = stored.path / GOLDEN_FILE
    if golden_path.is_file():
        try:
            golden = json.loads(golden_path.read_text(encoding="utf-8"))
            records, expected = golden["records"], [float(p) for p in golden["predictions"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ModelStoreError(f"{golden_path}: not a golden file ({{\"records\", \"predictions\"}})") from None
        got = predict(encode_records(iface, records))
        if len(got) != len(expected):
            raise ModelStoreError(f"{golden_path}: {len(expected)} predictions for {len(got)} answers")
        worst = max(abs(float(a) - b) for a, b in zip(got, expected, strict=True))
        if not worst <= WARMUP_TOLERANCE:
            raise ModelStoreError(f"{stored.name} {stored.version}: warm-up answers differ from the golden "
                                  f"predictions by {worst:.3g} (tolerance {WARMUP_TOLERANCE:g})",
                                  hint="the model file and golden.json are from different trainings")
        return f"golden ({len(expected)} records)"
    p = float(predict(encode_records(iface, [iface.example_record()]))[0])
    if not math.isfinite(p):
        raise ModelStoreError(f"{stored.name} {stored.version}: warm-up prediction is {p}")
    return "example record"


def load_model(store: Path, name: str, version: str) -> LoadedModel:
    """Load NAME VERSION from STORE: sha256 verified, booster bound to its interface, one thread, warmed up.
    ModelStoreError (NotInStore when absent) when it cannot be served."""
    import xgboost as xgb

    stored = modelstore.get(store, name, version)
    try:
        iface = _interface(stored)
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
    try:
        bind_booster(booster, iface, str(stored.model_path))
        predictor = make_predictor(booster)
        warmup = _warm_up(stored, iface, predictor)
    except ModelStoreError:
        raise
    except MlopsError as exc:
        raise ModelStoreError(f"{name} {version}: {exc.message}", hint=exc.hint) from None
    log.info("model loaded", extra={"model": name, "version": version, "sha256": stored.model_sha256,
                                    "warmup": warmup, "fast_predict": predictor.__name__ == "fast"})
    return LoadedModel(name, version, stored.model_sha256, stored.path, iface, booster, warmup, predictor,
                       Batcher(predictor))

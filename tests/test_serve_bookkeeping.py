"""The per-request bookkeeping of the server for a few rows (labels, the prediction histogram) is done in plain
Python, for many rows with numpy: both give the same answers, ties, NaN and bucket edges included."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from mlops.serve.metrics import PREDICTION_BUCKETS, Metrics
from mlops.serve.models import SMALL_BATCH, LoadedModel


def _model(task: Any, classes: tuple[str, ...] | None) -> LoadedModel:
    return LoadedModel(name="m", version="v1.0.0", sha256="0" * 64, path=Path("."), iface=None,  # type: ignore[arg-type]
                       task=task, warmup="none", predictor=lambda x: x, batcher=None, classes=classes,
                       threshold=0.3, runtime_name="lightgbm", runtime=object())


def _big(values: NDArray[Any]) -> NDArray[Any]:
    """VALUES repeated past SMALL_BATCH rows: the numpy path."""
    reps = SMALL_BATCH // len(values) + 1
    return np.concatenate([values] * reps)


@pytest.mark.parametrize(("task", "classes", "values"), [
    ("multiclass", ("a", "b", "c"), np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.2, 0.7]])),
    ("multiclass", ("a", "b", "c"), np.array([[0.2, math.nan, 0.3], [0.4, 0.4, 0.2]])),
    ("binary", ("no", "yes"), np.array([0.29, 0.3, 0.31], dtype=np.float32)),
    ("regression", None, np.array([1.5, -2.0])),
])
def test_labels_and_scores_of_a_few_rows_are_numpys(task: str, classes: tuple[str, ...] | None,
                                                   values: NDArray[Any]) -> None:
    m = _model(task, classes)
    few = m.labels(values)
    many = m.labels(_big(values))
    assert few == (None if many is None else many[:len(values)])
    if task == "multiclass" and not np.isnan(values).any():
        assert few == [classes[int(k)] for k in np.argmax(values, axis=1)]  # type: ignore[index]
    s_few, s_many = m.score(values), m.score(_big(values))
    assert isinstance(s_few, list) and not isinstance(s_many, list)
    np.testing.assert_array_equal(np.asarray(s_few), np.asarray(s_many)[:len(values)])


def _histogram(values: Any) -> tuple[list[float], float]:
    metrics = Metrics()
    assert not metrics.multiprocess
    mm = metrics.model("m", "v1.0.0")
    mm.observe_predictions(values)
    hist = mm.prediction
    return [b.get() for b in hist._buckets], hist._sum.get()


@pytest.mark.parametrize("values", [
    [0.05, 0.0, 1.0, 0.051, 0.999, math.nan, 0.5, 0.5, 1.5, -0.1],
    [0.42],
])
def test_the_histogram_of_a_list_is_the_histogram_of_the_array(values: list[float]) -> None:
    buckets, total = _histogram(values)
    array_buckets, array_total = _histogram(np.asarray(values, dtype=np.float64))
    assert buckets == array_buckets
    assert len(buckets) == len(PREDICTION_BUCKETS) + 1 and sum(buckets) == len(values)
    assert total == pytest.approx(array_total, nan_ok=True)

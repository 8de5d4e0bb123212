"""What every runtime shares: the protocol, the predictions of a batch per task, input handling, file checks.

A runtime is a loaded model behind one small interface (as MLServer's `MLModel`): it takes a batch of raw
records or columns (checked by mlops.features' rules, the same as the server's) or, for runtimes whose model
takes one numeric matrix, the matrix mlops.features encodes; it answers `Predictions` shaped by the task.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from mlops.errors import MissingExtra, ModelInvalid
from mlops.features import (
    FeatureError,
    ModelInterface,
    encode_columns,
    encode_records,
    interface_of,
    values_of_columns,
    values_of_records,
)
from mlops.formats.manifest import Manifest, Output, Task

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

Records = list[dict[str, Any]]


class RuntimeMissing(MissingExtra):
    """The framework of a model's runtime is not installed here; the hint is the install line."""


class UnverifiedModel(ModelInvalid):
    """A model file that runs code when loaded (pickle, joblib, Python) was not checked against a trusted sha256."""


def require(module: str, runtime: str, extra: str) -> None:
    """RuntimeMissing naming RUNTIME and the install line when MODULE cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise RuntimeMissing(f"the {runtime} runtime needs the '{extra}' extra, which is not installed "
                             f"(missing: {module})", hint=f'pip install "mlops[{extra}]"')


@dataclass(frozen=True, eq=False)
class Predictions:
    """A batch's predictions. VALUES: binary P(positive) per row, shape (n,); multiclass one probability per class,
    shape (n, k) in `classes` order; regression the value, shape (n,). Float64 whatever the model computed in."""

    task: Task
    values: NDArray[np.float64]
    classes: tuple[str, ...] | None = None
    threshold: float = 0.5

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def labels(self) -> list[str] | None:
        """The predicted class per row: binary, positive when P >= threshold; multiclass, the argmax (the first
        class on a tie); None for regression."""
        import numpy as np

        if self.task == "regression" or self.classes is None:
            return None
        if self.task == "binary":
            neg, pos = self.classes
            return [pos if p >= self.threshold else neg for p in self.values.tolist()]
        return [self.classes[int(k)] for k in np.argmax(self.values, axis=1)]

    def rows(self) -> list[Any]:
        """The primary output per row as JSON values: a number, or a list per class (what golden.json stores)."""
        return [list(r) for r in self.values.tolist()] if self.task == "multiclass" else self.values.tolist()

    def columns(self) -> dict[str, list[Any]]:
        """Output name -> values per row (multiclass probabilities: a list per row): the V2 output tensors."""
        if self.task == "regression":
            return {"value": self.values.tolist()}
        name = "probability" if self.task == "binary" else "probabilities"
        return {name: self.rows(), "label": self.labels() or []}

    def records(self) -> list[dict[str, Any]]:
        """One object per row: {"probability", "label"}, {"probabilities": {class: p}, "label"} or {"value"}."""
        if self.task == "multiclass":
            assert self.classes is not None  # a multiclass Predictions always has its classes
            labels = self.labels() or []
            return [{"probabilities": dict(zip(self.classes, row, strict=True)), "label": lab}
                    for row, lab in zip(self.values.tolist(), labels, strict=True)]
        cols = self.columns()
        names = list(cols)
        return [dict(zip(names, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


@runtime_checkable
class Runtime(Protocol):
    """A loaded model. `takes_matrix`: whether `predict_matrix` works (the model takes one numeric matrix)."""

    name: ClassVar[str]
    manifest: Manifest
    interface: ModelInterface
    takes_matrix: bool

    def predict_records(self, records: Records) -> Predictions: ...

    def predict_columns(self, columns: Mapping[str, Sequence[Any]]) -> Predictions: ...

    def predict_matrix(self, matrix: NDArray[Any]) -> Predictions: ...

    def outputs(self) -> tuple[Output, ...]: ...


class BaseRuntime:
    """The shared part: input checks per entry point and the per-task shaping of the model's raw output.

    A subclass sets `takes_matrix` and implements `_matrix` (scores of an encoded matrix, in `dtype`) or `_values`
    (scores of checked columns of Python values); `_shape` turns the scores into Predictions."""

    name: ClassVar[str] = "base"
    takes_matrix: bool = True
    dtype: Any = None  # the matrix's float type (None: float32, what xgboost computes in)

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        self.manifest = manifest
        self.directory = directory
        self.interface = interface_of(manifest.interface, manifest.output_description())

    def outputs(self) -> tuple[Output, ...]:
        return self.manifest.outputs

    def predict_records(self, records: Records) -> Predictions:
        if self.takes_matrix:
            return self.predict_matrix(encode_records(self.interface, records, self.dtype))
        return self._shape(self._values(values_of_records(self.interface, records)))

    def predict_columns(self, columns: Mapping[str, Sequence[Any]]) -> Predictions:
        if self.takes_matrix:
            return self.predict_matrix(encode_columns(self.interface, columns, self.dtype))
        return self._shape(self._values(values_of_columns(self.interface, columns)))

    def predict_matrix(self, matrix: NDArray[Any]) -> Predictions:
        if not self.takes_matrix:
            raise FeatureError(f"the {self.name} runtime of this model takes records or columns, not a matrix",
                               field="inputs")
        return self._shape(self._matrix(matrix))

    def _matrix(self, matrix: NDArray[Any]) -> NDArray[Any]:
        raise NotImplementedError

    def _values(self, columns: dict[str, list[Any]]) -> NDArray[Any]:
        raise NotImplementedError

    def _shape(self, raw: Any) -> Predictions:
        """SCORES (the model's raw answer for n rows) as the task's Predictions; ModelInvalid when their shape
        does not fit the task (a regressor packaged as a classifier, a class count that differs)."""
        import numpy as np

        m = self.manifest
        v = np.asarray(raw)
        # a binary model computing in float32 (xgboost) keeps its probabilities as they are: the V2 answer stays FP32,
        # as the churn model always answered; everything else is float64
        if not (m.task == "binary" and v.dtype == np.float32):
            v = v.astype(np.float64)
        n = v.shape[0] if v.ndim else 0
        if m.task == "multiclass":
            k = len(m.classes or ())
            if v.ndim != 2 or v.shape[1] != k:
                v = v.reshape(n, -1) if v.ndim >= 1 and n and v.size % n == 0 else v
            if v.ndim != 2 or v.shape[1] != k:
                raise ModelInvalid(f"{self.name} model: {v.shape} scores for a multiclass model of {k} classes",
                                   hint="check `task` and `classes` in mlops-model.yaml")
        else:
            if v.ndim == 2 and v.shape[1] == 1:
                v = v[:, 0]
            elif v.ndim == 2 and v.shape[1] == 2 and m.task == "binary":
                v = v[:, 1]  # [P(negative), P(positive)]
            if v.ndim != 1:
                raise ModelInvalid(f"{self.name} model: scores of shape {v.shape} for a {m.task} model",
                                   hint="check `task` in mlops-model.yaml")
        return Predictions(m.task, np.ascontiguousarray(v), m.classes, m.decision_threshold)

    def _no_text(self) -> None:
        """A runtime that takes one numeric matrix cannot take a `string` input."""
        text = [f.name for f in self.interface.features if f.type == "string"]
        if text:
            raise ModelInvalid(f"input '{text[0]}' is a string: the {self.name} runtime takes a numeric matrix",
                               hint="use a runtime that takes records (sklearn with a pipeline, or python)")

    def file(self, index: int = 0) -> Path:
        return self.directory / self.manifest.files[index].path

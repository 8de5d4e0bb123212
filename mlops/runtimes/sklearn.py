"""The sklearn runtime: any scikit-learn estimator or Pipeline (ColumnTransformer, one-hot and the rest included).

Files: `.skops` is preferred (skops.io rebuilds the objects without pickle's code execution; it refuses types it
does not trust: scikit-learn's own classes are trusted here, anything else must be listed under `trusted:` in the
manifest after a person reviewed it). `.joblib`, `.pkl` and `.pickle` run code when loaded: mlops.runtimes loads
them only after the caller's sha256 check.

Inputs: an estimator fit on a DataFrame (it has `feature_names_in_`) gets a DataFrame of the checked raw values,
with the dtypes of a training frame (mlops.features.frame_of_values), columns in the model's order; any other
estimator gets the float64 matrix of mlops.features (category codes). Outputs: binary, `predict_proba`'s column
of the positive class; multiclass, its columns in the manifest's `classes` order (matched by name); regression,
`predict`.

Fast path: a Pipeline whose first step is a ColumnTransformer of StandardScaler, OneHotEncoder (no drop, no
infrequent categories), passthrough and drop over named columns, with dense output, is computed from the columns
with numpy (the same float64 operations, in sklearn's order) and the rest of the pipeline is called on that matrix:
building a DataFrame and ColumnTransformer's pandas indexing cost about 10 times the model itself on one row. It is
kept only when it equals the whole pipeline on a probe batch made from the interface (every category, each range's
ends); a batch it cannot take (a missing value in a one-hot column) goes through the whole pipeline.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.errors import ModelInvalid
from mlops.features import frame_of_values
from mlops.formats.manifest import Manifest
from mlops.runtimes.base import BaseRuntime, require

if TYPE_CHECKING:
    from numpy.typing import NDArray

TRUSTED_PREFIX = "sklearn."


def load_skops(path: Path, trusted: tuple[str, ...]) -> Any:
    """The object in a .skops file; ModelInvalid listing the types neither scikit-learn's nor in TRUSTED."""
    require("skops", "sklearn", "sklearn")
    import skops.io as sio

    try:
        found = list(sio.get_untrusted_types(file=str(path)))
    except Exception as exc:  # skops raises several types on a corrupt file
        raise ModelInvalid(f"{path}: not a readable .skops file: {type(exc).__name__}: {exc}") from None
    refused = [t for t in found if not t.startswith(TRUSTED_PREFIX) and t not in trusted]
    if refused:
        raise ModelInvalid(f"{path}: skops does not trust the type(s) {', '.join(refused)}",
                           hint="review them, then list them under `package.trusted` in params.yaml (the manifest's "
                                "`trusted:`)")
    return sio.load(str(path), trusted=found)


def load_estimator(path: Path, trusted: tuple[str, ...] = ()) -> Any:
    """The estimator in PATH by its suffix (.skops, .joblib, .pkl/.pickle). The caller has checked a pickle's sha256."""
    suffix = path.suffix.lower()
    if suffix == ".skops":
        return load_skops(path, trusted)
    try:
        if suffix == ".joblib":
            import joblib

            return joblib.load(path)
        if suffix in (".pkl", ".pickle"):
            with path.open("rb") as fh:
                return pickle.load(fh)  # noqa: S301 (verified against a trusted sha256 by load_runtime)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ModuleNotFoundError, ValueError) as exc:
        raise ModelInvalid(f"{path}: not a loadable model: {type(exc).__name__}: {exc}") from None
    raise ModelInvalid(f"{path}: the sklearn runtime reads .skops, .joblib, .pkl or .pickle files, not "
                       f"'{suffix or path.name}'")


class SklearnRuntime(BaseRuntime):
    name: ClassVar[str] = "sklearn"

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        super().__init__(manifest, directory)
        require("sklearn", "sklearn", "sklearn")
        import numpy as np

        path = self.file()
        self.model = load_estimator(path, manifest.trusted)
        names = getattr(self.model, "feature_names_in_", None)
        ours = self.interface.names
        if names is not None:
            self.columns = [str(n) for n in names]
            if sorted(self.columns) != sorted(ours):
                missing = sorted(set(self.columns) - set(ours)) or sorted(set(ours) - set(self.columns))
                raise ModelInvalid(f"{path}: the model's columns and its interface's differ (first: "
                                   f"'{missing[0]}')", hint="the interface must list the columns the model was fit on")
            self.takes_matrix = False
        else:
            self._no_text()
            n_in = getattr(self.model, "n_features_in_", len(ours))
            if n_in != len(ours):
                raise ModelInvalid(f"{path}: the model takes {n_in} features, its interface lists {len(ours)}")
            self.takes_matrix = True
            self.dtype = np.float64
        self._pick: list[int] | None = None
        if manifest.task != "regression":
            if not hasattr(self.model, "predict_proba"):
                raise ModelInvalid(f"{path}: a {manifest.task} model needs predict_proba, "
                                   f"{type(self.model).__name__} has none", hint="check `task` in mlops-model.yaml")
            have = [str(c) for c in getattr(self.model, "classes_", [])]
            want = list(manifest.classes or ())
            if sorted(have) != sorted(want):
                raise ModelInvalid(f"{path}: the model's classes {have} are not the manifest's {want}")
            self._pick = [have.index(c) for c in want]

        self._fast: _FastColumns | None = None
        if not self.takes_matrix:
            self._fast = _FastColumns.compile(self.model)
            if self._fast is not None and not self._fast_agrees():
                self._fast = None

    @property
    def fast_path(self) -> bool:
        return self._fast is not None

    def _scores(self, x: Any, model: Any = None) -> NDArray[Any]:
        import numpy as np

        model = self.model if model is None else model
        if self._pick is None:
            return np.asarray(model.predict(x), dtype=np.float64)
        p = np.asarray(model.predict_proba(x), dtype=np.float64)
        return p[:, self._pick]

    def _values(self, columns: dict[str, list[Any]]) -> NDArray[Any]:
        if self._fast is not None:
            matrix = self._fast.transform(columns)
            if matrix is not None:
                return self._scores(matrix, self._fast.rest)
        return self._scores(frame_of_values(self.interface, columns)[self.columns])

    def _matrix(self, matrix: NDArray[Any]) -> NDArray[Any]:
        return self._scores(matrix)

    def _fast_agrees(self) -> bool:
        """Whether the fast path gives the whole pipeline's answers on a probe batch: every category of each
        category input, the ends and middle of each numeric range (the first value where none is declared)."""
        import numpy as np

        assert self._fast is not None
        probe: dict[str, list[Any]] = {}
        n = 3
        for f in self.interface.features:
            n = max(n, len(f.categories or ()))
        for f in self.interface.features:
            base = self.interface.example_record()[f.name]
            if f.type == "category" and f.categories:
                vals: list[Any] = list(f.categories)
            elif f.type in ("int", "float") and f.range is not None:
                lo, hi = f.range
                mid = (lo + hi) / 2
                vals = [lo, hi, int(mid) if f.type == "int" else mid]
            else:
                vals = [base]
            probe[f.name] = [vals[i % len(vals)] for i in range(n)]
        try:
            matrix = self._fast.transform(probe)
            if matrix is None:
                return False
            fast = self._scores(matrix, self._fast.rest)
            slow = self._scores(frame_of_values(self.interface, probe)[self.columns])
        except Exception:  # any failure of the fast path: keep the whole pipeline
            return False
        return bool(fast.shape == slow.shape and np.allclose(fast, slow, rtol=0, atol=1e-12))


class _FastColumns:
    """A fitted ColumnTransformer (the first step of a Pipeline) as numpy over columns of checked values, and the
    rest of the pipeline (called on its output). `compile` answers None for anything it does not reproduce."""

    def __init__(self, parts: list[tuple[str, Any, list[str]]], rest: Any) -> None:
        self.parts = parts  # (kind, fitted parameters, columns): kind scale | onehot | passthrough
        self.rest = rest

    @classmethod
    def compile(cls, model: Any) -> _FastColumns | None:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if not isinstance(model, Pipeline) or len(model.steps) < 2:
            return None
        ct = model.steps[0][1]
        if not isinstance(ct, ColumnTransformer) or getattr(ct, "sparse_output_", True):
            return None
        if getattr(ct, "_sklearn_output_config", {}).get("transform") not in (None, "default"):
            return None
        parts: list[tuple[str, Any, list[str]]] = []
        for _, est, cols in ct.transformers_:
            if est == "drop":
                continue
            if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
                return None
            if not cols:
                continue
            if est == "passthrough":
                parts.append(("passthrough", None, cols))
            elif type(est) is StandardScaler:
                parts.append(("scale", (est.mean_, est.scale_), cols))
            elif type(est) is OneHotEncoder:
                if est.drop_idx_ is not None or getattr(est, "_infrequent_enabled", False):
                    return None
                if est.handle_unknown not in ("error", "ignore"):
                    return None
                index = [{str(c): k for k, c in enumerate(cats)} for cats in est.categories_]
                if any(len(ix) != len(cats) for ix, cats in zip(index, est.categories_, strict=True)):
                    return None  # categories that are not distinct strings (numbers, NaN)
                parts.append(("onehot", (index, est.handle_unknown == "ignore", est.dtype), cols))
            else:
                return None
        rest = model.steps[1][1] if len(model.steps) == 2 else model[1:]
        return cls(parts, rest)

    def transform(self, columns: dict[str, list[Any]]) -> NDArray[Any] | None:
        """The ColumnTransformer's output for COLUMNS (float64, or one-hot's dtype), or None: take the pipeline."""
        import numpy as np

        blocks: list[NDArray[Any]] = []
        for kind, params, cols in self.parts:
            if kind == "onehot":
                index, ignore, dtype = params
                n = len(columns[cols[0]])
                width = sum(len(ix) for ix in index)
                out = np.zeros((n, width), dtype=dtype)
                start = 0
                for ix, name in zip(index, cols, strict=True):
                    for row, v in enumerate(columns[name]):
                        if v is None:
                            return None
                        k = ix.get(str(v))
                        if k is not None:
                            out[row, start + k] = 1
                        elif not ignore:
                            return None  # the pipeline raises its own error for an unknown category
                    start += len(ix)
                blocks.append(out)
                continue
            x = np.array([[np.nan if v is None else v for v in columns[c]] for c in cols], dtype=np.float64).T
            if kind == "scale":
                mean, scale = params
                if mean is not None:
                    x -= mean
                if scale is not None:
                    x /= scale
            blocks.append(x)
        return np.hstack(blocks) if len(blocks) > 1 else blocks[0]

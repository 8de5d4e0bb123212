"""The lightgbm runtime: a Booster saved as text (`Booster.save_model`), predicted on mlops.features' float64
matrix. A pandas categorical feature is its code in the interface's `categories`, which must be the categories
the model recorded (`pandas_categorical`): that is the DataFrame path of `Booster.predict`, without pandas.
Binary: P(label 1); multiclass: a column per class; regression: the value.

A few rows (what the server's batcher hands it under load: one request's row, or the handful that arrived
together) go through LightGBM's single-row C path (`LGBM_BoosterPredictForMatSingleRowFast`: the C API's prepared
one-row prediction, which the Python package does not use), prepared once at load: `Booster.predict` builds a
predictor, copies its parameters and checks the input on every call (23 µs of CPU for one row, against 7 µs). It is
kept only when it answers a probe exactly as `Booster.predict` does; bigger batches go through `Booster.predict`."""

from __future__ import annotations

import ctypes
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops.errors import ModelInvalid
from mlops.formats.manifest import Manifest
from mlops.runtimes.base import BaseRuntime, require

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Up to this many rows, one C call per row beats one Booster.predict call (CPU time per call, wine multiclass, one
# thread: 1 row 6.7 µs against 22.9, 4 rows 11.5 against 24.9, 16 rows 31 against 36; 64 rows 145 against 120).
FAST_ROWS = 16


class LightGBMRuntime(BaseRuntime):
    name: ClassVar[str] = "lightgbm"
    takes_matrix = True

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        super().__init__(manifest, directory)
        self._no_text()
        require("lightgbm", "lightgbm", "lightgbm")
        import lightgbm as lgb
        import numpy as np

        self.dtype = np.float64
        path = self.file()
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, OSError, ValueError) as exc:
            raise ModelInvalid(f"{path}: not a readable lightgbm model: {str(exc).splitlines()[0]}") from None
        names = list(booster.feature_name())
        if names != self.interface.names and not all(n.startswith("Column_") for n in names):
            raise ModelInvalid(f"{path}: the model was trained on features {names[:5]}..., its interface lists "
                               f"{self.interface.names[:5]}...", hint="the interface must list the model's "
                               "columns in its order")
        if len(names) != len(self.interface.names):
            raise ModelInvalid(f"{path}: the model takes {len(names)} features, its interface lists "
                               f"{len(self.interface.names)}")
        recorded = [list(map(str, c)) for c in (booster.pandas_categorical or [])]
        declared = [list(f.categories or ()) for f in self.interface.features if f.type == "category"]
        if recorded and recorded != declared:
            raise ModelInvalid(f"{path}: the model's categories differ from its interface's",
                               hint="take the interface's categories from the training frame's categoricals")
        self.booster = booster
        self._fast: _SingleRow | None = _SingleRow.prepare(booster, len(names))

    def _matrix(self, matrix: NDArray[Any]) -> NDArray[Any]:
        import numpy as np

        m = np.ascontiguousarray(matrix, dtype=np.float64)
        if self._fast is not None and m.ndim == 2 and 0 < m.shape[0] <= FAST_ROWS:
            return self._fast(m)
        out: NDArray[Any] = self.booster.predict(m, num_threads=1)
        return out


class _SingleRow:
    """LightGBM's single-row prediction (normal output, all iterations up to the best, one thread) prepared once
    for one Booster; LightGBM locks the Booster for each call, so threads may share it."""

    def __init__(self, booster: Any, ncol: int) -> None:
        from lightgbm.basic import _C_API_DTYPE_FLOAT64, _C_API_PREDICT_NORMAL, _LIB, _c_str, _safe_call

        config = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(_C_API_PREDICT_NORMAL), ctypes.c_int(0),
            ctypes.c_int(booster.best_iteration), ctypes.c_int(_C_API_DTYPE_FLOAT64), ctypes.c_int32(ncol),
            _c_str("num_threads=1"), ctypes.byref(config)))
        self._booster = booster  # the config points into it
        self._config = config.value
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, config)
        # a function object of our own, so that its argument types do not change lightgbm's calls of it
        fn = ctypes.CDLL(_LIB._name).LGBM_BoosterPredictForMatSingleRowFast
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p]
        fn.restype = ctypes.c_int
        self._fn = fn
        self._ncol = ncol
        self._width = int(booster.num_model_per_iteration())

    @classmethod
    def prepare(cls, booster: Any, ncol: int) -> _SingleRow | None:
        """The single-row path when it answers a probe (zeros, missing values, a row of the model's own split
        thresholds) exactly as Booster.predict does; None otherwise (another lightgbm: the plain path)."""
        import numpy as np

        try:
            fast = cls(booster, ncol)
            # the values one row gives, written into a buffer with room to spare: a wider answer than the
            # model's class count would overrun the per-row buffers
            length, spare = ctypes.c_int64(0), np.zeros(fast._width + 64)
            if fast._fn(fast._config, np.zeros(ncol).ctypes.data, ctypes.byref(length), spare.ctypes.data) != 0 \
                    or length.value != fast._width:
                return None
            probe = np.zeros((3, ncol))
            probe[1] = np.nan
            probe[2] = np.arange(ncol) % 7 - 1.5
            if np.array_equal(fast(probe).reshape(3, -1), booster.predict(probe, num_threads=1).reshape(3, -1)):
                return fast
        except Exception:  # a private API of lightgbm: any failure to prepare it means the plain path
            return None
        return None

    def __call__(self, m: NDArray[Any]) -> NDArray[Any]:
        import numpy as np

        n = m.shape[0]
        out = np.empty((n, self._width), dtype=np.float64)
        if m.shape[1] != self._ncol:
            raise ModelInvalid(f"lightgbm model: {m.shape[1]} features given, it takes {self._ncol}")
        length = ctypes.c_int64(0)
        ref = ctypes.byref(length)
        row, step = m.ctypes.data, self._ncol * 8
        dest, width = out.ctypes.data, self._width * 8
        for i in range(n):
            if self._fn(self._config, row + i * step, ref, dest + i * width) != 0:
                from lightgbm.basic import _LIB

                raise ModelInvalid(f"lightgbm model: {_LIB.LGBM_GetLastError().decode('utf-8', 'replace')}")
        # Booster.predict's shapes: a column per class, else one value per row
        return out if self._width > 1 else out[:, 0]

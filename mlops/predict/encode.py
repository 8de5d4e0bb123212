"""Arrow columns to the runtime's matrix in bulk, by mlops.features' value rules, without one Python object per value.

The per-row path (mlops.predict.batch: `to_pylist`, then the interface's converters value by value) is the
definition; this module is a faster way to the same matrix. Per feature it turns the Arrow column into float64
codes with numpy/pyarrow.compute and marks every row it cannot vouch for as *suspect*: a value the rules may refuse
(an unknown category, a null of a non-nullable feature, NaN or an infinity, an int out of range, a wrong type) or
an Arrow type this module does not handle. Suspect rows, and only those, go through the per-row converters, which
give their codes or the exact reason they are refused. So the accepted rows, their codes and every reject (row,
field, message) are those of the per-row path by construction, as long as each bulk rule accepts only values that
the per-row rule accepts with the same code: int/float/bool/category below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.features import INT_LIMIT, FeatureSpec
from mlops.runtimes.base import BaseRuntime

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from numpy.typing import NDArray

    from mlops.predict.tables import Format
    from mlops.runtimes import Runtime

_FLOAT32_MAX = 3.4028234663852886e38  # mlops.features' bound for a float feature


def bulk_capable(runtime: Runtime) -> bool:
    """Whether RUNTIME's `predict_columns` is `predict_matrix(encode_columns(...))`, so that a matrix built here
    predicts exactly what the columns would."""
    return bool(runtime.takes_matrix) and isinstance(runtime, BaseRuntime) and \
        type(runtime).predict_columns is BaseRuntime.predict_columns


def arrow_values(col: Any, ftype: str, fmt: Format) -> pa.Array | None:
    """COL as one Arrow array whose `to_pylist()` is the per-row path's values (None: that path converts this
    column value by value, CSV text that does not cast or a bool in text: leave the whole batch to it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if fmt != "csv" or ftype in ("category", "string"):
        return arr
    if ftype == "bool":
        return None
    try:  # exactly the per-row path's first try (mlops.predict.batch._csv_values)
        return pc.cast(arr, pa.int64() if ftype == "int" else pa.float64())
    except pa.ArrowException:
        return None


def _valid(arr: pa.Array) -> NDArray[np.bool_]:
    import numpy as np

    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _numbers(arr: pa.Array) -> NDArray[Any]:
    """The values of a numeric array (nulls as 0: the validity mask says which are real)."""
    import pyarrow as pa

    if arr.null_count:
        arr = arr.fill_null(pa.scalar(0, arr.type))
    out: NDArray[Any] = arr.to_numpy(zero_copy_only=False)
    return out


def _ints(arr: pa.Array, valid: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """An integer array's values within +-2^53 (exact as float64) and which rows they are."""
    import numpy as np
    import pyarrow as pa

    v = _numbers(arr)
    if arr.type == pa.uint64():
        ok = valid & (v <= np.uint64(INT_LIMIT))
    else:
        v = v.astype(np.int64)
        ok = valid & (v <= INT_LIMIT) & (v >= -INT_LIMIT)
    return ok, np.where(ok, v, 0).astype(np.float64)


def encode_column(spec: FeatureSpec, arr: pa.Array) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """SPEC's codes for ARR (float64, NaN for a missing value of a nullable feature) and the suspect rows (True:
    decide by the per-row rules; their codes here are meaningless)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(arr)
    t = arr.type
    valid = _valid(arr)
    codes = np.zeros(n, dtype=np.float64)
    ok = np.zeros(n, dtype=bool)
    is_int = pa.types.is_integer(t)
    is_float = pa.types.is_float32(t) or pa.types.is_float64(t)
    if spec.type == "category":
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            # the codes mapping, not the list: a value's code is exactly what the per-row lookup returns
            keys = list(spec.codes)
            idx = pc.index_in(arr, value_set=pa.array(keys, type=t))
            found = _valid(idx)
            table = np.asarray([spec.codes[k] for k in keys] or [0.0], dtype=np.float64)
            codes = table[_numbers(idx).astype(np.int64)]
            ok = found & valid
    elif spec.type == "int":
        if is_int:
            ok, codes = _ints(arr, valid)
        elif is_float:
            v = _numbers(arr).astype(np.float64)
            with np.errstate(invalid="ignore"):
                ok = valid & np.isfinite(v) & (v == np.floor(v)) & (v >= -INT_LIMIT) & (v <= INT_LIMIT)
            codes = np.where(ok, v, 0.0)
    elif spec.type == "float":
        if is_int:
            # beyond 2^53 the int -> float rounding is left to Python's own (per-row) conversion
            ok, codes = _ints(arr, valid)
        elif is_float:
            v = _numbers(arr).astype(np.float64)
            with np.errstate(invalid="ignore"):
                ok = valid & np.isfinite(v) & (np.abs(v) <= _FLOAT32_MAX)
            codes = np.where(ok, v, 0.0)
    elif spec.type == "bool":
        if pa.types.is_boolean(t):
            ok = valid
            codes = np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.float64)
        elif is_int:
            v = _numbers(arr)
            ok = valid & ((v == 0) | (v == 1))
            codes = np.where(ok, v, 0).astype(np.float64)
    # "string": never in a matrix (the runtime refuses it at load); every row is left to the per-row rules.
    if spec.nullable:
        missing = ~valid
        if is_float:
            missing |= valid & np.isnan(_numbers(arr).astype(np.float64))
        if missing.any():
            codes = np.where(missing, np.nan, codes)
            ok = ok | missing
    return codes, ~ok

"""The model's interface (models/feature_schema.json) and the one encoder from raw inputs to the model's matrix.

Shared by the stages (evaluate's predictions), the server (records and Open Inference Protocol requests) and
monitoring, so that training and serving cannot skew: a raw record becomes a float32 row with each category
replaced by its code, the position of the value in the interface's `categories` list (exactly the codes a pandas
Categorical with those categories gives, which is what xgboost saw in training).

The interface document:

    {"format": "mlops.feature-schema/1",
     "features": [{"name": "tenure", "type": "int"}, {"name": "contract", "type": "category",
                   "categories": ["Month-to-month", "One year", "Two year"]}, ...],
     "output": {"name": "probability", "type": "float", ...}}

Value rules (one per feature type; the same for every entry point):
- int: a JSON integer, or a float with an integral value (`3.0`), within ±2^53; not a boolean, not a string.
- float: a JSON number (integer or float), finite and within float32's range (±3.4e38); not a boolean or string.
- bool: `true`/`false`, or the integers 0 and 1.
- category: a string that is one of the feature's categories.
- null, NaN and infinities are refused everywhere: training never saw them (prepare fills or rejects them).

Keys of a record that are not features are ignored (an application may send its own ids beside them).
The hot path is plain Python plus one numpy call per request: no pandas, no per-request DataFrame. numpy is imported
lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops.errors import MlopsError, ModelInvalid

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

SCHEMA_FORMAT = "mlops.feature-schema/1"
FeatureType = Literal["int", "float", "bool", "category"]
FEATURE_TYPES: tuple[FeatureType, ...] = ("int", "float", "bool", "category")

# Open Inference Protocol datatypes: what the metadata advertises per feature type, and what a request may use.
V2_DATATYPE: dict[FeatureType, str] = {"int": "INT64", "float": "FP64", "bool": "BOOL", "category": "BYTES"}
_INTS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
V2_ACCEPTS: dict[FeatureType, frozenset[str]] = {
    "int": _INTS,
    "float": _FLOATS | _INTS,
    "bool": frozenset({"BOOL"}) | _INTS,
    "category": frozenset({"BYTES"}),
}


class FeatureError(MlopsError):
    """A request or a data row does not match the model's interface; names the field (and the row when known)."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.row = row


class _Bad(Exception):
    """Internal: a value that does not fit its feature; carries the reason (turned into a FeatureError)."""


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})" if value is not None else "null"


_FLOAT32_MAX = 3.4028234663852886e38  # larger magnitudes become infinities in the model's float32 matrix
INT_LIMIT = 2**53  # JSON's exact integers (beyond, JavaScript and every double-based parser round them)


def _to_int(v: Any) -> float:
    t = type(v)
    if t is int or (t is float and v.is_integer()):  # NaN and infinities are not integral
        if -INT_LIMIT <= v <= INT_LIMIT:
            return float(v)
        raise _Bad("out of range (|value| > 2^53)")
    raise _Bad("expected int")


def _to_float(v: Any) -> float:
    t = type(v)
    if t is float or t is int:
        if v - v != 0:  # NaN or an infinity
            raise _Bad("expected a finite number")
        if -_FLOAT32_MAX <= v <= _FLOAT32_MAX:
            return float(v)
        raise _Bad("out of range for the model (|value| > 3.4e38)")
    raise _Bad("expected float")


def _to_bool(v: Any) -> float:
    if v is True or v is False:
        return 1.0 if v else 0.0
    if type(v) is int and (v == 0 or v == 1):
        return float(v)
    raise _Bad("expected bool (true/false or 0/1)")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: FeatureType
    categories: tuple[str, ...] | None = None
    # category -> code; built once per interface, used per request.
    codes: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def datatype(self) -> str:
        return V2_DATATYPE[self.type]

    def converter(self) -> Callable[[Any], float]:
        """The function from one raw value to its float (category code); raises _Bad with the reason."""
        if self.type == "int":
            return _to_int
        if self.type == "float":
            return _to_float
        if self.type == "bool":
            return _to_bool
        codes = self.codes
        shown = ", ".join(repr(c) for c in (self.categories or ())[:8])

        def to_code(v: Any) -> float:
            try:
                return codes[v]
            except (KeyError, TypeError):  # TypeError: an unhashable value (a list, an object)
                if type(v) is str:
                    raise _Bad(f"unknown category (expected one of {shown})") from None
                raise _Bad("expected a string category") from None

        return to_code


@dataclass(frozen=True)
class ModelInterface:
    """The inputs a model takes and the output it gives, parsed from feature_schema.json."""

    features: tuple[FeatureSpec, ...]
    output: Mapping[str, Any]
    _plan: tuple[tuple[str, Callable[[Any], float]], ...] = field(default=(), compare=False, repr=False)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def output_name(self) -> str:
        return str(self.output.get("name") or "probability")

    def xgboost_types(self) -> list[str]:
        """Feature types as xgboost writes them: `c` for a category, else `int` or `float`."""
        return ["c" if f.type == "category" else ("float" if f.type == "float" else "int") for f in self.features]

    def to_json(self) -> dict[str, Any]:
        feats: list[dict[str, Any]] = []
        for f in self.features:
            entry: dict[str, Any] = {"name": f.name, "type": f.type}
            if f.categories is not None:
                entry["categories"] = list(f.categories)
            feats.append(entry)
        return {"format": SCHEMA_FORMAT, "features": feats, "output": dict(self.output)}

    def v2_inputs(self) -> list[dict[str, Any]]:
        """Open Inference Protocol metadata of the raw inputs: one tensor per feature, a variable row count."""
        out: list[dict[str, Any]] = []
        for f in self.features:
            meta: dict[str, Any] = {"name": f.name, "datatype": f.datatype, "shape": [-1]}
            if f.categories is not None:
                meta["parameters"] = {"categories": list(f.categories)}
            out.append(meta)
        return out

    def v2_outputs(self) -> list[dict[str, Any]]:
        return [{"name": self.output_name, "datatype": "FP32", "shape": [-1]}]

    def example_record(self) -> dict[str, Any]:
        """A valid record (zeros, first categories): a warm-up input when a model has no golden records."""
        rec: dict[str, Any] = {}
        for f in self.features:
            if f.type == "category":
                rec[f.name] = (f.categories or ("",))[0]
            elif f.type == "float":
                rec[f.name] = 0.0
            else:
                rec[f.name] = 0
        return rec


def parse_interface(raw: Any, source: str = "feature_schema.json") -> ModelInterface:
    """A ModelInterface from a feature_schema.json document; ModelInvalid naming SOURCE and the key when malformed."""
    if not isinstance(raw, Mapping):
        raise ModelInvalid(f"{source}: expected a JSON object, got {type(raw).__name__}")
    fmt = raw.get("format", SCHEMA_FORMAT)
    if fmt != SCHEMA_FORMAT:
        raise ModelInvalid(f"{source}: key 'format' is {fmt!r}, this mlops reads {SCHEMA_FORMAT!r}",
                           hint="retrain the model with this mlops, or upgrade mlops")
    feats = raw.get("features")
    if not isinstance(feats, list) or not feats:
        raise ModelInvalid(f"{source}: key 'features' must be a non-empty list")
    specs: list[FeatureSpec] = []
    seen: set[str] = set()
    for i, f in enumerate(feats):
        where = f"{source}: key 'features[{i}]'"
        if not isinstance(f, Mapping):
            raise ModelInvalid(f"{where} must be an object")
        name, ftype = f.get("name"), f.get("type")
        if not isinstance(name, str) or not name:
            raise ModelInvalid(f"{source}: key 'features[{i}].name' must be a non-empty string")
        if name in seen:
            raise ModelInvalid(f"{where}: feature '{name}' is declared twice")
        seen.add(name)
        if ftype not in FEATURE_TYPES:
            raise ModelInvalid(f"{where}: feature '{name}' has type {ftype!r}, expected one of "
                               f"{', '.join(FEATURE_TYPES)}")
        cats = f.get("categories")
        if ftype == "category":
            if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
                raise ModelInvalid(f"{where}: category feature '{name}' needs 'categories', a non-empty list of "
                                   "strings")
            if len(set(cats)) != len(cats):
                raise ModelInvalid(f"{where}: feature '{name}' lists a category twice")
            specs.append(FeatureSpec(name, ftype, tuple(cats), {c: float(k) for k, c in enumerate(cats)}))
        else:
            if cats is not None:
                raise ModelInvalid(f"{where}: feature '{name}' of type {ftype} cannot have 'categories'")
            specs.append(FeatureSpec(name, ftype))
    output = raw.get("output") or {}
    if not isinstance(output, Mapping):
        raise ModelInvalid(f"{source}: key 'output' must be an object")
    plan = tuple((s.name, s.converter()) for s in specs)
    return ModelInterface(tuple(specs), dict(output), plan)


def read_interface(path: Path | str) -> ModelInterface:
    """The interface in PATH (a feature_schema.json); ModelInvalid when missing or malformed."""
    import json

    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelInvalid(f"{p}: not found", hint="train writes it beside the model") from None
    except (ValueError, UnicodeDecodeError):
        raise ModelInvalid(f"{p}: not valid JSON") from None
    return parse_interface(raw, str(p))


# --- encoding ----------------------------------------------------------------------------------------------------


def _matrix(flat: list[float], rows: int, cols: int) -> NDArray[np.float32]:
    import numpy as np

    return np.array(flat, dtype=np.float32).reshape(rows, cols)


def encode_records(iface: ModelInterface, records: Any) -> NDArray[np.float32]:
    """RECORDS (a list of objects keyed by raw feature names) as the model's float32 matrix, rows in order.

    FeatureError names the row and the field: a missing field, a wrong type, an unknown category, null/NaN/Inf.
    """
    if not isinstance(records, list):
        raise FeatureError(f"'instances' must be a list of records, got {type(records).__name__}",
                           field="instances")
    if not records:
        raise FeatureError("'instances' is empty: send at least one record", field="instances")
    plan = iface._plan
    flat: list[float] = []
    append = flat.append
    for i, rec in enumerate(records):
        if type(rec) is not dict:
            raise FeatureError(f"row {i}: expected an object keyed by feature names, got {type(rec).__name__}",
                               row=i, field="instances")
        for name, conv in plan:
            try:
                append(conv(rec[name]))
            except KeyError:
                raise FeatureError(f"row {i}: field '{name}' is missing", field=name, row=i) from None
            except _Bad as bad:
                raise FeatureError(f"row {i}: field '{name}': {bad}, got {_describe(rec[name])}",
                                   field=name, row=i) from None
    return _matrix(flat, len(records), len(plan))


def encode_columns(iface: ModelInterface, columns: Mapping[str, Sequence[Any]]) -> NDArray[np.float32]:
    """COLUMNS (feature name -> values, all of one length) as the model's float32 matrix; same rules as records."""
    rows: int | None = None
    for spec in iface.features:
        if spec.name not in columns:
            raise FeatureError(f"input '{spec.name}' is missing", field=spec.name)
        n = len(columns[spec.name])
        if rows is None:
            rows = n
        elif n != rows:
            raise FeatureError(f"input '{spec.name}' has {n} rows, input '{iface.features[0].name}' has {rows}",
                               field=spec.name)
    if not rows:
        raise FeatureError("no rows to predict: the inputs are empty", field=iface.features[0].name)
    m = len(iface._plan)
    flat = [0.0] * (rows * m)
    for j, (name, conv) in enumerate(iface._plan):
        values = columns[name]
        k = j
        for i, v in enumerate(values):
            try:
                flat[k] = conv(v)
            except _Bad as bad:
                raise FeatureError(f"input '{name}' row {i}: {bad}, got {_describe(v)}", field=name, row=i) from None
            k += m
    return _matrix(flat, rows, m)


def _flatten(data: Any, name: str, shape: list[int]) -> list[Any]:
    """V2 tensor data, row-major: flat, or (shape [n, 1] only) one list of one value per row. Any other nesting
    does not match the declared shape and is refused (a list left inside flat data is a bad element, refused by
    the feature's converter)."""
    if type(data) is not list:
        raise FeatureError(f"input '{name}': 'data' must be a list, got {type(data).__name__}", field=name)
    if not data or type(data[0]) is not list:
        return data
    if len(shape) != 2 or any(type(x) is not list or len(x) != 1 or type(x[0]) is list for x in data):
        raise FeatureError(f"input '{name}': the nesting of 'data' does not match shape {shape} (flat values, or "
                           "for [rows, 1] one list of one value per row)", field=name)
    return [x[0] for x in data]


def encode_v2(iface: ModelInterface, inputs: Any) -> tuple[NDArray[np.float32], dict[str, list[Any]]]:
    """The `inputs` of an Open Inference Protocol request, one tensor per raw feature (as the metadata lists
    them: shape [n] or [n, 1], the datatype of its type), as the model's matrix plus the raw columns.

    FeatureError names the input: missing or unknown, a wrong datatype or shape, a bad element.
    """
    if not isinstance(inputs, list) or not inputs:
        raise FeatureError("'inputs' must be a non-empty list of tensors, one per feature "
                           f"({', '.join(iface.names[:5])}, ...)", field="inputs")
    by_type = {f.name: f for f in iface.features}
    columns: dict[str, list[Any]] = {}
    for k, tensor in enumerate(inputs):
        if type(tensor) is not dict:
            raise FeatureError(f"inputs[{k}]: expected an object, got {type(tensor).__name__}", field="inputs")
        name = tensor.get("name")
        if type(name) is not str:
            raise FeatureError(f"inputs[{k}]: 'name' must be a string", field="inputs")
        spec = by_type.get(name)
        if spec is None:
            raise FeatureError(f"input '{name}' is not an input of the model (its inputs: {', '.join(iface.names)})",
                               field=name)
        if name in columns:
            raise FeatureError(f"input '{name}' is given twice", field=name)
        datatype = tensor.get("datatype")
        if datatype not in V2_ACCEPTS[spec.type]:
            raise FeatureError(f"input '{name}': datatype {datatype!r} does not fit a {spec.type} feature "
                               f"(use {spec.datatype})", field=name)
        shape = tensor.get("shape")
        if type(shape) is not list or not 1 <= len(shape) <= 2 or type(shape[0]) is not int or shape[0] < 0 \
                or (len(shape) == 2 and (type(shape[1]) is not int or shape[1] != 1)):
            raise FeatureError(f"input '{name}': shape must be [rows] or [rows, 1], got {shape!r}", field=name)
        data = _flatten(tensor.get("data"), name, shape)
        if len(data) != shape[0]:
            raise FeatureError(f"input '{name}': shape {shape} says {shape[0]} values, 'data' has {len(data)}",
                               field=name)
        columns[name] = data
    return encode_columns(iface, columns), columns


def encode_frame(iface: ModelInterface, frame: pd.DataFrame) -> NDArray[np.float32]:
    """A typed DataFrame (the stages' prepared data) through the very same value rules and codes as a request."""
    missing = [n for n in iface.names if n not in frame.columns]
    if missing:
        raise FeatureError(f"column '{missing[0]}' of the model's interface is not in the data", field=missing[0])
    columns: dict[str, list[Any]] = {}
    for spec in iface.features:
        col = frame[spec.name]
        # tolist() gives Python values: str for categoricals (NaN where missing), int for int64, float for float64.
        columns[spec.name] = [None if isinstance(v, float) and math.isnan(v) else v for v in col.tolist()] \
            if spec.type == "category" else col.tolist()
    return encode_columns(iface, columns)


def records_from_columns(iface: ModelInterface, columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Raw records (one dict per row) from raw columns: how the request log writes V2 inputs."""
    names = [n for n in iface.names if n in columns]
    if not names:
        return []
    return [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]


def records_from_frame(iface: ModelInterface, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Raw records as an application would send them (JSON types), from a typed DataFrame."""
    cols: dict[str, list[Any]] = {}
    for spec in iface.features:
        values = frame[spec.name].tolist()
        if spec.type == "category":
            cols[spec.name] = [str(v) for v in values]
        elif spec.type == "float":
            cols[spec.name] = [float(v) for v in values]
        elif spec.type == "bool":
            cols[spec.name] = [bool(v) for v in values]
        else:
            cols[spec.name] = [int(v) for v in values]
    return records_from_columns(iface, cols)


# --- the model ---------------------------------------------------------------------------------------------------


def bind_booster(booster: Any, iface: ModelInterface, source: str = "model") -> None:
    """Give BOOSTER the interface's feature names and types, so that a plain float32 matrix with category codes
    predicts as the training DataFrame did; ModelInvalid when the saved model was trained on other features."""
    names, types = iface.names, iface.xgboost_types()
    saved_names = booster.feature_names
    if saved_names is not None and list(saved_names) != names:
        raise ModelInvalid(f"{source}: the model was trained on features {list(saved_names)[:5]}..., its interface "
                           f"lists {names[:5]}...", hint="the model file and feature_schema.json are from different "
                           "trainings")
    if booster.num_features() != len(names):
        raise ModelInvalid(f"{source}: the model takes {booster.num_features()} features, its interface lists "
                           f"{len(names)}")
    saved_types = booster.feature_types
    if saved_types is not None:
        cats_saved = [t == "c" for t in saved_types]
        if cats_saved != [t == "c" for t in types]:
            raise ModelInvalid(f"{source}: the model's categorical features differ from its interface's")
    booster.feature_names = names
    booster.feature_types = types


def predict(booster: Any, matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Probabilities for the rows of MATRIX (from one of the encoders), through xgboost's in-place prediction."""
    import numpy as np

    return np.asarray(booster.inplace_predict(matrix, validate_features=False), dtype=np.float32).reshape(-1)


Predictor = Callable[["NDArray[np.float32]"], "NDArray[np.float32]"]


def make_predictor(booster: Any) -> Predictor:
    """`predict` for BOOSTER, through xgboost's C function for dense input when it gives the very same answers.

    `Booster.inplace_predict` spends about as long in Python (JSON arguments, a class built per call, a copy) as
    the prediction of one row takes in C++; calling XGBoosterPredictFromDense with prepared arguments does the
    same prediction without that. The fast path is kept only when it equals `inplace_predict` bit for bit on a
    probe matrix; otherwise (another xgboost, another build) the plain path is used.
    """
    import ctypes
    import json

    import numpy as np

    def plain(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
        return predict(booster, matrix)

    try:
        from xgboost.core import _LIB, _check_call, c_bst_ulong

        fn = _LIB.XGBoosterPredictFromDense
    except (ImportError, AttributeError):
        return plain
    config = json.dumps({"type": 0, "training": False, "iteration_begin": 0, "iteration_end": 0,
                         "missing": float("nan"), "strict_shape": False, "cache_id": 0}).encode()
    no_proxy = ctypes.c_void_p()
    handle = booster.handle

    def fast(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
        m = np.ascontiguousarray(matrix, dtype=np.float32)
        if m.ndim != 2 or m.shape[0] == 0:
            return plain(m)
        shape = ctypes.POINTER(c_bst_ulong)()
        dims = c_bst_ulong()
        preds = ctypes.POINTER(ctypes.c_float)()
        aif = b'{"data":[%d,true],"shape":[%d,%d],"typestr":"<f4","version":3,"strides":null}' % (
            m.ctypes.data, m.shape[0], m.shape[1])
        _check_call(fn(handle, aif, config, no_proxy, ctypes.byref(shape), ctypes.byref(dims),
                       ctypes.byref(preds)))
        total = 1
        for i in range(dims.value):
            total *= int(shape[i])
        # The buffer belongs to the booster and is reused by its next prediction: copy it out.
        out: NDArray[np.float32] = np.ctypeslib.as_array(preds, shape=(total,)).copy()
        return out

    rng = np.random.default_rng(0)
    probe = rng.integers(0, 2, size=(8, int(booster.num_features()))).astype(np.float32)
    try:
        same = np.array_equal(fast(probe), plain(probe))
    except Exception:  # any failure of the fast path means: not this xgboost
        same = False
    return fast if same else plain

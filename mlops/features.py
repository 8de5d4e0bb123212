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
from typing import TYPE_CHECKING, Any

from mlops.errors import MlopsError, ModelInvalid
from mlops.formats.manifest import (
    FEATURE_SCHEMA_FORMAT,
    LEGACY_TYPES,
    Input,
    InputType,
    Interface,
    feature_schema_json,
    parse_feature_schema,
    read_feature_schema,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

SCHEMA_FORMAT = FEATURE_SCHEMA_FORMAT
FeatureType = InputType
FEATURE_TYPES: tuple[FeatureType, ...] = LEGACY_TYPES

# Open Inference Protocol datatypes: what the metadata advertises per feature type, and what a request may use.
V2_DATATYPE: dict[FeatureType, str] = {"int": "INT64", "float": "FP64", "bool": "BOOL", "category": "BYTES",
                                       "string": "BYTES"}
_INTS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
V2_ACCEPTS: dict[FeatureType, frozenset[str]] = {
    "int": _INTS,
    "float": _FLOATS | _INTS,
    "bool": frozenset({"BOOL"}) | _INTS,
    "category": frozenset({"BYTES"}),
    "string": frozenset({"BYTES"}),
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


def _no_matrix(v: Any) -> float:
    raise _Bad("a string input has no place in a numeric matrix: this model's runtime takes records")


def _nullable(conv: Callable[[Any], Any], missing: Any) -> Callable[[Any], Any]:
    """CONV, with null (and NaN) as a missing value: MISSING in the result (NaN in a matrix, None in a column)."""

    def convert(v: Any) -> Any:
        if v is None or (type(v) is float and v != v):
            return missing
        return conv(v)

    return convert


# Typed values for runtimes that take columns of Python values (a DataFrame for a scikit-learn pipeline, records
# for a python model): the same rules as the matrix, the value kept in its type.
def _int_value(v: Any) -> int:
    _to_int(v)
    return int(v)


def _float_value(v: Any) -> float:
    return _to_float(v)


def _bool_value(v: Any) -> bool:
    return _to_bool(v) == 1.0


def _str_value(v: Any) -> str:
    if type(v) is str:
        return v
    raise _Bad("expected a string")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: FeatureType
    categories: tuple[str, ...] | None = None
    # category -> code; built once per interface, used per request.
    codes: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)
    nullable: bool = False
    range: tuple[float, float] | None = field(default=None, compare=False)

    @property
    def datatype(self) -> str:
        return V2_DATATYPE[self.type]

    def converter(self) -> Callable[[Any], float]:
        """The function from one raw value to its float (category code); raises _Bad with the reason."""
        conv = self._converter()
        return _nullable(conv, math.nan) if self.nullable else conv

    def _converter(self) -> Callable[[Any], float]:
        if self.type == "int":
            return _to_int
        if self.type == "float":
            return _to_float
        if self.type == "bool":
            return _to_bool
        if self.type == "string":
            return _no_matrix
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

    def value_converter(self) -> Callable[[Any], Any]:
        """The function from one raw value to its checked Python value (int, float, bool, str; None when missing
        and nullable): the same rules as `converter`, for runtimes that take columns rather than a matrix."""
        conv: Callable[[Any], Any]
        if self.type == "int":
            conv = _int_value
        elif self.type == "float":
            conv = _float_value
        elif self.type == "bool":
            conv = _bool_value
        elif self.type == "string":
            conv = _str_value
        else:
            code = self._converter()

            def category(v: Any) -> str:
                code(v)
                return str(v)

            conv = category
        return _nullable(conv, None) if self.nullable else conv

    def to_input(self) -> Input:
        return Input(self.name, self.type, self.categories, self.range, self.nullable)


@dataclass(frozen=True)
class ModelInterface:
    """The inputs a model takes and the output it gives: a manifest's interface (mlops.formats.manifest) or a
    feature_schema.json, prepared for encoding (category codes and one converter per feature)."""

    features: tuple[FeatureSpec, ...]
    output: Mapping[str, Any]
    _plan: tuple[tuple[str, Callable[[Any], float]], ...] = field(default=(), compare=False, repr=False)
    _values: tuple[tuple[str, Callable[[Any], Any]], ...] = field(default=(), compare=False, repr=False)
    # name -> (its spec, the V2 datatypes it accepts): what each tensor of a V2 request is checked against
    _v2: Mapping[str, tuple[FeatureSpec, frozenset[str]]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, inputs: Sequence[Input], output: Mapping[str, Any]) -> ModelInterface:
        """The encoder's view of INPUTS (parsed and checked by mlops.formats.manifest) and the OUTPUT object."""
        specs = tuple(FeatureSpec(i.name, i.type, i.categories,
                                  {c: float(k) for k, c in enumerate(i.categories or ())}, i.nullable, i.range)
                      for i in inputs)
        plan = tuple((s.name, s.converter()) for s in specs)
        values = tuple((s.name, s.value_converter()) for s in specs)
        return cls(specs, dict(output), plan, values, {s.name: (s, V2_ACCEPTS[s.type]) for s in specs})

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def output_name(self) -> str:
        return str(self.output.get("name") or "probability")

    @property
    def inputs(self) -> tuple[Input, ...]:
        return tuple(f.to_input() for f in self.features)

    def xgboost_types(self) -> list[str]:
        """Feature types as xgboost writes them: `c` for a category, else `int` or `float`."""
        return ["c" if f.type == "category" else ("float" if f.type == "float" else "int") for f in self.features]

    def to_json(self) -> dict[str, Any]:
        return feature_schema_json(self.inputs, self.output)

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
            elif f.type == "string":
                rec[f.name] = ""
            else:
                rec[f.name] = 0
        return rec


def interface_of(iface: Interface, output: Mapping[str, Any] | None = None) -> ModelInterface:
    """The encoder for a manifest's interface (OUTPUT: the output object; default: the first output's name)."""
    out = dict(output) if output is not None else ({"name": iface.outputs[0].name, "type": "float"}
                                                   if iface.outputs else {})
    return ModelInterface.of(iface.inputs, out)


def parse_model_interface(raw: Any, source: str = "feature_schema.json") -> ModelInterface:
    """A ModelInterface from a feature_schema.json document; ModelInvalid naming SOURCE and the key when malformed
    (the rules are mlops.formats.manifest's, the one interface parser)."""
    schema = parse_feature_schema(raw, source)
    return ModelInterface.of(schema.interface.inputs, schema.output)


def read_model_interface(path: Path | str) -> ModelInterface:
    """The interface in PATH (a feature_schema.json); ModelInvalid when missing or malformed."""
    schema = read_feature_schema(path)
    return ModelInterface.of(schema.interface.inputs, schema.output)


# --- encoding ----------------------------------------------------------------------------------------------------


def _matrix(flat: list[float], rows: int, cols: int, dtype: Any = None) -> NDArray[np.float32]:
    import numpy as np

    return np.array(flat, dtype=dtype or np.float32).reshape(rows, cols)


def encode_records(iface: ModelInterface, records: Any, dtype: Any = None) -> NDArray[np.float32]:
    """RECORDS (a list of objects keyed by raw feature names) as the model's float32 matrix, rows in order
    (DTYPE: another float type, e.g. float64 for a runtime whose thresholds are doubles).

    FeatureError names the row and the field: a missing field, a wrong type, an unknown category, null/NaN/Inf
    (null and NaN are a missing value, NaN in the matrix, for a nullable feature).
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
    return _matrix(flat, len(records), len(plan), dtype)


def encode_columns(iface: ModelInterface, columns: Mapping[str, Sequence[Any]], dtype: Any = None
                   ) -> NDArray[np.float32]:
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
    return _matrix(flat, rows, m, dtype)


def values_of_records(iface: ModelInterface, records: Any) -> dict[str, list[Any]]:
    """RECORDS checked by the same rules as `encode_records`, as columns of Python values (int, float, bool, str;
    None for a missing nullable value): the input of runtimes that take a DataFrame or records."""
    if not isinstance(records, list):
        raise FeatureError(f"'instances' must be a list of records, got {type(records).__name__}",
                           field="instances")
    if not records:
        raise FeatureError("'instances' is empty: send at least one record", field="instances")
    plan = iface._values
    cols: list[list[Any]] = [[] for _ in plan]
    for i, rec in enumerate(records):
        if type(rec) is not dict:
            raise FeatureError(f"row {i}: expected an object keyed by feature names, got {type(rec).__name__}",
                               row=i, field="instances")
        for j, (name, conv) in enumerate(plan):
            try:
                cols[j].append(conv(rec[name]))
            except KeyError:
                raise FeatureError(f"row {i}: field '{name}' is missing", field=name, row=i) from None
            except _Bad as bad:
                raise FeatureError(f"row {i}: field '{name}': {bad}, got {_describe(rec[name])}",
                                   field=name, row=i) from None
    return {name: col for (name, _), col in zip(plan, cols, strict=True)}


def values_of_columns(iface: ModelInterface, columns: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """COLUMNS (feature name -> raw values, all of one length: what a V2 request carries) checked by the rules of
    `encode_columns`, as columns of Python values (see `values_of_records`)."""
    rows: int | None = None
    out: dict[str, list[Any]] = {}
    for name, conv in iface._values:
        if name not in columns:
            raise FeatureError(f"input '{name}' is missing", field=name)
        values = columns[name]
        if rows is None:
            rows = len(values)
        elif len(values) != rows:
            raise FeatureError(f"input '{name}' has {len(values)} rows, input '{iface.features[0].name}' has "
                               f"{rows}", field=name)
        col: list[Any] = []
        for i, v in enumerate(values):
            try:
                col.append(conv(v))
            except _Bad as bad:
                raise FeatureError(f"input '{name}' row {i}: {bad}, got {_describe(v)}", field=name, row=i) from None
        out[name] = col
    if not rows:
        raise FeatureError("no rows to predict: the inputs are empty", field=iface.features[0].name)
    return out


def frame_of_values(iface: ModelInterface, columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A DataFrame of checked columns (from `values_of_records`) with the dtypes a training frame has: int64
    (float64 with NaN when an int column has missing values), float64, bool, and object for categories and text."""
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for spec in iface.features:
        values = columns[spec.name]
        if spec.type in ("int", "float"):
            has_none = any(v is None for v in values)
            kind = np.float64 if spec.type == "float" or has_none else np.int64
            data[spec.name] = np.array([np.nan if v is None else v for v in values], dtype=kind)
        elif spec.type == "bool" and not any(v is None for v in values):
            data[spec.name] = np.array(values, dtype=bool)
        else:
            data[spec.name] = np.array(values, dtype=object)
    return pd.DataFrame(data, columns=iface.names)


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


def v2_columns(iface: ModelInterface, inputs: Any) -> dict[str, list[Any]]:
    """The raw columns of an Open Inference Protocol request's `inputs` (one tensor per raw feature), their names,
    datatypes and shapes checked (the values are checked by whatever takes the columns next: `encode_columns`, a
    runtime). FeatureError names the input: missing or unknown, a wrong datatype or shape, a bad nesting."""
    if not isinstance(inputs, list) or not inputs:
        raise FeatureError("'inputs' must be a non-empty list of tensors, one per feature "
                           f"({', '.join(iface.names[:5])}, ...)", field="inputs")
    table = iface._v2
    if len(inputs) == 1 and len(iface.features) > 1 and type(inputs[0]) is dict \
            and type(inputs[0].get("name")) is str and inputs[0]["name"] not in table \
            and is_matrix_shape(inputs[0].get("shape")):
        return _matrix_columns(iface, inputs[0])
    columns: dict[str, list[Any]] = {}
    for k, tensor in enumerate(inputs):
        if type(tensor) is not dict:
            raise FeatureError(f"inputs[{k}]: expected an object, got {type(tensor).__name__}", field="inputs")
        name = tensor.get("name")
        if type(name) is not str:
            raise FeatureError(f"inputs[{k}]: 'name' must be a string", field="inputs")
        entry = table.get(name)
        if entry is None:
            raise FeatureError(f"input '{name}' is not an input of the model (its inputs: {', '.join(iface.names)})",
                               field=name)
        if name in columns:
            raise FeatureError(f"input '{name}' is given twice", field=name)
        spec, accepts = entry
        datatype = tensor.get("datatype")
        if type(datatype) is not str or datatype not in accepts:
            raise FeatureError(f"input '{name}': datatype {datatype!r} does not fit a {spec.type} feature "
                               f"(use {spec.datatype})", field=name)
        shape = tensor.get("shape")
        data = tensor.get("data")
        # the common case first, in one test: shape [n] and n flat values
        if type(shape) is list and len(shape) == 1 and type(data) is list and shape[0] == len(data) \
                and type(shape[0]) is int and (not data or type(data[0]) is not list):
            columns[name] = data
            continue
        if type(shape) is not list or not 1 <= len(shape) <= 2 or type(shape[0]) is not int or shape[0] < 0 \
                or (len(shape) == 2 and (type(shape[1]) is not int or shape[1] != 1)):
            raise FeatureError(f"input '{name}': shape must be [rows] or [rows, 1], got {shape!r}", field=name)
        data = _flatten(data, name, shape)
        if len(data) != shape[0]:
            raise FeatureError(f"input '{name}': shape {shape} says {shape[0]} values, 'data' has {len(data)}",
                               field=name)
        columns[name] = data
    return columns


def is_matrix_shape(shape: Any) -> bool:
    """[rows, k] with k > 1: one tensor of every input, as MLServer's and Triton's clients send a numeric model's
    rows (a per-feature tensor is [rows] or [rows, 1])."""
    return type(shape) is list and len(shape) == 2 and type(shape[1]) is int and shape[1] > 1


_NUMERIC_DATATYPES = _INTS | _FLOATS | frozenset({"BOOL"})


def _matrix_columns(iface: ModelInterface, tensor: dict[str, Any]) -> dict[str, list[Any]]:
    """The raw columns of one [rows, k] tensor holding all k inputs, in the metadata's order (row-major flat data,
    or one list per row). Numbers only: a model with a text input takes one tensor per input. A float holding an
    int or bool input's value must be integral (0 or 1 for a bool); it becomes that int, so that the columns (and
    the request log) are what the per-input form would have given."""
    name = str(tensor.get("name"))
    k = len(iface.features)
    shape = tensor["shape"]
    if type(shape[0]) is not int or shape[0] < 0 or shape[1] != k:
        raise FeatureError(f"input '{name}': one tensor of all the model's inputs has shape [rows, {k}] (its inputs, "
                           f"in order: {', '.join(iface.names[:5])}{', ...' if k > 5 else ''}), got {shape!r}",
                           field=name)
    text = next((f for f in iface.features if f.type in ("category", "string")), None)
    if text is not None:
        raise FeatureError(f"input '{name}': one [rows, {k}] tensor holds numbers, and input '{text.name}' is a "
                           f"{text.type}: send one tensor per input (the model's metadata lists them)", field=name)
    datatype = tensor.get("datatype")
    if type(datatype) is not str or datatype not in _NUMERIC_DATATYPES:
        raise FeatureError(f"input '{name}': datatype {datatype!r} is not numeric (use FP64)", field=name)
    data = tensor.get("data")
    if type(data) is not list:
        raise FeatureError(f"input '{name}': 'data' must be a list, got {type(data).__name__}", field=name)
    rows = shape[0]
    if data and type(data[0]) is list:
        if len(data) != rows or any(type(r) is not list or len(r) != k for r in data):
            raise FeatureError(f"input '{name}': the nesting of 'data' does not match shape {shape} (flat values "
                               f"row by row, or {rows} lists of {k} values)", field=name)
        columns = {f.name: [r[j] for r in data] for j, f in enumerate(iface.features)}
    else:
        if len(data) != rows * k:
            raise FeatureError(f"input '{name}': shape {shape} says {rows * k} values, 'data' has {len(data)}",
                               field=name)
        columns = {f.name: data[j::k] for j, f in enumerate(iface.features)}
    if datatype in _FLOATS:
        for f in iface.features:
            if f.type in ("int", "bool"):
                columns[f.name] = [int(v) if type(v) is float and v.is_integer() else v for v in columns[f.name]]
    return columns


def encode_v2(iface: ModelInterface, inputs: Any) -> tuple[NDArray[np.float32], dict[str, list[Any]]]:
    """The `inputs` of an Open Inference Protocol request, one tensor per raw feature (as the metadata lists
    them: shape [n] or [n, 1], the datatype of its type), as the model's matrix plus the raw columns.

    FeatureError names the input: missing or unknown, a wrong datatype or shape, a bad element.
    """
    columns = v2_columns(iface, inputs)
    return encode_columns(iface, columns), columns


def encode_frame(iface: ModelInterface, frame: pd.DataFrame, dtype: Any = None) -> NDArray[np.float32]:
    """A typed DataFrame (the stages' prepared data) through the very same value rules and codes as a request."""
    missing = [n for n in iface.names if n not in frame.columns]
    if missing:
        raise FeatureError(f"column '{missing[0]}' of the model's interface is not in the data", field=missing[0])
    columns: dict[str, list[Any]] = {}
    for spec in iface.features:
        col = frame[spec.name]
        # tolist() gives Python values: str for categoricals (NaN where missing), int for int64, float for float64.
        columns[spec.name] = [None if isinstance(v, float) and math.isnan(v) else v for v in col.tolist()] \
            if spec.type in ("category", "string") else col.tolist()
    return encode_columns(iface, columns, dtype)


def records_from_columns(iface: ModelInterface, columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Raw records (one dict per row) from raw columns: how the request log writes V2 inputs."""
    names = [n for n in iface.names if n in columns]
    if not names:
        return []
    return [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]


def _missing(v: Any) -> bool:
    if v is None or (isinstance(v, float) and v != v):
        return True
    try:
        import pandas as pd

        return v is pd.NA or v is pd.NaT
    except ImportError:  # pragma: no cover - pandas comes with every caller of this function
        return False


def records_from_frame(iface: ModelInterface, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Raw records as an application would send them (JSON types), from a typed DataFrame; a missing value
    (NaN, None, pd.NA) becomes null."""
    conv: dict[str, Callable[[Any], Any]] = {"category": str, "string": str, "float": float, "bool": bool,
                                             "int": int}
    cols: dict[str, list[Any]] = {}
    for spec in iface.features:
        to = conv[spec.type]
        cols[spec.name] = [None if _missing(v) else to(v) for v in frame[spec.name].tolist()]
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

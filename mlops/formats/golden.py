"""Golden records (`golden.json`, in the model package): input rows and the outputs the saved model gave them.

A deployment's smoke test and the server's warm-up send the records and compare the answers with `predictions`:

    {"format": "mlops.golden/1",
     "task": "multiclass",                  absent: binary (files written before tasks existed)
     "model_sha256": "d42157...",           the model file the predictions were made with (optional)
     "source": "data/prepared/test.parquet", where the records come from (optional)
     "rows": [0, 44, ...],                  their positions in the source (optional)
     "output": "probabilities",             the output compared: probability | probabilities | value
     "classes": ["class_0", ...],           multiclass: the columns of each prediction
     "tolerance": 1e-6,                     absent: 1e-6
     "records": [{raw feature: value, ...}, ...],
     "predictions": [0.73, ...]}            binary: P(positive); regression: the value;
                                            multiclass: one list of probabilities per record, in `classes` order

A prediction matches when |got - expected| <= tolerance * max(1, |expected|): an absolute tolerance for
probabilities, a relative one for large regression values (float32 models round them at about 1e-7 relative).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mlops.errors import ModelInvalid
from mlops.formats._io import json_text, write_text_atomic
from mlops.formats.manifest import TASKS, Task

GOLDEN_FORMAT = "mlops.golden/1"
DEFAULT_TOLERANCE = 1e-6
_OUTPUT_OF: dict[Task, str] = {"binary": "probability", "multiclass": "probabilities", "regression": "value"}

Row = tuple[float, ...]


class GoldenInvalid(ModelInvalid):
    """golden.json is missing or malformed; names the file and the key."""


@dataclass(frozen=True)
class Mismatch:
    record: int
    expected: float | Row
    got: float | Row
    diff: float  # the largest absolute difference in the record (inf when the answer is not a finite number)


@dataclass(frozen=True)
class Golden:
    records: tuple[dict[str, Any], ...]
    predictions: tuple[float, ...] | tuple[Row, ...]
    task: Task = "binary"
    output: str | None = None
    classes: tuple[str, ...] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    model_sha256: str | None = None
    source: str | None = None
    rows: tuple[int, ...] | None = None

    def flat(self) -> list[float]:
        """The predictions as one flat list (multiclass: row-major), as a V2 output tensor carries them."""
        if self.task == "multiclass":
            return [v for row in cast("tuple[Row, ...]", self.predictions) for v in row]
        return [float(cast(float, v)) for v in self.predictions]

    def compare(self, got: Sequence[Any]) -> list[Mismatch]:
        """The records whose answer in GOT (one per record: a number, or a list per class) is off by more than
        the tolerance; GoldenInvalid when GOT has another length or shape."""
        if len(got) != len(self.predictions):
            raise GoldenInvalid(f"golden: {len(self.predictions)} expected predictions, got {len(got)} answers")
        out: list[Mismatch] = []
        expected: Sequence[float | Row] = self.predictions
        for i, (exp, g) in enumerate(zip(expected, got, strict=True)):
            e_row = exp if isinstance(exp, tuple) else (float(exp),)
            g_row = _row(g)
            if len(g_row) != len(e_row):
                raise GoldenInvalid(f"golden: record {i}: expected {len(e_row)} values, got {len(g_row)}")
            worst = 0.0
            bad = False
            for e, v in zip(e_row, g_row, strict=True):
                d = abs(v - e) if math.isfinite(v) else math.inf
                worst = max(worst, d)
                bad = bad or not d <= self.tolerance * max(1.0, abs(e))
            if bad:
                out.append(Mismatch(i, exp, g_row if isinstance(exp, tuple) else g_row[0], worst))
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": GOLDEN_FORMAT}
        if self.task != "binary":
            out["task"] = self.task
        if self.model_sha256 is not None:
            out["model_sha256"] = self.model_sha256
        if self.source is not None:
            out["source"] = self.source
        if self.rows is not None:
            out["rows"] = list(self.rows)
        out["output"] = self.output or _OUTPUT_OF[self.task]
        if self.classes is not None:
            out["classes"] = list(self.classes)
        if self.tolerance != DEFAULT_TOLERANCE:
            out["tolerance"] = self.tolerance
        out["records"] = [dict(r) for r in self.records]
        out["predictions"] = [list(p) if isinstance(p, tuple) else p for p in self.predictions]
        return out


def _row(v: Any) -> Row:
    if isinstance(v, list | tuple):
        return tuple(_num(x) for x in v)
    return (_num(v),)


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        try:
            return float(v)  # numpy scalars
        except (TypeError, ValueError):
            return math.nan
    return float(v)


def parse_golden(raw: Any, source: str = "golden.json") -> Golden:
    """Golden records from a golden.json document; GoldenInvalid naming SOURCE and the key when malformed."""
    if not isinstance(raw, Mapping):
        raise GoldenInvalid(f"{source}: expected a JSON object, got {type(raw).__name__}")
    fmt = raw.get("format", GOLDEN_FORMAT)
    if fmt != GOLDEN_FORMAT:
        raise GoldenInvalid(f"{source}: key 'format' is {fmt!r}, this mlops reads {GOLDEN_FORMAT!r}",
                            hint="repackage the model with this mlops")
    task = raw.get("task", "binary")
    if task not in TASKS:
        raise GoldenInvalid(f"{source}: key 'task' is {task!r}, expected one of {', '.join(TASKS)}")
    records, preds = raw.get("records"), raw.get("predictions")
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise GoldenInvalid(f"{source}: key 'records' must be a non-empty list of objects")
    if not isinstance(preds, list) or len(preds) != len(records):
        raise GoldenInvalid(f"{source}: key 'predictions' must be a list with one entry per record "
                            f"({len(records)})")
    classes_raw = raw.get("classes")
    classes: tuple[str, ...] | None = None
    if classes_raw is not None:
        if not isinstance(classes_raw, list) or not all(isinstance(c, str) for c in classes_raw):
            raise GoldenInvalid(f"{source}: key 'classes' must be a list of class names")
        classes = tuple(classes_raw)
    predictions: tuple[float, ...] | tuple[Row, ...]
    if task == "multiclass":
        width = len(classes) if classes is not None else None
        rows: list[Row] = []
        for i, p in enumerate(preds):
            if not isinstance(p, list) or not p or not all(_is_number(v) for v in p) \
                    or (width is not None and len(p) != width):
                raise GoldenInvalid(f"{source}: key 'predictions[{i}]' must be a list of "
                                    f"{width if width else 'the'} class probabilities")
            rows.append(tuple(float(v) for v in p))
        predictions = tuple(rows)
    else:
        values: list[float] = []
        for i, p in enumerate(preds):
            if isinstance(p, list) and len(p) == 1:
                p = p[0]  # [[0.3], ...]: what a [n, 1] output tensor gives
            if not _is_number(p):
                raise GoldenInvalid(f"{source}: key 'predictions[{i}]' must be a number")
            values.append(float(p))
        predictions = tuple(values)
    tol = raw.get("tolerance", DEFAULT_TOLERANCE)
    if not _is_number(tol) or not 0 < tol < 1:
        raise GoldenInvalid(f"{source}: key 'tolerance' must be a number in (0, 1)")
    sha = raw.get("model_sha256")
    out_name = raw.get("output")
    src = raw.get("source")
    rows_raw = raw.get("rows")
    row_ids = tuple(int(r) for r in rows_raw) if isinstance(rows_raw, list) and all(
        type(r) is int for r in rows_raw) else None
    return Golden(records=tuple(records), predictions=predictions, task=cast(Task, task),
                  output=out_name if isinstance(out_name, str) else None, classes=classes, tolerance=float(tol),
                  model_sha256=sha.lower() if isinstance(sha, str) else None,
                  source=src if isinstance(src, str) else None, rows=row_ids)


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def read_golden(path: Path | str) -> Golden:
    """The golden records in PATH; GoldenInvalid when missing, not JSON or malformed."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenInvalid(f"{p}: no golden records", hint="write them with `mlops package` (train writes "
                            "models/golden.json)") from None
    except (ValueError, UnicodeDecodeError):
        raise GoldenInvalid(f"{p}: not valid JSON") from None
    return parse_golden(raw, str(p))


def write_golden(path: Path | str, golden: Golden) -> Path:
    """Write GOLDEN to PATH atomically (indented JSON, keys in the documented order)."""
    return write_text_atomic(path, json_text(golden.to_json()))

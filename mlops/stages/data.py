"""Reading and typing tabular data against the schema declared in params.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlops.config import ColumnSpec, DataParams
from mlops.errors import DataInvalid

PREPARED_DIR = Path("data/prepared")
TRAIN_FILE = PREPARED_DIR / "train.csv"
TEST_FILE = PREPARED_DIR / "test.csv"


def read_raw(path: Path | str) -> pd.DataFrame:
    """The raw CSV as text-inferred pandas types; DataInvalid when missing, empty or unparseable."""
    p = Path(path)
    if not p.is_file():
        raise DataInvalid(f"{p}: raw data file not found", hint="check data.raw in params.yaml")
    if p.stat().st_size == 0:
        raise DataInvalid(f"{p}: file is empty")
    try:
        df = pd.read_csv(p, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DataInvalid(f"{p}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataInvalid(f"{p}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    if df.empty:
        raise DataInvalid(f"{p}: no data rows (header only)")
    return df


def _first_bad(series: pd.Series[Any], ok: pd.Series[Any]) -> tuple[int, Any]:
    idx = series.index[~ok][0]
    # +2: one for the header line, one because CSV lines count from 1.
    return int(idx) + 2, series.loc[idx]


def _coerce(name: str, spec: ColumnSpec, s: pd.Series[Any], source: str) -> pd.Series[Any]:
    present = s.notna()
    if spec.type in ("int", "float", "bool"):
        num = pd.to_numeric(s, errors="coerce")
        bad = present & num.isna()
        if bad.any():
            line, value = _first_bad(s, ~bad)
            raise DataInvalid(f"{source}: column '{name}': expected {spec.type}, found {value!r} on line {line}")
        infinite = present & ~np.isfinite(num.astype("float64").fillna(0.0))
        if infinite.any():
            line, value = _first_bad(s, ~infinite)
            raise DataInvalid(f"{source}: column '{name}': expected a finite number, found {value!r} on line {line}")
        if spec.type == "int":
            frac = present & (num.fillna(0) % 1 != 0)
            if frac.any():
                line, value = _first_bad(s, ~frac)
                raise DataInvalid(f"{source}: column '{name}': expected int, found {value!r} on line {line}")
            if not present.all():
                return num.astype("Int64")
            return num.astype("int64")
        if spec.type == "bool":
            badb = present & ~num.isin([0, 1])
            if badb.any():
                line, value = _first_bad(s, ~badb)
                raise DataInvalid(f"{source}: column '{name}': expected 0/1, found {value!r} on line {line}")
            return num.astype("int64") if present.all() else num.astype("Int64")
        return num.astype("float64")
    # category
    text = s.astype("string")
    if spec.values is not None:
        unknown = present & ~text.isin(spec.values)
        if unknown.any():
            line, value = _first_bad(s, ~unknown)
            raise DataInvalid(f"{source}: column '{name}': value {value!r} on line {line} is not one of "
                              f"the declared categories {list(spec.values)}",
                              hint="add it to data.columns in params.yaml if it is legitimate")
        return pd.Series(pd.Categorical(text, categories=list(spec.values)), index=s.index, name=name)
    return s.astype("category")


def apply_schema(df: pd.DataFrame, params: DataParams, source: str, *, whole: bool = True) -> pd.DataFrame:
    """Check and type DF against the declared columns; DataInvalid names file, column and line. WHOLE: DF is a
    whole data set, so its label must have both classes (not so for a feedback file, a few rows of new data)."""
    missing = [c for c in params.columns if c not in df.columns]
    if missing:
        raise DataInvalid(f"{source}: required column '{missing[0]}' is missing"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    out: dict[str, pd.Series[Any]] = {}
    for name, spec in params.columns.items():
        col = df[name]
        frac = float(col.isna().mean())
        if frac > params.max_missing_fraction:
            raise DataInvalid(f"{source}: column '{name}': {frac:.2%} of values are missing, more than the "
                              f"limit data.max_missing_fraction={params.max_missing_fraction}")
        if frac > 0 and not spec.nullable and spec.fill is None:
            line, _ = _first_bad(col, col.notna())
            raise DataInvalid(f"{source}: column '{name}': missing value on line {line} but the column is not "
                              "nullable", hint="set nullable: true or a fill value for it in params.yaml")
        typed = _coerce(name, spec, col, source)
        if spec.fill is not None:
            typed = typed.fillna(spec.fill)
        out[name] = typed
    typed_df = pd.DataFrame(out, index=df.index)
    labels = typed_df[params.target].dropna().unique()
    if whole and len(labels) < 2:
        raise DataInvalid(f"{source}: label column '{params.target}' has a single class "
                          f"({labels[0] if len(labels) else 'none'!s}): nothing to learn")
    if whole and params.positive not in set(map(str, labels)):
        raise DataInvalid(f"{source}: label column '{params.target}' has no '{params.positive}' rows "
                          "(data.positive)")
    if typed_df[params.target].isna().any():
        line, _ = _first_bad(df[params.target], df[params.target].notna())
        raise DataInvalid(f"{source}: label column '{params.target}' is missing on line {line}")
    return typed_df


def load_prepared(path: Path | str, params: DataParams) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataInvalid(f"{p}: prepared data not found", hint="run `mlops stage prepare` (or dvc repro) first")
    return apply_schema(pd.read_csv(p), params, str(p))


def features_and_label(df: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, NDArray[Any]]:
    y = (df[params.target].astype(str) == params.positive).to_numpy(dtype=np.int32)
    return df[params.features], y


def profile(df: pd.DataFrame, params: DataParams, sha256: str) -> dict[str, Any]:
    """What the report shows of a data set: hash, size, label balance, schema."""
    y = df[params.target].astype(str) == params.positive
    return {
        "sha256": sha256,
        "rows": len(df),
        "columns": len(params.columns),
        "positive_rate": round(float(y.mean()), 6),
        "schema": {name: spec.type for name, spec in params.columns.items()},
    }


def write_json(path: Path | str, obj: Any) -> None:
    """Write JSON atomically (temp file + rename) so a failure never leaves half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(p)

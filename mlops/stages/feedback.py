"""Feedback: the labelled served rows that `mlops monitor --retrain` snapshots under `data.feedback.dir`, read for
prepare under the policy of `data.feedback` in params.yaml (time window, de-duplication, which split they go to).

Each `*.csv` of the folder (sorted by path; `.`/`_` files, `.dvc` files and anything else are skipped) is typed
with the raw data's schema, so a bad value fails prepare naming the file, the column and the line. Extra columns
(`request_id`, `ts`) are ignored. A row's time is its `ts` column, else the stamp in its file's name
(`feedback-20261206T065500Z.csv`), else unknown (always inside the window): the window counts back from the
newest row, never from the clock, so the same files always prepare the same data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.config import DataParams, FeedbackParams
from mlops.errors import DataInvalid
from mlops.stages.data import apply_schema

_STAMP = re.compile(r"(\d{8}T\d{6}Z)")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Feedback:
    """The feedback rows that prepare adds (typed like raw), and what happened to the others."""

    rows: pd.DataFrame          # typed; columns of data.columns; the rows kept, in file then line order
    files: int
    rows_read: int
    duplicates_dropped: int
    outside_window: int


def window_of(text: str) -> timedelta:
    """'90d' -> 90 days (h, d, w; the format params.yaml's pattern allows)."""
    return timedelta(**{_UNITS[text[-1]]: int(text[:-1])})


def feedback_files(folder: Path) -> list[Path]:
    """The CSV files under FOLDER, by relative path; none when it does not exist."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.rglob("*.csv") if p.is_file()
                   and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)),
                  key=lambda p: p.relative_to(folder).as_posix())


def _read(path: Path, source: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DataInvalid(f"{source}: file is empty", hint="a feedback file needs a header line") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataInvalid(f"{source}: not a readable CSV: {str(exc).splitlines()[0]}") from None


def _binary_labels(df: pd.DataFrame, params: DataParams) -> pd.DataFrame:
    """Labels joined by request id reach `--retrain`'s snapshot as 1/0: named here as the declared classes (the
    positive one, and the other of a two-class label) before the schema checks them."""
    spec = params.columns[params.target]
    values = spec.values or ()
    if params.target not in df.columns or spec.type != "category" or len(values) != 2 \
            or params.positive not in values:
        return df
    negative = next(v for v in values if v != params.positive)
    names = {"1": params.positive, "1.0": params.positive, "0": negative, "0.0": negative}
    col = df[params.target]
    mapped = col.map(lambda v: names.get(str(v), v) if pd.notna(v) else v)
    return df.assign(**{params.target: mapped})


def _times(df: pd.DataFrame, path: Path) -> pd.Series[Any]:
    stamp = _STAMP.search(path.name)
    fallback = datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if stamp else None
    if "ts" in df.columns:
        ts = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="ISO8601")
        return ts if fallback is None else ts.fillna(pd.Timestamp(fallback))
    return pd.Series([fallback] * len(df), index=df.index, dtype="datetime64[ns, UTC]")


def _keys(df: pd.DataFrame, columns: list[str]) -> pd.Series[Any]:
    # The typed values as text: equal rows (features and label) hash equal whatever their dtypes (int64/Int64).
    return pd.util.hash_pandas_object(df[columns].astype(str), index=False)


def read_feedback(root: Path, policy: FeedbackParams, params: DataParams, raw: pd.DataFrame) -> Feedback:
    """The rows of POLICY's folder that prepare adds to RAW (typed raw data); DataInvalid names the file, column
    and line of a bad value."""
    folder = root / policy.dir
    files = feedback_files(folder)
    frames: list[pd.DataFrame] = []
    times: list[pd.Series[Any]] = []
    for path in files:
        source = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        df = _read(path, source)
        if df.empty:
            continue
        typed = apply_schema(_binary_labels(df, params), params, source, whole=False)
        frames.append(typed)
        times.append(_times(df, path))
    columns = list(params.columns)
    if not frames:
        empty = raw.iloc[0:0][columns]
        return Feedback(empty, len(files), 0, 0, 0)
    rows = pd.concat(frames, ignore_index=True)
    when = pd.concat(times, ignore_index=True)
    read = len(rows)
    keep = pd.Series(True, index=rows.index)
    if policy.window is not None and when.notna().any():
        newest = when.max()
        keep &= ~(when < newest - window_of(policy.window))
    outside = int((~keep).sum())
    duplicates = 0
    if policy.dedupe:
        seen = set(_keys(raw, columns).tolist())
        inside = keep.tolist()
        dup = []
        for i, k in enumerate(_keys(rows, columns).tolist()):
            # a row left out by the window is neither counted nor remembered
            dup.append(inside[i] and k in seen)
            if inside[i]:
                seen.add(k)
        duplicates = sum(dup)
        keep &= ~pd.Series(dup, index=rows.index, dtype=bool)
    kept = rows[keep].reset_index(drop=True)
    # Same dtypes as raw's (the concat of two files may widen a category): the prepared CSVs write alike.
    kept = kept.astype({c: raw[c].dtype for c in columns})
    return Feedback(kept, len(files), read, duplicates, outside)

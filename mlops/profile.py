"""The reference profile: what a model's inputs and scores looked like on held-out data, small and versioned with it.

The pipeline writes it into the model artifact (models/reference.json), so deploy carries it into the model store
and the server and `mlops monitor` read the same reference. Everything monitoring compares against is in it, as
mergeable counts rather than rows: a current window is binned against the very same cells, chunk by chunk.

    {"format": "mlops.reference-profile/1",
     "rows": 1409,                          held-out rows the profile was built from
     "threshold": 0.4,                      the decision threshold of the accuracy/F1 figures
     "interface": {...},                    the model's feature_schema.json (names, types, categories)
     "features": {
       "tenure": {"kind": "numeric", "type": "int", "discrete": false,
                  "rows": 1409, "missing": 0,          missing: null/NaN/Inf in the reference rows
                  "mean", "std", "min", "max", "distinct",
                  "quantiles": {"0.01": ..., "0.05", "0.25", "0.5", "0.75", "0.95", "0.99"},
                  "grid": {"lo": -0.5, "hi": 72.5, "cells": 73},   uniform cells; integer data gets one per value
                  "counts": [...],                      reference rows per cell
                  "below": [count, sum of (lo - x)], "above": [count, sum of (x - hi)],   rows outside the grid
                  "bins": [0, 4, 9, ..., 73]},          cell boundaries of the ~10 quantile bins of PSI (and segments)
       "contract": {"kind": "categorical", "type": "category", "rows": 1409, "missing": 0,
                    "categories": ["Month-to-month", ...], "counts": [...]}},
     "prediction": {"grid": {"lo": 0, "hi": 1, "cells": 100}, "counts": [...], "mean", "std", "quantiles"},
     "calibration": {"method": "isotonic", "x": [...], "y": [...]} | null,   scores -> P(positive), np.interp
     "metrics": {"roc_auc", "accuracy", "f1", "precision", "recall", "positive_rate"} | {},   realised, held-out
     "estimated": {"roc_auc", "accuracy", "f1"} | {},   the label-free estimate on the same rows (its own bias)
     "segments": {"contract": {"One year": {"rows", "share", "score_mean", "metrics": {...},
                                            "features": {"tenure": {"counts": [...per bin], "missing": 0}, ...}}}},
     "notes": [...]}

Tasks. The layout above is a binary classifier's (the file carries no `task` key, as before tasks existed). A
multiclass or regression profile says `"task"` and differs in its prediction part; features and segments are the
same:
- multiclass: "classes": [...], "prediction": {"rows", "labels": {"categories": classes, "counts": per predicted
  class}, "probabilities": {class: {"grid": 0..1 in 100 cells, "counts", "mean", "std", "quantiles"}}};
  "metrics": {"accuracy", "macro_f1", "log_loss", "label_counts"...} with labels (class indices); "estimated":
  {"accuracy": the mean top probability}; "calibration": null; "threshold": null; segments carry "label_counts".
- regression: "prediction" is a numeric sketch of the predicted values (the features' layout: grid, counts,
  below/above, bins, quantiles); "metrics": {"rmse", "mae", "r2", "label_mean"} with labels (true values);
  "estimated": {}; "calibration": null; "threshold": null; segments carry "score_mean" (the mean value).
Inputs of type `string` (free text) are not profiled (a note says so).

Numeric cells: a uniform grid over the reference's range (one cell per integer for integer data with a small
range), so that binning a current window is arithmetic, the CDF at each cell edge is exact, and the Wasserstein
distance is a sum over cells plus the exact tails beyond the grid. Floats are rounded (6 decimals) and keys sorted,
so the same inputs give the same bytes. numpy is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops.errors import ModelInvalid
from mlops.formats.profile import PROFILE_FILE as PROFILE_FILE  # the file's format lives in mlops.formats.profile
from mlops.formats.profile import PROFILE_FORMAT as PROFILE_FORMAT
from mlops.formats.profile import ReferenceProfile as ReferenceProfile
from mlops.formats.profile import check_profile as check_profile
from mlops.formats.profile import dumps as dumps
from mlops.formats.profile import load_profile as load_profile
from mlops.formats.profile import read_profile as read_profile
from mlops.formats.profile import write_profile as write_profile

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

GRID_CELLS = 256          # cells of a continuous feature's grid
INT_CELLS_MAX = 512       # integer data with at most this many values in range gets one cell per integer
DISCRETE_MAX = 20         # at most this many distinct reference values: compared as categories (chi-square, JS)
PSI_BINS = 10             # quantile bins of PSI and of the per-segment sketches
PREDICTION_CELLS = 100    # the prediction histogram stored in the profile
SCORE_CELLS = 10_000      # fine score cells of the AUC estimates (ties within a cell count half: error ~1e-4)
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
MAX_SEGMENT_VALUES = 50


def _r(v: float, digits: int = 6) -> float | None:
    v = float(v)
    if not math.isfinite(v):
        return None
    return _rf(v, digits)


def _rf(v: float, digits: int = 6) -> float:
    out = round(float(v), digits)
    return 0.0 if out == 0 else out  # no "-0.0" in the bytes


# --- columns -----------------------------------------------------------------------------------------------------


def _column(features: Any, name: str) -> Any:
    try:
        col = features[name]
    except (KeyError, IndexError, TypeError):
        raise ModelInvalid(f"reference profile: feature '{name}' of the interface is not in the reference data",
                           hint="build the profile from the same columns the model was trained on") from None
    return col


def numeric_values(col: Any) -> NDArray[np.float64]:
    """A column as float64 with NaN for missing values (pandas nullable ints, None, strings that are numbers)."""
    import numpy as np

    to_numpy = getattr(col, "to_numpy", None)
    if to_numpy is not None:
        try:
            return np.asarray(to_numpy(dtype="float64", na_value=np.nan), dtype=np.float64)
        except (TypeError, ValueError):
            col = list(col)
    try:
        return np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError):
        out = np.empty(len(col), dtype=np.float64)
        for i, v in enumerate(col):
            try:
                out[i] = float(v) if v is not None and not isinstance(v, bool | str) else np.nan
            except (TypeError, ValueError):
                out[i] = np.nan
        return out


def category_codes(col: Any, categories: Sequence[str]) -> NDArray[np.int64]:
    """Codes of a column against CATEGORIES: the position, -1 for a value not among them, -2 for missing."""
    import numpy as np

    lookup: dict[Any, int] = {c: k for k, c in enumerate(categories)}
    values = col.tolist() if hasattr(col, "tolist") else list(col)
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out[i] = -2
        else:
            try:
                out[i] = lookup.get(v if isinstance(v, str) else str(v), -1)
            except TypeError:
                out[i] = -1
    return out


# --- numeric grids -----------------------------------------------------------------------------------------------


def grid_of(x: NDArray[np.float64], ftype: str) -> dict[str, Any]:
    """The cells of a numeric feature: one per integer for small-range integer data, else GRID_CELLS uniform ones
    over the range (over the 0.1%–99.9% quantiles when a few outliers would squeeze everything into one cell)."""
    import numpy as np

    if x.size == 0:
        return {"lo": -0.5, "hi": 0.5, "cells": 1}
    lo, hi = float(x.min()), float(x.max())
    integral = bool(np.all(x == np.round(x)))
    if ftype == "bool":
        return {"lo": -0.5, "hi": 1.5, "cells": 2}
    if integral and hi - lo + 1 <= INT_CELLS_MAX:
        return {"lo": lo - 0.5, "hi": hi + 0.5, "cells": int(hi - lo) + 1}
    if hi <= lo:
        return {"lo": _rf(lo - 0.5), "hi": _rf(hi + 0.5), "cells": 1}
    q_lo, q_hi = (float(v) for v in np.quantile(x, [0.001, 0.999]))
    if q_hi > q_lo and hi - lo > 20 * (q_hi - q_lo):
        lo, hi = q_lo, q_hi
    lo_r, hi_r = _rf(lo), _rf(hi)
    if hi_r <= lo_r:
        hi_r = lo_r + 1e-6
    return {"lo": lo_r, "hi": hi_r, "cells": GRID_CELLS}


def bin_numeric(x: NDArray[np.float64], grid: Mapping[str, Any]) -> tuple[NDArray[np.int64], NDArray[np.bool_],
                                                                          NDArray[np.bool_]]:
    """Cell index of each finite value of X (clipped into the grid), and the below/above masks."""
    import numpy as np

    lo, hi, cells = float(grid["lo"]), float(grid["hi"]), int(grid["cells"])
    below = x < lo
    above = x > hi
    idx = np.floor((x - lo) * (cells / (hi - lo))).astype(np.int64)
    np.clip(idx, 0, cells - 1, out=idx)
    return idx, below, above


def quantile_bins(counts: Sequence[float] | NDArray[Any], below: int = 0, above: int = 0,
                  bins: int = PSI_BINS) -> list[int]:
    """Cell boundaries of about BINS bins holding equal shares of the reference (whole cells, no empty bins)."""
    import numpy as np

    c = np.asarray(counts, dtype=np.float64)
    cells = len(c)
    if cells <= DISCRETE_MAX:
        return list(range(cells + 1))
    total = c.sum() + below + above
    if total <= 0:
        return [0, cells]
    cum = below + np.cumsum(c)
    cuts = [0]
    for k in range(1, bins):
        edge = int(np.searchsorted(cum, total * k / bins, side="left")) + 1
        if cuts[-1] < edge < cells:
            cuts.append(edge)
    cuts.append(cells)
    return cuts


def numeric_sketch(x_all: NDArray[np.float64], ftype: str) -> dict[str, Any]:
    import numpy as np

    finite = np.isfinite(x_all)
    x = x_all[finite]
    grid = grid_of(x, ftype)
    idx, below, above = bin_numeric(x, grid)
    inside = ~(below | above)
    counts = np.bincount(idx[inside], minlength=int(grid["cells"]))
    lo, hi = float(grid["lo"]), float(grid["hi"])
    n_below, n_above = int(below.sum()), int(above.sum())
    distinct = int(np.unique(x).size)
    discrete = ftype == "bool" or (int(grid["cells"]) <= DISCRETE_MAX and bool(np.all(x == np.round(x))))
    qs = np.quantile(x, QUANTILES) if x.size else [math.nan] * len(QUANTILES)
    return {
        "kind": "numeric", "type": ftype, "discrete": discrete,
        "rows": int(x_all.size), "missing": int((~finite).sum()),
        "mean": _r(x.mean()) if x.size else None, "std": _r(x.std()) if x.size else None,
        "min": _r(x.min()) if x.size else None, "max": _r(x.max()) if x.size else None, "distinct": distinct,
        "quantiles": {str(q): _r(v) for q, v in zip(QUANTILES, qs, strict=True)},
        "grid": grid, "counts": [int(v) for v in counts],
        "below": [n_below, _r(float((lo - x[below]).sum()))],
        "above": [n_above, _r(float((x[above] - hi).sum()))],
        "bins": quantile_bins(counts, n_below, n_above),
    }


def categorical_sketch(codes: NDArray[np.int64], categories: Sequence[str]) -> dict[str, Any]:
    import numpy as np

    counts = np.bincount(codes[codes >= 0], minlength=len(categories))
    return {"kind": "categorical", "type": "category", "rows": int(codes.size), "missing": int((codes < 0).sum()),
            "categories": list(categories), "counts": [int(v) for v in counts]}


def bin_index(feature: Mapping[str, Any], x: NDArray[np.float64]) -> NDArray[np.int64]:
    """The PSI/segment bin of each finite value of X (a numeric feature's sketch); tails go to the outer bins."""
    import numpy as np

    idx, below, above = bin_numeric(x, feature["grid"])
    edges = np.asarray(feature["bins"], dtype=np.int64)
    b = np.searchsorted(edges, idx, side="right") - 1
    np.clip(b, 0, len(edges) - 2, out=b)
    b[below] = 0
    b[above] = len(edges) - 2
    return b


# --- scores: calibration and metrics -----------------------------------------------------------------------------


def fit_isotonic(scores: NDArray[Any], labels: NDArray[Any]) -> dict[str, Any]:
    """Isotonic regression of LABELS on SCORES (pool adjacent violators), as breakpoints for np.interp."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    ux, start = np.unique(s, return_index=True)
    sums = np.add.reduceat(y, start)
    counts = np.diff(np.append(start, s.size)).astype(np.float64)
    vals: list[float] = []
    wts: list[float] = []
    firsts: list[int] = []
    for i in range(ux.size):
        v, w, first = float(sums[i] / counts[i]), float(counts[i]), i
        while vals and vals[-1] >= v:
            pv, pw, pf = vals.pop(), wts.pop(), firsts.pop()
            v = (pv * pw + v * w) / (pw + w)
            w += pw
            first = pf
        vals.append(v)
        wts.append(w)
        firsts.append(first)
    xs: list[float] = []
    ys: list[float] = []
    for k, (v, first) in enumerate(zip(vals, firsts, strict=True)):
        last = (firsts[k + 1] - 1) if k + 1 < len(firsts) else ux.size - 1
        for idx in sorted({first, last}):
            xv, yv = _rf(ux[idx], 9), _rf(v)  # 9 decimals: the scores are float32, a breakpoint must not move
            if xs and xv == xs[-1]:
                ys[-1] = yv  # rounding merged two breakpoints: keep the later (higher) value
                continue
            xs.append(xv)
            ys.append(yv)
    return {"method": "isotonic", "x": xs, "y": ys}


def calibrate(scores: NDArray[Any], calibration: Mapping[str, Any] | None) -> NDArray[np.float64]:
    """Calibrated probabilities of SCORES (the scores themselves when the profile has no calibration map)."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    if not calibration or not calibration.get("x"):
        return np.clip(s, 0.0, 1.0)
    x = np.asarray(calibration["x"], dtype=np.float64)
    y = np.asarray(calibration["y"], dtype=np.float64)
    return np.asarray(np.interp(s, x, y), dtype=np.float64)


def score_cells(scores: NDArray[Any], cells: int = SCORE_CELLS) -> NDArray[np.int64]:
    import numpy as np

    idx: NDArray[np.int64] = np.floor(np.asarray(scores, dtype=np.float64) * cells).astype(np.int64)
    np.clip(idx, 0, cells - 1, out=idx)
    return idx


def auc_from_hist(pos: NDArray[Any], neg: NDArray[Any], self_pairs: float = 0.0) -> float | None:
    """ROC AUC from positive and negative weight per score cell (ascending); pairs in one cell count half.

    SELF_PAIRS: the sum of p(1-p) of fractional (estimated) labels, whose pairing of a row with itself is removed."""
    import numpy as np

    p = np.asarray(pos, dtype=np.float64)
    n = np.asarray(neg, dtype=np.float64)
    total = float(p.sum()) * float(n.sum()) - self_pairs
    if total <= 0:
        return None
    below = np.cumsum(n) - n
    return float((float((p * (below + 0.5 * n)).sum()) - 0.5 * self_pairs) / total)


def rank_auc(scores: NDArray[Any], labels: NDArray[Any]) -> float | None:
    """The exact ROC AUC (ties count half), None with a single class."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    ranks = avg_rank[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def confusion_metrics(tp: float, fp: float, fn: float, tn: float) -> dict[str, float | None]:
    """Accuracy, F1, precision and recall of a (possibly expected, fractional) confusion matrix."""
    total = tp + fp + fn + tn
    return {
        "accuracy": (tp + tn) / total if total > 0 else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else None,
        "precision": tp / (tp + fp) if (tp + fp) > 0 else None,
        "recall": tp / (tp + fn) if (tp + fn) > 0 else None,
    }


def realised_metrics(scores: NDArray[Any], labels: NDArray[Any], threshold: float) -> dict[str, float | None]:
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    pred = s >= threshold
    tp, fp = float((pred & y).sum()), float((pred & ~y).sum())
    fn, tn = float((~pred & y).sum()), float((~pred & ~y).sum())
    return {"roc_auc": rank_auc(s, y), **confusion_metrics(tp, fp, fn, tn),
            "positive_rate": float(y.mean()) if y.size else None}


def estimated_metrics(scores: NDArray[Any], calibrated: NDArray[Any], threshold: float) -> dict[str, float | None]:
    """Confidence-based estimates (no labels): each row is positive with its calibrated probability, so the
    confusion matrix and the AUC are expectations. Valid while P(label | inputs) stays what it was (no concept
    drift); the profile stores the estimate on the reference rows beside the realised figure to show its bias."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(calibrated, dtype=np.float64)
    pred = s >= threshold
    etp, efp = float(p[pred].sum()), float((1 - p[pred]).sum())
    efn, etn = float(p[~pred].sum()), float((1 - p[~pred]).sum())
    cells = score_cells(s)
    pos = np.bincount(cells, weights=p, minlength=SCORE_CELLS)
    neg = np.bincount(cells, weights=1 - p, minlength=SCORE_CELLS)
    auc = auc_from_hist(pos, neg, float((p * (1 - p)).sum()))
    m = confusion_metrics(etp, efp, efn, etn)
    return {"roc_auc": auc, "accuracy": m["accuracy"], "f1": m["f1"]}


def _rounded(metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else _r(v)) for k, v in metrics.items()}


# --- the builder -------------------------------------------------------------------------------------------------


def _segment_value(feature: Mapping[str, Any], code: int) -> str:
    """The segment value of a category code or a discrete numeric cell (as text: "One year", "1")."""
    if feature["kind"] == "categorical":
        return str(feature["categories"][code])
    v = float(feature["grid"]["lo"]) + 0.5 + code
    return str(int(v)) if v == int(v) else str(v)


def segment_codes(feature: Mapping[str, Any], column: Any) -> tuple[NDArray[np.int64], list[str]]:
    """Per row, the index of its segment value (-1: none, missing or unseen), and the values by index."""
    import numpy as np

    if feature["kind"] == "categorical":
        codes = category_codes(column, feature["categories"])
        return np.where(codes >= 0, codes, -1), [str(c) for c in feature["categories"]]
    x = numeric_values(column)
    finite = np.isfinite(x)
    idx, below, above = bin_numeric(np.where(finite, x, 0.0), feature["grid"])
    ok = finite & ~below & ~above
    names = [_segment_value(feature, k) for k in range(int(feature["grid"]["cells"]))]
    return np.where(ok, idx, -1), names


def segment_eligible(feature: Mapping[str, Any] | None) -> str | None:
    """Why a feature cannot be a segment column (None when it can)."""
    if feature is None:
        return "not a feature of the model's interface"
    if feature["kind"] == "categorical":
        return None if len(feature["categories"]) <= MAX_SEGMENT_VALUES else "too many categories"
    if not feature["discrete"]:
        return "a continuous feature (segment by a category or a small integer feature)"
    return None


def feature_bins(feature: Mapping[str, Any], column: Any) -> tuple[NDArray[np.int64], int]:
    """Per row the coarse bin of a feature (PSI bins or category; -1 for missing/unseen) and the bin count."""
    import numpy as np

    if feature["kind"] == "categorical":
        codes = category_codes(column, feature["categories"])
        return np.where(codes >= 0, codes, -1), len(feature["categories"])
    x = numeric_values(column)
    finite = np.isfinite(x)
    b = bin_index(feature, np.where(finite, x, 0.0))
    return np.where(finite, b, -1), len(feature["bins"]) - 1


def _labels_of(labels: Any, n: int, task: str, classes: Sequence[str] | None) -> NDArray[Any] | None:
    import numpy as np

    if labels is None:
        return None
    y = np.asarray(labels).reshape(-1)
    if y.size != n:
        raise ModelInvalid(f"reference profile: {y.size} labels for {n} scores")
    if task == "binary":
        if not np.all(np.isin(y, (0, 1))):
            raise ModelInvalid("reference profile: labels must be 0/1 (1 = the positive class)")
        return y.astype(np.int64)
    if task == "multiclass":
        k = len(classes or ())
        if not (np.issubdtype(y.dtype, np.integer) and np.all((y >= 0) & (y < k))):
            raise ModelInvalid(f"reference profile: labels must be class indices 0..{k - 1}")
        return y.astype(np.int64)
    yf = y.astype(np.float64)
    if not np.all(np.isfinite(yf)):
        raise ModelInvalid("reference profile: the labels contain NaN or infinities")
    return yf


def _histogram(p: NDArray[Any]) -> dict[str, Any]:
    """A probability histogram on [0, 1] (PREDICTION_CELLS cells) with its moments: a binary model's prediction."""
    import numpy as np

    counts = np.bincount(score_cells(p, PREDICTION_CELLS), minlength=PREDICTION_CELLS)
    return {"grid": {"lo": 0.0, "hi": 1.0, "cells": PREDICTION_CELLS}, "counts": [int(v) for v in counts],
            "rows": int(p.size), "mean": _r(p.mean()), "std": _r(p.std()),
            "quantiles": {str(q): _r(v) for q, v in zip(QUANTILES, np.quantile(p, QUANTILES), strict=True)}}


def multiclass_metrics(probs: NDArray[Any], labels: NDArray[Any]) -> dict[str, float | None]:
    """Accuracy, macro-F1 (over the classes present in labels or predictions) and log loss of class indices."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if y.size == 0:
        return {"accuracy": None, "macro_f1": None, "log_loss": None}
    pred = np.argmax(p, axis=1)
    f1s: list[float] = []
    for c in sorted(set(y.tolist()) | set(pred.tolist())):
        tp = float(((pred == c) & (y == c)).sum())
        fp = float(((pred == c) & (y != c)).sum())
        fn = float(((pred != c) & (y == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 0.0)
    picked = np.clip(p[np.arange(y.size), y], 1e-15, 1.0)
    return {"accuracy": float((pred == y).mean()), "macro_f1": float(np.mean(f1s)),
            "log_loss": float(-np.log(picked).mean())}


def regression_metrics(values: NDArray[Any], labels: NDArray[Any]) -> dict[str, float | None]:
    """RMSE, MAE and R² of predicted VALUES against true LABELS."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if y.size == 0:
        return {"rmse": None, "mae": None, "r2": None}
    err = v - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {"rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean()),
            "r2": 1.0 - float((err ** 2).sum()) / ss_tot if ss_tot > 0 else None}


def build_profile(features: Any, interface: Mapping[str, Any], scores: Any, labels: Any = None,
                  segments: Sequence[str] = (), *, threshold: float = 0.5, task: str = "binary",
                  classes: Sequence[str] | None = None) -> dict[str, Any]:
    """The reference profile of held-out data.

    FEATURES: a DataFrame or a mapping of raw feature name -> values (the interface's features; more are
    ignored); INTERFACE: the feature_schema.json document; SCORES: the model's outputs on these rows (rows it
    was not trained on): binary, P(positive) per row; multiclass, one row of class probabilities per row (in
    CLASSES order); regression, the value; LABELS: per row, binary 0/1, multiclass the class index, regression the
    true value, or None; SEGMENTS: feature names to profile per value (the `evaluate.segments` columns);
    THRESHOLD: the decision threshold of a binary model's accuracy/F1; TASK: binary, multiclass or regression.
    ModelInvalid when the data does not fit the interface.
    """
    import numpy as np

    if task not in ("binary", "multiclass", "regression"):
        raise ModelInvalid(f"reference profile: unknown task {task!r}")
    feats = interface.get("features")
    if not isinstance(feats, list) or not feats:
        raise ModelInvalid("reference profile: the interface has no 'features' list",
                           hint="pass the feature_schema.json document")
    s = np.asarray(scores, dtype=np.float64)
    if task == "multiclass":
        k = len(classes or ())
        if k < 2 or s.ndim != 2 or s.shape[1] != k:
            raise ModelInvalid(f"reference profile: multiclass scores must be (rows, {k}) for classes "
                               f"{list(classes or ())}, got {s.shape}")
    else:
        s = s.reshape(-1)
    n = int(s.shape[0])
    if n == 0:
        raise ModelInvalid("reference profile: no rows to profile", hint="pass the held-out rows and their scores")
    if not np.all(np.isfinite(s)):
        raise ModelInvalid("reference profile: the scores contain NaN or infinities")
    y = _labels_of(labels, n, task, classes)

    notes: list[str] = []
    sketches: dict[str, dict[str, Any]] = {}
    columns: dict[str, Any] = {}
    kept: list[Any] = []
    for f in feats:
        name, ftype = str(f["name"]), str(f["type"])
        if ftype == "string":
            notes.append(f"feature '{name}' is free text: not profiled")
            continue
        kept.append(f)
        col = _column(features, name)
        if len(col) != n:
            raise ModelInvalid(f"reference profile: feature '{name}' has {len(col)} rows, the scores {n}")
        columns[name] = col
        if ftype == "category":
            sketches[name] = categorical_sketch(category_codes(col, f.get("categories") or []),
                                                [str(c) for c in f.get("categories") or []])
        else:
            sketches[name] = numeric_sketch(numeric_values(col), ftype)

    calibration: dict[str, Any] | None = None
    metrics: dict[str, Any] = {}
    estimated: dict[str, float | None] = {}
    prediction: dict[str, Any]
    pred_label: NDArray[Any] | None = None
    if task == "binary":
        prediction = _histogram(s)
        if y is not None and 0 < int(y.sum()) < n:
            calibration = fit_isotonic(s, y)
            metrics = _rounded(realised_metrics(s, y, threshold))
            estimated = _rounded(estimated_metrics(s, calibrate(s, calibration), threshold))
        elif y is not None:
            notes.append("the labels have a single class: no calibration map and no reference metrics")
        else:
            notes.append("no labels: no calibration map; performance is estimated from the raw scores")
    elif task == "multiclass":
        names = [str(c) for c in classes or ()]
        pred_label = np.argmax(s, axis=1)
        prediction = {"rows": n,
                      "labels": {"categories": names,
                                 "counts": [int(v) for v in np.bincount(pred_label, minlength=len(names))]},
                      "probabilities": {c: _histogram(s[:, j]) for j, c in enumerate(names)}}
        estimated = {"accuracy": _r(float(s.max(axis=1).mean()))}
        if y is not None:
            metrics = {**_rounded(multiclass_metrics(s, y)),
                       "label_counts": [int(v) for v in np.bincount(y, minlength=len(names))]}
        else:
            notes.append("no labels: performance is estimated from the class probabilities")
    else:
        prediction = numeric_sketch(s, "float")
        if y is not None:
            metrics = {**_rounded(regression_metrics(s, y)), "label_mean": _r(float(y.mean()))}
        else:
            notes.append("no labels: no reference error figures")

    seg_out: dict[str, Any] = {}
    for col_name in segments:
        why = segment_eligible(sketches.get(col_name))
        if why is not None:
            notes.append(f"segment '{col_name}' skipped: {why}")
            continue
        codes, values = segment_codes(sketches[col_name], columns[col_name])
        bins = {name: feature_bins(sketches[name], columns[name]) for name in sketches}
        per_value: dict[str, Any] = {}
        for k, value in enumerate(values):
            mask = codes == k
            rows = int(mask.sum())
            if rows == 0:
                continue
            entry: dict[str, Any] = {"rows": rows, "share": _r(rows / n)}
            if pred_label is not None:
                entry["label_counts"] = [int(v) for v in np.bincount(pred_label[mask],
                                                                     minlength=len(classes or ()))]
            else:
                entry["score_mean"] = _r(s[mask].mean())
            if y is not None and metrics:
                if task == "binary":
                    entry["metrics"] = _rounded(realised_metrics(s[mask], y[mask], threshold))
                elif task == "multiclass":
                    entry["metrics"] = _rounded(multiclass_metrics(s[mask], y[mask]))
                else:
                    entry["metrics"] = _rounded(regression_metrics(s[mask], y[mask]))
            fb: dict[str, Any] = {}
            for name, (b, nbins) in bins.items():
                bm = b[mask]
                fb[name] = {"counts": [int(v) for v in np.bincount(bm[bm >= 0], minlength=nbins)],
                            "missing": int((bm < 0).sum())}
            entry["features"] = fb
            per_value[value] = entry
        seg_out[col_name] = per_value

    iface_doc = json.loads(json.dumps(dict(interface)))
    if len(kept) != len(feats):
        iface_doc["features"] = [f for f in iface_doc["features"] if f.get("type") != "string"]
    out: dict[str, Any] = {
        "format": PROFILE_FORMAT, "rows": n, "threshold": _r(threshold) if task == "binary" else None,
        "interface": iface_doc,
        "features": sketches, "prediction": prediction, "calibration": calibration,
        "metrics": metrics, "estimated": estimated, "segments": seg_out, "notes": notes,
    }
    if task != "binary":
        out["task"] = task
        if classes is not None:
            out["classes"] = [str(c) for c in classes]
    return out


# --- files: the format is mlops.formats.profile's (one reader, one writer); these names stay for callers ---------

save_profile = write_profile

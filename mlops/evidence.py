"""Is a metric change real? Paired statistics over per-row held-out predictions: pure functions over arrays.

- `paired_bootstrap`: resample the held-out rows with replacement, the SAME resamples for both models (one index
  matrix, turned into per-row counts), recompute every metric on both, and take the percentiles of the difference.
  Vectorised: each metric is a matrix product or a cumulative sum over the rows sorted once by score, so 1,000
  resamples of 1,409 rows take a few tens of milliseconds. ROC AUC and average precision are computed exactly as
  scikit-learn does (ties between scores count as half / grouped per threshold).
- `delong`: DeLong's test for two correlated ROC AUCs on the same rows, with the O(n log n) algorithm of Sun & Xu
  (2014, "Fast implementation of DeLong's algorithm for comparing the areas under correlated ROC curves").
- `prediction_diff`: two models' predictions on the same rows matched by id: label agreement, the rows whose label
  flips, the absolute score change (mean, 99th percentile) and the population stability index of the scores.

Metrics per task: binary roc_auc, pr_auc, log_loss, brier, accuracy, precision, recall, f1 (at each model's own
decision threshold); multiclass accuracy, macro_f1, log_loss; regression rmse, mae, r2 (paired squared and absolute
errors). Nothing here reads files or knows about reports: `predictions_from` turns an already-parsed table into
`Predictions`, the report job composes the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mlops.errors import ReportError

Task = Literal["binary", "multiclass", "regression"]
Floats = NDArray[np.float64]

HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False, "accuracy": True,
                    "precision": True, "recall": True, "f1": True, "macro_f1": True, "rmse": False, "mae": False,
                    "r2": True}
# The leaf names a metrics file may use for what is computed here ("test.auc" is roc_auc...).
ALIASES = {"roc_auc": ("roc_auc", "auc", "auroc"), "pr_auc": ("pr_auc", "average_precision", "ap", "auprc"),
           "log_loss": ("log_loss", "logloss", "cross_entropy"), "brier": ("brier", "brier_score"),
           "accuracy": ("accuracy", "acc"), "precision": ("precision",), "recall": ("recall",), "f1": ("f1",),
           "macro_f1": ("macro_f1", "f1_macro"), "rmse": ("rmse",), "mae": ("mae",), "r2": ("r2",)}
EPS = 1e-7  # log loss clips probabilities as the evaluate stage does
PSI_BINS = 10
FLIP_SAMPLE = 10


@dataclass(frozen=True)
class Predictions:
    """One model's held-out predictions. `scores`: binary P(positive), regression the prediction, multiclass one
    column per class; `labels`: binary 0/1, multiclass class index, regression the true value; `predicted`: the
    label the model gives (binary: score >= threshold; multiclass: argmax; regression: unused)."""

    task: Task
    ids: tuple[str, ...]
    labels: Floats
    scores: Floats
    threshold: float = 0.5
    classes: tuple[str, ...] = ()

    @property
    def predicted(self) -> Floats:
        if self.task == "binary":
            return (self.scores >= self.threshold).astype(np.float64)
        if self.task == "multiclass":
            return np.asarray(np.argmax(self.scores, axis=1), dtype=np.float64)
        return self.scores

    def take(self, rows: NDArray[np.intp]) -> Predictions:
        return Predictions(self.task, tuple(self.ids[i] for i in rows), self.labels[rows], self.scores[rows],
                           self.threshold, self.classes)


@dataclass(frozen=True)
class Interval:
    """The paired difference (head - reference) of one metric, with its interval and what it means."""

    metric: str  # the computed metric's name (roc_auc...)
    head: float
    reference: float
    delta: float
    low: float
    high: float
    verdict: str  # "better", "worse", "within noise"
    method: str  # "paired bootstrap (percentile)"
    resamples: int
    seed: int
    confidence: float
    p_value: float | None = None  # DeLong (roc_auc only)
    delong_low: float | None = None
    delong_high: float | None = None


@dataclass(frozen=True)
class PredictionDiff:
    rows: int  # rows matched by id
    only_head: int  # ids only one side has (not compared)
    only_reference: int
    flips: int | None  # classifiers: rows whose label differs; None for regression
    flips_up: int | None  # reference negative/other -> head positive (binary) ...
    flips_down: int | None
    flip_sample: tuple[str, ...]  # a few flipped row ids, by id order
    flip_rate: float | None
    agreement: float | None
    mean_abs_change: float
    p99_abs_change: float
    psi: float

    def metrics(self) -> dict[str, float]:
        """The gateable numbers, as `prediction.*` metrics."""
        out = {"prediction.mean_abs_change": self.mean_abs_change, "prediction.p99_abs_change": self.p99_abs_change,
               "prediction.psi": self.psi}
        if self.flip_rate is not None and self.agreement is not None and self.flips is not None:
            out.update({"prediction.flip_rate": self.flip_rate, "prediction.agreement": self.agreement,
                        "prediction.flips": float(self.flips)})
        return out


# --- reading a parsed table ---------------------------------------------------------------------------------------

def columns_of(rows: Any, where: str) -> dict[str, list[Any]]:
    """A parsed table (list of row mappings, as the CSV reader gives, or a mapping of columns) as columns."""
    if isinstance(rows, Mapping) and all(isinstance(v, list) for v in rows.values()):
        return {str(k): list(v) for k, v in rows.items()}
    if not isinstance(rows, list) or not rows or not all(isinstance(r, Mapping) for r in rows):
        raise ReportError(f"{where}: not a table of rows (empty or unreadable)")
    names = list(rows[0])
    return {str(n): [r.get(n) for r in rows] for n in names}


def read_parquet(raw: bytes) -> dict[str, list[Any]]:
    """A Parquet file's columns (pyarrow, imported only here: most projects write CSV)."""
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw))
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _floats(values: Sequence[Any], where: str, column: str) -> Floats:
    try:
        out = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in values if not _is_number(v)), None)
        raise ReportError(f"{where}: column '{column}' is not numeric (value {bad!r})") from None
    if not np.all(np.isfinite(out)):
        raise ReportError(f"{where}: column '{column}' has NaN or infinite values")
    return out


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def predictions_from(cols: Mapping[str, Sequence[Any]], where: str, *, id_column: str, label: str,
                     score: str | None, task: Task | None, threshold: float, positive: str | None = None,
                     proba_prefix: str = "proba_", labels: Sequence[Any] | None = None) -> Predictions:
    """Predictions from a table's columns. LABELS (when given) replace the label column (joined by the caller).
    TASK None: multiclass when `proba_prefix` columns exist, binary when the labels take two values and the score
    lies in [0, 1], else regression. Every error is one line naming WHERE and the column."""
    if id_column not in cols:
        raise ReportError(f"{where}: no id column '{id_column}' (columns: {', '.join(list(cols)[:12])})",
                          hint="set report.predictions.id in params.yaml")
    ids = tuple(str(v) for v in cols[id_column])
    if len(set(ids)) != len(ids):
        raise ReportError(f"{where}: column '{id_column}' has duplicate ids")
    raw_labels = list(labels) if labels is not None else None
    if raw_labels is None:
        if label not in cols:
            raise ReportError(f"{where}: no label column '{label}'",
                              hint="write the true label beside each prediction, or point report.predictions.labels "
                                   "at the held-out data file")
        raw_labels = list(cols[label])
    if len(raw_labels) != len(ids):
        raise ReportError(f"{where}: {len(raw_labels)} labels for {len(ids)} predictions")
    proba_cols = [c for c in cols if c.startswith(proba_prefix)] if proba_prefix else []
    if task is None:
        task = "multiclass" if len(proba_cols) > 2 else None
    if task == "multiclass":
        if not proba_cols:
            raise ReportError(f"{where}: multiclass predictions need one '{proba_prefix}CLASS' column per class")
        classes = tuple(c[len(proba_prefix):] for c in proba_cols)
        scores = np.column_stack([_floats(cols[c], where, c) for c in proba_cols])
        index = {c: i for i, c in enumerate(classes)}
        texts = [_label_text(v) for v in raw_labels]
        unknown = sorted({t for t in texts if t not in index})
        if unknown:
            raise ReportError(f"{where}: label(s) {', '.join(unknown[:5])} have no '{proba_prefix}' column")
        return Predictions("multiclass", ids, np.asarray([index[t] for t in texts], dtype=np.float64), scores,
                           classes=classes)
    name = score or next((c for c in ("probability", "score", "prediction", "value", "proba_1") if c in cols), None)
    if name is None or name not in cols:
        raise ReportError(f"{where}: no score column {name or '(probability, score, prediction or value)'}",
                          hint="set report.predictions.score in params.yaml")
    scores = _floats(cols[name], where, name)
    if task is None:
        distinct = {_label_text(v) for v in raw_labels}
        task = "binary" if len(distinct) <= 2 and scores.min() >= 0 and scores.max() <= 1 else "regression"
    if task == "regression":
        return Predictions("regression", ids, _floats(raw_labels, where, label), scores)
    return Predictions("binary", ids, _binary(raw_labels, where, label, positive), scores, threshold)


def _label_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _binary(values: Sequence[Any], where: str, column: str, positive: str | None) -> Floats:
    texts = [_label_text(v) for v in values]
    if positive is not None:
        return np.asarray([t == positive for t in texts], dtype=np.float64)
    distinct = set(texts)
    if distinct <= {"0", "1"}:
        return np.asarray([t == "1" for t in texts], dtype=np.float64)
    if distinct <= {"False", "True", "false", "true"}:
        return np.asarray([t.lower() == "true" for t in texts], dtype=np.float64)
    raise ReportError(f"{where}: label column '{column}' is not 0/1 ({', '.join(sorted(distinct)[:4])})",
                      hint="set report.predictions.positive to the positive class")


def align(head: Predictions, ref: Predictions) -> tuple[Predictions, Predictions, int, int]:
    """Both sides on the rows they share, in the head's order; (head, ref, only in head, only in ref)."""
    where = {k: i for i, k in enumerate(ref.ids)}
    hi = np.asarray([i for i, k in enumerate(head.ids) if k in where], dtype=np.intp)
    ri = np.asarray([where[head.ids[i]] for i in hi], dtype=np.intp)
    return head.take(hi), ref.take(ri), len(head.ids) - len(hi), len(ref.ids) - len(ri)


def same_rows(a: Predictions, b: Predictions) -> bool:
    """The same rows with the same labels, in the same order: what a paired comparison needs."""
    return a.ids == b.ids and bool(np.array_equal(a.labels, b.labels))


# --- metrics over resample counts ---------------------------------------------------------------------------------
# W is a (B, n) matrix of how often each row is drawn in each resample; the full sample is W = ones((1, n)).

def resample_counts(n: int, resamples: int, seed: int) -> Floats:
    """The one index matrix of a paired bootstrap, as per-row counts (B, n): both models use the same one."""
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = idx + (np.arange(resamples, dtype=np.int64) * n)[:, None]
    # float32: counts are small integers (exact), and half the memory traffic of float64 in every product below
    return np.bincount(flat.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float32)


def _dot(w: NDArray[Any], v: NDArray[Any]) -> Floats:
    """W @ V in W's precision (a float64 V would copy all of a float32 W first)."""
    return np.asarray(w @ np.asarray(v, dtype=w.dtype), dtype=np.float64)


def _div(a: Floats, b: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _ranked(y: Floats, s: Floats, w: Floats) -> tuple[Floats, Floats]:
    """Cumulative weighted true and false positives at each distinct score, highest first: (B, groups)."""
    order = np.argsort(-s, kind="mergesort")
    ss = s[order]
    ends = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    ws = w[:, order]
    tp = np.cumsum(ws * y[order].astype(w.dtype), axis=1)[:, ends]
    fp = np.cumsum(ws, axis=1)[:, ends] - tp
    return tp.astype(np.float64), fp.astype(np.float64)


def _roc_auc(tp: Floats, fp: Floats) -> Floats:
    zero = np.zeros((tp.shape[0], 1))
    t = np.hstack([zero, tp])
    f = np.hstack([zero, fp])
    area = np.sum(np.diff(f, axis=1) * (t[:, 1:] + t[:, :-1]) / 2.0, axis=1)
    return _div(area, t[:, -1] * f[:, -1])


def _pr_auc(tp: Floats, fp: Floats) -> Floats:
    zero = np.zeros((tp.shape[0], 1))
    gain = np.diff(np.hstack([zero, tp]), axis=1)
    precision = tp / np.maximum(tp + fp, 1e-12)  # tp + fp = 0 only where tp = 0: no gain there
    return _div(np.sum(gain * precision, axis=1), tp[:, -1])


def _binary_metrics(p: Predictions, w: Floats) -> dict[str, Floats]:
    y, s = p.labels, p.scores
    n = w.sum(axis=1, dtype=np.float64)
    tp_c, fp_c = _ranked(y, s, w)
    pred = p.predicted
    tp = _dot(w, y * pred)
    fp = _dot(w, (1 - y) * pred)
    fn = _dot(w, y * (1 - pred))
    correct = _dot(w, pred == y)
    c = np.clip(s, EPS, 1 - EPS)
    return {
        "roc_auc": _roc_auc(tp_c, fp_c),
        "pr_auc": _pr_auc(tp_c, fp_c),
        "log_loss": _dot(w, -(y * np.log(c) + (1 - y) * np.log(1 - c))) / n,
        "brier": _dot(w, (s - y) ** 2) / n,
        "accuracy": correct / n,
        "precision": np.where(tp + fp > 0, _div(tp, tp + fp), 0.0),
        "recall": np.where(tp + fn > 0, _div(tp, tp + fn), 0.0),
        "f1": np.where(2 * tp + fp + fn > 0, _div(2 * tp, 2 * tp + fp + fn), 0.0),
    }


def _multiclass_metrics(p: Predictions, w: Floats) -> dict[str, Floats]:
    y = p.labels.astype(np.intp)
    k = p.scores.shape[1]
    n = w.sum(axis=1, dtype=np.float64)
    pred = np.argmax(p.scores, axis=1)
    truth = np.eye(k)[y]
    guess = np.eye(k)[pred]
    tp = _dot(w, truth * guess)
    fp = _dot(w, (1 - truth) * guess)
    fn = _dot(w, truth * (1 - guess))
    f1 = np.where(2 * tp + fp + fn > 0, _div(2 * tp, 2 * tp + fp + fn), 0.0)
    present = (_dot(w, truth) + _dot(w, guess)) > 0  # as scikit-learn: classes neither true nor predicted do not count
    probs = np.clip(p.scores[np.arange(len(y)), y], EPS, 1.0)
    return {
        "accuracy": _dot(w, (pred == y).astype(np.float64)) / n,
        "macro_f1": np.sum(f1 * present, axis=1) / np.maximum(present.sum(axis=1), 1),
        "log_loss": _dot(w, -np.log(probs)) / n,
    }


def _regression_metrics(p: Predictions, w: Floats) -> dict[str, Floats]:
    w = w.astype(np.float64)  # sums of squares cancel: float32 is not enough for r2
    err = p.scores - p.labels
    n = w.sum(axis=1, dtype=np.float64)
    centred = p.labels - p.labels.mean()  # shifting y leaves sst unchanged and keeps it well conditioned
    mean_c = _dot(w, centred) / n
    sst = _dot(w, centred ** 2) - n * mean_c ** 2
    sse = _dot(w, err ** 2)
    return {"rmse": np.sqrt(sse / n), "mae": _dot(w, np.abs(err)) / n, "r2": 1.0 - _div(sse, sst)}


METRICS: dict[str, Callable[[Predictions, Floats], dict[str, Floats]]] = {
    "binary": _binary_metrics, "multiclass": _multiclass_metrics, "regression": _regression_metrics}


def point_metrics(p: Predictions) -> dict[str, float]:
    """Every metric of P's task on all its rows (what the bootstrap resamples)."""
    return {k: float(v[0]) for k, v in METRICS[p.task](p, np.ones((1, len(p.ids)))).items()}


# --- the paired bootstrap and DeLong --------------------------------------------------------------------------------

def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "within noise"


def paired_bootstrap(head: Predictions, ref: Predictions, *, resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95, metrics: Sequence[str] | None = None) -> dict[str, Interval]:
    """Percentile intervals of (head - ref) for every metric of the task, over the SAME resamples of the rows.
    HEAD and REF must be aligned (same rows, same order, same labels): see `align`. ROC AUC also gets DeLong's
    p-value and normal interval."""
    if head.task != ref.task:
        raise ReportError(f"cannot compare a {head.task} model with a {ref.task} one")
    if not same_rows(head, ref):
        raise ReportError("the two sides' held-out rows differ (ids or labels): no paired comparison")
    n = len(head.ids)
    if n < 2:
        raise ReportError(f"{n} matched held-out row(s): too few for an interval")
    w = resample_counts(n, resamples, seed)
    fn = METRICS[head.task]
    full = np.ones((1, n))
    hb, rb = fn(head, w), fn(ref, w)
    hp, rp = fn(head, full), fn(ref, full)
    alpha = (1 - confidence) / 2
    out: dict[str, Interval] = {}
    for name in metrics or list(hb):
        if name not in hb:
            continue
        h0, r0 = float(hp[name][0]), float(rp[name][0])
        if math.isnan(h0) or math.isnan(r0):
            continue
        d = hb[name] - rb[name]
        d = d[~np.isnan(d)]
        if d.size == 0:
            continue
        low, high = (float(v) for v in np.quantile(d, [alpha, 1 - alpha]))
        extra: dict[str, float | None] = {}
        if name == "roc_auc":
            _, _, p_value, dl, dh = delong(head.labels, head.scores, ref.scores, confidence)
            extra = {"p_value": p_value, "delong_low": dl, "delong_high": dh}
        out[name] = Interval(name, h0, r0, h0 - r0, low, high, _verdict(low, high, HIGHER_IS_BETTER[name]),
                             "paired bootstrap (percentile)", resamples, seed, confidence, **extra)
    return out


def _midranks(x: Floats) -> Floats:
    """1-based ranks with ties given their average rank, along the last axis."""
    out = np.empty_like(x)
    for i, row in enumerate(np.atleast_2d(x)):
        _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        out[i] = (ends - (counts - 1) / 2.0)[inverse]
    return out


def delong(y: Floats, a: Floats, b: Floats, confidence: float = 0.95) -> tuple[float, float, float, float, float]:
    """(auc_a, auc_b, two-sided p-value of auc_a == auc_b, low, high of auc_a - auc_b): DeLong's test, computed with
    Sun & Xu's midrank algorithm."""
    pos = y == 1
    m, k = int(pos.sum()), int((~pos).sum())
    if m == 0 or k == 0:
        return math.nan, math.nan, math.nan, math.nan, math.nan
    scores = np.vstack([a, b])
    x, z = scores[:, pos], scores[:, ~pos]
    tx, tz, txz = _midranks(x), _midranks(z), _midranks(np.hstack([x, z]))
    aucs = (txz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / k
    v01 = (txz[:, :m] - tx) / k
    v10 = 1.0 - (txz[:, m:] - tz) / m
    cov = np.cov(v01) / m + np.cov(v10) / k
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = float(aucs[0] - aucs[1])
    if var <= 0:
        p = 1.0 if diff == 0 else 0.0
        return float(aucs[0]), float(aucs[1]), p, diff, diff
    sd = math.sqrt(var)
    p = math.erfc(abs(diff) / sd / math.sqrt(2))
    zq = _normal_quantile(1 - (1 - confidence) / 2)
    return float(aucs[0]), float(aucs[1]), p, diff - zq * sd, diff + zq * sd


def _normal_quantile(q: float) -> float:
    """The standard normal quantile (bisection on erfc: no scipy import for one number)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# --- the prediction diff ----------------------------------------------------------------------------------------------

def _score(p: Predictions) -> Floats:
    """The one score per row compared: binary P(positive), regression the value, multiclass the top probability."""
    return p.scores.max(axis=1) if p.task == "multiclass" else p.scores


def score_psi(reference: Floats, current: Floats, bins: int = PSI_BINS) -> float:
    """Population stability index of the scores CURRENT against REFERENCE, over the reference's quantile bins (the
    monitor's PSI, mlops.monitor.stats.psi, works on the binned counts its sketches keep)."""
    if reference.size == 0 or current.size == 0:
        return math.nan
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / reference.size
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / current.size
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def prediction_diff(head: Predictions, ref: Predictions, only_head: int = 0, only_ref: int = 0) -> PredictionDiff:
    """How the head's predictions differ from the reference's on the same rows (aligned by `align`)."""
    hs, rs = _score(head), _score(ref)
    change = np.abs(hs - rs)
    n = len(head.ids)
    flips = flips_up = flips_down = None
    sample: tuple[str, ...] = ()
    rate = agreement = None
    if head.task != "regression" and n:
        hl, rl = head.predicted, ref.predicted
        flipped = np.flatnonzero(hl != rl)
        flips = int(flipped.size)
        flips_up = int(np.sum(hl[flipped] > rl[flipped]))
        flips_down = flips - flips_up
        sample = tuple(sorted((head.ids[i] for i in flipped), key=_id_key)[:FLIP_SAMPLE])
        rate = flips / n
        agreement = 1.0 - rate
    return PredictionDiff(n, only_head, only_ref, flips, flips_up, flips_down, sample, rate, agreement,
                          float(change.mean()) if n else 0.0, float(np.quantile(change, 0.99)) if n else 0.0,
                          score_psi(rs, hs) if n else 0.0)


def _id_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def matching_metric(name: str, computed: Mapping[str, Any], split: str) -> str | None:
    """The computed metric a reported metric NAME ("test.roc_auc") is, when it is of the held-out SPLIT."""
    prefix, _, leaf = name.rpartition(".")
    if prefix != split:
        return None
    low = leaf.lower()
    return next((k for k in computed if low in ALIASES.get(k, (k,))), None)

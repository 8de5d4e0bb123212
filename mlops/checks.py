"""Model checks as metrics (issue 15): what the ML Test Score asks of a model before it ships, computed on held-out
rows, written as one metrics file so that the report diffs it and the gates judge it like any metric.

- `checks.baseline_lift`: the model's primary metric minus a model that predicts the prior (binary roc_auc against
  0.5, multiclass accuracy against the majority class, regression r2 against the mean): "a simpler model is not
  better" (the prior is computed on the held-out rows themselves, which only flatters the baseline).
- `checks.train_test_gap`: the primary metric on training rows minus on held-out rows (when training rows are given).
- `checks.useless_features`: inputs whose permutation importance (the rise of the held-out loss when the column is
  shuffled) is not above its own noise or is under `min_share` of the total: features that contribute nothing.
- `checks.weak_segments`: single-column slices (each category; numeric columns in quantile bins) of every data
  column, not only configured ones, whose mean loss is `weak_ratio` times the overall or worse.
- `checks.fairness.<column>.demographic_parity_diff` / `equal_opportunity_diff`: over the groups of each sensitive
  column, the largest gap in the positive-prediction rate and in the true-positive rate (multiclass: the largest
  over classes, one against the rest; regression: the gap of the mean prediction, and `error_gap` of the MAE).
- `attributions`: global attributions per input, the mean |TreeSHAP contribution| where the runtime offers it
  (xgboost, lightgbm), permutation importance otherwise; a list, so not a metric: the report shows its top changes.

Pure functions over arrays: the job loads the model and the rows and passes `predict` (and `contributions` where
TreeSHAP exists). Losses: binary and multiclass log loss, regression squared error.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mlops import evidence
from mlops.errors import MlopsError

Task = Literal["binary", "multiclass", "regression"]
Floats = NDArray[np.float64]
# A model over a matrix shaped like Heldout.x (encoded numbers, or raw values for runtimes that take records):
# binary P(positive) (n,), multiclass (n, k), regression the value (n,).
Predict = Callable[[NDArray[Any]], Floats]
# Per-row, per-input absolute contributions (n, f) (summed over classes for a multiclass model).
Contributions = Callable[[NDArray[Any]], Floats]

PRIMARY: dict[str, str] = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}
EPS = 1e-7
CHUNK_ROWS = 200_000  # permuted copies are predicted in batches of at most this many rows


class CheckError(MlopsError):
    """The model checks cannot run on these inputs (a sensitive column that is not in the data, no rows...)."""


@dataclass(frozen=True)
class CheckSettings:
    """`checks:` of params.yaml, with `report.sensitive` (see mlops.config.CheckParams)."""

    sensitive: tuple[str, ...] = ()
    min_rows: int = 30  # a segment or a fairness group needs this many rows
    max_rows: int = 5000  # permutation importance and TreeSHAP run on a seeded sample of at most this many rows
    repeats: int = 5  # permutations per input
    seed: int = 0
    min_share: float = 0.01  # an input under this share of the total permutation importance contributes nothing
    weak_ratio: float = 1.5  # a segment whose mean loss is this many times the overall is weak
    bins: int = 4  # numeric columns with many values are sliced into this many quantile bins
    max_categories: int = 20  # a column with more distinct values is numeric-binned, or skipped when not numeric
    top: int = 10  # segments listed in the file


@dataclass(frozen=True)
class Heldout:
    """Rows a model is checked on. X: the model's inputs in `features` order (what `predict` takes); Y: binary 0/1,
    multiclass the class index, regression the value; COLUMNS: every data column but the target, raw, for slices and
    sensitive groups (they need not be inputs)."""

    task: Task
    features: tuple[str, ...]
    x: NDArray[Any]
    y: Floats
    columns: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    threshold: float = 0.5

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Segment:
    column: str
    value: str
    rows: int
    loss: float
    ratio: float  # the segment's mean loss over the overall mean loss
    error_rate: float | None  # classifiers: the share of wrong labels


@dataclass(frozen=True)
class Attribution:
    feature: str
    importance: float
    share: float


@dataclass(frozen=True)
class CheckResult:
    task: Task
    rows: int
    primary: str
    model_score: float
    baseline_score: float
    train_score: float | None
    useless: tuple[str, ...]
    permutation: tuple[tuple[str, float, float], ...]  # (feature, mean loss rise, std over repeats)
    segments: tuple[Segment, ...]  # the worst first, at most `top`
    weak: int
    fairness: Mapping[str, Mapping[str, float]]
    method: str  # "treeshap" or "permutation"
    attributions: tuple[Attribution, ...]  # by importance, highest first

    @property
    def baseline_lift(self) -> float:
        return self.model_score - self.baseline_score

    @property
    def train_test_gap(self) -> float | None:
        return None if self.train_score is None else self.train_score - self.model_score

    def to_json(self) -> dict[str, Any]:
        """checks.json: the numbers under `checks` are metrics (`checks.baseline_lift`...); the rest are strings
        and lists, which metrics readers (DVC, mlops.gates.flatten_metrics) leave out."""
        checks: dict[str, Any] = {"baseline_lift": _r(self.baseline_lift), "model_score": _r(self.model_score),
                                  "baseline_score": _r(self.baseline_score)}
        if self.train_test_gap is not None:
            checks["train_test_gap"] = _r(self.train_test_gap)
        checks["useless_features"] = len(self.useless)
        checks["weak_segments"] = self.weak
        if self.segments:
            checks["worst_segment_ratio"] = _r(self.segments[0].ratio)
        if self.fairness:
            checks["fairness"] = {c: {k: _r(v) for k, v in m.items()} for c, m in self.fairness.items()}
        return {
            "checks": checks,
            "primary_metric": self.primary,
            "task": self.task,
            "useless": list(self.useless),
            "segments": [{"column": s.column, "value": s.value, "rows": s.rows, "loss": _r(s.loss),
                          "ratio": _r(s.ratio), **({} if s.error_rate is None else {"error_rate": _r(s.error_rate)})}
                         for s in self.segments],
            "attribution_method": self.method,
            "attributions": [{"feature": a.feature, "importance": _r(a.importance), "share": _r(a.share)}
                             for a in self.attributions],
            "permutation": [{"feature": f, "mean": _r(m), "std": _r(s)} for f, m, s in self.permutation],
        }


def _r(v: float) -> float:
    return round(float(v), 6)


# --- losses and scores ----------------------------------------------------------------------------------------------

def row_loss(task: Task, y: Floats, scores: Floats) -> Floats:
    """The loss of each row: binary and multiclass log loss, regression squared error."""
    if task == "binary":
        p = np.clip(scores, EPS, 1 - EPS)
        return np.asarray(-(y * np.log(p) + (1 - y) * np.log(1 - p)), dtype=np.float64)
    if task == "multiclass":
        p = np.clip(scores[np.arange(len(y)), y.astype(np.intp)], EPS, 1.0)
        return np.asarray(-np.log(p), dtype=np.float64)
    return np.asarray((scores - y) ** 2, dtype=np.float64)


def predicted(h: Heldout, scores: Floats) -> Floats:
    if h.task == "binary":
        return (scores >= h.threshold).astype(np.float64)
    if h.task == "multiclass":
        return np.asarray(np.argmax(scores, axis=1), dtype=np.float64)
    return scores


def primary_score(h: Heldout, scores: Floats) -> float:
    """The task's primary metric (PRIMARY) of SCORES on H's rows, as mlops.evidence computes it for the report."""
    p = evidence.Predictions(h.task, tuple(map(str, range(len(h)))), h.y, np.asarray(scores, dtype=np.float64),
                             h.threshold, h.classes)
    return evidence.point_metrics(p)[PRIMARY[h.task]]


def prior_scores(h: Heldout) -> Floats:
    """What a model that knows only the label distribution predicts for every row."""
    n = len(h)
    if h.task == "binary":
        return np.full(n, float(h.y.mean()))
    if h.task == "multiclass":
        k = max(len(h.classes), int(h.y.max()) + 1)
        freq = np.bincount(h.y.astype(np.intp), minlength=k) / n
        return np.tile(freq, (n, 1))
    return np.full(n, float(h.y.mean()))


def _predict_chunked(predict: Predict, x: NDArray[Any]) -> Floats:
    parts = [np.asarray(predict(x[i:i + CHUNK_ROWS]), dtype=np.float64) for i in range(0, x.shape[0], CHUNK_ROWS)]
    return np.concatenate(parts, axis=0)


# --- permutation importance and attributions ----------------------------------------------------------------------

def _sample(h: Heldout, limit: int, seed: int) -> tuple[NDArray[Any], Floats]:
    if len(h) <= limit:
        return h.x, h.y
    rows = np.sort(np.random.default_rng(seed).choice(len(h), size=limit, replace=False))
    return h.x[rows], h.y[rows]


def permutation_importance(h: Heldout, predict: Predict, settings: CheckSettings) -> list[tuple[str, float, float]]:
    """(feature, mean rise of the mean loss, its std) per input when the input's column is shuffled: every shuffled
    copy stacked into one matrix and predicted in a few batches, seeded."""
    x, y = _sample(h, settings.max_rows, settings.seed)
    n, f = x.shape[0], len(h.features)
    r = settings.repeats
    base = float(row_loss(h.task, y, _predict_chunked(predict, x)).mean())
    rng = np.random.default_rng(settings.seed)
    rises = np.zeros((f, r))
    for j in range(f):  # one input at a time: R shuffled copies of the sample, predicted together
        stacked = np.repeat(x[np.newaxis], r, axis=0)  # (r, n, f)
        for k in range(r):
            stacked[k, :, j] = x[rng.permutation(n), j]
        scores = _predict_chunked(predict, stacked.reshape(r * n, f))
        scores = scores.reshape((r, n, *scores.shape[1:]))
        rises[j] = [row_loss(h.task, y, scores[k]).mean() - base for k in range(r)]
    return [(name, float(rises[j].mean()), float(rises[j].std())) for j, name in enumerate(h.features)]


def useless_features(perm: Sequence[tuple[str, float, float]], settings: CheckSettings) -> tuple[str, ...]:
    """Inputs whose loss rise is within the noise of shuffling (not above 2 standard deviations of the shuffled
    losses: for an input the model cannot use, the unshuffled rows are one more such draw) or under `min_share` of
    the total rise: shuffling them costs the model nothing it can show."""
    total = sum(max(m, 0.0) for _, m, _ in perm)
    out = []
    for name, mean, std in perm:
        if mean <= 2 * std or total <= 0 or mean / total < settings.min_share:
            out.append(name)
    return tuple(out)


def attributions(h: Heldout, perm: Sequence[tuple[str, float, float]], contributions: Contributions | None,
                 settings: CheckSettings) -> tuple[str, tuple[Attribution, ...]]:
    """Global attributions: mean |TreeSHAP contribution| per input when CONTRIBUTIONS is given, else the
    permutation importance (negative rises count as zero); each with its share of the total."""
    if contributions is not None:
        x, _ = _sample(h, settings.max_rows, settings.seed)
        c = np.abs(np.asarray(contributions(x), dtype=np.float64))
        if c.shape != (x.shape[0], len(h.features)):
            raise CheckError(f"the runtime's contributions have shape {c.shape}, expected "
                             f"{(x.shape[0], len(h.features))}")
        values, method = c.mean(axis=0).tolist(), "treeshap"
    else:
        values, method = [max(m, 0.0) for _, m, _ in perm], "permutation"
    total = float(sum(values))
    rows = [Attribution(name, float(v), float(v) / total if total > 0 else 0.0)
            for name, v in zip(h.features, values, strict=True)]
    return method, tuple(sorted(rows, key=lambda a: (-a.importance, a.feature)))


def treeshap(runtime: Any) -> Contributions | None:
    """The TreeSHAP contributions a loaded runtime offers (xgboost `pred_contribs`, lightgbm `pred_contrib`) as
    per-row, per-input absolute values (the bias column dropped, classes summed); None for other runtimes."""
    booster = getattr(runtime, "booster", None)
    name = getattr(runtime, "name", "")
    if booster is None or name not in ("xgboost", "lightgbm"):
        return None
    f = len(runtime.interface.names)

    def contributions(x: NDArray[Any]) -> Floats:
        if name == "xgboost":
            import xgboost as xgb

            dm = xgb.DMatrix(np.asarray(x, dtype=np.float32), feature_names=booster.feature_names,
                             feature_types=booster.feature_types, enable_categorical=True)
            raw = np.asarray(booster.predict(dm, pred_contribs=True), dtype=np.float64)
        else:
            raw = np.asarray(booster.predict(np.asarray(x, dtype=np.float64), pred_contrib=True), dtype=np.float64)
        per_class = raw.reshape(x.shape[0], -1, f + 1)  # (n, classes or 1, inputs + bias)
        return np.asarray(np.abs(per_class[:, :, :f]).sum(axis=1), dtype=np.float64)

    return contributions


# --- slices and groups ----------------------------------------------------------------------------------------------

def _numeric(values: NDArray[Any]) -> Floats | None:
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def slices(values: NDArray[Any], settings: CheckSettings) -> list[tuple[str, NDArray[np.bool_]]]:
    """(label, row mask) of each slice of one column: each value when there are few, else quantile bins of a
    numeric column (a text column with many values is not sliced). Missing values are a slice of their own."""
    num = _numeric(values)
    if num is not None:
        missing = np.isnan(num)
        present = num[~missing]
        distinct = np.unique(present)
        out: list[tuple[str, NDArray[np.bool_]]] = []
        if len(distinct) > settings.max_categories:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, settings.bins + 1)))
            for i, (lo, hi) in enumerate(itertools.pairwise(edges.tolist())):
                last = i == len(edges) - 2
                mask = (num >= lo) & ((num <= hi) if last else (num < hi))
                out.append((f"[{_fmt(lo)}, {_fmt(hi)}{']' if last else ')'}", mask))
        else:
            out = [(_fmt(v), num == v) for v in distinct]
        if missing.any():
            out.append(("missing", missing))
        return out
    text = np.array(["missing" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                     for v in values.tolist()], dtype=object)
    distinct = np.unique(text)
    if len(distinct) > settings.max_categories:
        return []
    return [(str(v), text == v) for v in distinct]


def weak_segments(h: Heldout, scores: Floats, settings: CheckSettings) -> tuple[tuple[Segment, ...], int]:
    """Every single-column slice with at least `min_rows` rows (and not all of them), by the ratio of its mean
    loss to the overall, the worst first (at most `top`); and how many reach `weak_ratio`."""
    loss = row_loss(h.task, h.y, scores)
    overall = float(loss.mean())
    wrong = (predicted(h, scores) != h.y) if h.task != "regression" else None
    found: list[Segment] = []
    for column, values in h.columns.items():
        for label, mask in slices(np.asarray(values), settings):
            rows = int(mask.sum())
            if rows < settings.min_rows or rows == len(h):
                continue
            seg = float(loss[mask].mean())
            found.append(Segment(str(column), label, rows, seg, seg / overall if overall > 0 else math.inf,
                                 float(wrong[mask].mean()) if wrong is not None else None))
    found.sort(key=lambda s: (-s.ratio, s.column, s.value))
    return tuple(found[:settings.top]), sum(1 for s in found if s.ratio >= settings.weak_ratio)


def fairness(h: Heldout, scores: Floats, settings: CheckSettings) -> dict[str, dict[str, float]]:
    """Per sensitive column, the largest gaps between its groups (at least `min_rows` rows each): the rate of
    positive predictions (demographic parity) and the true-positive rate (equal opportunity)."""
    out: dict[str, dict[str, float]] = {}
    pred = predicted(h, scores)
    for column in settings.sensitive:
        if column not in h.columns:
            raise CheckError(f"report.sensitive: column '{column}' is not in the held-out data",
                             hint=f"the data's columns: {', '.join(list(h.columns)[:12])}")
        groups = [m for _, m in slices(np.asarray(h.columns[column]), settings) if m.sum() >= settings.min_rows]
        if len(groups) < 2:
            out[column] = {"groups": float(len(groups))}
            continue
        if h.task == "regression":
            means = [float(scores[m].mean()) for m in groups]
            maes = [float(np.abs(scores[m] - h.y[m]).mean()) for m in groups]
            out[column] = {"demographic_parity_diff": max(means) - min(means), "error_gap": max(maes) - min(maes),
                           "groups": float(len(groups))}
            continue
        classes = [1] if h.task == "binary" else list(range(scores.shape[1]))
        dp = eo = 0.0
        for c in classes:
            rates = [float((pred[m] == c).mean()) for m in groups]
            dp = max(dp, max(rates) - min(rates))
            tprs = [float((pred[m & (h.y == c)] == c).mean()) for m in groups if (m & (h.y == c)).any()]
            if len(tprs) >= 2:
                eo = max(eo, max(tprs) - min(tprs))
        out[column] = {"demographic_parity_diff": dp, "equal_opportunity_diff": eo, "groups": float(len(groups))}
    return out


# --- all of them ----------------------------------------------------------------------------------------------------

def run_checks(h: Heldout, predict: Predict, settings: CheckSettings = CheckSettings(), *,
               contributions: Contributions | None = None, train: Heldout | None = None) -> CheckResult:
    """Every model check of H (and TRAIN for the gap) with PREDICT; CONTRIBUTIONS: TreeSHAP where available."""
    if len(h) == 0:
        raise CheckError("no held-out rows to check the model on")
    if h.x.ndim != 2 or h.x.shape[1] != len(h.features):
        raise CheckError(f"the held-out matrix has shape {h.x.shape}, expected ({len(h)}, {len(h.features)})")
    scores = _predict_chunked(predict, h.x)
    model = primary_score(h, scores)
    baseline = primary_score(h, prior_scores(h))
    train_score = primary_score(train, _predict_chunked(predict, train.x)) if train is not None and len(train) else None
    perm = permutation_importance(h, predict, settings)
    method, attrs = attributions(h, perm, contributions, settings)
    segments, weak = weak_segments(h, scores, settings)
    return CheckResult(
        task=h.task, rows=len(h), primary=PRIMARY[h.task], model_score=model, baseline_score=baseline,
        train_score=train_score, useless=useless_features(perm, settings), permutation=tuple(perm),
        segments=segments, weak=weak, fairness=fairness(h, scores, settings), method=method, attributions=attrs)


# --- what the report shows: the top attribution changes ----------------------------------------------------------

def attribution_shares(doc: Any) -> dict[str, float] | None:
    """feature -> share from a parsed checks.json (None when it has no attributions)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("attributions"), list):
        return None
    out: dict[str, float] = {}
    for a in doc["attributions"]:
        if isinstance(a, Mapping) and isinstance(a.get("feature"), str) and isinstance(a.get("share"), int | float):
            out[a["feature"]] = float(a["share"])
    return out


def attribution_changes(head: Mapping[str, float], base: Mapping[str, float], top: int = 5
                        ) -> list[tuple[str, float, float, float]]:
    """(feature, base share, head share, change) of the TOP largest changes of share (a feature on one side only
    has share 0 on the other), largest first."""
    names = sorted(set(head) | set(base))
    rows = [(n, base.get(n, 0.0), head.get(n, 0.0), head.get(n, 0.0) - base.get(n, 0.0)) for n in names]
    rows = [r for r in rows if abs(r[3]) > 0]
    rows.sort(key=lambda r: (-abs(r[3]), r[0]))
    return rows[:top]

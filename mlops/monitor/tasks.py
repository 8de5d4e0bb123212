"""Monitoring by task: what prediction drift, realised metrics and the label-free estimate mean for a multiclass
classifier and for a regression (a binary classifier's are accumulators.ScoreAcc and check.py's, unchanged).

- multiclass: the model's answer per row is a probability per class (in the profile's `classes` order). Prediction
  drift: the predicted-class mix (chi-square, Jensen–Shannon) and each class's probability histogram on the
  profile's [0, 1] cells (KS, normed Wasserstein, PSI), all in the window's one Benjamini–Hochberg family.
  Realised, once labels arrive (class names; a number names the class of that text): accuracy, macro-F1 (over the
  classes present in the labels or the predictions, as scikit-learn's `f1_score(average="macro")`) and log loss
  (each row's probabilities normalised to sum 1, as scikit-learn's `log_loss`). Estimated before labels: the
  expected accuracy, the mean of each row's top probability (an estimate: right while the probabilities are
  calibrated and P(label | inputs) holds).
- regression: the answer is a number. Prediction drift: the predicted value on the profile's grid (the same test
  and effect sizes as a numeric feature's). Realised: RMSE, MAE and R². No label-free estimate: a regression's
  error cannot be read from its outputs alone, and the report says so.

Every accumulator here is counts and sums of a fixed size, so two of them merge by adding (one process, several,
or a Dask cluster give the same figures; sums of floats to the last bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.monitor.accumulators import FeatureAcc
from mlops.monitor.result import Alarm, Plot, PredictionPart, PredictionReport
from mlops.monitor.stats import chi2_homogeneity, edge_cdf, jensen_shannon, ks_pvalue, psi, shares, wasserstein_grid
from mlops.profile import PREDICTION_CELLS, quantile_bins, score_cells

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from mlops.config import MonitorParams

# monitor.max_drop names a binary classifier's metrics; a multiclass one's decay reads the same limits.
DROP_OF = {"accuracy": "accuracy", "macro_f1": "f1"}
LOG_LOSS_EPS = float.fromhex("0x1p-52")  # scikit-learn's clip of log loss (float64 machine epsilon)


def task_of(profile: Mapping[str, Any]) -> str:
    """binary (a profile without `task`, as before tasks existed), multiclass or regression."""
    return str(profile.get("task") or "binary")


def classes_of(profile: Mapping[str, Any]) -> list[str]:
    return [str(c) for c in profile.get("classes") or ()]


# --- labels ------------------------------------------------------------------------------------------------------


def _class_name(v: Any) -> str | None:
    """A label as the text of a class name: a whole number as its digits (1, 1.0 and "1" name class "1")."""
    if v is None or isinstance(v, bool):
        return None if v is None else str(v).lower()
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, int):
        return str(v)
    text = str(v).strip()
    return text or None


def label_reader(profile: Mapping[str, Any]) -> tuple[Callable[[Any], float | None], str] | None:
    """How one label value of PROFILE's task is read (None: unreadable), and what a readable one is; None for a
    binary task (sources.label_value's 1/0)."""
    task = task_of(profile)
    if task == "multiclass":
        lookup = {c: k for k, c in enumerate(classes_of(profile))}

        def cls(v: Any) -> float | None:
            name = _class_name(v)
            k = lookup.get(name) if name is not None else None
            return None if k is None else float(k)

        return cls, f"not one of the classes {', '.join(classes_of(profile))}"
    if task == "regression":
        def number(v: Any) -> float | None:
            if isinstance(v, bool) or v is None:
                return None
            try:
                x = float(v)
            except (TypeError, ValueError):
                return None
            return x if math.isfinite(x) else None

        return number, "not a finite number"
    return None


def read_task_labels(path: Path, profile: Mapping[str, Any], label: str | None,
                     positive: str | None) -> dict[tuple[str, int | None], Any]:
    """The labels CSV (sources.read_labels) read for PROFILE's task: 1/0 (binary), a class index (multiclass),
    a number (regression)."""
    from mlops.monitor.sources import read_labels

    reader = label_reader(profile)
    if reader is None:
        return read_labels(path, label, positive)
    return read_labels(path, label, positive, value=reader[0], expected=reader[1])


def label_values(values: Any, profile: Mapping[str, Any]) -> NDArray[np.float64]:
    """A file's label column read for a multiclass or regression task: per row the class index or the number,
    NaN when unknown."""
    import numpy as np

    reader = label_reader(profile)
    assert reader is not None  # tasks other than binary only
    read = reader[0]
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    cache: dict[Any, float | None] = {}
    out = np.empty(len(items), dtype=np.float64)
    for i, v in enumerate(items):
        try:
            got = cache[v] if v in cache else cache.setdefault(v, read(v))
        except TypeError:  # unhashable
            got = read(v)
        out[i] = np.nan if got is None else got
    return out


def joined_labels(labels: Mapping[Any, Any], ids: Sequence[Any], rows: Sequence[Any] | None,
                  n: int) -> NDArray[np.float64]:
    """Labels joined to rows by (request id, row), NaN where none (as Accumulator._labels does for 1/0)."""
    import numpy as np

    out = np.full(n, np.nan)
    for i, rid in enumerate(ids):
        row = rows[i] if rows is not None else None
        v = labels.get((rid, row))
        if v is None:
            v = labels.get((rid, None))
        if v is not None:
            out[i] = float(v)
    return out


# --- the model's answers -----------------------------------------------------------------------------------------


def answers(raw: Any, n: int, task: str, k: int) -> NDArray[np.float64]:
    """The model's answers of N rows for the task: multiclass (n, k) probabilities, regression (n,) values; a row
    that is not one (the wrong length, not numbers, NaN/Inf, a probability outside [0, 1]) is all NaN."""
    import numpy as np

    if task == "multiclass":
        try:
            p = np.array(raw.tolist() if hasattr(raw, "tolist") else raw, dtype=np.float64)
        except (TypeError, ValueError):
            p = np.full((n, k), np.nan)
            for i, row in enumerate(raw.tolist() if hasattr(raw, "tolist") else raw):
                try:
                    r = np.asarray(row, dtype=np.float64)
                except (TypeError, ValueError):
                    continue
                if r.shape == (k,):
                    p[i] = r
        if p.shape != (n, k):
            return np.full((n, k), np.nan)
        bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1)
        p[bad] = np.nan
        return p
    if hasattr(raw, "dtype") and not isinstance(raw, np.ndarray):  # a pandas Series (a file's output column)
        import pandas as pd

        v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            v = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError):
            v = np.array([x if type(x) in (int, float) else None for x in raw], dtype=np.float64)
    v = v.reshape(-1) if v.size == n else np.full(n, np.nan)
    v[~np.isfinite(v)] = np.nan
    return v


def valid_rows(values: NDArray[np.float64]) -> NDArray[np.bool_]:
    import numpy as np

    return ~np.isnan(values).any(axis=1) if values.ndim == 2 else ~np.isnan(values)


# --- accumulators ------------------------------------------------------------------------------------------------


class MulticlassAcc:
    """Predicted classes, each class's probability histogram, the top probabilities and, for labelled rows, the
    confusion matrix and the log loss."""

    def __init__(self, k: int) -> None:
        import numpy as np

        self.k = k
        self.n = 0
        self.total = 0.0                  # sum of top probabilities (expected accuracy = total / n)
        self.predicted = np.zeros(k, dtype=np.int64)
        self.hist = np.zeros((k, PREDICTION_CELLS), dtype=np.int64)
        self.prob_sum = np.zeros(k)
        self.labelled = 0
        self.confusion = np.zeros((k, k), dtype=np.int64)   # [true class, predicted class]
        self.log_loss = 0.0

    def add(self, p: NDArray[np.float64], y: NDArray[np.float64] | None) -> None:
        import numpy as np

        m = int(p.shape[0])
        if m == 0:
            return
        k = self.k
        pred = np.argmax(p, axis=1)
        self.n += m
        self.total += float(p.max(axis=1).sum())
        self.predicted += np.bincount(pred, minlength=k)
        cells = score_cells(p, PREDICTION_CELLS) + np.arange(k) * PREDICTION_CELLS
        self.hist += np.bincount(cells.ravel(), minlength=k * PREDICTION_CELLS).reshape(k, PREDICTION_CELLS)
        self.prob_sum += p.sum(axis=0)
        if y is not None:
            known = ~np.isnan(y)
            if known.any():
                yk = y[known].astype(np.int64)
                pk = p[known]
                self.labelled += int(yk.size)
                self.confusion += np.bincount(yk * k + pred[known], minlength=k * k).reshape(k, k)
                # scikit-learn's order: clip every probability, then normalise each row to sum 1
                clipped = np.clip(pk, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
                picked = clipped[np.arange(yk.size), yk] / clipped.sum(axis=1)
                self.log_loss += float(-np.log(picked).sum())

    def merge(self, other: MulticlassAcc) -> None:
        self.n += other.n
        self.total += other.total
        self.predicted += other.predicted
        self.hist += other.hist
        self.prob_sum += other.prob_sum
        self.labelled += other.labelled
        self.confusion += other.confusion
        self.log_loss += other.log_loss

    def estimated(self) -> dict[str, float | None]:
        return {"accuracy": self.total / self.n if self.n else None}

    def realised(self) -> dict[str, float | None] | None:
        import numpy as np

        if self.labelled == 0:
            return None
        c = self.confusion.astype(np.float64)
        tp = np.diag(c)
        fp = c.sum(axis=0) - tp
        fn = c.sum(axis=1) - tp
        present = (c.sum(axis=0) + c.sum(axis=1)) > 0
        denom = 2 * tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)
        return {"accuracy": float(tp.sum()) / self.labelled, "macro_f1": float(f1[present].mean()),
                "log_loss": self.log_loss / self.labelled}


class RegressionAcc:
    """The predicted values on the profile's grid (a numeric feature's counts) and, for labelled rows, the sums of
    the errors."""

    def __init__(self, sketch: Mapping[str, Any]) -> None:
        self.values = FeatureAcc(sketch)
        self.labelled = 0
        self.sq_err = 0.0
        self.abs_err = 0.0
        self.y_sum = 0.0
        self.y_sq = 0.0

    @property
    def n(self) -> int:
        return self.values.valid

    def add(self, v: NDArray[np.float64], y: NDArray[np.float64] | None) -> None:
        import numpy as np

        if v.size == 0:
            return
        self.values.add(v, int(v.size))
        if y is not None:
            known = ~np.isnan(y)
            if known.any():
                err = v[known] - y[known]
                self.labelled += int(known.sum())
                self.sq_err += float((err * err).sum())
                self.abs_err += float(np.abs(err).sum())
                self.y_sum += float(y[known].sum())
                self.y_sq += float((y[known] ** 2).sum())

    def merge(self, other: RegressionAcc) -> None:
        self.values.merge(other.values)
        self.labelled += other.labelled
        self.sq_err += other.sq_err
        self.abs_err += other.abs_err
        self.y_sum += other.y_sum
        self.y_sq += other.y_sq

    def estimated(self) -> dict[str, float | None]:
        return {}

    def realised(self) -> dict[str, float | None] | None:
        if self.labelled == 0:
            return None
        n = self.labelled
        ss_tot = self.y_sq - self.y_sum * self.y_sum / n
        return {"rmse": math.sqrt(self.sq_err / n), "mae": self.abs_err / n,
                "r2": 1.0 - self.sq_err / ss_tot if ss_tot > 1e-12 * max(self.y_sq, 1.0) else None}


TaskAcc = MulticlassAcc | RegressionAcc


def task_acc(profile: Mapping[str, Any]) -> TaskAcc | None:
    """A fresh accumulator of PROFILE's task (None for binary: ScoreAcc)."""
    task = task_of(profile)
    if task == "multiclass":
        return MulticlassAcc(len(classes_of(profile)))
    if task == "regression":
        return RegressionAcc(profile["prediction"])
    return None


# --- prediction drift --------------------------------------------------------------------------------------------


def _histogram_part(subject: str, ref: Mapping[str, Any], cur: NDArray[np.int64], mean: float | None) -> PredictionPart:
    """One class's probability histogram (the profile's [0, 1] cells) against the window's: KS, normed W1, PSI."""
    import numpy as np

    ref_c = np.asarray(ref["counts"], dtype=np.float64)
    cur_c = cur.astype(np.float64)
    n_ref, n_cur = float(ref_c.sum()), float(cur_c.sum())
    cells = len(ref_c)
    f_ref, f_cur = edge_cdf(0.0, ref_c, n_ref), edge_cdf(0.0, cur_c, n_cur)
    d = float(np.abs(f_ref - f_cur).max())
    width = 1.0 / cells
    std = float(ref.get("std") or 0.0)
    w = wasserstein_grid(f_ref, f_cur, width, (0.0, 0.0, 0.0, 0.0)) / (std if std > 0 else width)
    bins = quantile_bins(ref_c)
    edges = np.asarray(bins, dtype=np.int64)
    p_psi = psi(np.add.reduceat(ref_c, edges[:-1]), np.add.reduceat(cur_c, edges[:-1]))
    group = max(1, cells // 25)
    starts = np.arange(0, cells, group)
    plot = Plot("hist", (), tuple([float(k * width) for k in starts] + [1.0]),
                tuple(float(v) for v in shares(np.add.reduceat(ref_c, starts))),
                tuple(float(v) for v in shares(np.add.reduceat(cur_c, starts))))
    return PredictionPart(subject=subject, test="ks", statistic=d, p_value=ks_pvalue(d, n_ref, n_cur),
                          q_value=None, wasserstein=w, psi=p_psi, jensen_shannon=None, mean=mean,
                          reference_mean=ref.get("mean"), drifted=False, plot=plot)


def prediction(acc: TaskAcc, profile: Mapping[str, Any], rows: int) -> PredictionReport:
    """The prediction report of a multiclass or regression window before false-alarm control (its parts' p-values
    join the window's family; `decide` applies the rule)."""
    import numpy as np

    ref = profile["prediction"]
    if isinstance(acc, RegressionAcc):
        from mlops.monitor.check import feature_figures, feature_plot

        f = acc.values
        mean = f.total / f.valid if f.valid else None
        if not f.valid:
            return PredictionReport(rows=rows, scored=0, mean=None, reference_mean=ref.get("mean"), statistic=None,
                                    p_value=None, q_value=None, wasserstein=None, psi=None, drifted=False,
                                    task="regression", test="ks")
        t = feature_figures(f, ref)
        part = PredictionPart(subject="value", test=t.test, statistic=t.statistic, p_value=t.p, q_value=None,
                              wasserstein=t.wasserstein, psi=t.psi, jensen_shannon=t.js, mean=mean,
                              reference_mean=ref.get("mean"), drifted=False, plot=feature_plot(f, ref))
        return _headline(rows, acc.n, "regression", (part,))
    names = classes_of(profile)
    if acc.n == 0:
        return PredictionReport(rows=rows, scored=0, mean=None, reference_mean=None, statistic=None, p_value=None,
                                q_value=None, wasserstein=None, psi=None, drifted=False, task="multiclass",
                                test="chi2")
    ref_counts = np.asarray(ref["labels"]["counts"], dtype=np.float64)
    stat, p = chi2_homogeneity(ref_counts, acc.predicted)
    mix = PredictionPart(subject="predicted class", test="chi2", statistic=stat, p_value=p, q_value=None,
                         wasserstein=None, psi=psi(ref_counts, acc.predicted),
                         jensen_shannon=jensen_shannon(ref_counts, acc.predicted), mean=None, reference_mean=None,
                         drifted=False, plot=Plot("bars", tuple(names), (), tuple(float(v) for v in shares(ref_counts)),
                                                  tuple(float(v) for v in shares(acc.predicted))))
    parts = [mix]
    for j, c in enumerate(names):
        parts.append(_histogram_part(f"P({c})", ref["probabilities"][c], acc.hist[j], float(acc.prob_sum[j]) / acc.n))
    return _headline(rows, acc.n, "multiclass", tuple(parts))


def _headline(rows: int, scored: int, task: str, parts: tuple[PredictionPart, ...]) -> PredictionReport:
    """The report's own figures are its first part's (the predicted value; the predicted-class mix)."""
    h = parts[0]
    return PredictionReport(rows=rows, scored=scored, mean=h.mean, reference_mean=h.reference_mean,
                            statistic=h.statistic, p_value=h.p_value, q_value=None, wasserstein=h.wasserstein,
                            psi=h.psi, drifted=False, plot=h.plot, task=task, test=h.test,
                            jensen_shannon=h.jensen_shannon, parts=parts)


def family(report: PredictionReport) -> list[tuple[str, float]]:
    """(subject, p-value) of each tested part: members of the window's Benjamini–Hochberg family."""
    return [(f"prediction:{p.subject}", p.p_value) for p in report.parts
            if p.p_value is not None and p.test != "none"]


def decide(report: PredictionReport, q: Mapping[str, float], rate: float,
           params: MonitorParams) -> tuple[PredictionReport, list[Alarm]]:
    """The drift rule on each part (significant after BH at RATE and a large enough effect), one alarm naming the
    parts that drifted."""
    import dataclasses

    parts = []
    for p in report.parts:
        qv = q.get(f"prediction:{p.subject}")
        if p.test == "ks":
            big = (p.wasserstein or 0.0) >= params.wasserstein or (p.psi or 0.0) >= params.psi
        else:
            big = (p.jensen_shannon or 0.0) >= params.jensen_shannon
        parts.append(dataclasses.replace(p, q_value=qv, drifted=qv is not None and qv <= rate and big))
    drifted = [p for p in parts if p.drifted]
    head = parts[0] if parts else None
    out = dataclasses.replace(report, parts=tuple(parts), drifted=bool(drifted),
                              q_value=head.q_value if head is not None else None)
    alarms: list[Alarm] = []
    if drifted and params.prediction_drift:
        first = drifted[0]
        what = "; ".join(_describe(p) for p in drifted[:4])
        value, limit = (first.wasserstein, params.wasserstein) if first.test == "ks" else \
            (first.jensen_shannon, params.jensen_shannon)
        noun = "predicted values" if report.task == "regression" else "predictions"
        alarms.append(Alarm("prediction", "prediction", f"the model's {noun} drifted: {what}", value, limit))
    return out, alarms


def _describe(p: PredictionPart) -> str:
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    if p.test == "ks":
        return (f"{p.subject} mean {f(p.mean)} (reference {f(p.reference_mean)}), normed Wasserstein "
                f"{f(p.wasserstein)}, PSI {f(p.psi)} (q={p.q_value:.2g})")
    return f"{p.subject} mix, Jensen–Shannon {f(p.jensen_shannon)} (q={p.q_value:.2g})"


# --- decay -------------------------------------------------------------------------------------------------------


def decay(task: str, reference: Mapping[str, Any], estimate_on_reference: Mapping[str, Any],
          estimated: Mapping[str, float | None], realised: Mapping[str, float | None] | None, labelled: int,
          params: MonitorParams, notes: list[str]) -> list[Alarm]:
    """A multiclass metric more than its max_drop below the reference's (accuracy: `max_drop.accuracy`, macro-F1:
    `max_drop.f1`): realised once enough rows have labels, else the estimated accuracy against the same estimate
    on the reference rows. A realised error (regression: RMSE, MAE; multiclass: log loss) more than its
    `max_increase` (relative) above the reference's, once enough rows have labels: there is no estimate of those."""
    use_realised = realised is not None and labelled >= params.min_labelled
    if realised is not None and not use_realised:
        notes.append(f"only {labelled} labelled rows: realised metrics shown, "
                     f"{'the estimate decides' if task == 'multiclass' else 'no decay check'} "
                     f"(min_labelled={params.min_labelled})")
    alarms = _rises(reference, realised, params) if use_realised else []
    if task == "regression":
        if realised is None:
            notes.append("regression: no estimate of the error before labels (a regression's error cannot be read "
                         "from its outputs); realised RMSE/MAE once labels arrive")
        elif use_realised and not any(k in params.max_increase for k in ("rmse", "mae")):
            notes.append("regression: realised RMSE/MAE are shown beside the reference's; no decay threshold "
                         "applies to them (set monitor.max_increase, e.g. {rmse: 0.1}, to alarm on a rise)")
        return alarms
    drops = {str(k): v for k, v in params.max_drop.items()}
    for metric, key in DROP_OF.items():
        drop = drops.get(key)
        if drop is None:
            continue
        if use_realised:
            basis, value, ref_v = "realised", (realised or {}).get(metric), reference.get(metric)
        else:
            basis, value = "estimated", estimated.get(metric)
            ref_v = estimate_on_reference.get(metric)
            if ref_v is None:
                ref_v = reference.get(metric)
        if ref_v is None or value is None:
            continue
        if float(ref_v) - value > drop:
            against = "the reference's" if basis == "realised" else "its estimate on the reference rows,"
            alarms.append(Alarm("decay", metric, f"{basis} {metric} {value:.3f} is {float(ref_v) - value:.3f} "
                                f"below {against} {float(ref_v):.3f} (at most {drop} allowed)", value,
                                float(ref_v) - drop))
    return alarms


def _rises(reference: Mapping[str, Any], realised: Mapping[str, float | None] | None,
           params: MonitorParams) -> list[Alarm]:
    """An alarm per realised error metric more than its `max_increase` above the reference's (relative: 0.1 is
    10% above); a metric the reference or the window lacks is not judged."""
    alarms = []
    for metric, rise in params.max_increase.items():
        value, ref_v = (realised or {}).get(metric), reference.get(metric)
        if value is None or ref_v is None or isinstance(ref_v, list):
            continue
        limit = float(ref_v) * (1.0 + rise)
        if value > limit:
            above = f"{(value - float(ref_v)) / float(ref_v):.1%} above" if float(ref_v) > 0 else "above"
            alarms.append(Alarm("decay", metric, f"realised {metric} {value:.4g} is {above} the reference's "
                                f"{float(ref_v):.4g} (at most {rise:.0%} allowed)", value, limit))
    return alarms

"""From the accumulated window to the findings: tests, effect sizes, false-alarm control, decay, alarms.

Drift rule, per feature: the two-sample test (KS for numeric features with many values, chi-square for categories
and numeric features with few values) is significant after Benjamini–Hochberg across all of the window's tests
at `false_alarm_rate` (half of it for the per-segment family when segments are checked: a clean window raises any
drift alarm with at most about that probability), AND the effect is at least the configured size: normed
Wasserstein or PSI for numeric features, Jensen–Shannon distance otherwise. The test guards small windows from
noise; the effect size guards large ones from shifts too small to matter.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops.config import MonitorParams
from mlops.monitor import tasks
from mlops.monitor.accumulators import Accumulator, FeatureAcc, ScoreAcc, Scorer
from mlops.monitor.result import (
    Alarm,
    FeatureReport,
    MonitorResult,
    Performance,
    Plot,
    PredictionReport,
    SegmentFeature,
    SegmentReport,
    Staleness,
    WindowInfo,
    WindowPerformance,
)
from mlops.monitor.sources import Chunk, LogRange, ReadStats, log_files, log_ranges, read_logs, read_record_chunks
from mlops.monitor.stats import (
    benjamini_hochberg,
    chi2_homogeneity,
    edge_cdf,
    increase_pvalue,
    jensen_shannon,
    ks_pvalue,
    psi,
    shares,
    wasserstein_grid,
)
from mlops.profile import auc_from_hist, confusion_metrics, quantile_bins
from mlops.progress import Progress, silent

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DISPLAY_BINS = 30
_MEASURES = {"psi": "PSI", "jensen_shannon": "Jensen–Shannon"}
PARALLEL_BYTES = 64 * 2**20  # request logs smaller than this are read in one process (a fork costs more)


def accumulate(profile: Mapping[str, Any], chunks: Iterable[Chunk], *, window: str = "day",
               labels: Mapping[Any, int] | None = None, scorer: Scorer | None = None,
               progress: Progress = silent) -> Accumulator:
    acc = Accumulator(profile, window=window, labels=labels, scorer=scorer)
    for chunk in chunks:
        acc.add(chunk)
        if acc.rows and acc.rows % 500_000 < chunk.rows:
            progress(f"monitor: {acc.rows:,} rows read")
    return acc


_WORK: dict[str, Any] = {}


def _read_share(part: Sequence[LogRange]) -> tuple[Accumulator, ReadStats]:
    """One process's share of the request logs (the arguments came with the fork, see accumulate_logs)."""
    w = _WORK
    read = ReadStats()
    chunks = read_logs(None, w["names"], w["output"], since=w["since"], roles=w["roles"], chunk_rows=w["chunk_rows"],
                       keep_ids=w["labels"] is not None, stats=read, ranges=part, categories=w["categories"])
    return accumulate(w["profile"], chunks, window=w["window"], labels=w["labels"]), read


def accumulate_logs(profile: Mapping[str, Any], directory: Path, params: MonitorParams, *, since: str | None,
                    labels: Mapping[Any, int] | None = None, jobs: int = 0,
                    progress: Progress = silent) -> tuple[Accumulator, ReadStats]:
    """The request logs in DIRECTORY, read in JOBS processes (0: one per core, up to 4, when the logs are large
    enough to pay for it), each counting its share of the bytes; their accumulators merge by adding."""
    iface = profile["interface"]
    names = [str(f["name"]) for f in iface["features"]]
    output = str((iface.get("output") or {}).get("name") or "probability")
    categories = {str(f["name"]): list(f["categories"]) for f in iface["features"] if f["type"] == "category"}
    files = log_files(directory)
    total = sum(p.stat().st_size for p in files)
    if jobs <= 0:
        jobs = min(os.cpu_count() or 1, 4) if total >= PARALLEL_BYTES else 1
    if jobs > 1 and "fork" not in multiprocessing.get_all_start_methods():
        jobs = 1  # the workers inherit the profile and the labels by fork; without it, one process
    if jobs == 1:
        read = ReadStats()
        chunks = read_logs(directory, names, output, since=since, roles=params.roles, chunk_rows=params.chunk_rows,
                           keep_ids=labels is not None, stats=read, categories=categories)
        return accumulate(profile, chunks, window=params.window, labels=labels, progress=progress), read
    parts = log_ranges(files, jobs)
    progress(f"monitor: reading {total / 2**20:,.0f} MiB of request logs in {len(parts)} processes")
    _WORK.update(profile=profile, names=names, output=output, since=since, roles=params.roles,
                 chunk_rows=params.chunk_rows, window=params.window, labels=labels, categories=categories)
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(len(parts)) as pool:
            results = pool.map(_read_share, parts, chunksize=1)
    finally:
        _WORK.clear()
    acc, read = results[0]
    acc.labels = labels
    for other_acc, other_read in results[1:]:
        acc.merge(other_acc)
        read.merge(other_read)
    return acc, read


# --- on a Dask cluster: the same accumulators, one task per partition, merged by adding ------------------------

DASK_PART_BYTES = 64 * 2**20  # request logs are cut into shares of about this size (at least two per worker)


def _log_task(profile: Mapping[str, Any], part: Sequence[LogRange], settings: Mapping[str, Any],
              labels: Mapping[Any, int] | None) -> tuple[Accumulator, ReadStats]:
    read = ReadStats()
    chunks = read_logs(None, settings["names"], settings["output"], since=settings["since"],
                       roles=settings["roles"], chunk_rows=settings["chunk_rows"], keep_ids=labels is not None,
                       stats=read, ranges=part, categories=settings["categories"])
    return accumulate(profile, chunks, window=settings["window"], labels=labels), read


def _file_task(profile: Mapping[str, Any], path: Path, settings: Mapping[str, Any],
               labels: Mapping[Any, int] | None, scorer: Scorer | None) -> tuple[Accumulator, ReadStats]:
    read = ReadStats()
    chunks = read_record_chunks(path, settings["names"], settings["output"], settings["label"],
                                categorical=list(settings["categories"]), chunk_rows=settings["chunk_rows"], stats=read)
    return accumulate(profile, chunks, window=settings["window"], labels=labels, scorer=scorer), read


def _merge_task(a: tuple[Accumulator, ReadStats], b: tuple[Accumulator, ReadStats]) -> tuple[Accumulator, ReadStats]:
    import pickle

    # A copy: Dask may hold A for another attempt of this task, and merge adds into its left side.
    acc, read = pickle.loads(pickle.dumps(a))  # noqa: S301 - our own object, from our own task
    acc.merge(b[0])
    read.merge(b[1])
    return acc, read


def accumulate_dask(client: Any, profile: Mapping[str, Any], params: MonitorParams, *, log_dir: Path | None = None,
                    files: Sequence[Path] = (), since: str | None = None, labels: Mapping[Any, int] | None = None,
                    scorer: Scorer | None = None, progress: Progress = silent) -> tuple[Accumulator, ReadStats]:
    """The window's accumulator, built on the Dask cluster of CLIENT (a distributed.Client): the request logs in
    LOG_DIR cut into byte ranges, or FILES one task each; the partial accumulators are merged pairwise in a tree
    on the workers. Counts merge exactly; sums of floats may differ from one process's in the last bits."""
    iface = profile["interface"]
    output = iface.get("output") or {}
    settings = {"names": [str(f["name"]) for f in iface["features"]],
                "output": str(output.get("name") or "probability"), "label": output.get("label"),
                "categories": {str(f["name"]): list(f["categories"]) for f in iface["features"]
                               if f["type"] == "category"},
                "since": since, "roles": params.roles, "chunk_rows": params.chunk_rows, "window": params.window}
    shipped_profile = client.scatter(profile, broadcast=True, hash=False)
    shipped_labels = client.scatter(labels, broadcast=True, hash=False) if labels is not None else None
    if log_dir is not None:
        logs = log_files(log_dir)
        total = sum(p.stat().st_size for p in logs)
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        parts = log_ranges(logs, max(2 * workers, min(256, -(-total // DASK_PART_BYTES))))
        futures = [client.submit(_log_task, shipped_profile, part, settings, shipped_labels, pure=False)
                   for part in parts]
    else:
        futures = [client.submit(_file_task, shipped_profile, path, settings, shipped_labels, scorer, pure=False)
                   for path in files]
    if not futures:
        return Accumulator(profile, window=params.window, labels=labels, scorer=scorer), ReadStats()
    progress(f"monitor: {len(futures)} partitions on the Dask cluster at {client.scheduler.address}")
    while len(futures) > 1:
        merged = [client.submit(_merge_task, futures[i], futures[i + 1], pure=False)
                  for i in range(0, len(futures) - 1, 2)]
        futures = merged + ([futures[-1]] if len(futures) % 2 else [])
    acc, read = futures[0].result()
    acc.labels, acc.scorer = labels, scorer
    return acc, read


# --- per-feature tests -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Figures:
    """One feature's test and effect sizes, before false-alarm control."""

    test: Literal["ks", "chi2", "none"] = "none"
    statistic: float | None = None
    p: float = 1.0
    wasserstein: float | None = None
    psi: float | None = None
    js: float | None = None


def _figures(acc: FeatureAcc, sketch: Mapping[str, Any]) -> _Figures:
    import numpy as np

    n_cur = acc.valid
    ref_counts = np.asarray(sketch["counts"], dtype=np.float64)
    if sketch["kind"] == "categorical":
        if not n_cur:
            return _Figures()
        stat, p = chi2_homogeneity(ref_counts, acc.counts)
        return _Figures("chi2", stat, p, None, psi(ref_counts, acc.counts), jensen_shannon(ref_counts, acc.counts))
    rb, ra = sketch["below"], sketch["above"]
    n_ref = float(ref_counts.sum() + rb[0] + ra[0])
    if not n_cur or n_ref <= 0:
        return _Figures()
    cur_counts = acc.counts.astype(np.float64)
    p_s_i = psi(_coarse(ref_counts, rb[0], ra[0], sketch["bins"]),
                _coarse(cur_counts, acc.below[0], acc.above[0], sketch["bins"]))
    if sketch.get("discrete"):
        # Few values: compared as categories, the values outside the reference's range as two more.
        r = np.concatenate(([rb[0]], ref_counts, [ra[0]]))
        c = np.concatenate(([acc.below[0]], cur_counts, [acc.above[0]]))
        stat, p = chi2_homogeneity(r, c)
        return _Figures("chi2", stat, p, None, p_s_i, jensen_shannon(r, c))
    grid = sketch["grid"]
    width = (float(grid["hi"]) - float(grid["lo"])) / int(grid["cells"])
    f_ref = edge_cdf(float(rb[0]), ref_counts, n_ref)
    f_cur = edge_cdf(float(acc.below[0]), cur_counts, float(n_cur))
    d = float(np.abs(f_ref - f_cur).max())
    w1 = wasserstein_grid(f_ref, f_cur, width, (float(rb[1] or 0.0) / n_ref, acc.below[1] / n_cur,
                                                float(ra[1] or 0.0) / n_ref, acc.above[1] / n_cur))
    std = float(sketch.get("std") or 0.0)
    return _Figures("ks", d, ks_pvalue(d, n_ref, float(n_cur)), w1 / (std if std > 0 else width), p_s_i, None)


feature_figures = _figures  # the predicted value of a regression is tested as a numeric feature (mlops.monitor.tasks)


def _coarse(counts: NDArray[Any], below: float, above: float, bins: Sequence[int]) -> NDArray[np.float64]:
    """Grid cells summed into the PSI bins, the tails into the outer ones."""
    import numpy as np

    edges = np.asarray(bins, dtype=np.int64)
    out = np.add.reduceat(np.asarray(counts, dtype=np.float64), edges[:-1]) if len(counts) else np.zeros(1)
    out = out.astype(np.float64)
    out[0] += below
    out[-1] += above
    return out


def _plot(acc: FeatureAcc, sketch: Mapping[str, Any]) -> Plot:
    import numpy as np

    if sketch["kind"] == "categorical":
        labels = [str(c) for c in sketch["categories"]]
        ref = list(np.asarray(sketch["counts"], dtype=np.float64))
        cur = list(acc.counts.astype(np.float64))
        if acc.unseen:
            labels.append("(unseen)")
            ref.append(0.0)
            cur.append(float(acc.unseen))
        if acc.missing or sketch["missing"]:
            labels.append("(missing)")
            ref.append(float(sketch["missing"]))
            cur.append(float(acc.missing))
        return Plot("bars", tuple(labels), (), tuple(float(v) for v in shares(ref)),
                    tuple(float(v) for v in shares(cur)))
    grid = sketch["grid"]
    lo, hi, cells = float(grid["lo"]), float(grid["hi"]), int(grid["cells"])
    ref_c = np.asarray(sketch["counts"], dtype=np.float64)
    cur_c = acc.counts.astype(np.float64)
    if sketch.get("discrete"):
        labels = []
        for k in range(cells):
            v = lo + 0.5 + k
            labels.append(str(int(v)) if v == int(v) else f"{v:g}")
        ref_l, cur_l = [float(v) for v in ref_c], [float(v) for v in cur_c]
        rb, ra = sketch["below"][0], sketch["above"][0]
        if acc.below[0] or rb:
            labels.insert(0, f"< {labels[0]}")
            ref_l.insert(0, float(rb))
            cur_l.insert(0, float(acc.below[0]))
        if acc.above[0] or ra:
            labels.append(f"> {labels[-1]}")
            ref_l.append(float(ra))
            cur_l.append(float(acc.above[0]))
        return Plot("bars", tuple(labels), (), tuple(float(v) for v in shares(ref_l)),
                    tuple(float(v) for v in shares(cur_l)))
    group = max(1, math.ceil(cells / DISPLAY_BINS))
    starts = np.arange(0, cells, group)
    ref_h = np.add.reduceat(ref_c, starts)
    cur_h = np.add.reduceat(cur_c, starts)
    width = (hi - lo) / cells
    edges = [lo + s * width for s in starts] + [hi]
    rb, ra = float(sketch["below"][0]), float(sketch["above"][0])
    below_n, above_n = float(acc.below[0]), float(acc.above[0])
    if below_n or rb:
        reach = max(acc.below[1] / below_n if below_n else 0.0, float(sketch["below"][1] or 0) / rb if rb else 0.0)
        edges.insert(0, lo - max(2 * reach, width * group))
        ref_h = np.concatenate(([rb], ref_h))
        cur_h = np.concatenate(([below_n], cur_h))
    if above_n or ra:
        reach = max(acc.above[1] / above_n if above_n else 0.0, float(sketch["above"][1] or 0) / ra if ra else 0.0)
        edges.append(hi + max(2 * reach, width * group))
        ref_h = np.concatenate((ref_h, [ra]))
        cur_h = np.concatenate((cur_h, [above_n]))
    return Plot("hist", (), tuple(float(e) for e in edges), tuple(float(v) for v in shares(ref_h)),
                tuple(float(v) for v in shares(cur_h)))


feature_plot = _plot


# --- scores ------------------------------------------------------------------------------------------------------


def estimated(acc: ScoreAcc) -> dict[str, float | None]:
    if acc.n == 0:
        return {"roc_auc": None, "accuracy": None, "f1": None, "precision": None, "recall": None}
    tp, fp, fn, tn = (float(v) for v in acc.expected)
    return {"roc_auc": auc_from_hist(acc.pos_w, acc.neg_w, acc.self_pairs), **confusion_metrics(tp, fp, fn, tn)}


def realised(acc: ScoreAcc) -> dict[str, float | None] | None:
    if acc.labelled == 0:
        return None
    tp, fp, fn, tn = (float(v) for v in acc.confusion)
    return {"roc_auc": auc_from_hist(acc.pos, acc.neg), **confusion_metrics(tp, fp, fn, tn),
            "positive_rate": (tp + fn) / acc.labelled}


def _prediction(acc: Accumulator, profile: Mapping[str, Any]) -> tuple[PredictionReport | None, float]:
    import numpy as np

    ref = profile.get("prediction")
    s = acc.scores
    if not ref or s.n == 0:
        return (PredictionReport(rows=acc.rows, scored=s.n, mean=None, reference_mean=(ref or {}).get("mean"),
                                 statistic=None, p_value=None, q_value=None, wasserstein=None, psi=None,
                                 drifted=False) if ref else None), 1.0
    cells = int(ref["grid"]["cells"])
    ref_c = np.asarray(ref["counts"], dtype=np.float64)
    cur_c = s.hist.reshape(cells, -1).sum(axis=1).astype(np.float64)
    n_ref, n_cur = float(ref_c.sum()), float(cur_c.sum())
    f_ref, f_cur = edge_cdf(0.0, ref_c, n_ref), edge_cdf(0.0, cur_c, n_cur)
    d = float(np.abs(f_ref - f_cur).max())
    p = ks_pvalue(d, n_ref, n_cur)
    width = 1.0 / cells
    std = float(ref.get("std") or 0.0)
    w = wasserstein_grid(f_ref, f_cur, width, (0.0, 0.0, 0.0, 0.0)) / (std if std > 0 else width)
    bins = quantile_bins(ref_c)
    p_psi = psi(_coarse(ref_c, 0, 0, bins), _coarse(cur_c, 0, 0, bins))
    group = max(1, cells // 25)
    starts = np.arange(0, cells, group)
    plot = Plot("hist", (), tuple([float(k * width) for k in starts] + [1.0]),
                tuple(float(v) for v in shares(np.add.reduceat(ref_c, starts))),
                tuple(float(v) for v in shares(np.add.reduceat(cur_c, starts))))
    return PredictionReport(rows=acc.rows, scored=s.n, mean=s.total / s.n, reference_mean=ref.get("mean"),
                            statistic=d, p_value=p, q_value=None, wasserstein=w, psi=p_psi, drifted=False,
                            plot=plot), p


# --- the check ---------------------------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def evaluate(acc: Accumulator, profile: Mapping[str, Any], params: MonitorParams, read: ReadStats, *,
             source: str, path: str, reference: str, since: str | None = None,
             registered: tuple[str | None, str] | None = None, now: datetime | None = None,
             notes: Sequence[str] = (), seconds: float = 0.0) -> MonitorResult:
    """The findings of the window in ACC against PROFILE. REGISTERED: (version, ISO date) of the production
    version, for staleness; NOW: the clock (tests pass one)."""
    moment = now or datetime.now(UTC)
    rate = params.false_alarm_rate
    segments_on = params.segment_drift and bool(acc.segments)
    feature_rate = rate / 2 if segments_on else rate
    all_notes = list(notes) + list(profile.get("notes") or [])
    alarms: list[Alarm] = []

    # Feature family: drift tests, missing-share tests and the prediction test.
    tests = {name: _figures(f, profile["features"][name]) for name, f in acc.features.items()}
    family: list[tuple[str, str, float]] = []  # (kind, subject, p)
    for name, t in tests.items():
        if t.test != "none":
            family.append(("drift", name, t.p))
        f = acc.features[name]
        ref_rows = int(profile["features"][name]["rows"])
        if f.missing and f.rows:
            family.append(("missing", name, increase_pvalue(float(profile["features"][name]["missing"]),
                                                             float(ref_rows), float(f.missing), float(f.rows))))
    prediction: PredictionReport | None
    if acc.task_scores is not None:  # multiclass, regression: one family member per tested part
        prediction, pred_p = tasks.prediction(acc.task_scores, profile, acc.rows), 1.0
        family += [("prediction", subject, p) for subject, p in tasks.family(prediction)]
    else:
        prediction, pred_p = _prediction(acc, profile)
    if acc.task_scores is None and prediction is not None and prediction.p_value is not None:
        family.append(("prediction", "prediction", pred_p))
    q = benjamini_hochberg([p for _, _, p in family])
    qv = {(k, s): v for (k, s, _), v in zip(family, q, strict=True)}

    reports: list[FeatureReport] = []
    for name, t in tests.items():
        f = acc.features[name]
        sk = profile["features"][name]
        qd = qv.get(("drift", name))
        big = (t.wasserstein or 0.0) >= params.wasserstein or (t.psi or 0.0) >= params.psi \
            if t.test == "ks" else (t.js or 0.0) >= params.jensen_shannon
        drifted = qd is not None and qd <= feature_rate and big
        rows = max(f.rows, 1)
        ref_rows = max(int(sk["rows"]), 1)
        miss, ref_miss = f.missing / rows, int(sk["missing"]) / ref_rows
        ref_mean = sk.get("mean") if sk["kind"] == "numeric" else None
        mean = (f.total / f.valid) if sk["kind"] == "numeric" and f.valid else None
        reports.append(FeatureReport(
            name=name, kind=sk["kind"], type=sk["type"], test=t.test, rows=f.rows, valid=f.valid,
            missing_share=miss, reference_missing_share=ref_miss, nonfinite=f.nonfinite, violations=f.violations,
            unseen=f.unseen, unseen_values=tuple(f.unseen_values.most_common(5)), statistic=t.statistic,
            p_value=t.p if t.test != "none" else None, q_value=qd, wasserstein=t.wasserstein, psi=t.psi,
            jensen_shannon=t.js, mean=mean, reference_mean=ref_mean, drifted=drifted, plot=_plot(f, sk)))
        if drifted:
            effect = (f"normed Wasserstein {_fmt(t.wasserstein)}, PSI {_fmt(t.psi)}" if t.test == "ks"
                      else f"Jensen–Shannon {_fmt(t.js)}")
            alarms.append(Alarm("drift", name, f"{name} drifted: {effect} (q={qd:.2g})",
                                t.wasserstein if t.test == "ks" else t.js,
                                params.wasserstein if t.test == "ks" else params.jensen_shannon))
        qm = qv.get(("missing", name))
        if qm is not None and qm <= feature_rate and miss - ref_miss >= params.max_missing_increase:
            alarms.append(Alarm("missing", name, f"{name} is missing in {miss:.1%} of rows (reference "
                                f"{ref_miss:.1%})", miss, ref_miss + params.max_missing_increase))
        if f.unseen and f.unseen / rows > params.max_unseen_share:
            shown = ", ".join(repr(v) for v, _ in f.unseen_values.most_common(3))
            alarms.append(Alarm("unseen", name, f"{name} has categories the model never saw in {f.unseen / rows:.2%}"
                                f" of rows ({shown})", f.unseen / rows, params.max_unseen_share))
        bad = f.nonfinite + f.violations
        if bad and bad / rows > params.max_violation_share:
            alarms.append(Alarm("schema", name, f"{name} breaks its type ({sk['type']}) in {bad / rows:.2%} of rows"
                                f" ({f.violations} wrong values, {f.nonfinite} NaN/Inf)", bad / rows,
                                params.max_violation_share))
    reports.sort(key=lambda r: (not r.drifted, -r.effect, r.name))

    if prediction is not None and prediction.parts:
        prediction, found = tasks.decide(prediction, {s: v for (k, s), v in qv.items() if k == "prediction"},
                                         feature_rate, params)
        alarms += found
    elif prediction is not None and prediction.p_value is not None:
        qp = qv.get(("prediction", "prediction"))
        big = (prediction.wasserstein or 0.0) >= params.wasserstein or (prediction.psi or 0.0) >= params.psi
        drifted = qp is not None and qp <= feature_rate and big
        prediction = dataclasses.replace(prediction, q_value=qp, drifted=drifted)
        if drifted and params.prediction_drift:
            alarms.append(Alarm("prediction", "prediction", f"the model's scores drifted: mean "
                                f"{_fmt(prediction.mean)} (reference {_fmt(prediction.reference_mean)}), normed "
                                f"Wasserstein {_fmt(prediction.wasserstein)}, PSI {_fmt(prediction.psi)}",
                                prediction.wasserstein, params.wasserstein))

    segments = _segments(acc, profile, params, rate / 2 if segments_on else rate, alarms, segments_on,
                         frozenset(r.name for r in reports if r.drifted))

    # Volume and refused requests.
    if acc.rows < params.min_rows:
        alarms.append(Alarm("volume", "window", f"only {acc.rows:,} rows in the window (at least "
                            f"{params.min_rows:,} expected)", float(acc.rows), float(params.min_rows)))
    seen = acc.rows + read.rejected
    if read.rejected and read.rejected / seen > params.max_rejected_share:
        alarms.append(Alarm("rejected", "window", f"the server refused {read.rejected / seen:.1%} of requests "
                            f"({read.rejected:,})", read.rejected / seen, params.max_rejected_share))

    performance = _performance(acc, profile)
    if acc.task_scores is not None:
        alarms += tasks.decay(acc.task, performance.reference, performance.reference_estimate,
                              performance.estimated, performance.realised, performance.labelled, params, all_notes)
    else:
        alarms += _decay(performance, params, all_notes)
    if acc.scored == 0:
        all_notes.append("no scores in the window: no prediction drift and no performance estimate (give the "
                         "file the output column, or the model beside the reference)")
    staleness = _staleness(registered, moment, params, all_notes)
    if staleness is not None and staleness.max_age_days is not None and staleness.age_days > staleness.max_age_days:
        named = f" {staleness.version}" if staleness.version else ""
        alarms.append(Alarm("staleness", staleness.version or "model", f"the production model{named} was "
                            f"registered {staleness.age_days:.0f} days ago (at most {staleness.max_age_days:g})",
                            staleness.age_days, staleness.max_age_days))
    window = WindowInfo(source=source, path=path, files=tuple(read.files), since=since, start=read.ts_min,
                        end=read.ts_max, rows=acc.rows, scored=acc.scored, rejected=read.rejected,
                        unreadable=read.unreadable, roles=dict(read.roles), versions={str(k): v for k, v in
                                                                                      read.versions.items()})
    if read.unreadable:
        all_notes.append(f"{read.unreadable:,} log lines were not JSON and were skipped")
    return MonitorResult(window=window, reference=reference, reference_rows=int(profile["rows"]),
                         features=tuple(reports), prediction=prediction, performance=performance,
                         segments=segments, staleness=staleness, alarms=tuple(alarms), notes=tuple(all_notes),
                         generated=moment.isoformat(timespec="seconds"), seconds=seconds)


def _decay(performance: Performance, params: MonitorParams, notes: list[str]) -> list[Alarm]:
    """A metric more than its max_drop below the reference: realised once enough rows have labels; before, the
    estimate against the same estimator on the reference rows (so that the estimator's own bias cancels)."""
    if not performance.calibrated:
        notes.append("the profile has no calibration map: estimated metrics use the raw scores")
    use_realised = performance.realised is not None and performance.labelled >= params.min_labelled
    if performance.realised is not None and not use_realised:
        notes.append(f"only {performance.labelled} labelled rows: realised metrics shown, the estimate decides "
                     f"(min_labelled={params.min_labelled})")
    alarms = []
    for metric, drop in params.max_drop.items():
        if use_realised:
            basis, value, ref_v = "realised", (performance.realised or {}).get(metric), \
                performance.reference.get(metric)
        else:
            basis, value = "estimated", performance.estimated.get(metric)
            ref_v = performance.reference_estimate.get(metric)
            if ref_v is None:
                ref_v = performance.reference.get(metric)
        if ref_v is None or value is None:
            continue
        if ref_v - value > drop:
            against = "the reference's" if basis == "realised" else "its estimate on the reference rows,"
            alarms.append(Alarm("decay", metric, f"{basis} {metric} {value:.3f} is {ref_v - value:.3f} below "
                                f"{against} {ref_v:.3f} (at most {drop} allowed)", value, ref_v - drop))
    return alarms


def _staleness(registered: tuple[str | None, str] | None, moment: datetime, params: MonitorParams,
               notes: list[str]) -> Staleness | None:
    if registered is None:
        return None
    version, when = registered
    try:
        reg = datetime.fromisoformat(when)
    except ValueError:
        notes.append(f"staleness: the registration date {when!r} is not ISO 8601")
        return None
    if reg.tzinfo is None:
        reg = reg.replace(tzinfo=UTC)
    return Staleness(version, reg.isoformat(), (moment - reg).total_seconds() / 86400, params.max_age_days)


def _performance(acc: Accumulator, profile: Mapping[str, Any]) -> Performance:
    if acc.task_scores is not None:
        return _task_performance(acc, profile)
    windows = []
    for key in sorted(acc.windows):
        w = acc.windows[key]
        windows.append(WindowPerformance(key, acc.window_rows[key], w.n, w.labelled, estimated(w), realised(w)))
    return Performance(reference=dict(profile.get("metrics") or {}),
                       reference_estimate=dict(profile.get("estimated") or {}),
                       estimated=estimated(acc.scores), realised=realised(acc.scores), labelled=acc.scores.labelled,
                       calibrated=bool(profile.get("calibration")), threshold=acc.threshold, windows=tuple(windows))


def _task_performance(acc: Accumulator, profile: Mapping[str, Any]) -> Performance:
    """A multiclass or regression window's metrics (mlops.monitor.tasks): the reference's figures of that task."""
    t = acc.task_scores
    assert t is not None  # multiclass or regression
    windows = []
    for key in sorted(acc.window_rows):
        w = acc.task_windows.get(key)
        windows.append(WindowPerformance(key, acc.window_rows[key], w.n if w else 0, w.labelled if w else 0,
                                         w.estimated() if w else {}, w.realised() if w else None))
    reference = {k: v for k, v in (profile.get("metrics") or {}).items() if not isinstance(v, list)}
    return Performance(reference=reference, reference_estimate=dict(profile.get("estimated") or {}),
                       estimated=t.estimated(), realised=t.realised(), labelled=t.labelled, calibrated=False,
                       threshold=None, windows=tuple(windows), task=acc.task)


def _segments(acc: Accumulator, profile: Mapping[str, Any], params: MonitorParams, rate: float,
              alarms: list[Alarm], alarm_on: bool, overall: frozenset[str]) -> tuple[SegmentReport, ...]:
    import numpy as np

    pending: list[tuple[int, str, str, float, str, float]] = []  # (report index, value, feature, effect, measure, p)
    drafts: list[dict[str, Any]] = []
    for col, seg in acc.segments.items():
        ref_values = profile["segments"][col]
        total = max(int(seg.rows.sum()) + seg.other, 1)
        for k, value in enumerate(seg.values):
            ref = ref_values[value]
            rows = int(seg.rows[k])
            tested = rows >= params.min_segment_rows and int(ref["rows"]) >= params.min_segment_rows
            sacc = seg.scores[k]
            drafts.append({"column": col, "value": value, "rows": rows, "share": rows / total if acc.rows else None,
                           "reference_share": ref.get("share"),
                           "score_mean": sacc.total / sacc.n if sacc.n else None,
                           "reference_score_mean": ref.get("score_mean"),
                           "estimated": estimated(sacc) if acc.task_scores is None else {},
                           "realised": realised(sacc), "reference": dict(ref.get("metrics") or {}),
                           "labelled": sacc.labelled, "tested": tested})
            if not tested:
                continue
            for name, counts in seg.bins.items():
                if name == col:
                    continue
                ref_f = ref["features"].get(name)
                if ref_f is None:
                    continue
                r = np.asarray(ref_f["counts"], dtype=np.float64)
                c = counts[k, 1:].astype(np.float64)
                if c.sum() == 0 or r.sum() == 0:
                    continue
                _, p = chi2_homogeneity(r, c)
                sk = profile["features"][name]
                if sk["kind"] == "numeric" and not sk.get("discrete"):
                    pending.append((len(drafts) - 1, value, name, psi(r, c), "psi", p))
                else:
                    pending.append((len(drafts) - 1, value, name, jensen_shannon(r, c), "jensen_shannon", p))
    q = benjamini_hochberg([p[5] for p in pending])
    per_draft: dict[int, list[SegmentFeature]] = {}
    for (i, _value, name, effect, measure, p), qv in zip(pending, q, strict=True):
        limit = params.psi if measure == "psi" else params.jensen_shannon
        drifted = qv <= rate and effect >= limit
        per_draft.setdefault(i, []).append(SegmentFeature(name, effect, measure, p, qv, drifted))  # type: ignore[arg-type]
    out = []
    for i, d in enumerate(drafts):
        feats = tuple(sorted(per_draft.get(i, []), key=lambda f: (not f.drifted, -f.effect, f.feature)))
        rep = SegmentReport(**d, features=feats)
        out.append(rep)
        # A feature that drifted overall drifts in its segments too: only drift the aggregate hides alarms here.
        hidden = [f for f in feats if f.drifted and f.feature not in overall]
        if alarm_on and hidden:
            first = hidden[0]
            alarms.append(Alarm("segment", f"{rep.column}={rep.value}",
                                f"within {rep.column}={rep.value}: {', '.join(f.feature for f in hidden[:4])} "
                                f"drifted ({_MEASURES[first.measure]} {first.effect:.3f} on "
                                f"{first.feature})", first.effect,
                                params.psi if first.measure == "psi" else params.jensen_shannon))
    return tuple(out)


def run(profile: Mapping[str, Any], chunks: Iterable[Chunk] | None, params: MonitorParams, read: ReadStats, *,
        source: str, path: str, reference: str, labels: Mapping[Any, int] | None = None,
        scorer: Scorer | None = None, since: str | None = None, registered: tuple[str | None, str] | None = None,
        now: datetime | None = None, notes: Sequence[str] = (), progress: Progress = silent,
        log_dir: Path | None = None, clock: Callable[[], float] = time.perf_counter, client: Any = None,
        files: Sequence[Path] = ()) -> MonitorResult:
    """Read the window once and check it: CHUNKS (a file's), or the request logs in LOG_DIR (READ is then
    filled in from the processes that read them). CLIENT (a distributed.Client): read LOG_DIR, or FILES, on its
    Dask cluster instead."""
    started = clock()
    if client is not None:
        acc, got = accumulate_dask(client, profile, params, log_dir=log_dir, files=files, since=since,
                                   labels=labels, scorer=scorer, progress=progress)
        read.merge(got)
    elif log_dir is not None:
        acc, got = accumulate_logs(profile, log_dir, params, since=since, labels=labels, jobs=params.jobs,
                                   progress=progress)
        read.merge(got)
    else:
        assert chunks is not None  # a file's chunks when no log directory is given
        acc = accumulate(profile, chunks, window=params.window, labels=labels, scorer=scorer, progress=progress)
    if acc.scored_by_model:
        notes = (*notes, f"{acc.scored_by_model:,} rows scored here by the model beside the reference (the input "
                 "had no output column)")
    result = evaluate(acc, profile, params, read, source=source, path=path, reference=reference, since=since,
                      registered=registered, now=now, notes=notes)
    return dataclasses.replace(result, seconds=clock() - started)

"""Build a Report from three States: metrics, params, data, validation, segments and chart data, all diffed."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mlops import checks, evidence
from mlops.config import ReportParams
from mlops.dvc import PlotSpec
from mlops.errors import ReportError
from mlops.formats.datasummary import DataSummaryInvalid, read_data_summary
from mlops.gates import GateReport
from mlops.mltestscore import Score
from mlops.report.model import (
    Change,
    Chart,
    CheckRow,
    Comparison,
    DataRow,
    Meta,
    MetricRow,
    ParamRow,
    PipelineFailure,
    Report,
    SegmentRow,
    Series,
    State,
)

ROLES = ("base", "head")  # what charts compare


def flatten_params(obj: Any, prefix: str = "") -> dict[str, str]:
    """{"train": {"max_depth": 4}} -> {"train.max_depth": "4"}; lists stay one value (as `dvc params diff`)."""
    out: dict[str, str] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(flatten_params(v, f"{prefix}{k}."))
        return out
    text = json.dumps(obj, ensure_ascii=False, default=str) if not isinstance(obj, str) else obj
    out[prefix.rstrip(".")] = text
    return out


def _change(value: float | None, ref: float | None, higher: bool, noise: float) -> Change:
    if value is None and ref is None:
        return Change(None, None, None, "n/a")
    if ref is None:
        return Change(value, None, None, "new")
    if value is None:
        return Change(None, ref, None, "removed")
    delta = value - ref
    if abs(delta) <= noise + 1e-12:
        return Change(value, ref, delta, "unchanged")
    return Change(value, ref, delta, "better" if (delta > 0) == higher else "worse")


def _with_interval(change: Change, comparison: Comparison | None, name: str) -> Change:
    found = comparison.intervals.get(name) if comparison is not None else None
    if found is None or change.delta is None:
        return change
    return replace(change, verdict=found.verdict, interval=found)


def metric_rows(cfg: ReportParams, head: State, base: State | None, prod: State | None,
                head_reproduced: bool = True, comparisons: Sequence[Comparison] = ()) -> tuple[MetricRow, ...]:
    names = list(head.metrics)
    for other in (base, prod):
        if other is not None:
            names += [n for n in other.metrics if n not in names]
    rows = []
    for name in names:
        spec = cfg.spec(name)
        value = head.metrics.get(name)
        vb = _change(value, base.metrics.get(name) if base else None, spec.higher_is_better, spec.noise)
        vp = (_change(value, prod.metrics.get(name), spec.higher_is_better, spec.noise)
              if prod is not None else None)
        if value is None and not head_reproduced:  # not "removed": this branch's value is simply unknown
            vb = Change(None, vb.reference, None, "n/a")
            vp = Change(None, vp.reference, None, "n/a") if vp is not None else None
        by = {c.against: c for c in comparisons}
        vb = _with_interval(vb, by.get("base"), name)
        vp = _with_interval(vp, by.get("production"), name) if vp is not None else None
        rows.append(MetricRow(name, spec.higher_is_better, spec.noise, value, vb, vp))
    return tuple(rows)


# --- per-row evidence: intervals and the prediction diff ---------------------------------------------------------

def predictions_of(cfg: ReportParams, state: State) -> evidence.Predictions:
    """STATE's held-out predictions as `report.predictions` describes them; ReportError says what is missing."""
    spec = cfg.predictions
    where = f"{spec.path} ({state.name})"
    table = state.files.get(spec.path)
    if table is None:
        raise ReportError(f"{spec.path} not found at {state.name}")
    cols = evidence.columns_of(table, where)
    labels = None
    if spec.labels:
        raw = state.files.get(spec.labels)
        if raw is None:
            raise ReportError(f"{spec.labels} (the labels of {spec.path}) not found at {state.name}")
        lcols = evidence.columns_of(raw, f"{spec.labels} ({state.name})")
        if spec.label not in lcols or spec.id not in cols:
            missing = spec.label if spec.label not in lcols else spec.id
            raise ReportError(f"{spec.labels if missing == spec.label else spec.path} ({state.name}): "
                              f"no column '{missing}'")
        values = lcols[spec.label]
        try:  # row N of the held-out data file is the prediction with id N
            labels = [values[int(float(i))] for i in cols[spec.id]]
        except (ValueError, TypeError, IndexError):
            raise ReportError(f"{where}: ids of column '{spec.id}' are not row numbers of {spec.labels} "
                              f"({len(values)} rows)") from None
    threshold = spec.threshold or state.metrics.get("threshold") or 0.5
    if not 0 < threshold < 1:
        threshold = 0.5
    return evidence.predictions_from(cols, where, id_column=spec.id, label=spec.label, score=spec.score,
                                     task=spec.task, threshold=threshold, positive=spec.positive,
                                     proba_prefix=spec.proba_prefix, labels=labels)


def _agrees(reported: float | None, computed: float) -> bool:
    """A reported metric is the computed one when they agree to the metrics file's rounding."""
    return reported is not None and abs(reported - computed) <= 1e-4 * max(1.0, abs(computed))


def compare(cfg: ReportParams, head: State, ref: State, against: str,
            head_predictions: evidence.Predictions | None = None) -> Comparison:
    """Intervals of every metric the held-out predictions give, and the prediction diff, of HEAD against REF.
    Never raises for missing or unusable predictions: the comparison then says why in its notes."""
    try:
        hp = head_predictions if head_predictions is not None else predictions_of(cfg, head)
        rp = predictions_of(cfg, ref)
    except ReportError as exc:
        return Comparison(against, ref.name, "", 0, {}, None, (f"no intervals or prediction diff: {exc.message}",))
    if hp.task != rp.task:
        return Comparison(against, ref.name, hp.task, 0, {}, None,
                          (f"no intervals or prediction diff: {ref.name} is a {rp.task} model, this branch "
                           f"a {hp.task} one",))
    h, r, only_h, only_r = evidence.align(hp, rp)
    notes: list[str] = []
    if only_h or only_r:
        notes.append(f"{only_h} held-out row(s) only on this branch and {only_r} only at {ref.name}: "
                     f"compared on the {len(h.ids)} they share")
    diff = evidence.prediction_diff(h, r, only_h, only_r) if h.ids else None
    intervals: dict[str, evidence.Interval] = {}
    split = cfg.predictions.split if cfg.predictions.split is not None else (cfg.headline or "").rpartition(".")[0]
    if cfg.resamples and len(h.ids) >= 2 and evidence.same_rows(h, r):
        computed = evidence.paired_bootstrap(h, r, resamples=cfg.resamples, seed=cfg.seed,
                                             confidence=cfg.confidence)
        for name in dict.fromkeys([*head.metrics, *ref.metrics]):
            key = evidence.matching_metric(name, computed, split)
            if key is None:
                continue
            iv = computed[key]
            if not only_h and not only_r and not (_agrees(head.metrics.get(name), iv.head)
                                                   and _agrees(ref.metrics.get(name), iv.reference)):
                notes.append(f"{name}: the per-row predictions give {iv.head:.4f} (this branch) and "
                             f"{iv.reference:.4f} ({ref.name}), the metrics files say "
                             f"{_opt(head.metrics.get(name))} and {_opt(ref.metrics.get(name))}: no interval")
                continue
            intervals[name] = iv
    elif cfg.resamples and h.ids:
        notes.append(f"no intervals: the labels of the held-out rows differ between this branch and {ref.name} "
                     "(the held-out data changed), so the rows cannot be paired")
    return Comparison(against, ref.name, h.task, len(h.ids), intervals, diff, tuple(notes))


def _opt(v: float | None) -> str:
    return "nothing" if v is None else f"{v:.4f}"


def param_rows(head: State, base: State | None) -> tuple[ParamRow, ...]:
    if base is None:
        return ()
    keys = list(dict.fromkeys([*base.params, *head.params]))
    return tuple(ParamRow(k, base.params.get(k), head.params.get(k)) for k in keys
                 if base.params.get(k) != head.params.get(k))


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    return str(v)


def data_rows(cfg: ReportParams, head: State, base: State | None) -> tuple[DataRow, ...]:
    if base is None:
        return ()
    rows: list[DataRow] = []
    for path in dict.fromkeys([*base.deps, *head.deps]):
        b, h = base.deps.get(path), head.deps.get(path)
        if b != h:
            rows.append(DataRow(f"{path} (hash)", (b or "absent")[:12], (h or "absent")[:12]))
    hs, bs = head.files.get(cfg.data_summary), base.files.get(cfg.data_summary)
    if isinstance(hs, Mapping) and isinstance(bs, Mapping):
        rows += _summary_rows(bs, hs, "")
    return tuple(rows)


def _summary_rows(base: Mapping[str, Any], head: Mapping[str, Any], prefix: str) -> list[DataRow]:
    rows: list[DataRow] = []
    for key in dict.fromkeys([*base, *head]):
        b, h = base.get(key), head.get(key)
        name = f"{prefix}{key}"
        if key == "schema" and isinstance(b, Mapping) and isinstance(h, Mapping):
            added = [c for c in h if c not in b]
            removed = [c for c in b if c not in h]
            retyped = [f"{c}: {b[c]} → {h[c]}" for c in h if c in b and b[c] != h[c]]
            if added:
                rows.append(DataRow(f"{name}: columns added", "", ", ".join(map(str, added))))
            if removed:
                rows.append(DataRow(f"{name}: columns removed", ", ".join(map(str, removed)), ""))
            if retyped:
                rows.append(DataRow(f"{name}: types changed", "", "; ".join(retyped)))
        elif isinstance(b, Mapping) and isinstance(h, Mapping):
            rows += _summary_rows(b, h, name + ".")
        elif b != h and not (isinstance(b, Mapping) or isinstance(h, Mapping)):
            label = name.replace("positive_rate", "label balance (positive rate)")
            rows.append(DataRow(label, "absent" if b is None else _short(b), "absent" if h is None else _short(h)))
    return rows


def data_added(cfg: ReportParams, head: State, base: State | None) -> str | None:
    """One line on the feedback rows this branch's prepare added (the `feedback` block of its data summary) and
    the split sizes against BASE; None when it added none from any file, or the summary has no such block (a
    project whose prepare writes none) or a malformed one (the data table still shows the summary's changes)."""
    try:
        h = read_data_summary(head.files.get(cfg.data_summary), f"{cfg.data_summary} ({head.name})")
        b = read_data_summary(base.files.get(cfg.data_summary), f"{cfg.data_summary} ({base.name})") \
            if base is not None else None
    except DataSummaryInvalid:
        return None
    fb = h.feedback
    if fb is None or not fb.files:
        return None
    where = fb.dir.rstrip("/") + "/"
    dropped = f"{fb.duplicates_dropped:,} duplicates dropped" + (
        f", {fb.outside_window:,} outside the window" if fb.outside_window else "")
    if fb.rows_added:
        text = (f"data added: {fb.rows_added:,} rows from {where} ({fb.train_rows_added:,} to train, "
                f"{fb.test_rows_added:,} to test; {dropped})")
    else:
        text = f"data added: none of the {fb.rows_read:,} rows from {where} ({dropped})"
    if b is not None and base is not None:
        sizes = [f"{split} {before:,} → {after:,} rows" for split, before, after in (
            ("train", b.train_rows, h.train_rows), ("test", b.test_rows, h.test_rows))
            if before is not None and after is not None]
        if sizes:
            text += f"; {', '.join(sizes)} vs {base.name}"
        if b.feedback is not None and b.feedback.rows_added:
            text += f" ({base.name} had {b.feedback.rows_added:,} feedback rows)"
    return text


_ORDER = {"error": 0, "fail": 1, "warn": 2, "pass": 3}


def check_rows(cfg: ReportParams, head: State) -> tuple[CheckRow, ...]:
    raw = head.files.get(cfg.validation)
    checks = raw.get("checks") if isinstance(raw, Mapping) else None
    if not isinstance(checks, list):
        return ()
    rows = []
    for c in checks:
        if not isinstance(c, Mapping):
            continue
        status = str(c.get("status") or ("pass" if c.get("passed") else "fail")).lower()
        status = {"passed": "pass", "failed": "fail", "warning": "warn"}.get(status, status)
        finding = " ".join(str(c.get("finding") or "").split())
        rows.append(CheckRow(str(c.get("name", "?")), str(c.get("dataset", "")), status, finding))
    return tuple(sorted(rows, key=lambda r: _ORDER.get(r.status, 1)))


def segment_rows(cfg: ReportParams, head: State, base: State | None) -> tuple[SegmentRow, ...]:
    if base is None:
        return ()
    hs, bs = head.files.get(cfg.segments), base.files.get(cfg.segments)
    if not isinstance(hs, Mapping) or not isinstance(bs, Mapping):
        return ()
    lead = cfg.headline or ""
    metric = cfg.segment_metric or lead.rsplit(".", 1)[-1]
    spec = cfg.spec(lead if cfg.segment_metric is None else metric)
    rows = []
    for column, values in hs.items():
        if not isinstance(values, Mapping):
            continue
        for value, m in values.items():
            b = (bs.get(column) or {}).get(value) if isinstance(bs.get(column), Mapping) else None
            if not isinstance(m, Mapping) or not isinstance(b, Mapping):
                continue
            hv, bv = m.get(metric), b.get(metric)
            if not isinstance(hv, int | float) or not isinstance(bv, int | float) or math.isnan(hv) or math.isnan(bv):
                continue
            if _change(float(hv), float(bv), spec.higher_is_better, spec.noise).verdict == "worse":
                rows_n = m.get("rows")
                rows.append(SegmentRow(str(column), str(value), metric, int(rows_n) if rows_n is not None else None,
                                       float(bv), float(hv), float(hv) - float(bv)))
    return tuple(rows)


def attribution_rows(head: State, base: State | None, top: int = 5) -> tuple[tuple[str, float, float, float], ...]:
    """The TOP largest changes of attribution share against BASE, from the metrics file each side has that
    carries `attributions` (checks.json of `mlops check`); none when either side has none."""
    if base is None:
        return ()

    def shares(state: State) -> dict[str, float] | None:
        return next((s for doc in state.files.values() if (s := checks.attribution_shares(doc))), None)

    h, b = shares(head), shares(base)
    return tuple(checks.attribution_changes(h, b, top)) if h and b else ()


# --- charts ---------------------------------------------------------------------------------------------------

def _rows(data: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(data, Mapping) and len(data) == 1:  # {"name": [rows]} as DVC accepts
        data = next(iter(data.values()))
    if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
        return data
    return None


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _line(spec: PlotSpec, states: Mapping[str, State]) -> Chart | None:
    series = []
    for path, fields in spec.y.items():
        for role in ROLES:
            state = states.get(role)
            rows = _rows(state.files.get(path)) if state else None
            if state is None or not rows:
                continue
            ys = fields or (tuple(rows[0])[-1:])
            xf = spec.x.get(path)
            for yf in ys:
                pts = [(_float(r.get(xf)) if xf else float(i), _float(r.get(yf))) for i, r in enumerate(rows)]
                clean = [(x, y) for x, y in pts if x is not None and y is not None]
                if clean:
                    label = state.name if len(ys) * len(spec.y) == 1 else f"{state.name}: {yf}"
                    series.append(Series(role, label, tuple(x for x, _ in clean), tuple(y for _, y in clean)))
    if not series:
        return None
    return Chart(spec.id, spec.title, "line", spec.x_label, spec.y_label, series=tuple(series))


def _confusion(spec: PlotSpec, states: Mapping[str, State]) -> Chart | None:
    path, fields = next(iter(spec.y.items()))
    actual_f = fields[0] if fields else "actual"
    pred_f = spec.x.get(path, "predicted")
    pairs: dict[str, list[tuple[str, str]]] = {}
    for role in ROLES:
        state = states.get(role)
        rows = _rows(state.files.get(path)) if state else None
        if rows:
            pairs[role] = [(str(r.get(actual_f)), str(r.get(pred_f))) for r in rows]
    if not pairs:
        return None
    labels = sorted({v for ps in pairs.values() for p in ps for v in p})
    index = {lab: i for i, lab in enumerate(labels)}
    matrices = {}
    for role, ps in pairs.items():
        m = [[0] * len(labels) for _ in labels]
        for a, p in ps:
            m[index[a]][index[p]] += 1
        matrices[role] = tuple(tuple(r) for r in m)
    return Chart(spec.id, spec.title, "confusion", spec.x_label, spec.y_label, categories=tuple(labels),
                 matrices=matrices)


def _bar(spec: PlotSpec, states: Mapping[str, State], top: int = 15) -> Chart | None:
    path, fields = next(iter(spec.y.items()))
    cat_f = fields[0] if fields else None
    val_f = spec.x.get(path)
    values: dict[str, dict[str, float]] = {}
    for role in ROLES:
        state = states.get(role)
        rows = _rows(state.files.get(path)) if state else None
        if not rows or cat_f is None or val_f is None:
            continue
        values[role] = {str(r.get(cat_f)): v for r in rows if (v := _float(r.get(val_f))) is not None}
    if not values:
        return None
    ranking = values.get("head") or next(iter(values.values()))
    cats = sorted(ranking, key=lambda c: -ranking[c])[:top]
    bars = {role: tuple(vals.get(c, 0.0) for c in cats) for role, vals in values.items()}
    return Chart(spec.id, spec.title, "bar", spec.x_label, spec.y_label, categories=tuple(cats), bars=bars)


def charts_of(specs: Sequence[PlotSpec], states: Mapping[str, State]) -> tuple[Chart, ...]:
    charts = []
    for spec in specs:
        if not spec.y:
            continue
        if spec.template.startswith("confusion"):
            chart = _confusion(spec, states)
        elif spec.template.startswith("bar"):
            chart = _bar(spec, states)
        else:
            chart = _line(spec, states)
        if chart is not None:
            charts.append(chart)
    return tuple(charts)


def build_report(cfg: ReportParams, head: State, base: State | None, production: State | None,
                 production_note: str, gates: GateReport | None, specs: Sequence[PlotSpec], meta: Meta,
                 notes: Sequence[str] = (), production_gates: GateReport | None = None,
                 pipeline: PipelineFailure | None = None, recomputed: Sequence[tuple[str, str]] = (),
                 comparisons: Sequence[Comparison] = (), test_score: Score | None = None) -> Report:
    """Pure: every diff of the report from already-read states (PIPELINE: the pipeline failed first).
    COMPARISONS: the per-row evidence against base and production (`compare`)."""
    states = {s.role: s for s in (head, base, production) if s is not None}
    return Report(
        head=head, base=base, production=production, production_note=production_note, headline=cfg.headline or "",
        metrics=metric_rows(cfg, head, base, production, pipeline is None or pipeline.metrics_reproduced,
                            comparisons),
        params=param_rows(head, base),
        data=data_rows(cfg, head, base), checks=check_rows(cfg, head), segments=segment_rows(cfg, head, base),
        charts=charts_of(specs, states), gates=gates, notes=tuple(notes), meta=meta,
        production_gates=production_gates, pipeline=pipeline, recomputed=tuple(recomputed),
        comparisons=tuple(comparisons), test_score=test_score, attributions=attribution_rows(head, base),
        data_added=data_added(cfg, head, base),
    )

"""Promotion gates: thresholds from params.yaml checked against a metrics dict and an optional reference.

Pure functions over flat metric dicts ("test.roc_auc"), so the report, `mlops gate` and `mlops promote` share them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlops.config import GateSpec
from mlops.errors import GateFailed

Rule = Literal["min", "max", "max_drop", "max_rise"]
RULES: tuple[Rule, ...] = ("min", "max", "max_drop", "max_rise")


@dataclass(frozen=True)
class GateRow:
    metric: str
    rule: Rule
    threshold: float
    value: float | None
    reference: float | None
    passed: bool
    detail: str
    # False: a relative rule whose reference side could not be read at all. Such a gate is not passed (promotion
    # refuses it) and not failed either: the report says it was not evaluated, and why.
    evaluated: bool = True
    judge: str = "point"  # "interval": judged on the confidence interval of the change (GateSpec.judge)
    interval: tuple[float, float] | None = None  # (low, high) of value - reference, when judged on it


@dataclass(frozen=True)
class GateEvidence:
    """What per-row held-out predictions add to a gate check against one reference (mlops.evidence, made by the
    report job): the `prediction.*` metrics of the diff, and the interval of each metric's change."""

    metrics: Mapping[str, float] = field(default_factory=dict)  # prediction.flip_rate ... against this reference
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # metric -> (low, high) of the change
    why_not: str | None = None  # why there is none (no predictions file at the reference...)


PREDICTION_PREFIX = "prediction."


@dataclass(frozen=True)
class GateReport:
    against: str  # "base", "production" or "none"
    rows: tuple[GateRow, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def failed(self) -> list[GateRow]:
        return [r for r in self.rows if not r.passed and r.evaluated]

    def not_evaluated(self) -> list[GateRow]:
        return [r for r in self.rows if not r.evaluated]


def flatten_metrics(obj: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """{"test": {"roc_auc": 0.84}} -> {"test.roc_auc": 0.84}; non-numeric leaves are dropped (as DVC does)."""
    out: dict[str, float] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, name + "."))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and not math.isnan(float(value)):
            out[name] = float(value)
    return out


def metrics_of(files: Mapping[str, Any], paths: Sequence[str]) -> dict[str, float]:
    """Flat metrics of the declared metrics files (parsed, by path); a key two files share is prefixed with
    its file ("reports/a.json:acc"). The report, `mlops gate` and `mlops promote` all key metrics this way."""
    per_file = {p: flatten_metrics(files[p]) for p in paths if isinstance(files.get(p), Mapping)}
    counts: dict[str, int] = {}
    for flat in per_file.values():
        for k in flat:
            counts[k] = counts.get(k, 0) + 1
    out: dict[str, float] = {}
    for p, flat in per_file.items():
        for k, v in flat.items():
            out[k if counts[k] == 1 else f"{p}:{k}"] = v
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def evaluate_gates(gates: Mapping[str, GateSpec], metrics: Mapping[str, float],
                   reference: Mapping[str, float] | None, against: str,
                   unavailable: str | None = None, evidence: GateEvidence | None = None) -> GateReport:
    """Check every gate; a metric missing from METRICS fails its gates; relative rules need REFERENCE.

    Relative rules (max_drop, max_rise) pass when there is no reference (nothing to compare with, e.g. the
    first version ever), and say so in their detail. UNAVAILABLE (why the reference side could not be read at
    all) is different: there is something to compare with, only it cannot be had, so relative rules are not
    evaluated (and not passed).

    EVIDENCE: the `prediction.*` metrics (which exist only against a reference: with none at all they pass, as
    relative rules do; when the per-row predictions were not compared they are not evaluated) and the intervals
    that `judge: interval` gates are judged on (a gate without its interval is judged on the point change, and
    says so).
    """
    evidence = evidence or GateEvidence()
    rows: list[GateRow] = []
    for metric, spec in gates.items():
        value = metrics.get(metric, evidence.metrics.get(metric))
        ref = reference.get(metric) if reference is not None else None
        derived = metric.startswith(PREDICTION_PREFIX) and metric not in metrics
        for rule in RULES:
            threshold = getattr(spec, rule)
            if threshold is None:
                continue
            if value is None and derived:
                if reference is None and unavailable is None:
                    rows.append(GateRow(metric, rule, threshold, None, None, True,
                                        f"no {against} predictions to compare with"))
                else:
                    why = unavailable or evidence.why_not or "the per-row predictions were not compared here"
                    rows.append(GateRow(metric, rule, threshold, None, None, False, f"not evaluated: {why}",
                                        evaluated=False))
                continue
            if value is None:
                rows.append(GateRow(metric, rule, threshold, None, ref, False, f"metric '{metric}' not found"))
                continue
            if rule == "min":
                ok, detail = value >= threshold, f"{_fmt(value)} >= {threshold}"
            elif rule == "max":
                ok, detail = value <= threshold, f"{_fmt(value)} <= {threshold}"
            elif unavailable is not None:
                rows.append(GateRow(metric, rule, threshold, value, None, False,
                                    f"not evaluated: {against} could not be read ({unavailable})", evaluated=False))
                continue
            elif ref is None:
                ok, detail = True, f"no {against} value to compare with"
            else:
                interval = evidence.intervals.get(metric) if spec.judge == "interval" else None
                rows.append(_relative(metric, rule, threshold, value, ref, against, spec.judge, interval))
                continue
            rows.append(GateRow(metric, rule, threshold, value, ref, ok, detail))
    return GateReport(against=against, rows=tuple(rows))


def _relative(metric: str, rule: Rule, threshold: float, value: float, ref: float, against: str, judge: str,
              interval: tuple[float, float] | None) -> GateRow:
    """max_drop / max_rise: on the point change, or (judge: interval) failing only when the whole interval of the
    change lies past the limit, so that resampling noise alone never fails a gate."""
    sign = -1.0 if rule == "max_drop" else 1.0  # a drop is the change's negative
    word = "drop" if rule == "max_drop" else "rise"
    moved = sign * (value - ref)
    if interval is not None:
        lo, hi = sorted((sign * interval[0], sign * interval[1]))
        ok = lo <= threshold + 1e-12
        detail = (f"{word} {moved:+.4f}, interval [{lo:+.4f}, {hi:+.4f}] vs {against} (limit {threshold}; "
                  f"fails only when the whole interval is past it)")
        return GateRow(metric, rule, threshold, value, ref, ok, detail, judge="interval", interval=interval)
    ok = moved <= threshold + 1e-12
    detail = f"{word} {moved:+.4f} vs {against} (limit {threshold})"
    if judge == "interval":
        detail += "; no interval (no per-row predictions of both sides), judged on the change itself"
    return GateRow(metric, rule, threshold, value, ref, ok, detail, judge=judge)


# --- one table, two renderings ------------------------------------------------------------------------------

TABLE_HEADER = ("gate", "rule", "threshold", "value", "reference", "result")


def table_rows(report: GateReport) -> list[tuple[str, str, str, str, str, str]]:
    """The cells of the gate table; the terminal and the markdown renderings are made from these same rows."""
    return [(r.metric, r.rule, f"{r.threshold:g}", _fmt(r.value), _fmt(r.reference),
             f"{'pass' if r.passed else 'FAIL' if r.evaluated else 'NOT EVALUATED'}: {r.detail}")
            for r in report.rows]


def render_table(report: GateReport, fmt: Literal["terminal", "markdown"] = "terminal") -> str:
    header = (*TABLE_HEADER[:4], report.against, TABLE_HEADER[5])
    rows = table_rows(report)
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    if not rows:
        return "gates: none configured"
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    out = [f"gates against {report.against}:"]
    out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows)]
    return "\n".join(out)


def blocked(report: GateReport, consequence: str, hint: str) -> GateFailed:
    """The one error for failed gates (`mlops gate`, `mlops promote`): names them, carries the table's report."""
    failed = report.failed()
    unchecked = report.not_evaluated()
    names = ", ".join(dict.fromkeys(f"{r.metric} ({r.rule})" for r in failed))
    what = f"{len(failed)} of {len(report.rows)} gate(s) failed against {report.against}: {names}" if failed else ""
    if unchecked:
        names = ", ".join(dict.fromkeys(f"{r.metric} ({r.rule})" for r in unchecked))
        what = (what + "; " if what else "") + (f"{len(unchecked)} of {len(report.rows)} gate(s) not evaluated "
                                                f"against {report.against}: {names}")
    return GateFailed(what + (f"; {consequence}" if consequence else ""), hint=hint, report=report)

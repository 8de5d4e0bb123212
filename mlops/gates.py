"""Promotion gates: thresholds from params.yaml checked against a metrics dict and an optional reference.

Pure functions over flat metric dicts ("test.roc_auc"), so the report, `mlops gate` and `mlops promote` share them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class GateReport:
    against: str  # "base", "production" or "none"
    rows: tuple[GateRow, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def failed(self) -> list[GateRow]:
        return [r for r in self.rows if not r.passed]


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
                   reference: Mapping[str, float] | None, against: str) -> GateReport:
    """Check every gate; a metric missing from METRICS fails its gates; relative rules need REFERENCE.

    Relative rules (max_drop, max_rise) pass when there is no reference (nothing to compare with, e.g. the
    first version ever), and say so in their detail.
    """
    rows: list[GateRow] = []
    for metric, spec in gates.items():
        value = metrics.get(metric)
        ref = reference.get(metric) if reference is not None else None
        for rule in RULES:
            threshold = getattr(spec, rule)
            if threshold is None:
                continue
            if value is None:
                rows.append(GateRow(metric, rule, threshold, None, ref, False, f"metric '{metric}' not found"))
                continue
            if rule == "min":
                ok, detail = value >= threshold, f"{_fmt(value)} >= {threshold}"
            elif rule == "max":
                ok, detail = value <= threshold, f"{_fmt(value)} <= {threshold}"
            elif ref is None:
                ok, detail = True, f"no {against} value to compare with"
            elif rule == "max_drop":
                drop = ref - value
                ok, detail = drop <= threshold + 1e-12, f"drop {drop:+.4f} vs {against} (limit {threshold})"
            else:
                rise = value - ref
                ok, detail = rise <= threshold + 1e-12, f"rise {rise:+.4f} vs {against} (limit {threshold})"
            rows.append(GateRow(metric, rule, threshold, value, ref, ok, detail))
    return GateReport(against=against, rows=tuple(rows))


# --- one table, two renderings ------------------------------------------------------------------------------

TABLE_HEADER = ("gate", "rule", "threshold", "value", "reference", "result")


def table_rows(report: GateReport) -> list[tuple[str, str, str, str, str, str]]:
    """The cells of the gate table; the terminal and the markdown renderings are made from these same rows."""
    return [(r.metric, r.rule, f"{r.threshold:g}", _fmt(r.value), _fmt(r.reference),
             f"{'pass' if r.passed else 'FAIL'}: {r.detail}") for r in report.rows]


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
    names = ", ".join(dict.fromkeys(f"{r.metric} ({r.rule})" for r in failed))
    return GateFailed(f"{len(failed)} of {len(report.rows)} gate(s) failed against {report.against}: {names}"
                      + (f"; {consequence}" if consequence else ""), hint=hint, report=report)

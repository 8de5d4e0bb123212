"""What a monitoring check found: frozen records, one JSON shape (reports/monitor.json), gauges for /metrics.

`MonitorResult.alarms` is the decision: empty means healthy (exit 0); each alarm names its check and subject,
so a retraining trigger can count consecutive alarming runs per check, and the server's /metrics can export
`gauges()` as they are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlops.errors import MlopsError

CheckName = Literal["drift", "missing", "unseen", "schema", "prediction", "segment", "volume", "rejected",
                    "decay", "staleness"]
Metrics = Mapping[str, float | None]
RESULT_FORMAT = "mlops.monitor/1"
METRIC_NAMES = {"binary": ("roc_auc", "accuracy", "f1", "precision", "recall"),
                "multiclass": ("accuracy", "macro_f1", "log_loss"),
                "regression": ("rmse", "mae", "r2")}


@dataclass(frozen=True)
class Alarm:
    check: CheckName
    subject: str                 # a feature, a metric, "contract=One year: tenure", "window"
    message: str                 # one line, plain text
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Plot:
    """Shares per bin of the reference and of the window, for one picture."""

    kind: Literal["hist", "bars"]
    labels: tuple[str, ...]                 # bars: one per bar; hist: unused
    edges: tuple[float, ...]                # hist: bin edges (len(reference) + 1); bars: unused
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True)
class FeatureReport:
    name: str
    kind: Literal["numeric", "categorical"]
    type: str
    test: Literal["ks", "chi2", "none"]
    rows: int
    valid: int
    missing_share: float
    reference_missing_share: float
    nonfinite: int
    violations: int
    unseen: int
    unseen_values: tuple[tuple[str, int], ...]
    statistic: float | None
    p_value: float | None
    q_value: float | None
    wasserstein: float | None        # normed by the reference's standard deviation
    psi: float | None
    jensen_shannon: float | None
    mean: float | None
    reference_mean: float | None
    drifted: bool
    plot: Plot | None = field(default=None, compare=False)

    @property
    def effect(self) -> float:
        """The effect size the drift rule uses (for ranking)."""
        if self.test == "ks":
            return max(self.wasserstein or 0.0, self.psi or 0.0)
        return self.jensen_shannon or 0.0


@dataclass(frozen=True)
class PredictionPart:
    """One test of a multiclass or regression model's answers: the predicted-class mix (chi-square, JS), one
    class's probability (KS), the predicted value (KS, or chi-square when it takes few values)."""

    subject: str                       # "predicted class", "P(setosa)", "value"
    test: Literal["ks", "chi2", "none"]
    statistic: float | None
    p_value: float | None
    q_value: float | None
    wasserstein: float | None
    psi: float | None
    jensen_shannon: float | None
    mean: float | None
    reference_mean: float | None
    drifted: bool
    plot: Plot | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PredictionReport:
    """Drift of the model's answers. Binary: its score histogram. Multiclass and regression (mlops.monitor.tasks):
    the figures of the first part (the predicted-class mix; the predicted value), every test in `parts`."""

    rows: int
    scored: int
    mean: float | None
    reference_mean: float | None
    statistic: float | None
    p_value: float | None
    q_value: float | None
    wasserstein: float | None
    psi: float | None
    drifted: bool
    plot: Plot | None = field(default=None, compare=False)
    task: str = "binary"
    test: Literal["ks", "chi2", "none"] = "ks"
    jensen_shannon: float | None = None
    parts: tuple[PredictionPart, ...] = ()


@dataclass(frozen=True)
class WindowPerformance:
    window: str
    rows: int
    scored: int
    labelled: int
    estimated: Metrics
    realised: Metrics | None


@dataclass(frozen=True)
class Performance:
    reference: Metrics                 # realised on the held-out rows of the profile
    reference_estimate: Metrics        # the estimator on those same rows (its bias)
    estimated: Metrics                 # confidence-based estimate on the window (no labels needed)
    realised: Metrics | None           # on the window's labelled rows
    labelled: int
    calibrated: bool
    threshold: float | None
    windows: tuple[WindowPerformance, ...] = ()
    task: str = "binary"               # binary, multiclass or regression: which metrics the dicts hold

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The task's metrics, in the report's order."""
        return METRIC_NAMES.get(self.task, METRIC_NAMES["binary"])


@dataclass(frozen=True)
class SegmentFeature:
    feature: str
    effect: float
    measure: Literal["psi", "jensen_shannon"]
    p_value: float
    q_value: float | None
    drifted: bool


@dataclass(frozen=True)
class SegmentReport:
    column: str
    value: str
    rows: int
    share: float | None
    reference_share: float | None
    score_mean: float | None
    reference_score_mean: float | None
    estimated: Metrics
    realised: Metrics | None
    reference: Metrics
    labelled: int
    tested: bool
    features: tuple[SegmentFeature, ...] = ()

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.drifted)


@dataclass(frozen=True)
class Staleness:
    version: str | None
    registered: str                    # ISO 8601
    age_days: float
    max_age_days: float | None


@dataclass(frozen=True)
class WindowInfo:
    source: str                        # "logs" or "file"
    path: str
    files: tuple[str, ...]
    since: str | None
    start: str | None
    end: str | None
    rows: int                          # checked rows
    scored: int
    rejected: int                      # requests the server refused (error lines)
    unreadable: int
    roles: Mapping[str, int]
    versions: Mapping[str, int]


@dataclass(frozen=True)
class MonitorResult:
    window: WindowInfo
    reference: str
    reference_rows: int
    features: tuple[FeatureReport, ...]
    prediction: PredictionReport | None
    performance: Performance
    segments: tuple[SegmentReport, ...]
    staleness: Staleness | None
    alarms: tuple[Alarm, ...]
    notes: tuple[str, ...]
    generated: str
    seconds: float
    files: tuple[Path, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.alarms

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    def checks(self) -> tuple[str, ...]:
        """The checks that raised an alarm (each once, in order)."""
        return tuple(dict.fromkeys(a.check for a in self.alarms))

    def summary(self) -> str:
        """One line: healthy, or how many alarms and of which checks."""
        w = self.window
        head = f"{w.rows:,} rows"
        if w.start and w.end:
            head += f" ({w.start[:19]} to {w.end[:19]})"
        if self.healthy:
            return f"monitor: healthy: {head}, no threshold crossed"
        return f"monitor: {len(self.alarms)} alarm{'s' if len(self.alarms) != 1 else ''} on {head}: " + \
            ", ".join(f"{a.check} {a.subject}" for a in self.alarms[:6]) + \
            (f" and {len(self.alarms) - 6} more" if len(self.alarms) > 6 else "")

    def as_json(self) -> dict[str, Any]:
        raw = _jsonable(dataclasses.asdict(self))
        raw.pop("files", None)
        for f in raw["features"]:
            f.pop("plot", None)
        if raw["prediction"]:
            raw["prediction"].pop("plot", None)
            for part in raw["prediction"]["parts"]:
                part.pop("plot", None)
        return {"format": RESULT_FORMAT, "healthy": self.healthy, "summary": self.summary(), **raw}

    def gauges(self) -> list[tuple[str, dict[str, str], float]]:
        """(name, labels, value) per figure a Prometheus gauge exports (the server's /metrics can set these)."""
        out: list[tuple[str, dict[str, str], float]] = [
            ("mlops_monitor_healthy", {}, 1.0 if self.healthy else 0.0),
            ("mlops_monitor_alarms", {}, float(len(self.alarms))),
            ("mlops_monitor_rows", {}, float(self.window.rows)),
        ]
        for f in self.features:
            lab = {"feature": f.name}
            out.append(("mlops_monitor_feature_drifted", lab, 1.0 if f.drifted else 0.0))
            for name, v in (("wasserstein", f.wasserstein), ("psi", f.psi), ("jensen_shannon", f.jensen_shannon),
                            ("missing_share", f.missing_share)):
                if v is not None:
                    out.append((f"mlops_monitor_feature_{name}", lab, float(v)))
        if self.prediction is not None and self.prediction.psi is not None:
            out.append(("mlops_monitor_prediction_psi", {}, float(self.prediction.psi)))
        if self.prediction is not None:
            if self.prediction.parts:
                out.append(("mlops_monitor_prediction_drifted", {}, 1.0 if self.prediction.drifted else 0.0))
            for part in self.prediction.parts:
                lab = {"part": part.subject}
                for name, v in (("wasserstein", part.wasserstein), ("psi", part.psi),
                                ("jensen_shannon", part.jensen_shannon)):
                    if v is not None:
                        out.append((f"mlops_monitor_prediction_part_{name}", lab, float(v)))
        for kind, metrics in (("estimated", self.performance.estimated), ("realised", self.performance.realised)):
            for metric, v in (metrics or {}).items():
                if v is not None:
                    out.append(("mlops_monitor_metric", {"metric": metric, "kind": kind}, float(v)))
        if self.staleness is not None:
            out.append(("mlops_monitor_model_age_days", {}, float(self.staleness.age_days)))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class MonitorAlert(MlopsError):
    """A monitoring threshold was crossed (exit 1). Carries the whole result; the message names the alarms."""

    def __init__(self, result: MonitorResult) -> None:
        first = result.alarms[0].message if result.alarms else "unhealthy"
        more = len(result.alarms) - 1
        super().__init__(f"monitor: {first}" + (f" (and {more} more alarm{'s' if more != 1 else ''})" if more else ""),
                         hint="see reports/monitor.md for every check" if not result.files else
                         f"see {result.files[0]} for every check")
        self.result = result

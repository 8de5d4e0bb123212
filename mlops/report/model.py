"""What a report is made of: frozen dataclasses, built by `build.build_report`, rendered by `render`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops.evidence import Interval, PredictionDiff
from mlops.gates import GateReport
from mlops.mltestscore import Score


@dataclass(frozen=True)
class State:
    """One side of the comparison: the workspace (head), the base (main) or production."""

    role: str  # "head", "base", "production"
    name: str  # what the reader sees: "this branch", "main", "production"
    ref: str  # branch name, ref or tag (untrusted text)
    commit: str | None
    source: str  # where its outputs came from: workspace, local cache, DVC remote, reproduced...
    metrics: Mapping[str, float]
    params: Mapping[str, str]  # flattened "train.max_depth" -> "4" (as YAML would print it)
    deps: Mapping[str, str]  # data dependency path -> hash (dvc.lock)
    files: Mapping[str, Any]  # parsed JSON/CSV of the outputs read (plots, data summary, validation, segments)
    missing: tuple[str, ...] = ()  # outputs that could not be read at this state


@dataclass(frozen=True)
class Change:
    value: float | None
    reference: float | None
    delta: float | None
    verdict: str  # "better", "worse", "unchanged", "within noise" (interval), "new", "removed", "n/a"
    # The paired interval of the change, when both sides' per-row predictions give it: then it sets the verdict.
    interval: Interval | None = None


@dataclass(frozen=True)
class MetricRow:
    name: str
    higher_is_better: bool
    noise: float
    head: float | None
    vs_base: Change
    vs_production: Change | None


@dataclass(frozen=True)
class ParamRow:
    name: str
    base: str | None
    head: str | None


@dataclass(frozen=True)
class DataRow:
    what: str
    base: str
    head: str


@dataclass(frozen=True)
class CheckRow:
    name: str
    dataset: str
    status: str  # "fail", "warn", "pass", "error"
    finding: str


@dataclass(frozen=True)
class SegmentRow:
    column: str
    value: str
    metric: str
    rows: int | None
    base: float
    head: float
    delta: float


@dataclass(frozen=True)
class Series:
    role: str  # which state: head, base, production
    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    kind: str  # "line", "confusion", "bar"
    x_label: str
    y_label: str
    series: tuple[Series, ...] = ()
    categories: tuple[str, ...] = ()  # bar: category names; confusion: class labels
    bars: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # role -> value per category
    matrices: Mapping[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)  # role -> [actual][pred]
    mermaid: str = ""  # the GitHub-native rendering (empty: shown as a table instead)
    png: str = ""  # file name of the PNG rendering, relative to the report folder


@dataclass(frozen=True)
class Comparison:
    """What the per-row held-out predictions say against one reference (main or production)."""

    against: str  # "base" or "production"
    name: str  # what the reader sees: "main", "production"
    task: str  # binary, multiclass, regression ("" when the predictions could not be read)
    rows: int  # rows matched by id
    intervals: Mapping[str, Interval]  # by the report's metric name ("test.roc_auc")
    diff: PredictionDiff | None
    notes: tuple[str, ...] = ()  # what is missing and why

    @property
    def interval_bounds(self) -> dict[str, tuple[float, float]]:
        return {k: (v.low, v.high) for k, v in self.intervals.items()}


@dataclass(frozen=True)
class Meta:
    version: str
    seconds: float
    run_url: str | None
    generated: str  # ISO 8601 UTC
    full_report: str  # where the full report is (artifact or path), for cut markdown


@dataclass(frozen=True)
class PipelineFailure:
    """The pipeline failed before the report was built: what the report must say first."""

    error: str  # the one-line cause (`dvc repro failed: validation failed: check 'Data Duplicates' ...`)
    stage: str | None  # the stage that failed, when known
    metrics_reproduced: bool  # False: the stage that writes the metrics never ran, none are shown as this branch's
    not_reproduced: tuple[str, ...] = ()  # workspace outputs left out because their stage did not run
    failed: bool = True  # report.json: `"pipeline": {"failed": true, ...}`


@dataclass(frozen=True)
class Report:
    head: State
    base: State | None
    production: State | None
    production_note: str  # says plainly when there is no production model
    headline: str
    metrics: tuple[MetricRow, ...]
    params: tuple[ParamRow, ...]
    data: tuple[DataRow, ...]
    checks: tuple[CheckRow, ...]
    segments: tuple[SegmentRow, ...]
    charts: tuple[Chart, ...]
    gates: GateReport | None
    notes: tuple[str, ...]
    meta: Meta
    # The gates again with production as the reference: what `mlops promote` will check after the merge.
    production_gates: GateReport | None = None
    # Set when the pipeline failed: the report still shows validation and whatever metrics exist.
    pipeline: PipelineFailure | None = None
    # (stage, why) of the stages this run recomputed: "outputs not in the remote", "changed params", ...
    recomputed: tuple[tuple[str, str], ...] = ()
    # Intervals and prediction diffs against main and production (mlops.evidence), when per-row predictions exist.
    comparisons: tuple[Comparison, ...] = ()
    # The project's ML Test Score (Breck et al. 2017), assessed from its files (`mlops score`).
    test_score: Score | None = None
    # The top changes of global attribution shares against main (checks.json of `mlops check`): (feature, base
    # share, head share, change).
    attributions: tuple[tuple[str, float, float, float], ...] = ()
    # "data added: 312 rows from data/feedback/ (...)": the feedback rows this branch's data summary reports
    # (formats.datasummary); None when it used none or writes no summary.
    data_added: str | None = None

    @property
    def headline_row(self) -> MetricRow | None:
        return next((m for m in self.metrics if m.name == self.headline), None)

    @property
    def failed_checks(self) -> int:
        return sum(1 for c in self.checks if c.status in ("fail", "error"))

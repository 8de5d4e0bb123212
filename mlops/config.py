"""params.yaml: pydantic at the edge, frozen models inside. Every error names the file and the key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops.errors import ParamsInvalid

PARAMS_FILE = "params.yaml"


class _Model(BaseModel):
    # strict: YAML's `true` is not a tree count and "4" is not a depth (lax mode would coerce both silently).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        # `key:` with nothing after it (every entry commented out) means "the default", not "null".
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


ColumnType = Literal["int", "float", "bool", "category"]


class ColumnSpec(_Model):
    type: ColumnType
    values: tuple[str, ...] | None = Field(default=None, strict=False, description="allowed categories (category only)")
    nullable: bool = False
    # A domain rule beats a silent NaN: total_charges is missing exactly when tenure is 0, so it is 0.
    fill: float | None = None

    @model_validator(mode="after")
    def _values_only_for_categories(self) -> ColumnSpec:
        if self.values is not None and self.type != "category":
            raise ValueError("'values' is only allowed for type category")
        return self


class DataParams(_Model):
    raw: str = "data/raw/telco_churn.csv"
    target: str = "churn"
    positive: str = "Yes"
    max_missing_fraction: float = Field(default=0.01, ge=0, le=1)
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _target_declared(self) -> DataParams:
        if self.target not in self.columns:
            raise ValueError(f"target '{self.target}' is not declared under data.columns")
        return self

    @property
    def features(self) -> list[str]:
        return [c for c in self.columns if c != self.target]


class SplitParams(_Model):
    test_size: float = Field(default=0.2, gt=0, lt=1)
    seed: int = Field(default=42, ge=0)


class TrainParams(_Model):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=42, ge=0)
    n_estimators: int = Field(default=400, ge=1, le=100_000)
    max_depth: int = Field(default=4, ge=1, le=32)
    learning_rate: float = Field(default=0.03, gt=0, le=1)
    subsample: float = Field(default=0.8, gt=0, le=1)
    colsample_bytree: float = Field(default=0.8, gt=0, le=1)
    min_child_weight: float = Field(default=1.0, ge=0)
    reg_lambda: float = Field(default=1.0, ge=0)
    max_cat_to_onehot: int = Field(default=4, ge=1)
    # Fixed thread count: the same inputs give the same model bytes on any machine size.
    n_jobs: int = Field(default=2, ge=1, le=256)


class EvaluateParams(_Model):
    threshold: float = Field(default=0.4, gt=0, lt=1)
    segments: tuple[str, ...] = Field(default=("contract", "senior_citizen"), strict=False)
    curve_points: int = Field(default=101, ge=11, le=2001)


class ValidateParams(_Model):
    max_duplicate_ratio: float = Field(default=0.01, ge=0, le=1)
    max_feature_pps: float = Field(default=0.8, gt=0, le=1)
    max_numeric_drift: float = Field(default=0.1, gt=0, le=1)
    max_categorical_drift: float = Field(default=0.2, gt=0, le=1)
    max_label_drift: float = Field(default=0.1, gt=0, le=1)
    max_new_categories: int = Field(default=0, ge=0)
    pps_sample: int = Field(default=2000, ge=100)
    # deepchecks files some conditions (duplicates, for one) as warnings; here every condition is a gate unless
    # its check is listed here, by the name the report shows (e.g. "Data Duplicates").
    warn_only: tuple[str, ...] = Field(default=(), strict=False)


class GateSpec(_Model):
    min: float | None = None
    max: float | None = None
    max_drop: float | None = Field(default=None, ge=0)
    max_rise: float | None = Field(default=None, ge=0)


class MetricSpec(_Model):
    higher_is_better: bool = True
    noise: float = Field(default=0.0, ge=0)


class ReportParams(_Model):
    headline: str = "test.roc_auc"
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    default_noise: float = Field(default=0.0005, ge=0)
    # Optional pipeline outputs the report reads when they exist (JSON, repo-relative); a missing file skips its part.
    data_summary: str = "reports/data.json"
    validation: str = "reports/validation.json"
    segments: str = "reports/segments.json"
    # The metric compared per segment (a leaf name in the segments file); None uses the headline's leaf name.
    segment_metric: str | None = None
    max_table_rows: int = Field(default=100, ge=5, le=10_000)

    def spec(self, metric: str) -> MetricSpec:
        """The direction and noise threshold of METRIC ("test.log_loss"): per metric, else by its leaf name."""
        leaf = metric.rsplit(".", 1)[-1]
        found = self.metrics.get(metric) or next(
            (s for k, s in self.metrics.items() if k.rsplit(".", 1)[-1] == leaf), None)
        if found is not None:
            if "noise" in found.model_fields_set:
                return found
            return found.model_copy(update={"noise": self.default_noise})
        return MetricSpec(higher_is_better=not _lower_is_better(leaf), noise=self.default_noise)


def _lower_is_better(leaf: str) -> bool:
    """Losses and errors default to lower-is-better; everything else higher."""
    low = leaf.lower()
    return any(k in low for k in ("loss", "error", "mse", "mae", "rmse", "brier", "time", "latency"))


class RegistryParams(_Model):
    artifact: str = "churn-model"
    first_version: str = "v1.0.0"
    main_branch: str = "main"
    production_stage: str = Field(default="production", description="the stage `mlops rollback` and the gates use")
    remote: str = Field(default="origin", description="where `mlops promote` pushes its tags")
    push_retries: int = Field(default=3, ge=0, le=20, description="retries after losing a concurrent promotion")
    model_file: str = Field(default="model.ubj", description="the model file inside the artifact directory")
    schema_file: str = Field(default="feature_schema.json", description="the interface file inside the artifact")

    @field_validator("first_version")
    @classmethod
    def _semver(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"v\d+\.\d+\.\d+", v):
            raise ValueError("must look like v1.0.0")
        return v


class Params(_Model):
    data: DataParams
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    validate_: ValidateParams = Field(default=ValidateParams(), alias="validate")
    gates: dict[str, GateSpec] = Field(default_factory=dict)
    report: ReportParams = ReportParams()
    registry: RegistryParams = RegistryParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v is not None}
        if isinstance(data.get("gates"), dict):  # `test.auc:` with no rules: no rules, as load_sections reads it
            data["gates"] = {k: {} if v is None else v for k, v in data["gates"].items()}
        return data


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join("validate" if p == "validate_" else str(p) for p in loc)


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    loc = _loc(err["loc"])
    got = err.get("input")
    if kind == "extra_forbidden":
        return f"unknown key '{loc}'"
    if kind == "missing":
        return f"missing key '{loc}'"
    msg = err["msg"]
    if kind.startswith(("greater", "less")):
        msg = f"value out of range: {msg.lower()}"
    shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
    return f"key '{loc}': {msg} (got {shown})"


def parse_params(raw: object, source: str = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise ParamsInvalid(f"{source}: top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ParamsInvalid(f"{source}: {_describe(dict(errors[0]))}{more}",
                            hint="see the params.yaml reference in the README") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `1e-3` is a number (DVC, on ruamel, reads it so too)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_params_file(path: Path | str, *, required: bool = True) -> Any:
    """The YAML in PATH (None when it is absent and not REQUIRED); ParamsInvalid with the line on bad YAML."""
    p = Path(path)
    if not p.is_file():
        if not required:
            return None
        raise ParamsInvalid(f"{p}: file not found", hint="run from the project root or create params.yaml")
    try:
        return yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ParamsInvalid(f"{p}:{where} not valid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ParamsInvalid(f"{p}: not valid UTF-8 text") from None


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and check params.yaml; ParamsInvalid names the file and the key on any problem."""
    return parse_params(read_params_file(path), str(path))


@dataclass(frozen=True)
class Sections:
    """The sections of params.yaml that the report, the gates and the registry read, and only those: any
    project's params.yaml works, whatever else it holds."""

    report: ReportParams
    gates: dict[str, GateSpec]
    registry: RegistryParams


def load_sections(path: Path | str = PARAMS_FILE) -> Sections:
    """`report:`, `gates:` and `registry:` of PATH (each optional, and the file too); errors name the key."""
    raw = read_params_file(path, required=False) or {}
    if not isinstance(raw, dict):
        raise ParamsInvalid(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    gates_raw = raw.get("gates") or {}
    if not isinstance(gates_raw, dict):
        raise ParamsInvalid(f"{path}: key 'gates' must map metric names to rules",
                            hint="e.g. `gates: {test.roc_auc: {min: 0.8, max_drop: 0.005}}`")
    section = "report"
    try:
        report = ReportParams.model_validate(raw.get("report") or {})
        section = "registry"
        registry = RegistryParams.model_validate(raw.get("registry") or {})
        gates = {}
        for metric, spec in gates_raw.items():
            section = f"gates.{metric}"
            gates[str(metric)] = GateSpec.model_validate(spec or {})
    except ValidationError as exc:
        err: dict[str, Any] = dict(exc.errors()[0])
        err["loc"] = (section, *tuple(err["loc"]))
        raise ParamsInvalid(f"{path}: {_describe(err)}", hint="see the params.yaml reference in the README") from None
    return Sections(report, gates, registry)

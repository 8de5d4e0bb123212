"""params.yaml: pydantic at the edge, frozen models inside. Every error names the file and the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops import versions
from mlops.errors import ParamsInvalid
from mlops.files import read_yaml
from mlops.formats.profile import PROFILE_FILE

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


class FeedbackParams(_Model):
    """`data.feedback`: labelled served rows (what `mlops monitor --retrain` snapshots) that prepare adds."""

    dir: str = Field(default="data/feedback", min_length=1, description="the feedback CSVs (project-relative)")
    # Rows older than this before the newest feedback row are left out (their `ts`, else their file's stamp).
    window: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,5}[hdw]$", description="e.g. 90d; None: all")
    dedupe: bool = Field(default=True, description="drop rows equal (features and label) to a raw or earlier row")
    # train: every new row trains and the test split stays main's (comparable metrics); both: split like raw.
    split: Literal["train", "both"] = "train"


class DataParams(_Model):
    raw: str = "data/raw/telco_churn.csv"
    target: str = "churn"
    positive: str = "Yes"
    max_missing_fraction: float = Field(default=0.01, ge=0, le=1)
    columns: dict[str, ColumnSpec]
    feedback: FeedbackParams | None = None  # None: raw data only

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
    # Train on a Dask cluster through xgboost.dask: a scheduler address (tcp://HOST:8786) or `local` (a LocalCluster
    # of `dask_partitions` workers here). The model is deterministic for the same partitioning and seed only.
    dask: str | None = Field(default=None, min_length=1)
    dask_partitions: int = Field(default=2, ge=1, le=4096)


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
    # interval: max_drop/max_rise fail only when the whole confidence interval of the change lies past the limit
    # (needs both sides' per-row predictions: see report.predictions); point: the change itself is compared.
    judge: Literal["point", "interval"] = "point"


class PredictionsSpec(_Model):
    """`report.predictions`: the per-row held-out predictions that intervals and the prediction diff are made of."""

    path: str = Field(default="reports/predictions.csv", description="CSV or Parquet, repo-relative")
    id: str = Field(default="row", description="the column that identifies a row (rows are matched by it)")
    label: str = Field(default="label", description="the true label's column (in `labels` when that is set)")
    score: str | None = Field(default=None, description="binary: P(positive); regression: the prediction "
                              "(None: probability, score, prediction or value)")
    proba_prefix: str = Field(default="proba_", description="multiclass: one PREFIX+CLASS probability column each")
    task: Literal["binary", "multiclass", "regression"] | None = Field(default=None, description="None: inferred")
    positive: str | None = Field(default=None, description="binary: the positive label when labels are not 0/1")
    threshold: float | None = Field(default=None, gt=0, lt=1, description="binary decision threshold (None: the "
                                    "metrics files' `threshold`, else 0.5)")
    labels: str | None = Field(default=None, description="a held-out data file holding the label column, its "
                               "row N being the prediction with id N (when the predictions file has no label)")
    split: str | None = Field(default=None, description="the metrics prefix these rows are (None: the headline's)")

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class MetricSpec(_Model):
    higher_is_better: bool = True
    noise: float = Field(default=0.0, ge=0)


class ReportParams(_Model):
    # None: the first metric of the first metrics file dvc.yaml declares (project.headline).
    headline: str | None = None
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    default_noise: float = Field(default=0.0005, ge=0)
    # Optional pipeline outputs the report reads when they exist (JSON, repo-relative); a missing file skips its part.
    data_summary: str = "reports/data.json"
    validation: str = "reports/validation.json"
    segments: str = "reports/segments.json"
    # The metric compared per segment (a leaf name in the segments file); None uses the headline's leaf name.
    segment_metric: str | None = None
    max_table_rows: int = Field(default=100, ge=5, le=10_000)
    # Intervals and the prediction diff (mlops.evidence); `predictions: PATH` alone is the path.
    predictions: PredictionsSpec = Field(default_factory=PredictionsSpec)
    resamples: int = Field(default=1000, ge=0, le=100_000, description="paired bootstrap resamples (0: no intervals)")
    seed: int = Field(default=0, ge=0, description="seed of the bootstrap resamples")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    # Columns the model checks measure fairness gaps over (`mlops check`: checks.fairness.COLUMN.*).
    sensitive: tuple[str, ...] = Field(default=(), strict=False)

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
    return any(k in low for k in ("loss", "error", "mse", "mae", "rmse", "brier", "time", "latency",
                                  # the model checks' (mlops.checks) gaps and counts of problems
                                  "_gap", "parity_diff", "opportunity_diff", "useless", "weak_segment",
                                  "segment_ratio"))


class TaggerIdentity(_Model):
    """A git identity (`user.name`, `user.email`) allowed to make the registry tags that deploy accepts."""

    name: str = Field(min_length=1)
    email: str = Field(min_length=3, pattern=r"^[^<>\s]+@[^<>\s]+$")


# What actions/setup/git-auth.sh gives the promote workflow when the runner has no identity of its own.
PROMOTE_BOT = TaggerIdentity(name="github-actions[bot]", email="41898282+github-actions[bot]@users.noreply.github.com")


class RegistryParams(_Model):
    # None: the only `type: model` entry under `artifacts:` in dvc.yaml (project.resolve_artifact).
    artifact: str | None = None
    first_version: str = "v1.0.0"
    main_branch: str = "main"
    production_stage: str = Field(default="production", description="the stage that serves traffic: the report's "
                                  "production, the gates' reference, what rollback and deploy move (GTO's `prod`...)")
    remote: str = Field(default="origin", description="where `mlops promote` pushes its tags")
    push_retries: int = Field(default=3, ge=0, le=20, description="retries after losing a concurrent promotion")
    model_file: str | None = Field(default=None, description="the model file inside a directory artifact (None: "
                                   "the artifact is checksummed as a whole)")
    schema_file: str = Field(default="feature_schema.json", description="the interface file inside the artifact")
    # Provenance: deploy accepts a NAME@vX.Y.Z only when its commit is on main_branch and its tag was made by one
    # of these identities (the promote workflow's), or carries a signature that `git verify-tag` accepts with the
    # keys of allowed_signers.
    promote_identities: tuple[TaggerIdentity, ...] = Field(
        default=(PROMOTE_BOT,), strict=False,
        description="the taggers whose registry tags deploy accepts (the promote workflow's identity)")
    allowed_signers: str | None = Field(
        default=None, description="an SSH allowed_signers file (repo-relative): tags whose signature verifies "
                                  "against it are accepted whoever made them")

    @field_validator("first_version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not versions.is_valid(v):
            raise ValueError("must be a SemVer version with a leading v, like v1.0.0")
        return v


DeployTarget = Literal["local", "kserve"]
_PREVIOUS = "<previous>"  # `requires` not given: the stage of the environment listed before this one


class DeployEnvironmentParams(_Model):
    """`deploy.environments.NAME`: one delivery environment (staging, production...). Keys left out take the
    `deploy:` section's values; `requires` is the stage that must have held a version before it comes here."""

    stage: str | None = Field(default=None, min_length=1, description="the stage a deploy here assigns (None: NAME)")
    target: DeployTarget = "local"
    server_url: str | None = None
    store: str | None = None
    token_env: str | None = Field(default=None, min_length=1)
    kserve_namespace: str | None = None
    kserve_dir: str | None = None
    requires: str | None = Field(default=_PREVIOUS, min_length=1, description="the stage a version must have "
                                 "held first (default: the previous environment's; null: none)")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        # as _Model's, except that `requires: null` is kept: it is the one way to turn the staging check off
        if not isinstance(data, dict):
            return data
        return {k: v for k, v in data.items() if v is not None or k == "requires"}


@dataclass(frozen=True)
class DeployEnvironment:
    """One environment, resolved: its stage, the stage a version must have held first, and the deploy settings
    (server, store, token variable, KServe namespace) with its own values over the `deploy:` section's."""

    name: str
    stage: str
    requires: str | None
    target: DeployTarget
    params: DeployParams
    configured: bool  # False: no `deploy.environments`, the one implicit production environment


class DeployParams(_Model):
    """`deploy:` in params.yaml: where the local model server is and what its smoke test and canary must show."""

    server_url: str = Field(default="http://127.0.0.1:8080", description="the running `mlops serve` (local target)")
    store: str = Field(default=".mlops/store", description="the model store the server loads from (local target)")
    token_env: str = Field(default="MLOPS_ADMIN_TOKEN", description="environment variable with the admin token")
    canary_percent: int = Field(default=10, ge=1, le=100, description="share of traffic the candidate gets")
    canary_seconds: float = Field(default=10.0, ge=0, le=3600, description="how long the canary window lasts")
    canary_requests: int = Field(default=200, ge=0, le=1_000_000, description="replayed requests in the window")
    max_error_rate: float = Field(default=0.0, ge=0, le=1, description="the candidate's failed share, at most")
    max_p99_ms: float = Field(default=100.0, gt=0, description="the candidate's p99 latency in ms, at most")
    golden_tolerance: float = Field(default=1e-6, gt=0, description="golden predictions must match within this")
    kserve_dir: str = Field(default="deploy/kserve", description="where manifests go when no cluster is configured")
    kserve_namespace: str = Field(default="default")
    kserve_mode: Literal["knative", "standard"] = "knative"
    kserve_server_command: tuple[str, ...] = Field(
        default=("python", "-m", "xgbserver"), min_length=1, strict=False,
        description="the runtime image's server command: the pod checks the model's sha256, then execs it")
    kserve_runtime: Literal["mlops", "stock"] = Field(
        default="mlops", description="mlops: a ServingRuntime running `mlops serve` from `image` (the local "
                                     "server's answers); stock: KServe's own xgboost runtime (category codes)")
    image: str | None = Field(default=None, description="the toolkit's serving image by digest "
                              "(registry/repo@sha256:…), what the release workflow pushed")
    # Staging, then production: each environment its own server (or namespace), token and stage; the order is the
    # delivery order. None: one environment, production (registry.production_stage), as before environments.
    environments: dict[str, DeployEnvironmentParams] | None = None

    @field_validator("environments")
    @classmethod
    def _known_requires(cls, v: dict[str, DeployEnvironmentParams] | None) -> dict[str, DeployEnvironmentParams] | None:
        if v is not None:
            if not v:
                raise ValueError("must name at least one environment (or be left out)")
            stages = [e.stage or n for n, e in v.items()]
            if len(set(stages)) != len(stages):
                raise ValueError(f"two environments assign the same stage ({', '.join(stages)})")
            for name, env in v.items():
                if env.requires not in (None, _PREVIOUS) and env.requires not in stages:
                    raise ValueError(f"{name}.requires: '{env.requires}' is no environment's stage "
                                     f"({', '.join(stages)})")
        return v

    def environment(self, name: str | None, production_stage: str = "production") -> DeployEnvironment:
        """Environment NAME (None: production, else the last one listed); ParamsInvalid names the ones there are.
        Without `environments` the one environment is production, on this section's server, with no check."""
        if self.environments is None:
            if name not in (None, "production"):
                raise ParamsInvalid(f"params.yaml: deploy.environments is not set, so there is no environment "
                                    f"'{name}' (only production, on deploy.server_url)",
                                    hint="declare it under deploy.environments (see the README)")
            return DeployEnvironment("production", production_stage, None, "local", self, False)
        names = list(self.environments)
        chosen = name if name is not None else ("production" if "production" in names else names[-1])
        if chosen not in self.environments:
            raise ParamsInvalid(f"params.yaml: deploy.environments has no '{chosen}' (it has {', '.join(names)})",
                                hint="pick one of them with --environment")
        env = self.environments[chosen]
        index = names.index(chosen)
        requires = env.requires
        if requires == _PREVIOUS:
            requires = None if index == 0 else (self.environments[names[index - 1]].stage or names[index - 1])
        overrides = {k: getattr(env, k) for k in ("server_url", "store", "token_env", "kserve_namespace",
                                                  "kserve_dir") if getattr(env, k) is not None}
        stage = env.stage or (production_stage if chosen == "production" else chosen)
        return DeployEnvironment(chosen, stage, requires, env.target,
                                 self.model_copy(update={**overrides, "environments": None}), True)


MetricName = Literal["roc_auc", "accuracy", "f1", "precision", "recall"]
# Error metrics whose realised rise alarms (monitor.max_increase): a regression's RMSE and MAE, a multiclass log loss.
ErrorName = Literal["rmse", "mae", "log_loss"]


def _default_drops() -> dict[MetricName, float]:
    return {"roc_auc": 0.05, "accuracy": 0.05, "f1": 0.1}


class MonitorParams(BaseModel):
    """Thresholds of `mlops monitor` (each optional: the defaults are those of Evidently and NannyML where they
    have one). A threshold is crossed -> exit 1 with the reason."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    reference: str = Field(default=f"models/{PROFILE_FILE}", description="the reference profile (repo-relative)")
    log_dir: str | None = Field(default=None, description="the server's request log directory (--log)")
    # Drift: a feature drifts when its test is significant after Benjamini–Hochberg at this rate (so a clean
    # window raises a drift alarm with at most about this probability, however many features) AND its effect
    # reaches the size below (so that a large window does not alarm on a shift too small to matter).
    false_alarm_rate: float = Field(default=0.01, gt=0, lt=0.5)
    wasserstein: float = Field(default=0.1, gt=0, description="normed Wasserstein distance (numeric)")
    psi: float = Field(default=0.2, gt=0, description="population stability index (numeric, or per segment)")
    jensen_shannon: float = Field(default=0.1, gt=0, le=1, description="Jensen–Shannon distance, base 2 "
                                  "(categorical and numeric with few values)")
    max_missing_increase: float = Field(default=0.01, gt=0, le=1, description="missing share above the "
                                        "reference's")
    max_unseen_share: float = Field(default=0.001, ge=0, le=1, description="categories the model never saw")
    max_violation_share: float = Field(default=0.001, ge=0, le=1, description="wrong types, NaN/Inf, non-integers")
    max_rejected_share: float = Field(default=0.05, ge=0, le=1, description="requests the server refused")
    prediction_drift: bool = Field(default=True, description="alarm on drift of the model's scores")
    segment_drift: bool = Field(default=True, description="alarm on feature drift within a segment")
    min_segment_rows: int = Field(default=50, ge=5, description="rows a segment needs (reference and current)")
    # Volume and decay.
    min_rows: int = Field(default=100, ge=0, description="fewer rows in the window is a volume alarm")
    min_labelled: int = Field(default=200, ge=1, description="labelled rows before realised metrics alarm")
    max_drop: dict[MetricName, float] = Field(
        default_factory=_default_drops,
        description="largest drop of a metric (realised, else estimated) below the reference's")
    # Relative, not absolute: an error's scale is the target's (an RMSE of 50 on values near 150), so 0.1 means
    # "at most 10% above the reference's" whatever the unit. None set: a regression's realised errors are shown
    # and alarm on nothing.
    max_increase: dict[ErrorName, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="largest relative rise of a realised error metric above the reference's "
                                          "(regression: rmse, mae; multiclass: log_loss), e.g. {rmse: 0.1}")
    max_age_days: float | None = Field(default=180.0, gt=0, description="days since the production version "
                                       "was registered (staleness); null: no limit")
    # Input.
    roles: tuple[Literal["stable", "canary", "shadow"], ...] = Field(
        default=("stable",), strict=False, description="request-log roles that are checked")
    window: Literal["hour", "day"] = Field(default="day", description="the time windows of the report")
    chunk_rows: int = Field(default=50_000, ge=1_000, le=5_000_000)
    jobs: int = Field(default=0, ge=0, le=64, description="processes reading request logs (0: one per core, up to "
                      "4, for logs over 64 MiB)")
    plots: bool = True
    # For the retraining trigger (`--retrain`): how many consecutive alarming runs open a pull request.
    consecutive: int = Field(default=3, ge=1, le=100)
    retrain_dir: str = Field(default="data/feedback", min_length=1, description="where `--retrain` writes the "
                             "labelled snapshot (project-relative, tracked by DVC)")
    retrain_repro: bool = Field(default=True, description="`--retrain` reruns the pipeline on the branch (main's "
                                "code, the new data) and commits dvc.lock with it, so the pull request carries the "
                                "retrained model; false: the data alone (someone reruns the pipeline on the branch)")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None or k == "max_age_days"} \
            if isinstance(data, dict) else data


class PackageInput(_Model):
    """One input's override under `package.overrides` (what the data cannot say: a category's full list...)."""

    type: Literal["float", "int", "bool", "category", "string"] | None = None
    categories: tuple[str, ...] | None = Field(default=None, strict=False)
    nullable: bool | None = None


class PackageParams(_Model):
    """`package:` in params.yaml: what `mlops package` cannot infer from the model and the data, or infers wrong."""

    inputs: tuple[str, ...] | None = Field(default=None, strict=False, description="the input columns in the "
                                           "model's order (default: the model's own names, else every column but "
                                           "the target)")
    exclude: tuple[str, ...] = Field(default=(), strict=False, description="columns that are not inputs (ids...)")
    overrides: dict[str, PackageInput] = Field(default_factory=dict, description="per input: type, categories, "
                                               "nullable")
    classes: tuple[str, ...] | None = Field(default=None, strict=False, description="class names in the order of "
                                            "the model's probability columns (default: the model's, else sorted)")
    positive: str | None = Field(default=None, description="binary: the positive class (default: the second)")
    threshold: float | None = Field(default=None, gt=0, lt=1, description="binary: the decision threshold (0.5)")
    golden_rows: int = Field(default=32, ge=1, le=10_000, description="rows sampled into golden.json")
    seed: int = Field(default=0, ge=0, description="seed of the golden sample")
    golden_spread: bool = Field(default=False, description="golden rows spread evenly over the data (first, "
                                "last and evenly between) instead of a seeded sample")
    segments: tuple[str, ...] = Field(default=(), strict=False, description="inputs whose values the reference "
                                      "profile sketches one by one (monitoring per segment)")
    max_categories: int = Field(default=50, ge=1, description="a text column with more values is `string`")
    trusted: tuple[str, ...] = Field(default=(), strict=False, description="sklearn .skops: reviewed types to "
                                     "trust beyond scikit-learn's own")


def _package_view(raw: dict[str, Any], path: str) -> PackageParams:
    """`package:` of RAW (optional): the only section `mlops package` reads."""
    try:
        return PackageParams.model_validate(raw.get("package") or {})
    except ValidationError as exc:
        raise _section_invalid(exc, "package", path) from None


class CheckParams(_Model):
    """`checks:` in params.yaml: the settings of `mlops check` (mlops.checks.CheckSettings; sensitive columns are
    `report.sensitive`)."""

    min_rows: int = Field(default=30, ge=1, description="rows a segment or a fairness group needs")
    max_rows: int = Field(default=5000, ge=10, description="sample for permutation importance and TreeSHAP")
    repeats: int = Field(default=5, ge=1, le=100, description="shuffles per input (permutation importance)")
    seed: int = Field(default=0, ge=0)
    min_share: float = Field(default=0.01, ge=0, lt=1, description="an input under this share of the total "
                             "permutation importance contributes nothing")
    weak_ratio: float = Field(default=1.5, gt=1, description="a segment whose mean loss is this many times the "
                              "overall is weak")
    bins: int = Field(default=4, ge=2, le=100, description="quantile bins of a numeric column's segments")
    max_categories: int = Field(default=20, ge=2)
    top: int = Field(default=10, ge=1, le=1000, description="segments listed in checks.json")


def _check_view(raw: dict[str, Any], path: str) -> tuple[CheckParams, tuple[str, ...]]:
    """`checks:` and `report.sensitive` of RAW (both optional): what `mlops check` reads."""
    report = raw.get("report") or {}
    sensitive = report.get("sensitive") if isinstance(report, dict) else None
    if sensitive is None:
        sensitive = []
    if not isinstance(sensitive, list) or not all(isinstance(c, str) for c in sensitive):
        raise ParamsInvalid(f"{path}: key 'report.sensitive' must be a list of column names",
                            hint="e.g. `report: {sensitive: [gender, senior_citizen]}`")
    try:
        return CheckParams.model_validate(raw.get("checks") or {}), tuple(sensitive)
    except ValidationError as exc:
        raise _section_invalid(exc, "checks", path) from None


class Params(_Model):
    data: DataParams
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    validate_: ValidateParams = Field(default=ValidateParams(), alias="validate")
    gates: dict[str, GateSpec] = Field(default_factory=dict)
    report: ReportParams = ReportParams()
    registry: RegistryParams = RegistryParams()
    deploy: DeployParams = DeployParams()
    monitor: MonitorParams = MonitorParams()
    package: PackageParams = PackageParams()
    checks: CheckParams = CheckParams()

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


def _section_invalid(exc: ValidationError, section: str, path: str) -> ParamsInvalid:
    """The first problem of a section validated on its own, named as the whole file's check names it."""
    err: dict[str, Any] = dict(exc.errors()[0])
    err["loc"] = (section, *tuple(err["loc"]))
    return ParamsInvalid(f"{path}: {_describe(err)}", hint="see the params.yaml reference in the README")


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


_HINT_FILE = "run from the project root or create params.yaml"


def read_params_file(path: Path | str, *, required: bool = True) -> Any:
    """The YAML in PATH (None when it is absent and not REQUIRED); ParamsInvalid with the line on bad YAML."""
    return read_yaml(path, ParamsInvalid, required=required, hint=_HINT_FILE)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and check params.yaml; ParamsInvalid names the file and the key on any problem."""
    return read_params(path).params


@dataclass(frozen=True)
class Sections:
    """The sections of params.yaml that the report, the gates and the registry read, and only those: any
    project's params.yaml works, whatever else it holds."""

    report: ReportParams
    gates: dict[str, GateSpec]
    registry: RegistryParams
    deploy: DeployParams = field(default_factory=DeployParams)


def load_sections(path: Path | str = PARAMS_FILE) -> Sections:
    """`report:`, `gates:`, `registry:` and `deploy:` of PATH (each optional, and the file too); errors name the key.
    A job that needs more than this takes a ParamsFile (read_params) instead, so that it reads the file once."""
    return read_params(path).sections


def _sections_view(raw: dict[str, Any], path: str) -> Sections:
    gates_raw = raw.get("gates") or {}
    if not isinstance(gates_raw, dict):
        raise ParamsInvalid(f"{path}: key 'gates' must map metric names to rules",
                            hint="e.g. `gates: {test.roc_auc: {min: 0.8, max_drop: 0.005}}`")
    section = "report"
    try:
        report = ReportParams.model_validate(raw.get("report") or {})
        section = "registry"
        registry = RegistryParams.model_validate(raw.get("registry") or {})
        section = "deploy"
        deploy = DeployParams.model_validate(raw.get("deploy") or {})
        gates = {}
        for metric, spec in gates_raw.items():
            section = f"gates.{metric}"
            gates[str(metric)] = GateSpec.model_validate(spec or {})
    except ValidationError as exc:
        raise _section_invalid(exc, section, path) from None
    return Sections(report, gates, registry, deploy)


def _monitor_view(raw: dict[str, Any], path: str) -> MonitorParams:
    """`monitor:` of RAW (optional: the defaults); ParamsInvalid naming the key."""
    section = raw.get("monitor")
    if section is None:
        return MonitorParams()
    if not isinstance(section, dict):
        raise ParamsInvalid(f"{path}: key 'monitor' must be a mapping, got {type(section).__name__}")
    try:
        return MonitorParams.model_validate(section)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in ("monitor", *err["loc"]))
        if err["type"] == "extra_forbidden":
            what = f"unknown key '{loc}'"
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            what = f"key '{loc}': {err['msg']} (got {shown})"
        raise ParamsInvalid(f"{path}: {what}", hint="see `monitor:` in the params.yaml reference") from None


@dataclass(frozen=True)
class ParamsFile:
    """params.yaml as one command read it (read_params): the job takes it from its caller, or reads it once at its
    entry, and hands it down; each view validates its sections on first use (and only those: any project's
    params.yaml works for the commands that read a few sections), with errors naming the file and the key."""

    path: str
    raw: Any  # the YAML document; None when the file is absent or empty
    found: bool
    # Unreadable YAML, raised by every view: a command meets it where it first needs a section, as before.
    error: ParamsInvalid | None = None

    def _mapping(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        raw = self.raw or {}
        if not isinstance(raw, dict):
            raise ParamsInvalid(f"{self.path}: top level must be a mapping of sections, got {type(raw).__name__}")
        return raw

    @cached_property
    def params(self) -> Params:
        """Every section, checked (the pipeline's stages): the file must exist."""
        if self.error is not None:
            raise self.error
        if not self.found:
            raise ParamsInvalid(f"{Path(self.path)}: file not found", hint=_HINT_FILE)
        return parse_params(self.raw, self.path)

    @cached_property
    def sections(self) -> Sections:
        """`report:`, `gates:`, `registry:` and `deploy:` (each optional)."""
        return _sections_view(self._mapping(), self.path)

    @cached_property
    def monitor(self) -> MonitorParams:
        """`monitor:` (optional)."""
        return _monitor_view(self._mapping(), self.path)

    @cached_property
    def package(self) -> PackageParams:
        """`package:` (optional)."""
        return _package_view(self._mapping(), self.path)

    @cached_property
    def checks(self) -> tuple[CheckParams, tuple[str, ...]]:
        """`checks:` and `report.sensitive` (both optional)."""
        return _check_view(self._mapping(), self.path)


def read_params(path: Path | str = PARAMS_FILE) -> ParamsFile:
    """The one read of params.yaml per command (the file is optional here; `.params` requires it). Bad YAML or a
    bad section is ParamsInvalid naming the file and the line or key, raised by the view that needs it."""
    try:
        raw = read_params_file(path, required=False)
    except ParamsInvalid as exc:
        return ParamsFile(str(path), None, True, exc)
    return ParamsFile(str(path), raw, raw is not None or Path(path).is_file())

"""train: seeded xgboost on pandas categoricals, saved as UBJSON (never pickle) and packaged beside it.

models/ is a model package (mlops-model.yaml, golden.json, reference.json: written by mlops.packaging, the code
path of `mlops package`) that also keeps feature_schema.json, the interface file of artifacts made before packages
(the evaluate stage, `mlops check` and older store readers read it; the manifest's interface is the same)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.config import DataParams, PackageInput, PackageParams, Params
from mlops.errors import ModelInvalid
from mlops.files import sha256_file
from mlops.formats.manifest import FEATURE_SCHEMA_FORMAT, MANIFEST_FILE
from mlops.formats.manifest import GOLDEN_FILE as GOLDEN_NAME
from mlops.formats.profile import PROFILE_FILE
from mlops.packaging import PackageResult, PackageSpec, write_package
from mlops.progress import Progress, silent
from mlops.stages.data import TEST_FILE, TRAIN_FILE, features_and_label, load_prepared, write_json

MODEL_DIR = Path("models")
MODEL_FILE = MODEL_DIR / "model.ubj"
SCHEMA_FILE = MODEL_DIR / "feature_schema.json"
GOLDEN_FILE = MODEL_DIR / GOLDEN_NAME
REFERENCE_FILE = MODEL_DIR / PROFILE_FILE
PACKAGE_MANIFEST = MODEL_DIR / MANIFEST_FILE
GOLDEN_ROWS = 32
TRAIN_REPORT = Path("reports/train.json")


@dataclass(frozen=True)
class TrainResult:
    device: str
    model_sha256: str
    n_features: int


def gpu_available() -> bool:
    """True when this xgboost build has CUDA and a GPU answers `nvidia-smi -L`."""
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA"):
        return False
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        proc = subprocess.run([smi, "-L"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and b"GPU" in proc.stdout


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if gpu_available() else "cpu"
    if requested == "cuda" and not gpu_available():
        raise ModelInvalid("params.yaml: key 'train.device' is 'cuda' but no CUDA GPU is available here",
                           hint="use device: auto to fall back to the CPU")
    return requested


def feature_schema(x: pd.DataFrame, data: DataParams) -> dict[str, Any]:
    """The inputs the model expects: the model's interface, which the registry versions like a library API."""
    feats = []
    for name in x.columns:
        spec = data.columns[name]
        entry: dict[str, Any] = {"name": name, "type": spec.type}
        if spec.type == "category":
            entry["categories"] = [str(c) for c in x[name].cat.categories]
        feats.append(entry)
    return {
        "format": FEATURE_SCHEMA_FORMAT,
        "features": feats,
        "output": {"name": "probability", "type": "float", "label": data.target, "positive": data.positive},
    }


def package_params(x: pd.DataFrame, params: Params) -> PackageParams:
    """The churn model's package settings, as a `package:` section of params.yaml would state them: the interface
    is feature_schema.json's (the inputs in training order, their declared types, a category's values in the
    model's code order), the classes the target's declared values with `data.positive` the positive one, the
    decision threshold `evaluate.threshold`, golden rows spread over the test split, `evaluate.segments` profiled."""
    data = params.data
    overrides = {name: PackageInput(type=data.columns[name].type, categories=tuple(
        str(c) for c in x[name].cat.categories) if data.columns[name].type == "category" else None)
        for name in x.columns}
    declared = data.columns[data.target].values if data.target in data.columns else None
    return PackageParams(inputs=tuple(str(c) for c in x.columns), overrides=overrides,
                         classes=tuple(str(v) for v in declared) if declared else None, positive=data.positive,
                         threshold=params.evaluate.threshold, golden_rows=GOLDEN_ROWS, golden_spread=True,
                         segments=params.evaluate.segments)


def write_package_of(root: Path, x: pd.DataFrame, params: Params, progress: Progress = silent) -> PackageResult:
    """models/mlops-model.yaml, golden.json and reference.json, written as `mlops package` writes any model's
    (mlops.packaging, the one code path): the saved bytes loaded through the xgboost runtime, as deploy and serve
    load them, golden records and the reference profile from the HELD-OUT split (the model never trained on it)."""
    test = load_prepared(root / TEST_FILE, params.data)
    return write_package(PackageSpec(model=root / MODEL_FILE, frame=test, source=TEST_FILE.as_posix(),
                                     target=params.data.target, task="binary", runtime="xgboost",
                                     params=package_params(x, params)), progress)


def _fit_dask(local: Any, x: pd.DataFrame, y: Any, address: str, partitions: int,
              progress: Progress) -> Any:
    """LOCAL's parameters fit through xgboost.dask on the cluster at ADDRESS (`local`: a LocalCluster of PARTITIONS
    workers). Deterministic for the same PARTITIONS and seed: xgboost.dask builds each tree from per-partition
    histograms, so another partitioning (or worker count) gives another, equally valid, model."""
    try:
        import dask.dataframe as dd
        import xgboost.dask as dxgb
        from distributed import Client, LocalCluster
    except ImportError:
        raise ModelInvalid("train.dask needs Dask, which is not installed", hint='pip install "mlops[dask]"') \
            from None
    params = {k: v for k, v in local.get_params().items() if v is not None and k not in ("n_jobs", "missing")}
    progress(f"train: on Dask ({address}), {partitions} partitions")
    cluster = LocalCluster(n_workers=partitions, threads_per_worker=1, processes=True, dashboard_address=":0") \
        if address == "local" else None
    try:
        with Client(cluster if cluster is not None else address) as client:
            dx = dd.from_pandas(x, npartitions=partitions, sort=False)
            dy = dd.from_pandas(pd.Series(y, index=x.index), npartitions=partitions, sort=False)
            model = dxgb.DaskXGBClassifier(**params)
            model.client = client
            model.fit(dx, dy)
            return model
    finally:
        if cluster is not None:
            cluster.close()


def train(params: Params, root: Path = Path("."), progress: Progress = silent) -> TrainResult:
    import xgboost as xgb

    df = load_prepared(root / TRAIN_FILE, params.data)
    x, y = features_and_label(df, params.data)
    t = params.train
    device = resolve_device(t.device)
    progress(f"train: {len(x)} rows, {x.shape[1]} features on {device}")
    model = xgb.XGBClassifier(
        n_estimators=t.n_estimators, max_depth=t.max_depth, learning_rate=t.learning_rate,
        subsample=t.subsample, colsample_bytree=t.colsample_bytree, min_child_weight=t.min_child_weight,
        reg_lambda=t.reg_lambda, max_cat_to_onehot=t.max_cat_to_onehot, n_jobs=t.n_jobs,
        random_state=t.seed, tree_method="hist", device=device, enable_categorical=True,
        objective="binary:logistic", eval_metric="logloss",
    )
    if t.dask:
        model = _fit_dask(model, x, y, t.dask, t.dask_partitions, progress)
    else:
        model.fit(x, y)
    (root / MODEL_DIR).mkdir(parents=True, exist_ok=True)
    tmp = root / MODEL_FILE.with_name("model.tmp.ubj")
    model.get_booster().save_model(str(tmp))
    tmp.replace(root / MODEL_FILE)
    schema = feature_schema(x, params.data)
    write_json(root / SCHEMA_FILE, schema)
    write_package_of(root, x, params, progress)
    digest = sha256_file(root / MODEL_FILE)
    write_json(root / TRAIN_REPORT, {
        "device": device, "requested_device": t.device, "xgboost": xgb.__version__,
        "rows": len(x), "features": int(x.shape[1]), "model_sha256": digest,
    })
    return TrainResult(device=device, model_sha256=digest, n_features=int(x.shape[1]))


def load_trained(root: Path = Path(".")) -> tuple[Any, dict[str, Any]]:
    """The trained booster and its feature schema; ModelInvalid when either is missing."""
    import json

    import xgboost as xgb

    model_path, schema_path = root / MODEL_FILE, root / SCHEMA_FILE
    for p in (model_path, schema_path):
        if not p.is_file():
            raise ModelInvalid(f"{p}: not found", hint="run `mlops stage train` (or dvc repro) first")
    booster = xgb.Booster()
    try:
        booster.load_model(str(model_path))
    except xgb.core.XGBoostError as exc:
        raise ModelInvalid(f"{model_path}: not a readable xgboost model: {str(exc).splitlines()[0]}") from None
    return booster, json.loads(schema_path.read_text(encoding="utf-8"))

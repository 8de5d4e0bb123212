"""train: seeded xgboost on pandas categoricals, saved as UBJSON with the feature schema beside it. Never pickle."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.config import DataParams, Params
from mlops.errors import ModelInvalid
from mlops.features import parse_interface, records_from_frame
from mlops.files import sha256_file
from mlops.profile import PROFILE_FILE, build_profile, save_profile
from mlops.progress import Progress, silent
from mlops.stages.data import TEST_FILE, TRAIN_FILE, features_and_label, load_prepared, write_json

MODEL_DIR = Path("models")
MODEL_FILE = MODEL_DIR / "model.ubj"
SCHEMA_FILE = MODEL_DIR / "feature_schema.json"
GOLDEN_FILE = MODEL_DIR / "golden.json"
REFERENCE_FILE = MODEL_DIR / PROFILE_FILE
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
        "format": "mlops.feature-schema/1",
        "features": feats,
        "output": {"name": "probability", "type": "float", "label": data.target, "positive": data.positive},
    }


def golden(model_path: Path, schema: dict[str, Any], test: pd.DataFrame, data: DataParams,
           rows: int = GOLDEN_ROWS) -> dict[str, Any]:
    """Golden records for the smoke test of a deployment: ROWS test rows spread over the split, as raw records
    (what an application sends), with the probabilities the saved model gives them OFFLINE (the training path:
    a pandas DataFrame with categoricals, a DMatrix, on the CPU). A served model must answer the same."""
    import numpy as np
    import xgboost as xgb

    x, _ = features_and_label(test, data)
    x = x[[f["name"] for f in schema["features"]]]
    idx = np.unique(np.linspace(0, len(x) - 1, min(rows, len(x))).round().astype(int))
    picked = x.iloc[idx]
    booster = xgb.Booster()  # the saved bytes, not the object in memory: what deploy will install
    booster.load_model(str(model_path))
    preds = booster.predict(xgb.DMatrix(picked, enable_categorical=True))
    return {
        "format": "mlops.golden/1",
        "model_sha256": sha256_file(model_path),
        "source": TEST_FILE.as_posix(),
        "rows": [int(i) for i in idx],
        "output": schema["output"].get("name", "probability"),
        "records": records_from_frame(parse_interface(schema), picked),
        "predictions": [float(p) for p in preds],
    }


def write_reference(root: Path, schema: dict[str, Any], test: pd.DataFrame, params: Params) -> Path:
    """The monitoring reference (models/reference.json), in the artifact so that it travels with the model into
    the store: feature distributions, score distribution and a calibration map, all of the HELD-OUT split (the
    saved model never trained on these rows), scored by the saved bytes as golden() does."""
    import xgboost as xgb

    x_test, y_test = features_and_label(test, params.data)
    booster = xgb.Booster()
    booster.load_model(str(root / MODEL_FILE))
    scores = booster.predict(xgb.DMatrix(x_test[[f["name"] for f in schema["features"]]], enable_categorical=True))
    profile = build_profile(test, schema, scores, y_test, params.evaluate.segments,
                            threshold=params.evaluate.threshold)
    return save_profile(root / REFERENCE_FILE, profile)


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
    model.fit(x, y)
    (root / MODEL_DIR).mkdir(parents=True, exist_ok=True)
    tmp = root / MODEL_FILE.with_name("model.tmp.ubj")
    model.get_booster().save_model(str(tmp))
    tmp.replace(root / MODEL_FILE)
    schema = feature_schema(x, params.data)
    write_json(root / SCHEMA_FILE, schema)
    test = load_prepared(root / TEST_FILE, params.data)
    write_json(root / GOLDEN_FILE, golden(root / MODEL_FILE, schema, test, params.data))
    write_reference(root, schema, test, params)
    digest = sha256_file(root / MODEL_FILE)
    write_json(root / TRAIN_REPORT, {
        "device": device, "requested_device": t.device, "xgboost": xgb.__version__,
        "rows": len(x), "features": int(x.shape[1]), "model_sha256": digest,
    })
    return TrainResult(device=device, model_sha256=digest, n_features=int(x.shape[1]))


def load_model(root: Path = Path(".")) -> tuple[Any, dict[str, Any]]:
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

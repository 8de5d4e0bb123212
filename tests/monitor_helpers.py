"""Helpers of the monitoring tests: the churn test split of a trained project, its model's scores, injected shifts,
and request logs written by the server's own log writer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.config import Params, load_params
from mlops.monitor import Chunk
from mlops.profile import build_profile, save_profile
from mlops.stages.data import features_and_label, load_prepared
from mlops.stages.evaluate import predict_proba
from mlops.stages.train import load_trained

SHIFTS = ("monthly_charges", "contract", "tenure", "payment_method")


@dataclass(frozen=True)
class Churn:
    root: Path
    params: Params
    schema: dict[str, Any]
    booster: Any
    names: list[str]
    test: pd.DataFrame
    y: np.ndarray
    scores: np.ndarray
    profile: dict[str, Any]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's probabilities through the stages' DataFrame path (pandas categoricals, NaN for missing)."""
        x = frame[self.names].copy()
        for f in self.schema["features"]:
            if f["type"] == "category":
                x[f["name"]] = pd.Categorical(x[f["name"]].astype(object), categories=f["categories"])
            else:
                x[f["name"]] = pd.to_numeric(x[f["name"]], errors="coerce").astype("float64")
        return predict_proba(self.booster, x)


def load_churn(root: Path, profile_path: Path) -> Churn:
    """The trained project at ROOT read back, with the reference profile of its test split written to PROFILE_PATH."""
    params = load_params(root / "params.yaml")
    booster, schema = load_trained(root)
    names = [f["name"] for f in schema["features"]]
    test = load_prepared(root / "data/prepared/test.csv", params.data)
    x, y = features_and_label(test, params.data)
    scores = predict_proba(booster, x[names])
    profile = build_profile(test, schema, scores, y, params.evaluate.segments, threshold=params.evaluate.threshold)
    save_profile(profile_path, profile)
    return Churn(root, params, schema, booster, names, test, y, scores, profile)


def shifted(frame: pd.DataFrame, kind: str, seed: int = 0) -> pd.DataFrame:
    """FRAME with one shift injected, on that column only."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    if kind == "monthly_charges":
        out["monthly_charges"] = out["monthly_charges"] * 1.3
    elif kind == "contract":
        contract = out["contract"].astype(object)
        move = (contract != "Month-to-month").to_numpy() & (rng.random(len(out)) < 0.5)
        contract[move] = "Month-to-month"
        out["contract"] = contract
    elif kind == "tenure":
        tenure = out["tenure"].astype("float64")
        tenure[rng.random(len(out)) < 0.2] = np.nan
        out["tenure"] = tenure
    elif kind == "payment_method":
        method = out["payment_method"].astype(object)
        method[rng.random(len(out)) < 0.1] = "Cryptocurrency"
        out["payment_method"] = method
    else:
        raise ValueError(kind)
    return out


def chunk_of(churn: Churn, frame: pd.DataFrame, scores: np.ndarray | None,
             labels: np.ndarray | None = None) -> Chunk:
    """FRAME as one chunk of a file (pandas columns, categories as text)."""
    cols = {n: (frame[n].astype(object) if isinstance(frame[n].dtype, pd.CategoricalDtype) else frame[n])
            for n in churn.names}
    return Chunk(rows=len(frame), columns=cols, scores=None if scores is None else pd.Series(scores),
                 labels=None if labels is None else pd.Series(labels))


def to_csv(churn: Churn, frame: pd.DataFrame, path: Path, *, scores: np.ndarray | None = None,
           labels: np.ndarray | None = None, ids: list[str] | None = None) -> Path:
    out = frame[churn.names].copy()
    if scores is not None:
        out["probability"] = scores
    if labels is not None:
        out["churn"] = np.where(labels == 1, "Yes", "No")
    if ids is not None:
        out.insert(0, "request_id", ids)
    out.to_csv(path, index=False)
    return path


def records(churn: Churn, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Raw records as an application sends them (JSON types; missing values left out of the record)."""
    out = []
    types = {f["name"]: f["type"] for f in churn.schema["features"]}
    for row in frame[churn.names].to_dict("records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            rec[k] = str(v) if types[k] == "category" else (int(v) if types[k] in ("int", "bool") else float(v))
        out.append(rec)
    return out


def write_log(churn: Churn, directory: Path, frame: pd.DataFrame, scores: np.ndarray, *, start: float | None = None,
              step: float = 1.0, role: str = "stable", worker: int = 0, errors: int = 0,
              ids: list[str] | None = None) -> Path:
    """Request log lines written by the server's own writer (mlops.serve.requestlog), one request per row."""
    from mlops.serve.requestlog import RequestLog

    log = RequestLog(directory, worker, max_bytes=1 << 40, keep=10)
    t0 = start if start is not None else time.time() - len(frame) * step
    try:
        for i, (rec, p) in enumerate(zip(records(churn, frame), scores, strict=True)):
            rid = ids[i] if ids is not None else f"{role}-{worker}-{i}"
            log.submit((t0 + i * step, rid, "churn-model", "v1.0.0", role, "v1", 0.4, 200, [rec], None,
                        np.asarray([p], dtype=np.float32), "probability", None))
            if i % 5000 == 4999:
                time.sleep(0.01)  # let the writer drain its bounded queue
        for k in range(errors):
            log.submit((t0 + k * step, f"bad-{k}", "churn-model", "v1.0.0", role, "v1", 0.2, 422, None, None, None,
                        "probability", "row 0: field 'tenure' is missing"))
    finally:
        log.close(timeout=30)
    return directory

"""evaluate: metrics (train and test), DVC plot data, per-segment metrics and a model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlops.config import Params
from mlops.errors import ParamsInvalid
from mlops.features import bind_booster, encode_frame, make_predictor, parse_model_interface
from mlops.files import sha256_file
from mlops.progress import Progress, silent
from mlops.stages.data import TEST_FILE, TRAIN_FILE, features_and_label, load_prepared, write_json
from mlops.stages.train import MODEL_FILE, SCHEMA_FILE, TRAIN_REPORT, load_trained

METRICS_FILE = Path("reports/metrics.json")
PREDICTIONS_FILE = Path("reports/predictions.csv")
SEGMENTS_FILE = Path("reports/segments.json")
PLOTS_DIR = Path("reports/plots")
MODEL_CARD = Path("reports/model_card.md")


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, dict[str, float]]


def predict_proba(booster: Any, x: pd.DataFrame) -> NDArray[Any]:
    """The offline reference path (DataFrame with categoricals, DMatrix); evaluate predicts through mlops.features,
    which equals it (tests/test_features.py)."""
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(x, enable_categorical=True)), dtype=np.float64)


def write_predictions(path: Path, p: NDArray[Any]) -> None:
    """`row,probability` for every row of the test split (row: its 0-based position in the prepared test file);
    9 significant digits keep each float32 probability exact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    lines = ["row,probability"] + [f"{i},{float(v):.9g}" for i, v in enumerate(p)]
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def _r(v: float) -> float:
    return round(float(v), 6)


def scores(y: NDArray[Any], p: NDArray[Any], threshold: float) -> dict[str, float]:
    from sklearn import metrics as m

    pred = (p >= threshold).astype(int)
    two_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": _r(m.roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": _r(m.average_precision_score(y, p)) if two_classes else float("nan"),
        "f1": _r(m.f1_score(y, pred, zero_division=0)),
        "precision": _r(m.precision_score(y, pred, zero_division=0)),
        "recall": _r(m.recall_score(y, pred, zero_division=0)),
        "accuracy": _r(m.accuracy_score(y, pred)),
        "log_loss": _r(m.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


def _downsample(rows: list[dict[str, float]], n: int) -> list[dict[str, float]]:
    if len(rows) <= n:
        return rows
    idx = np.unique(np.linspace(0, len(rows) - 1, n).round().astype(int))
    return [rows[i] for i in idx]


def plot_data(y: NDArray[Any], p: NDArray[Any], threshold: float, importance: dict[str, float],
              points: int) -> dict[str, Any]:
    from sklearn import metrics as m

    fpr, tpr, _ = m.roc_curve(y, p)
    prec, rec, _ = m.precision_recall_curve(y, p)
    roc = _downsample([{"fpr": _r(a), "tpr": _r(b)} for a, b in zip(fpr, tpr, strict=True)], points)
    pr = _downsample([{"recall": _r(a), "precision": _r(b)} for a, b in zip(rec[::-1], prec[::-1], strict=True)],
                     points)
    labels = np.array(["No", "Yes"])
    pred = (p >= threshold).astype(int)
    confusion = [{"actual": str(labels[a]), "predicted": str(labels[b])} for a, b in zip(y, pred, strict=True)]
    total = sum(importance.values()) or 1.0
    ranked = sorted(importance.items(), key=lambda kv: (-kv[1], kv[0]))
    imp = [{"feature": k, "importance": _r(v / total)} for k, v in ranked]
    return {"roc.json": roc, "pr.json": pr, "confusion.json": confusion, "importance.json": imp}


def segment_metrics(df: pd.DataFrame, y: NDArray[Any], p: NDArray[Any], segments: tuple[str, ...],
                    threshold: float) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for col in segments:
        if col not in df.columns:
            raise ParamsInvalid(f"params.yaml: key 'evaluate.segments': column '{col}' is not in the data")
        out[col] = {}
        values = df[col].astype(str).to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            s = scores(y[mask], p[mask], threshold)
            out[col][value] = {"rows": int(mask.sum()), "positive_rate": _r(y[mask].mean()), **s}
    return out


def evaluate(params: Params, root: Path = Path("."), progress: Progress = silent) -> EvaluateResult:
    import json

    from jinja2 import Environment, PackageLoader, StrictUndefined

    booster, schema = load_trained(root)
    # The serving path (mlops.features): raw values -> float32 matrix with category codes -> the same prediction
    # call as `mlops serve`. Metrics and predictions.csv come from it, so training and serving cannot skew.
    iface = parse_model_interface(schema, str(root / SCHEMA_FILE))
    bind_booster(booster, iface, str(root / MODEL_FILE))
    predictor = make_predictor(booster)
    th = params.evaluate.threshold
    results: dict[str, dict[str, float]] = {}
    test_parts: tuple[pd.DataFrame, NDArray[Any], NDArray[Any]] | None = None
    for split, path in (("train", TRAIN_FILE), ("test", TEST_FILE)):
        df = load_prepared(root / path, params.data)
        x, y = features_and_label(df, params.data)
        p = np.asarray(predictor(encode_frame(iface, x)), dtype=np.float64)
        results[split] = scores(y, p, th)
        if split == "test":
            test_parts = (df, y, p)
    assert test_parts is not None  # both splits always run; narrows the type
    df, y, p = test_parts
    progress(f"evaluate: test roc_auc={results['test']['roc_auc']:.4f}")
    write_json(root / METRICS_FILE, {"threshold": th, **results})
    write_predictions(root / PREDICTIONS_FILE, p)
    importance = {k: float(v) for k, v in booster.get_score(importance_type="gain").items()}
    plots = plot_data(y, p, th, importance, params.evaluate.curve_points)
    for name, rows in plots.items():
        write_json(root / PLOTS_DIR / name, rows)
    write_json(root / SEGMENTS_FILE, segment_metrics(df, y, p, params.evaluate.segments, th))
    train_info = json.loads((root / TRAIN_REPORT).read_text()) if (root / TRAIN_REPORT).is_file() else {}
    # Markdown, not HTML: escaping would corrupt it; the values come from the repo's own params and data.
    env = Environment(loader=PackageLoader("mlops", "templates"), undefined=StrictUndefined,
                      autoescape=False, keep_trailing_newline=True)  # noqa: S701
    card = env.get_template("model_card.md.j2").render(
        artifact=params.registry.artifact, model_sha256=sha256_file(root / MODEL_FILE),
        data_path=params.data.raw, data_sha256=sha256_file(root / params.data.raw),
        params=params.train.model_dump(), metrics=results, threshold=th, schema=schema,
        device=train_info.get("device", "unknown"), target=params.data.target, positive=params.data.positive,
    )
    tmp = root / MODEL_CARD.with_name("model_card.md.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(card, encoding="utf-8")
    tmp.replace(root / MODEL_CARD)
    return EvaluateResult(metrics=results)

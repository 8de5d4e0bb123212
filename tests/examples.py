"""Four example models of other shapes than churn, built from data that scikit-learn ships (no download).

Each builder trains a model into DIR, writes the held-out split as a CSV with the target column, and returns an
Example whose `offline` predicts with the framework's own API on a DataFrame of held-out rows: what the package's
runtime must equal.

- sklearn-binary: breast cancer, a Pipeline (ColumnTransformer: scaled numbers + one-hot of a derived category),
  saved with skops;
- lightgbm-multiclass: wine, LGBMClassifier's booster saved as text;
- onnx-regression: diabetes, StandardScaler + GradientBoostingRegressor exported with skl2onnx;
- python-multiclass: iris, a class of the project's own (custom preprocessing: ratios and a log area; softmax over
  distances to class centroids) with its state in a JSON file.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Example:
    name: str
    task: str
    runtime: str
    model: Path
    data: Path
    target: str
    offline: Callable[[pd.DataFrame], np.ndarray]  # held-out rows -> P(positive) | (n, k) probabilities | values
    code: str | None = None
    extra_files: tuple[Path, ...] = field(default=())

    def cli_args(self, out: Path | None = None) -> list[str]:
        args = ["package", "--model", str(self.model), "--data", str(self.data), "--target", self.target,
                "--task", self.task]
        if self.code:
            args += ["--code", self.code]
        if out is not None:
            args += ["--out", str(out)]
        return args

    def features(self) -> pd.DataFrame:
        return pd.read_csv(self.data).drop(columns=[self.target])


def _split(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=None)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def sklearn_binary(d: Path) -> Example:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    d.mkdir(parents=True, exist_ok=True)
    raw = load_breast_cancer(as_frame=True)
    numeric = ["mean radius", "mean texture", "mean smoothness", "worst concavity", "worst symmetry"]
    frame = raw.frame[numeric].copy()
    # A derived categorical column: what the one-hot step of the pipeline encodes.
    frame["size_band"] = pd.cut(raw.frame["mean area"], [0, 500, 900, np.inf],
                                labels=["small", "medium", "large"]).astype(str)
    frame["diagnosis"] = np.where(raw.frame["target"] == 1, "benign", "malignant")
    train, test = _split(frame, "diagnosis")
    pipe = Pipeline([
        ("prep", ColumnTransformer([("num", StandardScaler(), numeric),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["size_band"])])),
        ("clf", LogisticRegression(max_iter=2000)),
    ]).fit(train.drop(columns=["diagnosis"]), train["diagnosis"])
    model = d / "model.skops"
    sio.dump(pipe, model)
    data = d / "test.csv"
    test.to_csv(data, index=False)

    def offline(x: pd.DataFrame) -> np.ndarray:
        # binary: P(positive), the positive class being the second of classes_ (malignant)
        return np.asarray(pipe.predict_proba(x)[:, 1], dtype=np.float64)

    return Example("sklearn-binary", "binary", "sklearn", model, data, "diagnosis", offline)


def lightgbm_multiclass(d: Path) -> Example:
    import lightgbm as lgb
    from sklearn.datasets import load_wine

    d.mkdir(parents=True, exist_ok=True)
    raw = load_wine(as_frame=True)
    frame = raw.frame.rename(columns={"od280/od315_of_diluted_wines": "od280_od315", "target": "cultivar"})
    train, test = _split(frame, "cultivar")
    clf = lgb.LGBMClassifier(n_estimators=40, num_leaves=7, learning_rate=0.1, min_child_samples=5,
                             random_state=0, n_jobs=1, verbose=-1)
    clf.fit(train.drop(columns=["cultivar"]), train["cultivar"])
    model = d / "model.lgb"
    clf.booster_.save_model(str(model))
    data = d / "test.csv"
    test.to_csv(data, index=False)
    booster = lgb.Booster(model_file=str(model))  # the saved bytes, not the object in memory

    def offline(x: pd.DataFrame) -> np.ndarray:
        return np.asarray(booster.predict(x), dtype=np.float64)

    return Example("lightgbm-multiclass", "multiclass", "lightgbm", model, data, "cultivar", offline)


def onnx_regression(d: Path) -> Example:
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    d.mkdir(parents=True, exist_ok=True)
    raw = load_diabetes(as_frame=True)
    frame = raw.frame.rename(columns={"target": "progression"})
    train, test = _split(frame, "progression")
    x_train = train.drop(columns=["progression"])
    pipe = Pipeline([("scale", StandardScaler()),
                     ("gbr", GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0))])
    pipe.fit(x_train, train["progression"])
    onx = convert_sklearn(pipe, initial_types=[("X", FloatTensorType([None, x_train.shape[1]]))],
                          target_opset=17)
    model = d / "model.onnx"
    model.write_bytes(onx.SerializeToString())
    data = d / "test.csv"
    test.to_csv(data, index=False)
    # One thread, as the runtime runs it: a float32 tree ensemble's sum depends on how threads split the trees
    # (about 2e-5 on values near 150 otherwise).
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])

    def offline(x: pd.DataFrame) -> np.ndarray:
        (out,) = session.run(None, {"X": x.to_numpy(dtype=np.float32)})
        return np.asarray(out, dtype=np.float64).reshape(-1)

    return Example("onnx-regression", "regression", "onnx", model, data, "progression", offline)


IRIS_MODEL = textwrap.dedent('''\
    """Iris by distance to class centroids, on features of our own making (the python runtime's example)."""

    import json
    import math
    from pathlib import Path


    def _features(r):
        # custom preprocessing: shape ratios and a log area, with the measuring site's offset removed
        offset = {"lab": 0.0, "field": 0.1}[r["site"]]
        pl, pw = r["petal_length"] - offset, r["petal_width"]
        return [pl / r["sepal_length"], pw / r["sepal_width"], math.log1p(pl * pw)]


    class IrisModel:
        def __init__(self, state):
            self.classes = state["classes"]
            self.centroids = state["centroids"]
            self.scale = state["scale"]

        @classmethod
        def load(cls, directory):
            return cls(json.loads((Path(directory) / "centroids.json").read_text()))

        @staticmethod
        def fit(records, labels, classes):
            feats = [_features(r) for r in records]
            cents = []
            for c in classes:
                rows = [f for f, y in zip(feats, labels) if y == c]
                cents.append([sum(col) / len(rows) for col in zip(*rows)])
            return {"classes": classes, "centroids": cents, "scale": 4.0}

        def predict(self, records):
            out = []
            for r in records:
                f = _features(r)
                logits = [-self.scale * sum((a - b) ** 2 for a, b in zip(f, c)) ** 0.5 for c in self.centroids]
                top = max(logits)
                e = [math.exp(v - top) for v in logits]
                s = sum(e)
                out.append([v / s for v in e])
            return out
''')


def python_multiclass(d: Path) -> Example:
    import importlib.util

    from sklearn.datasets import load_iris

    d.mkdir(parents=True, exist_ok=True)
    raw = load_iris(as_frame=True)
    frame = raw.frame.rename(columns={"sepal length (cm)": "sepal_length", "sepal width (cm)": "sepal_width",
                                      "petal length (cm)": "petal_length", "petal width (cm)": "petal_width"})
    frame["species"] = [str(raw.target_names[t]) for t in frame.pop("target")]
    rng = np.random.default_rng(1)
    frame.insert(4, "site", np.where(rng.random(len(frame)) < 0.3, "field", "lab"))
    frame.loc[frame["site"] == "field", "petal_length"] += 0.1
    train, test = _split(frame, "species")
    code = d / "iris_model.py"
    code.write_text(IRIS_MODEL)
    spec = importlib.util.spec_from_file_location("tests_iris_model", code)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = sorted(set(train["species"]))
    records = train.drop(columns=["species"]).to_dict("records")
    state = module.IrisModel.fit(records, list(train["species"]), classes)
    model = d / "centroids.json"
    model.write_text(json.dumps(state))
    data = d / "test.csv"
    test.to_csv(data, index=False)
    fitted = module.IrisModel(state)

    def offline(x: pd.DataFrame) -> np.ndarray:
        return np.asarray(fitted.predict(x.to_dict("records")), dtype=np.float64)

    return Example("python-multiclass", "multiclass", "python", model, data, "species", offline,
                   code=f"{code}:IrisModel")


BUILDERS: dict[str, Callable[[Path], Example]] = {
    "sklearn-binary": sklearn_binary,
    "lightgbm-multiclass": lightgbm_multiclass,
    "onnx-regression": onnx_regression,
    "python-multiclass": python_multiclass,
}


def build(name: str, d: Path) -> Example:
    return BUILDERS[name](d)


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-typed records (what an application sends): Python ints, floats and strings, exact."""
    return json.loads(json.dumps(frame.to_dict("records")))

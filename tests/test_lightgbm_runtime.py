"""The lightgbm runtime's single-row C path (mlops.runtimes.lightgbm._SingleRow): for each task, a few rows at a
time (what the server's batcher hands it) answer exactly what `Booster.predict` answers on the whole matrix, missing
values and a categorical input included; bigger batches take Booster.predict itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.features import encode_records
from mlops.files import sha256_file
from mlops.formats.manifest import read_manifest
from mlops.package import PackageRequest, package_model
from mlops.runtimes import load_runtime
from mlops.runtimes.lightgbm import FAST_ROWS, LightGBMRuntime
from tests.examples import as_records

lgb = pytest.importorskip("lightgbm")


def _frame(task: str) -> tuple[pd.DataFrame, str]:
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if task == "regression":
        frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    else:
        frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 7, 20, 21, 27, 30]]
        frame.columns = [f"f{i}" for i in range(frame.shape[1] - 1)] + ["y"]
    rng = np.random.default_rng(0)
    frame["band"] = pd.Categorical(rng.choice(["low", "mid", "high"], len(frame)), categories=["high", "low", "mid"])
    frame.loc[rng.random(len(frame)) < 0.1, "f0" if task != "regression" else "bmi"] = np.nan
    return frame, "y"


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_few_rows_through_the_c_path_equal_booster_predict(task: str, tmp_path: Path) -> None:
    frame, target = _frame(task)
    train, test = frame.iloc[: len(frame) * 2 // 3], frame.iloc[len(frame) * 2 // 3:].reset_index(drop=True)
    cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    est = cls(n_estimators=30, num_leaves=7, min_child_samples=5, random_state=0, n_jobs=1, verbose=-1)
    est.fit(train.drop(columns=[target]), train[target])
    model = tmp_path / "model.lgb"
    est.booster_.save_model(str(model))
    data = tmp_path / "test.csv"
    test.to_csv(data, index=False)
    package_model(PackageRequest(model, data, target, task, out=tmp_path / "pkg"))  # type: ignore[arg-type]
    pkg = tmp_path / "pkg"
    rt = load_runtime(pkg, sha256={f.path: sha256_file(pkg / f.path) for f in read_manifest(pkg).files})
    assert isinstance(rt, LightGBMRuntime) and rt._fast is not None  # the probe found it exact
    x = pd.read_csv(data).drop(columns=[target])
    matrix = encode_records(rt.interface, as_records(x), rt.dtype)
    assert np.isnan(matrix).any()  # missing values go through the C path too
    whole = rt.booster.predict(matrix, num_threads=1)  # one Booster.predict call: the reference
    offline = lgb.Booster(model_file=str(model)).predict(test.drop(columns=[target]))  # pandas, categories by name
    np.testing.assert_allclose(whole, offline, rtol=0, atol=1e-12)
    singles = np.concatenate([rt.predict_matrix(matrix[i:i + 1]).values for i in range(len(matrix))])
    np.testing.assert_array_equal(singles, whole)
    few = np.concatenate([rt.predict_matrix(matrix[i:i + FAST_ROWS]).values
                          for i in range(0, len(matrix), FAST_ROWS)])
    np.testing.assert_array_equal(few, whole)
    assert len(matrix) > FAST_ROWS
    np.testing.assert_array_equal(rt.predict_matrix(matrix).values, whole)  # a big batch: Booster.predict
    np.testing.assert_array_equal(rt.predict_records(as_records(x.iloc[:1])).values, whole[:1])

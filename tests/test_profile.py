"""The reference profile (mlops.profile): built from the churn test split of a trained project and a real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.errors import ModelInvalid
from mlops.profile import (
    PROFILE_FORMAT,
    auc_from_hist,
    bin_index,
    build_profile,
    calibrate,
    dumps,
    estimated_metrics,
    fit_isotonic,
    load_profile,
    numeric_sketch,
    rank_auc,
    save_profile,
)
from tests.monitor_helpers import Churn, load_churn


@pytest.fixture(scope="module")
def churn(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Churn:
    return load_churn(_trained_template, tmp_path_factory.mktemp("profile") / "reference.json")


def test_profile_of_the_test_split(churn: Churn) -> None:
    p = churn.profile
    assert p["format"] == PROFILE_FORMAT
    assert p["rows"] == len(churn.test) == 1409
    assert p["threshold"] == churn.params.evaluate.threshold
    assert set(p["features"]) == set(churn.names)
    # The reference metrics are evaluate's test metrics, to the digit.
    test_metrics = json.loads((churn.root / "reports/metrics.json").read_text())["test"]
    for key in ("roc_auc", "accuracy", "f1", "precision", "recall"):
        assert p["metrics"][key] == pytest.approx(test_metrics[key], abs=1e-6), key
    assert p["estimated"]["roc_auc"] == pytest.approx(p["metrics"]["roc_auc"], abs=0.02)
    tenure = p["features"]["tenure"]
    assert tenure["kind"] == "numeric" and tenure["grid"]["cells"] == 73  # one cell per month 0..72
    assert sum(tenure["counts"]) + tenure["below"][0] + tenure["above"][0] == 1409
    assert tenure["mean"] == pytest.approx(float(churn.test["tenure"].mean()), abs=1e-6)
    contract = p["features"]["contract"]
    assert contract["categories"] == ["Month-to-month", "One year", "Two year"]
    assert contract["counts"] == [int((churn.test["contract"] == c).sum()) for c in contract["categories"]]
    assert p["features"]["senior_citizen"]["discrete"] is True
    assert p["features"]["monthly_charges"]["discrete"] is False
    seg = p["segments"]["contract"]
    assert sum(v["rows"] for v in seg.values()) == 1409
    assert set(p["segments"]["senior_citizen"]) == {"0", "1"}
    assert seg["Two year"]["features"]["tenure"]["counts"] and "contract" in seg["Two year"]["features"]
    assert sum(p["prediction"]["counts"]) == 1409
    assert len(dumps(p)) < 40_000  # small: it travels with the model


def test_same_inputs_same_bytes_and_round_trip(churn: Churn, tmp_path: Path) -> None:
    again = build_profile(churn.test, churn.schema, churn.scores, churn.y, churn.params.evaluate.segments,
                          threshold=churn.params.evaluate.threshold)
    assert dumps(again) == dumps(churn.profile)
    path = save_profile(tmp_path / "models" / "reference.json", again)
    assert path.read_text() == dumps(churn.profile)
    assert load_profile(path) == json.loads(dumps(churn.profile))


def test_a_mapping_of_columns_gives_the_same_profile(churn: Churn) -> None:
    columns = {n: churn.test[n].astype(object).tolist() if churn.test[n].dtype.name == "category"
               else churn.test[n].to_numpy() for n in churn.names}
    again = build_profile(columns, churn.schema, churn.scores.tolist(), churn.y.tolist(),
                          churn.params.evaluate.segments, threshold=churn.params.evaluate.threshold)
    assert dumps(again) == dumps(churn.profile)


def test_isotonic_calibration_matches_scikit_learn(churn: Churn) -> None:
    from sklearn.isotonic import IsotonicRegression

    cal = churn.profile["calibration"]
    assert cal["method"] == "isotonic" and cal["x"] == sorted(cal["x"])
    assert all(0.0 <= v <= 1.0 for v in cal["y"]) and cal["y"] == sorted(cal["y"])
    ours = calibrate(churn.scores, cal)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(churn.scores, churn.y).predict(churn.scores)
    assert np.abs(ours - theirs).max() < 1e-5
    # Calibrated on these rows: the mean calibrated probability is the positive rate.
    assert float(ours.mean()) == pytest.approx(float(churn.y.mean()), abs=1e-4)


def test_auc_helpers_match_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.random(3000) < 0.3
    s = np.clip(rng.normal(0.4 + 0.25 * y, 0.2), 0, 1).round(3)  # rounded: ties
    assert rank_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    cells = np.minimum((s * 10_000).astype(int), 9_999)
    binned = auc_from_hist(np.bincount(cells[y], minlength=10_000), np.bincount(cells[~y], minlength=10_000))
    assert binned == pytest.approx(roc_auc_score(y, s), abs=1e-9)  # rounded to 1e-3: no two scores share a cell
    assert rank_auc(s, np.zeros(3000, dtype=bool)) is None


def test_estimated_metrics_track_the_realised_ones_on_calibrated_scores() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 200_000)
    y = rng.random(p.size) < p  # the scores are the true probabilities
    est = estimated_metrics(p, p, 0.4)
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    assert est["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.005)
    assert est["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.4), abs=0.005)
    assert est["f1"] == pytest.approx(f1_score(y, p >= 0.4), abs=0.01)


def test_fit_isotonic_pools_violators() -> None:
    cal = fit_isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
    assert calibrate(np.array([0.1, 0.25, 0.4]), cal).tolist() == [0.0, 0.5, 1.0]


def test_numeric_grid_and_bins() -> None:
    x = np.concatenate([np.arange(0, 100, dtype=float), [np.nan, np.inf]])
    sk = numeric_sketch(x, "int")
    assert sk["missing"] == 2 and sk["rows"] == 102
    assert sk["grid"] == {"lo": -0.5, "hi": 99.5, "cells": 100}
    assert sk["bins"][0] == 0 and sk["bins"][-1] == 100 and 8 <= len(sk["bins"]) - 1 <= 10
    b = bin_index(sk, np.array([-50.0, 0.0, 55.0, 99.0, 1e9]))
    assert b[0] == 0 and b[-1] == len(sk["bins"]) - 2 and list(b) == sorted(b)
    heavy = numeric_sketch(np.concatenate([np.random.default_rng(0).normal(0, 1, 5000), [1e6]]), "float")
    assert heavy["grid"]["hi"] < 10 and heavy["above"][0] >= 1  # an outlier does not squeeze the grid


def test_bad_inputs_are_refused(churn: Churn, tmp_path: Path) -> None:
    with pytest.raises(ModelInvalid, match="labels for"):
        build_profile(churn.test, churn.schema, churn.scores, churn.y[:10])
    with pytest.raises(ModelInvalid, match="0/1"):
        build_profile(churn.test, churn.schema, churn.scores, churn.y * 2)
    with pytest.raises(ModelInvalid, match="'tenure'"):
        build_profile(churn.test.drop(columns=["tenure"]), churn.schema, churn.scores)
    with pytest.raises(ModelInvalid, match="NaN"):
        build_profile(churn.test, churn.schema, np.full(len(churn.test), np.nan))
    no_labels = build_profile(churn.test, churn.schema, churn.scores, None, ["contract", "monthly_charges"])
    assert no_labels["calibration"] is None and no_labels["metrics"] == {}
    assert any("monthly_charges" in n and "continuous" in n for n in no_labels["notes"])
    with pytest.raises(ModelInvalid, match="not found"):
        load_profile(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"format": "something/1"}')
    with pytest.raises(ModelInvalid, match="'format'"):
        load_profile(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ModelInvalid, match="not valid JSON"):
        load_profile(tmp_path / "broken.json")


def test_categorical_codes_of_unknown_and_missing(churn: Churn) -> None:
    frame = churn.test.head(4).copy()
    frame["contract"] = pd.Series(["One year", None, "Weekly", "Two year"], dtype=object).to_numpy()
    p = build_profile(frame, churn.schema, churn.scores[:4], None)
    c = p["features"]["contract"]
    assert c["counts"] == [0, 1, 1] and c["missing"] == 2  # None and an unknown category: not a category

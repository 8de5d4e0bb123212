"""`mlops monitor` follows the task: prediction drift, realised metrics and the label-free estimate of a multiclass
classifier (LightGBM, wine) and a regression (ONNX, diabetes), packaged by `mlops package` from tests/examples.py and
scored through their runtimes; the single-process and the Dask (LocalCluster) results of a multiclass window agree."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, mean_squared_error

from mlops.config import read_params
from mlops.errors import ParamsInvalid
from mlops.files import sha256_file
from mlops.formats.manifest import read_manifest
from mlops.formats.profile import ReferenceProfile, read_profile
from mlops.monitor import (
    MonitorInputError,
    MonitorParams,
    MonitorResult,
    ReadStats,
    read_record_chunks,
    run,
    write_reports,
)
from mlops.monitor.scoring import package_scorer
from mlops.monitor.tasks import read_task_labels
from mlops.package import PackageRequest, package_model
from mlops.runtimes import load_runtime
from tests.examples import Example, build

PARAMS = MonitorParams(min_rows=0, plots=False, max_age_days=None)
N = 600


class Pkg:
    def __init__(self, ex: Example, directory: Path) -> None:
        self.ex = ex
        self.dir = directory
        self.ref: ReferenceProfile = read_profile(directory / "reference.json")
        self.data = pd.read_csv(ex.data)
        rt = load_runtime(directory, sha256={f.path: sha256_file(directory / f.path)
                                             for f in read_manifest(directory).files})
        # the package's own answers on the held-out rows (what the monitor's scorer computes)
        self.answers = rt.predict_records(self.data[self.ref.feature_names].to_dict("records")).values

    def check(self, frame: pd.DataFrame, path: Path, client: Any = None, parts: int = 1,
              params: MonitorParams = PARAMS) -> MonitorResult:
        """The library's check of FRAME (features and the label column) written as PARTS CSV files."""
        files = []
        cuts = np.linspace(0, len(frame), parts + 1).astype(int)
        for k, piece in enumerate(frame.iloc[a:b] for a, b in itertools.pairwise(cuts)):
            f = path.with_name(f"{path.stem}-{k}.csv")
            piece.to_csv(f, index=False)
            files.append(f)
        ref = self.ref
        chunks = None if client is not None else (
            c for f in files for c in read_record_chunks(f, ref.feature_names, ref.output_name, ref.label,
                                                 categorical=ref.categorical, chunk_rows=PARAMS.chunk_rows))
        return run(dict(ref.doc), chunks, params, ReadStats(), source="file", path=str(path),
                   reference=str(self.dir / "reference.json"), scorer=package_scorer(self.dir), client=client,
                   files=files, registered=None)


@pytest.fixture(scope="module")
def pkgs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pkg]:
    root = tmp_path_factory.mktemp("monitor-tasks")
    out = {}
    for name in ("lightgbm-multiclass", "onnx-regression"):
        ex = build(name, root / "ex" / name)
        res = package_model(PackageRequest(ex.model, ex.data, ex.target, ex.task, out=root / "pkg" / name))  # type: ignore[arg-type]
        out[name] = Pkg(ex, res.directory)
    return out


def _resample(p: Pkg, seed: int, weights: Sequence[float] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = None if weights is None else np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    idx = rng.choice(len(p.data), size=N, replace=True, p=w)
    return p.data.iloc[idx].reset_index(drop=True), idx


# --- prediction drift --------------------------------------------------------------------------------------------


def test_a_shifted_predicted_class_mix_is_prediction_drift(pkgs: dict[str, Pkg], tmp_path: Path) -> None:
    p = pkgs["lightgbm-multiclass"]
    pred = p.answers.argmax(axis=1)
    # class 0 predicted for about 80% of the window (about a third of the reference rows)
    frame, _ = _resample(p, 3, np.where(pred == 0, 8.0, 1.0))
    result = p.check(frame, tmp_path / "shifted.csv")
    assert result.prediction is not None and result.prediction.task == "multiclass"
    assert [a.check for a in result.alarms if a.subject == "prediction"] == ["prediction"]
    mix = result.prediction.parts[0]
    assert mix.subject == "predicted class" and mix.test == "chi2" and mix.drifted
    assert [pt.subject for pt in result.prediction.parts] == ["predicted class", "P(0)", "P(1)", "P(2)"]
    gauges = {(n, tuple(sorted(lab.items()))): v for n, lab, v in result.gauges()}
    assert gauges[("mlops_monitor_prediction_drifted", ())] == 1.0
    assert gauges[("mlops_monitor_prediction_part_jensen_shannon", (("part", "predicted class"),))] >= 0.1


def test_a_shifted_predicted_value_is_prediction_drift(pkgs: dict[str, Pkg], tmp_path: Path) -> None:
    p = pkgs["onnx-regression"]
    high = p.answers >= np.median(p.answers)
    frame, _ = _resample(p, 4, np.where(high, 1.0, 0.0))  # only the upper half of the predicted values
    result = p.check(frame, tmp_path / "shifted.csv")
    assert result.prediction is not None and result.prediction.task == "regression"
    assert "prediction" in {a.subject for a in result.alarms if a.check == "prediction"}
    (part,) = result.prediction.parts
    assert part.subject == "value" and part.drifted and part.mean is not None
    assert part.mean > float(p.ref.doc["prediction"]["mean"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lightgbm-multiclass", "onnx-regression"])
def test_no_alarm_on_clean_resamples(pkgs: dict[str, Pkg], name: str, tmp_path: Path) -> None:
    p = pkgs[name]
    rng = np.random.default_rng(17)
    alarmed = []
    for k in range(100):
        frame, _ = _resample(p, int(rng.integers(1 << 30)))
        result = p.check(frame, tmp_path / f"clean{k % 2}.csv")
        assert result.prediction is not None and result.prediction.p_value is not None
        if not result.healthy:
            alarmed.append([a.message for a in result.alarms])
    assert len(alarmed) <= 5, alarmed


# --- realised metrics and the estimate ---------------------------------------------------------------------------


def test_multiclass_realised_metrics_equal_sklearns_and_the_estimate_is_labelled(pkgs: dict[str, Pkg],
                                                                                tmp_path: Path) -> None:
    p = pkgs["lightgbm-multiclass"]
    frame, idx = _resample(p, 5)
    result = p.check(frame, tmp_path / "window.csv")
    perf = result.performance
    assert perf.task == "multiclass" and perf.labelled == N
    probs = p.answers[idx]
    y = frame[p.ex.target].to_numpy()
    realised = perf.realised or {}
    assert math.isclose(realised["accuracy"] or -1, accuracy_score(y, probs.argmax(axis=1)), abs_tol=1e-9)
    assert math.isclose(realised["macro_f1"] or -1, f1_score(y, probs.argmax(axis=1), average="macro"),
                        abs_tol=1e-9)
    assert math.isclose(realised["log_loss"] or -1, log_loss(y, probs, labels=[0, 1, 2]), abs_tol=1e-9)
    # the estimate: before labels, from the probabilities alone, kept apart from the realised figures
    assert set(perf.estimated) == {"accuracy"}
    assert abs((perf.estimated["accuracy"] or 0) - (realised["accuracy"] or 0)) <= 0.05
    kinds = {(lab["metric"], lab["kind"]) for n, lab, _ in result.gauges() if n == "mlops_monitor_metric"}
    assert {("accuracy", "estimated"), ("accuracy", "realised"), ("macro_f1", "realised"),
            ("log_loss", "realised")} <= kinds
    assert not any(m == "roc_auc" for m, _ in kinds)

    unlabelled = p.check(frame.drop(columns=[p.ex.target]), tmp_path / "unlabelled.csv")
    md = write_reports(unlabelled, tmp_path / "r", plots=False)[0].read_text()
    assert "accuracy is **estimated** as the mean of each row's top class probability" in md
    assert "| macro_f1 |" in md and "| roc_auc |" not in md
    assert "*prediction: predicted class*" in md


def test_regression_realised_metrics_equal_sklearns_and_no_estimate_is_claimed(pkgs: dict[str, Pkg],
                                                                             tmp_path: Path) -> None:
    p = pkgs["onnx-regression"]
    frame, idx = _resample(p, 6)
    result = p.check(frame, tmp_path / "window.csv")
    perf = result.performance
    values = p.answers[idx]
    y = frame[p.ex.target].to_numpy(dtype=np.float64)
    realised = perf.realised or {}
    assert math.isclose(realised["rmse"] or -1, math.sqrt(mean_squared_error(y, values)), rel_tol=1e-9)
    assert math.isclose(realised["mae"] or -1, mean_absolute_error(y, values), rel_tol=1e-9)
    assert perf.estimated == {} and perf.task == "regression"

    unlabelled = p.check(frame.drop(columns=[p.ex.target]), tmp_path / "unlabelled.csv")
    assert unlabelled.performance.realised is None
    assert any("no estimate of the error before labels" in n for n in unlabelled.notes)
    md = write_reports(unlabelled, tmp_path / "r", plots=False)[0].read_text()
    assert "No labels yet, and no estimate" in md and "| rmse |" in md


def _from_params_yaml(tmp_path: Path, monitor_section: str) -> MonitorParams:
    """MonitorParams as an adopter sets them: `monitor:` of a params.yaml, read as `mlops monitor` reads it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "params.yaml").write_text(f"monitor:\n  min_rows: 0\n  plots: false\n  max_age_days: null\n"
                                          f"{monitor_section}")
    return read_params(tmp_path / "params.yaml").monitor


def test_a_rise_of_a_regressions_realised_error_alarms_past_max_increase(pkgs: dict[str, Pkg],
                                                                        tmp_path: Path) -> None:
    p = pkgs["onnx-regression"]
    params = _from_params_yaml(tmp_path, "  max_increase: {rmse: 0.1}\n")
    assert params.max_increase == {"rmse": 0.1}
    same = pd.concat([p.data] * 3, ignore_index=True)  # the reference rows: the reference's own errors
    assert len(same) >= params.min_labelled
    healthy = p.check(same, tmp_path / "same.csv", params=params)
    assert not [a for a in healthy.alarms if a.check == "decay"], [a.message for a in healthy.alarms]
    ref_rmse = float(p.ref.doc["metrics"]["rmse"])
    assert math.isclose((healthy.performance.realised or {})["rmse"] or -1, ref_rmse, rel_tol=1e-4)
    # the world changed: the same inputs now have noisier outcomes (the model's RMSE about doubles)
    noisy = same.copy()
    noisy[p.ex.target] += np.random.default_rng(0).normal(0.0, 2 * ref_rmse, len(noisy))
    result = p.check(noisy, tmp_path / "noisy.csv", params=params)
    decay = [a for a in result.alarms if a.check == "decay"]
    assert [a.subject for a in decay] == ["rmse"], [a.message for a in result.alarms]  # mae has no limit set
    (alarm,) = decay
    assert alarm.threshold == pytest.approx(ref_rmse * 1.1)
    assert alarm.value is not None and alarm.threshold is not None and alarm.value > alarm.threshold
    assert "above the reference's" in alarm.message and "at most 10% allowed" in alarm.message
    # no limit set: shown, not judged, and the report says how to set one
    quiet = p.check(noisy, tmp_path / "noisy.csv", params=_from_params_yaml(tmp_path / "q", ""))
    assert not [a for a in quiet.alarms if a.check == "decay"]
    assert any("set monitor.max_increase" in n for n in quiet.notes)


def test_a_rise_of_a_multiclass_log_loss_alarms_past_max_increase(pkgs: dict[str, Pkg], tmp_path: Path) -> None:
    p = pkgs["lightgbm-multiclass"]
    # accuracy's and macro-F1's drops off: only the log loss is judged here
    params = _from_params_yaml(tmp_path, "  max_drop: {}\n  max_increase: {log_loss: 0.5}\n")
    frame, _ = _resample(p, 8)
    rng = np.random.default_rng(1)
    wrong = rng.random(len(frame)) < 0.3  # a third of the labels moved to another class
    frame.loc[wrong, p.ex.target] = (frame.loc[wrong, p.ex.target] + 1) % 3
    result = p.check(frame, tmp_path / "w.csv", params=params)
    decay = [a for a in result.alarms if a.check == "decay"]
    assert [a.subject for a in decay] == ["log_loss"], [a.message for a in result.alarms]
    with pytest.raises(ParamsInvalid, match=r"monitor\.max_increase\.rmse"):
        _from_params_yaml(tmp_path, "  max_increase: {rmse: 0}\n")


def test_labels_files_are_read_for_the_task(pkgs: dict[str, Pkg], tmp_path: Path) -> None:
    mc, rg = pkgs["lightgbm-multiclass"].ref.doc, pkgs["onnx-regression"].ref.doc
    f = tmp_path / "labels.csv"
    f.write_text("request_id,label\na,2\nb,0\n")
    assert read_task_labels(f, mc, None, None) == {("a", 0): 2.0, ("b", 0): 0.0}
    f.write_text("request_id,label\na,151.5\nb,-3\n")
    assert read_task_labels(f, rg, None, None) == {("a", 0): 151.5, ("b", 0): -3.0}
    f.write_text("request_id,label\na,1\nb,merlot\n")
    with pytest.raises(MonitorInputError, match=r"line 3: label 'merlot' is not one of the classes 0, 1, 2"):
        read_task_labels(f, mc, None, None)


# --- Dask ----------------------------------------------------------------------------------------------------------


def _close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k not in ("seconds", "generated", "path", "files"):
                _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.mark.e2e
@pytest.mark.slow
def test_multiclass_window_on_a_dask_cluster_equals_the_single_process(pkgs: dict[str, Pkg],
                                                                       tmp_path: Path) -> None:
    from mlops.jobs.predict import dask_client

    p = pkgs["lightgbm-multiclass"]
    pred = p.answers.argmax(axis=1)
    frame, _ = _resample(p, 7, np.where(pred == 2, 3.0, 1.0))  # some prediction drift, so that alarms compare too
    local = p.check(frame, tmp_path / "w.csv", parts=3)
    with dask_client("local", workers=2) as client:
        remote = p.check(frame, tmp_path / "w.csv", client=client, parts=3)
    assert remote.performance.labelled == local.performance.labelled == N
    assert remote.window.scored == N
    _close(local.as_json(), remote.as_json())

"""Intervals, DeLong and the prediction diff (mlops.evidence), the interval-judged gate, the report's use of them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlops import evidence as ev
from mlops.config import GateSpec, ReportParams, load_sections
from mlops.errors import ReportError
from mlops.gates import GateEvidence, evaluate_gates
from mlops.report import State, compare

ROOT = Path(__file__).resolve().parents[1]
N = 1409


def _binary(scores: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> ev.Predictions:
    return ev.Predictions("binary", tuple(str(i) for i in range(len(y))), y.astype(float), scores, threshold)


def _binormal(rng: np.random.Generator, n: int, d_a: float, d_b: float, rho: float) -> tuple[np.ndarray, ...]:
    """Two correlated scores of one label: positives N(d, 1), negatives N(0, 1), so AUC = Phi(d / sqrt(2))."""
    y = (rng.random(n) < 0.27).astype(float)
    e = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    a = e[:, 0] + d_a * y
    b = e[:, 1] + d_b * y
    return y, 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))  # monotone: AUC unchanged, scores in (0, 1)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


# --- the metrics are scikit-learn's -----------------------------------------------------------------------------------

def test_binary_metrics_equal_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.3).astype(float)
    s = np.round(np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1), 1)  # rounded: many tied scores
    got = ev.point_metrics(_binary(s, y, 0.4))
    pred = s >= 0.4
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(s, 1e-7, 1 - 1e-7)), abs=1e-6)
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, s), abs=1e-6)
    for name, fn in (("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("accuracy", skm.accuracy_score)):
        assert got[name] == pytest.approx(fn(y, pred), abs=1e-6), name


def test_multiclass_and_regression_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet([1, 1, 1], 300)
    p[np.arange(300), y] += 0.5
    p /= p.sum(axis=1, keepdims=True)
    got = ev.point_metrics(ev.Predictions("multiclass", tuple(map(str, range(300))), y.astype(float), p))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)), abs=1e-6)
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro"), abs=1e-6)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-5)
    t = rng.normal(100, 10, 300)
    v = t + rng.normal(0, 3, 300)
    got = ev.point_metrics(ev.Predictions("regression", tuple(map(str, range(300))), t, v))
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(t, v)), rel=1e-9)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(t, v), rel=1e-9)
    assert got["r2"] == pytest.approx(skm.r2_score(t, v), rel=1e-9)


def test_delong_matches_the_auc_and_is_exactly_one_for_identical_scores() -> None:
    y, a, b = _binormal(np.random.default_rng(5), N, 1.4, 1.2, 0.6)
    auc_a, auc_b, p, lo, hi = ev.delong(y, a, b)
    assert auc_a == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)
    assert auc_b == pytest.approx(skm.roc_auc_score(y, b), abs=1e-12)
    assert 0 <= p <= 1 and lo < auc_a - auc_b < hi
    assert ev.delong(y, a, a)[2] == 1.0


# --- intervals: coverage, noise, a real drop --------------------------------------------------------------------------

@pytest.mark.slow
def test_intervals_cover_the_true_difference_in_at_least_93_of_100_cases() -> None:
    """Known effect: binormal scores with AUCs Phi(1.3/sqrt 2) and Phi(1.1/sqrt 2), correlated 0.5; 100 samples of
    1,409 rows, 1,000 paired resamples each (seeded)."""
    truth = _phi(1.3 / math.sqrt(2)) - _phi(1.1 / math.sqrt(2))
    rng = np.random.default_rng(20261201)
    covered = delong_covered = significant = 0
    for case in range(100):
        y, a, b = _binormal(rng, N, 1.3, 1.1, 0.5)
        iv = ev.paired_bootstrap(_binary(a, y), _binary(b, y), resamples=1000, seed=case)["roc_auc"]
        covered += iv.low <= truth <= iv.high
        assert iv.delong_low is not None and iv.delong_high is not None
        delong_covered += iv.delong_low <= truth <= iv.delong_high
        significant += iv.verdict == "better"
    assert covered >= 93, covered
    assert delong_covered >= 93, delong_covered
    assert significant > 50  # and the interval is narrow enough to see a 0.05 AUC difference most of the time


def test_regression_intervals_cover_the_true_difference() -> None:
    """Paired errors: head's noise sd 1.0, reference's 1.2, so the true MAE difference is (1.0 - 1.2) sqrt(2/pi)."""
    truth = (1.0 - 1.2) * math.sqrt(2 / math.pi)
    rng = np.random.default_rng(7)
    covered = 0
    for case in range(100):
        t = rng.normal(0, 5, N)
        common = rng.normal(0, 1, N)
        h = t + common
        r = t + 1.2 * common  # strongly paired: only a paired interval is this narrow
        hp = ev.Predictions("regression", tuple(map(str, range(N))), t, h)
        rp = ev.Predictions("regression", hp.ids, t, r)
        iv = ev.paired_bootstrap(hp, rp, resamples=1000, seed=case)["mae"]
        covered += iv.low <= truth <= iv.high
        assert iv.verdict == "better"  # lower error is better
    assert covered >= 93, covered


def _churn() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    raw = pd.read_csv(ROOT / "data" / "raw" / "telco_churn.csv")
    raw["total_charges"] = pd.to_numeric(raw["total_charges"], errors="coerce").fillna(0.0)
    train, test = train_test_split(raw, test_size=0.2, random_state=42, stratify=raw["churn"])
    assert len(test) == N
    return train, test


def _fit_predict(train: pd.DataFrame, test: pd.DataFrame, seed: int, drop: tuple[str, ...] = ()) -> np.ndarray:
    import xgboost as xgb

    def x(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.get_dummies(frame.drop(columns=["churn", *drop]), dtype=float)

    xt, xs = x(train), x(test)
    xs = xs.reindex(columns=xt.columns, fill_value=0.0)
    model = xgb.XGBClassifier(n_estimators=150, max_depth=4, learning_rate=0.05, subsample=0.8,
                              colsample_bytree=0.8, random_state=seed, n_jobs=2)
    model.fit(xt, (train["churn"] == "Yes").astype(int))
    return np.asarray(model.predict_proba(xs)[:, 1], dtype=float)


@pytest.fixture(scope="module")
def churn_predictions() -> dict[str, ev.Predictions]:
    train, test = _churn()
    y = (test["churn"] == "Yes").to_numpy(dtype=float)
    return {name: _binary(_fit_predict(train, test, seed, drop), y, 0.4)
            for name, seed, drop in (("seed1", 1, ()), ("seed2", 2, ()), ("no_contract", 1, ("contract", "tenure")))}


def test_a_reseeded_training_is_within_noise_on_every_metric(churn_predictions: dict[str, ev.Predictions]) -> None:
    a, b = churn_predictions["seed2"], churn_predictions["seed1"]
    assert not np.array_equal(a.scores, b.scores)  # the seed did change the model
    intervals = ev.paired_bootstrap(a, b, resamples=1000, seed=0)
    assert set(intervals) == set(ev.HIGHER_IS_BETTER) - {"macro_f1", "rmse", "mae", "r2"}
    assert {k: iv.verdict for k, iv in intervals.items()} == dict.fromkeys(intervals, "within noise")
    assert intervals["roc_auc"].p_value is not None and intervals["roc_auc"].p_value > 0.05


def test_dropping_strong_features_is_a_significant_drop_and_fails_an_interval_gate(
        churn_predictions: dict[str, ev.Predictions]) -> None:
    head, ref = churn_predictions["no_contract"], churn_predictions["seed1"]
    iv = ev.paired_bootstrap(head, ref, resamples=1000, seed=0)["roc_auc"]
    # contract and tenure carry one signal (dropping either alone is within noise: the trees use the other)
    assert iv.verdict == "worse" and iv.high < 0
    assert iv.p_value is not None and iv.p_value < 0.05
    gate = {"test.roc_auc": GateSpec(max_drop=0.001, judge="interval")}
    report = evaluate_gates(gate, {"test.roc_auc": iv.head}, {"test.roc_auc": iv.reference}, "base",
                            evidence=GateEvidence(intervals={"test.roc_auc": (iv.low, iv.high)}))
    assert not report.passed and report.rows[0].judge == "interval" and "interval" in report.rows[0].detail
    # the same drop size from a reseed: the interval reaches under the limit, so an interval gate passes
    a, b = churn_predictions["seed2"], churn_predictions["seed1"]
    noise = ev.paired_bootstrap(a, b, resamples=1000, seed=0)["roc_auc"]
    ok = evaluate_gates({"test.roc_auc": GateSpec(max_drop=0.0, judge="interval")},
                        {"test.roc_auc": noise.head}, {"test.roc_auc": noise.reference}, "base",
                        evidence=GateEvidence(intervals={"test.roc_auc": (noise.low, noise.high)}))
    assert ok.passed


def test_interval_judge_without_an_interval_judges_the_point_change_and_says_so() -> None:
    gate = {"test.auc": GateSpec(max_drop=0.01, judge="interval"), "test.loss": GateSpec(max_rise=0.01)}
    report = evaluate_gates(gate, {"test.auc": 0.80, "test.loss": 0.30}, {"test.auc": 0.82, "test.loss": 0.31},
                            "base")
    auc, loss = report.rows
    assert not auc.passed and "no interval" in auc.detail and auc.judge == "interval"
    assert loss.passed and loss.judge == "point"
    # a rise judged on its interval: fails only when the whole interval is above the limit
    rise = evaluate_gates({"test.loss": GateSpec(max_rise=0.01, judge="interval")}, {"test.loss": 0.35},
                          {"test.loss": 0.31}, "base", evidence=GateEvidence(intervals={"test.loss": (0.005, 0.07)}))
    assert rise.passed and rise.rows[0].interval == (0.005, 0.07)


def test_gate_config_reads_judge_and_rejects_an_unknown_one(tmp_path: Path) -> None:
    from mlops.errors import ParamsInvalid

    (tmp_path / "params.yaml").write_text("gates:\n  test.roc_auc: {max_drop: 0.01, judge: interval}\n"
                                          "  prediction.flip_rate: {max: 0.02}\n")
    sections = load_sections(tmp_path / "params.yaml")
    assert sections.gates["test.roc_auc"].judge == "interval"
    assert sections.gates["prediction.flip_rate"].judge == "point"
    (tmp_path / "params.yaml").write_text("gates:\n  test.roc_auc: {max_drop: 0.01, judge: bayes}\n")
    with pytest.raises(ParamsInvalid, match=r"gates\.test\.roc_auc\.judge"):
        load_sections(tmp_path / "params.yaml")


# --- the prediction diff ----------------------------------------------------------------------------------------------

def test_an_unchanged_model_has_exactly_zero_flips(churn_predictions: dict[str, ev.Predictions]) -> None:
    p = churn_predictions["seed1"]
    diff = ev.prediction_diff(p, p)
    assert (diff.flips, diff.flip_rate, diff.agreement, diff.mean_abs_change, diff.p99_abs_change, diff.psi) == \
        (0, 0.0, 1.0, 0.0, 0.0, 0.0)


def test_a_threshold_change_flips_exactly_the_rows_between_the_thresholds(
        churn_predictions: dict[str, ev.Predictions]) -> None:
    p = churn_predictions["seed1"]
    moved = ev.Predictions(p.task, p.ids, p.labels, p.scores, threshold=0.5)
    diff = ev.prediction_diff(moved, p)
    expected = sorted((i for i, s in zip(p.ids, p.scores, strict=True) if 0.4 <= s < 0.5), key=int)
    assert diff.flips == len(expected) > 0 and diff.flips_down == diff.flips and diff.flips_up == 0
    assert diff.flip_sample == tuple(expected[:ev.FLIP_SAMPLE])
    assert diff.mean_abs_change == 0.0 and diff.psi == 0.0
    assert diff.metrics()["prediction.flip_rate"] == pytest.approx(len(expected) / N)


def test_rows_are_matched_by_id_whatever_their_order() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    a = ev.Predictions("binary", ("a", "b", "c", "d"), y, np.array([0.9, 0.2, 0.6, 0.4]))
    b = ev.Predictions("binary", ("d", "c", "b", "x"), np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.4, 0.4, 0.2, 0.1]))
    h, r, only_h, only_r = ev.align(a, b)
    assert h.ids == r.ids == ("b", "c", "d") and (only_h, only_r) == (1, 1)
    diff = ev.prediction_diff(h, r, only_h, only_r)
    assert diff.flips == 1 and diff.flip_sample == ("c",) and diff.rows == 3


def test_prediction_gates_pass_without_a_reference_and_are_not_evaluated_without_predictions() -> None:
    gate = {"prediction.flip_rate": GateSpec(max=0.02)}
    assert evaluate_gates(gate, {"x": 1.0}, None, "production").passed
    missing = evaluate_gates(gate, {"x": 1.0}, {"x": 1.0}, "base", evidence=GateEvidence(why_not="no file"))
    assert not missing.passed and not missing.rows[0].evaluated and "no file" in missing.rows[0].detail
    flips = evaluate_gates(gate, {"x": 1.0}, {"x": 1.0}, "base",
                           evidence=GateEvidence(metrics={"prediction.flip_rate": 0.05}))
    assert not flips.passed and flips.rows[0].evaluated


# --- the report's side: reading predictions from states ---------------------------------------------------------------

def _state(role: str, rows: list[dict[str, object]], **metrics: float) -> State:
    return State(role, "main" if role == "base" else "this branch", role, None, "test", metrics, {}, {},
                 {"reports/predictions.csv": rows})


def test_compare_attaches_intervals_only_to_metrics_the_rows_reproduce() -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(400) < 0.3).astype(int)
    s = np.clip(0.35 * y + rng.random(400) * 0.65, 0, 1)
    rows = [{"row": i, "label": int(v), "probability": float(p)} for i, (v, p) in enumerate(zip(y, s, strict=True))]
    point = ev.point_metrics(_binary(s, y.astype(float)))
    head = _state("head", rows, **{"test.roc_auc": round(point["roc_auc"], 6), "test.accuracy": 0.123,
                                   "threshold": 0.5})
    base = _state("base", rows, **{"test.roc_auc": round(point["roc_auc"], 6), "test.accuracy": 0.123})
    c = compare(ReportParams(headline="test.roc_auc", resamples=200), head, base, "base")
    assert set(c.intervals) == {"test.roc_auc"}  # accuracy 0.123 is not what these rows give: no interval
    assert any("test.accuracy" in n for n in c.notes)
    assert c.diff is not None and c.diff.flips == 0 and c.task == "binary"


def test_compare_says_why_when_predictions_are_missing_or_malformed() -> None:
    head = _state("head", [{"row": 1, "label": 0, "probability": 0.3}], **{"test.auc": 0.8})
    base = State("base", "main", "main", None, "test", {"test.auc": 0.8}, {}, {}, {})
    c = compare(ReportParams(), head, base, "base")
    assert c.diff is None and "not found at main" in c.notes[0]
    unlabelled = _state("base", [{"row": 1, "probability": 0.3}], **{"test.auc": 0.8})
    c = compare(ReportParams(), head, unlabelled, "base")
    assert c.diff is None and "no label column 'label'" in c.notes[0]
    with pytest.raises(ReportError, match="column 'probability' is not numeric"):
        ev.predictions_from({"row": ["1"], "label": [1], "probability": ["x"]}, "p.csv", id_column="row",
                            label="label", score=None, task=None, threshold=0.5)

"""The model checks (mlops.checks, `mlops check`): planted effects are found on a packaged xgboost model, on the
churn model, on the LightGBM multiclass and ONNX regression examples, and checks.json gates like any metric."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops.checks import CheckSettings, Heldout, attribution_changes, attribution_shares, run_checks
from mlops.cli import app
from mlops.jobs.check import check
from mlops.jobs.package import package
from tests import examples
from tests.helpers import commit_all, dvc, init_repo

PARAMS = "package: {exclude: [coin]}\nreport: {sensitive: [group, coin]}\nchecks: {repeats: 5}\n"


def _synthetic(n: int, seed: int) -> pd.DataFrame:
    """y depends strongly on `strong`, weakly on `mid` and on `group`; `noise`, `region` and `coin` on nothing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "strong": rng.normal(size=n), "mid": rng.normal(size=n), "noise": rng.normal(size=n),
        "group": rng.integers(0, 2, size=n), "region": rng.integers(0, 3, size=n), "coin": rng.integers(0, 2, size=n),
    })
    logit = 2.5 * frame["strong"] + 0.8 * frame["mid"] + 1.5 * (frame["group"] - 0.5)
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """A packaged xgboost binary model trained on `_synthetic` (coin excluded), its held-out rows with the labels
    of region 2 flipped (a planted weak segment), its training rows and params.yaml."""
    import xgboost as xgb

    d = tmp_path_factory.mktemp("synthetic")
    train, test = _synthetic(3000, 1), _synthetic(1500, 2)
    inputs = ["strong", "mid", "noise", "group", "region"]
    clf = xgb.XGBClassifier(n_estimators=60, max_depth=3, learning_rate=0.1, random_state=0, n_jobs=1)
    clf.fit(train[inputs], train["y"])
    clf.get_booster().save_model(str(d / "model.ubj"))
    flipped = test.copy()
    flipped.loc[flipped["region"] == 2, "y"] = 1 - flipped.loc[flipped["region"] == 2, "y"]
    flipped.to_csv(d / "test.csv", index=False)
    train.to_csv(d / "train.csv", index=False)
    (d / "params.yaml").write_text(PARAMS)
    package(d / "model.ubj", d / "test.csv", "y", "binary", out=d / "pkg", params_file=d / "params.yaml")
    return d / "pkg", d / "test.csv", d / "train.csv", d / "params.yaml"


def test_planted_effects_are_found_on_a_packaged_xgboost_model(synthetic: tuple[Path, Path, Path, Path],
                                                               tmp_path: Path) -> None:
    pkg, test, train, params = synthetic
    out = tmp_path / "checks.json"
    r = check(pkg, test, train=train, out=out, params_file=params).result
    assert r.method == "treeshap"
    assert r.attributions[0].feature == "strong"  # the planted strong feature ranks first
    assert "noise" in r.useless and "strong" not in r.useless and "group" not in r.useless
    assert r.baseline_lift > 0.1
    assert r.train_test_gap is not None and r.train_test_gap > 0  # region 2's flipped labels cost held-out rows only
    worst = r.segments[0]
    assert (worst.column, worst.value) == ("region", "2") and worst.ratio > 1.5 and r.weak >= 1
    assert r.fairness["group"]["demographic_parity_diff"] > 0.2  # the model uses group: its positive rate differs
    assert r.fairness["coin"]["demographic_parity_diff"] < 0.08  # independent of everything: sampling noise only
    assert r.fairness["coin"]["equal_opportunity_diff"] < 0.08
    doc = json.loads(out.read_text())
    assert doc["checks"]["useless_features"] == len(r.useless) and "noise" in doc["useless"]
    assert set(doc["checks"]["fairness"]["group"]) >= {"demographic_parity_diff", "equal_opportunity_diff"}
    assert attribution_shares(doc) == {a["feature"]: a["share"] for a in doc["attributions"]}


def test_a_model_that_predicts_the_prior_has_no_lift_and_no_useful_feature() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (rng.random(400) < 0.3).astype(np.float64)
    h = Heldout("binary", ("a", "b", "c"), x, y, {"a": x[:, 0]}, ("no", "yes"))
    r = run_checks(h, lambda m: np.full(m.shape[0], float(y.mean())), CheckSettings(repeats=3))
    assert r.baseline_lift == pytest.approx(0.0, abs=1e-12)
    assert r.useless == ("a", "b", "c")
    assert r.method == "permutation" and all(a.importance == 0 for a in r.attributions)


def test_the_churn_model_is_checked(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The churn stages' model directory (model.ubj + feature_schema.json) on its prepared test split, from the
    pipeline reproduced once per test session (read only)."""
    root: Path = request.getfixturevalue("_trained_template")
    models, test = root / "models", root / "data" / "prepared" / "test.csv"
    frame = pd.read_csv(test)
    frame["coin"] = np.random.default_rng(0).integers(0, 2, size=len(frame))
    frame["flag"] = frame["contract"].eq("Month-to-month").astype(int)  # what drives the churn prediction most
    frame.to_csv(tmp_path / "test.csv", index=False)
    (tmp_path / "params.yaml").write_text("report: {sensitive: [coin, flag]}\n")
    r = check(models, tmp_path / "test.csv", out=tmp_path / "checks.json", params_file=tmp_path / "params.yaml").result
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert r.model_score == pytest.approx(metrics["test"]["roc_auc"], abs=1e-6)  # the same number as evaluate's
    assert r.baseline_lift > 0.2 and r.method == "treeshap"
    assert r.attributions[0].feature in ("contract", "tenure")
    assert r.fairness["flag"]["demographic_parity_diff"] > 0.3 > 0.08 > r.fairness["coin"]["demographic_parity_diff"]


@pytest.mark.parametrize("name", ["lightgbm-multiclass", "onnx-regression"])
def test_example_models_of_other_tasks(name: str, tmp_path: Path) -> None:
    ex = examples.build(name, tmp_path / "ex")
    package(ex.model, ex.data, ex.target, ex.task, out=tmp_path / "pkg")  # type: ignore[arg-type]
    frame = pd.read_csv(ex.data)
    rng = np.random.default_rng(0)
    frame["coin"] = rng.integers(0, 2, size=len(frame))
    first = frame.columns[0]  # plant a weak segment: the rows of the top third of the first column get wrong labels
    top = frame[first] >= frame[first].quantile(0.75)
    if ex.task == "multiclass":
        frame.loc[top, ex.target] = (frame.loc[top, ex.target] + 1) % 3
        frame["site"] = np.where(frame[ex.target] == 0, "a", "b")  # tied to the class: a parity gap
    else:
        frame.loc[top, ex.target] = frame.loc[top, ex.target] + 300.0
        frame["site"] = np.where(frame[ex.target] > frame[ex.target].median(), "a", "b")
    frame.to_csv(tmp_path / "held.csv", index=False)
    (tmp_path / "params.yaml").write_text("report: {sensitive: [site, coin]}\nchecks: {min_rows: 5}\n")
    r = check(tmp_path / "pkg", tmp_path / "held.csv", target=ex.target, out=tmp_path / "checks.json",
              params_file=tmp_path / "params.yaml").result
    assert r.method == ("treeshap" if name.startswith("lightgbm") else "permutation")
    assert len(r.attributions) == len(ex.features().columns)
    assert r.segments[0].column == first and r.segments[0].ratio > 1.5
    assert r.fairness["site"]["demographic_parity_diff"] > r.fairness["coin"]["demographic_parity_diff"]
    (tmp_path / "clean.yaml").write_text("checks: {min_rows: 5}\n")  # not the repository's params.yaml
    clean = check(tmp_path / "pkg", ex.data, target=ex.target, out=tmp_path / "clean.json",
                  params_file=tmp_path / "clean.yaml").result
    assert clean.baseline_lift > 0.2  # accuracy over the majority class; r2 over the mean


def test_attribution_changes_are_the_largest_moves_of_share() -> None:
    base = {"a": 0.5, "b": 0.3, "c": 0.2}
    head = {"a": 0.2, "b": 0.35, "d": 0.45}
    rows = attribution_changes(head, base, top=3)
    assert [r[0] for r in rows] == ["d", "a", "c"]
    assert rows[0] == ("d", 0.0, 0.45, 0.45)


def test_mlops_check_writes_metrics_that_gates_judge(synthetic: tuple[Path, Path, Path, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A DVC stage runs `mlops check` and declares checks.json as metrics: `mlops gate` judges checks.*."""
    import shutil

    pkg, test, _, _ = synthetic
    proj = init_repo(tmp_path / "proj")
    shutil.copytree(pkg, proj / "model")
    shutil.copy2(test, proj / "test.csv")
    (proj / "dvc.yaml").write_text(
        "stages:\n  check:\n"
        f"    cmd: {sys.executable} -m mlops check --model model --data test.csv --target y --out reports/checks.json\n"
        "    deps: [model, test.csv]\n    params: [checks, report.sensitive]\n"
        "    metrics: [reports/checks.json]\n")
    (proj / "params.yaml").write_text("report: {sensitive: [group]}\nchecks: {repeats: 3}\n"
                                      "gates:\n  checks.baseline_lift: {min: 0.05}\n"
                                      "  checks.fairness.group.demographic_parity_diff: {max: 0.9}\n")
    dvc(proj, "init", "-q")
    dvc(proj, "repro", "-q")
    commit_all(proj, "checks")
    monkeypatch.chdir(proj)
    runner = CliRunner()
    ok = runner.invoke(app, ["gate"])
    assert ok.exit_code == 0, ok.output
    assert "checks.baseline_lift" in ok.output
    (proj / "params.yaml").write_text((proj / "params.yaml").read_text().replace("{max: 0.9}", "{max: 0.01}"))
    failed = runner.invoke(app, ["gate"])
    assert failed.exit_code == 1, failed.output
    assert "checks.fairness.group.demographic_parity_diff" in failed.output


def test_a_sensitive_column_missing_from_the_data_is_a_one_line_error(
        synthetic: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    pkg, test, _, _ = synthetic
    (tmp_path / "params.yaml").write_text("report: {sensitive: [gender]}\n")
    out = tmp_path / "checks.json"
    result = CliRunner().invoke(app, ["check", "--model", str(pkg), "--data", str(test), "--out", str(out),
                                      "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1
    assert "report.sensitive: column 'gender' is not in the held-out data" in result.output
    assert not out.exists()  # nothing half-written


def test_the_report_lists_the_attribution_changes_against_main() -> None:
    from mlops.report.build import attribution_rows
    from mlops.report.model import State

    def state(role: str, shares: dict[str, float]) -> State:
        doc = {"checks": {}, "attributions": [{"feature": f, "importance": s, "share": s} for f, s in shares.items()]}
        return State(role, role, role, None, "workspace", {}, {}, {}, {"reports/checks.json": doc})

    head, base = state("head", {"a": 0.6, "b": 0.3, "c": 0.1}), state("base", {"a": 0.3, "b": 0.4, "c": 0.3})
    rows = attribution_rows(head, base)
    assert [r[0] for r in rows] == ["a", "c", "b"] and rows[0][1:3] == (0.3, 0.6)
    assert attribution_rows(head, None) == ()

"""The report against a real production tag (NAME#production#N) on the example project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.cli import app
from mlops.config import load_params
from mlops.gates import evaluate_gates, flatten_metrics
from tests.helpers import commit_all, git, runner
from tests.report_helpers import set_param

pytestmark = pytest.mark.slow


def test_report_compares_with_the_production_tag(trained_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = trained_project
    prod_metrics = json.loads((root / "reports/metrics.json").read_text())
    prod_checks = json.loads((root / "reports/checks.json").read_text())  # the check stage's metrics
    prod_commit = git(root, "rev-parse", "HEAD")
    git(root, "tag", "-a", "churn-model@v1.0.0", "-m", "Register churn-model v1.0.0")
    git(root, "tag", "-a", "churn-model#production#1", "-m", "Assign production to v1.0.0")
    # main moves on after the release, then a branch changes a training param.
    set_param(root, "n_estimators: 400", "n_estimators: 300")
    monkeypatch.chdir(root)
    assert runner.invoke(app, ["run", "--no-report"]).exit_code == 0
    commit_all(root, "fewer trees on main")
    git(root, "checkout", "-q", "-b", "shallow")
    set_param(root, "max_depth: 4", "max_depth: 3")
    commit_all(root, "shallower trees")
    result = runner.invoke(app, ["run", "--base", "main"])
    assert result.exit_code == 0, result.output
    report = json.loads((root / "reports/report.json").read_text())
    assert report["production"]["commit"] == prod_commit
    assert "v1.0.0" in json.dumps(report["production"])
    head = json.loads((root / "reports/metrics.json").read_text())
    roc = next(m for m in report["metrics"] if m["name"] == "test.roc_auc")
    assert roc["vs_production"]["reference"] == prod_metrics["test"]["roc_auc"]
    assert roc["vs_production"]["delta"] == pytest.approx(head["test"]["roc_auc"] - prod_metrics["test"]["roc_auc"])
    assert roc["vs_base"]["reference"] != roc["vs_production"]["reference"]
    md = (root / "reports/report.md").read_text()
    assert "No production model yet" not in md
    assert f"{prod_metrics['test']['roc_auc']:.4f}" in md
    head_checks = json.loads((root / "reports/checks.json").read_text())
    expected = evaluate_gates(load_params(root / "params.yaml").gates,
                              flatten_metrics(head) | flatten_metrics(head_checks),
                              flatten_metrics(prod_metrics) | flatten_metrics(prod_checks), "production")
    gate = runner.invoke(app, ["gate", "--against", "production"])
    assert "production" in gate.output
    assert gate.exit_code == (0 if expected.passed else 1), gate.output
    # The report shows the same production gates as `mlops gate --against production`.
    assert report["production_gates"]["against"] == "production"
    assert report["production_gates"]["passed"] is expected.passed
    assert [(g["metric"], g["rule"], g["passed"]) for g in report["production_gates"]["rows"]] == [
        (g.metric, g.rule, g.passed) for g in expected.rows]
    assert "### Gates (against production)" in md
    assert md.index("### Gates (against base)") < md.index("### Gates (against production)")

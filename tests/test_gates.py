"""mlops.gates: how metrics are keyed and checked, shared by the report, `mlops gate` and `mlops promote`."""

from __future__ import annotations

from mlops.config import GateSpec
from mlops.gates import evaluate_gates, flatten_metrics, metrics_of


def test_flatten_keeps_numbers_only() -> None:
    assert flatten_metrics({"test": {"auc": 0.8, "ok": True, "name": "x", "n": 3}, "nan": float("nan")}) == {
        "test.auc": 0.8, "test.n": 3.0}


def test_a_key_two_files_share_is_prefixed_with_its_file() -> None:
    files = {"a.json": {"test": {"auc": 0.8, "f1": 0.6}}, "b.yaml": {"test": {"auc": 0.7}}, "c.json": [1, 2]}
    assert metrics_of(files, ["a.json", "b.yaml", "c.json", "missing.json"]) == {
        "a.json:test.auc": 0.8, "test.f1": 0.6, "b.yaml:test.auc": 0.7}


def test_gates_absolute_and_relative_rules() -> None:
    gates = {"test.auc": GateSpec(min=0.8, max_drop=0.01), "test.loss": GateSpec(max_rise=0.05),
             "test.gone": GateSpec(min=0.1)}
    report = evaluate_gates(gates, {"test.auc": 0.81, "test.loss": 0.5}, {"test.auc": 0.83, "test.loss": 0.44},
                            "production")
    assert [(r.metric, r.rule, r.passed) for r in report.rows] == [
        ("test.auc", "min", True), ("test.auc", "max_drop", False), ("test.loss", "max_rise", False),
        ("test.gone", "min", False)]
    assert not report.passed
    first = evaluate_gates(gates, {"test.auc": 0.81, "test.loss": 0.5, "test.gone": 0.2}, None, "production")
    assert first.passed
    assert "no production value" in first.rows[1].detail

"""The Prometheus alerting rules and the Grafana dashboard that ship with the toolkit (mlops/templates/observability)
and that `mlops init` writes: the rules run through `promtool test rules` with series that fire each alert and
series that leave it silent; every metric the rules and the dashboard name is one the server or the monitor
really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.jobs.init import FILES
from mlops.monitor.result import (
    FeatureReport,
    MonitorResult,
    Performance,
    PredictionReport,
    Staleness,
    WindowInfo,
)
from mlops.registry.stats import compute

TEMPLATES = resources.files("mlops") / "templates" / "observability"
RULES = yaml.safe_load(TEMPLATES.joinpath("alerts.yml").read_text(encoding="utf-8"))
DASHBOARD = json.loads(TEMPLATES.joinpath("dashboard.json").read_text(encoding="utf-8"))
ALERTS = [r["alert"] for g in RULES["groups"] for r in g["rules"]]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # never a skip: a CI without promtool would pass the rules untested
        pytest.fail("promtool is not installed: `apt-get install -y prometheus` (Debian ships promtool with it)")
    return found


# --- what the server and the monitor export ---------------------------------------------------------------------


def exported() -> set[str]:
    """Every metric name on a real server's /metrics text, and every gauge the monitor and the delivery figures
    publish (the server exports those as they are)."""
    from mlops.serve.metrics import Metrics

    m = Metrics()
    child = m.model("churn-model", "v1.0.0")
    for counter in (child.success, child.failure, child.client_error):
        counter.inc()
    child.duration.observe(0.01)
    child.predict.observe(0.001)
    child.prediction.observe(0.3)
    m.set_roles("churn-model", {"v1.0.0": "stable"})
    m.dropped.inc()
    m.count_http("POST", "/v2/models/{name}/infer", 200)
    names = {line.split("{")[0].split(" ")[0] for line in m.render().decode().splitlines()
             if line and not line.startswith("#")}
    window = WindowInfo("logs", "logs", (), None, None, None, 10, 10, 0, 0, {}, {})
    feature = FeatureReport("tenure", "numeric", "int", "ks", 10, 10, 0.0, 0.0, 0, 0, 0, (), 0.1, 0.5, 0.5, 0.1,
                            0.1, 0.1, 1.0, 1.0, False)
    prediction = PredictionReport(10, 10, 0.3, 0.3, 0.1, 0.5, 0.5, 0.1, 0.05, False)
    perf = Performance({"roc_auc": 0.8}, {"roc_auc": 0.8}, {"roc_auc": 0.8}, {"roc_auc": 0.8}, 10, True, 0.5)
    result = MonitorResult(window, "-", 10, (feature,), prediction, perf, (), Staleness("v1.0.0", "x", 3.0, 90.0),
                           (), (), "x", 0.0)
    names |= {n for n, _, _ in result.gauges()}
    stats = compute([], "churn-model", "production", until=datetime(2026, 1, 1, tzinfo=UTC))
    delivery = {n for n, _, _ in stats.gauges()}
    # the figures that are unavailable here are exported when available: named by the same mapping
    names |= delivery | {"mlops_delivery_deployments_per_week", "mlops_delivery_lead_time_hours",
                         "mlops_delivery_registration_to_production_hours", "mlops_delivery_change_failure_rate",
                         "mlops_delivery_time_to_restore_hours"}
    return names


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "le", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords, labels, grouping and durations removed)."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"(?<![A-Za-z_:])\d+(?:\.\d+)?(?:e[-+]?\d+)?", "0", text)  # numbers such as 1e-9
    tokens = [m.group() for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text)
              if not text[m.end():].lstrip().startswith("(")]  # a name before "(" is a function
    return {t for t in tokens if t.lower() not in _KEYWORDS and not re.fullmatch(r"\d+[smhdwy]", t)}


def test_every_metric_named_is_exported() -> None:
    have = exported() | {"up"}  # Prometheus' own scrape health
    for name, expr in [(r["alert"], r["expr"]) for g in RULES["groups"] for r in g["rules"]] + \
            [(p["title"], t["expr"]) for p in DASHBOARD["panels"] for t in p.get("targets", [])]:
        unknown = metric_names(expr) - have
        assert not unknown, f"{name}: {sorted(unknown)} are not exported by the server or the monitor"
    assert metric_names('sum by (model, le) (rate(x_bucket{a="b"}[5m])) > 0.5') == {"x_bucket"}


def test_the_rules_cover_each_failure_the_issue_names() -> None:
    assert {"MlopsModelNotReady", "MlopsModelUnhealthy", "MlopsFeatureDrift", "MlopsHighErrorRate",
            "MlopsHighP99Latency", "MlopsModelTooOld"} <= set(ALERTS)
    for g in RULES["groups"]:
        for r in g["rules"]:
            assert r["labels"]["severity"] in ("critical", "warning", "info")
            assert r["annotations"]["summary"] and r["annotations"]["description"]


# --- promtool ----------------------------------------------------------------------------------------------------


def _alerts(at: str, expected: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """An alert_rule_test entry for every shipped alert at AT: EXPECTED's alerts fire, every other stays silent."""
    return [{"eval_time": at, "alertname": a, "exp_alerts": expected.get(a, [])} for a in ALERTS]


def _labels(**kw: str) -> dict[str, str]:
    return kw


FIRING = {
    "interval": "1m",
    "input_series": [
        {"series": 'up{job="mlops-serve", instance="a:8080"}', "values": "0x30"},
        {"series": 'up{job="mlops-serve", instance="b:8080"}', "values": "1x30"},
        {"series": 'mlops_model_version_info{model="bad", version="v1.0.0", role="stable"}', "values": "0x30"},
        {"series": 'mlops_model_version_info{model="good", version="v1.0.0", role="stable"}', "values": "1x30"},
        {"series": 'mlops_model_version_info{model="good", version="v0.9.0", role="stable"}', "values": "0x30"},
        {"series": 'model_infer_request_success_total{model="bad", version="v1.0.0"}', "values": "0+10x30"},
        {"series": 'model_infer_request_failure_total{model="bad", version="v1.0.0"}', "values": "0+2x30"},
        {"series": 'model_infer_request_success_total{model="good", version="v1.0.0"}', "values": "0+100x30"},
        {"series": 'model_infer_request_failure_total{model="good", version="v1.0.0"}', "values": "0+1x30"},
        {"series": 'model_infer_request_duration_bucket{model="slow", version="v1.0.0", le="0.1"}', "values": "0x30"},
        {"series": 'model_infer_request_duration_bucket{model="slow", version="v1.0.0", le="0.5"}', "values": "0x30"},
        {"series": 'model_infer_request_duration_bucket{model="slow", version="v1.0.0", le="1.0"}',
         "values": "0+10x30"},
        {"series": 'model_infer_request_duration_bucket{model="slow", version="v1.0.0", le="+Inf"}',
         "values": "0+10x30"},
        {"series": 'model_infer_request_duration_bucket{model="fast", version="v1.0.0", le="0.1"}',
         "values": "0+10x30"},
        {"series": 'model_infer_request_duration_bucket{model="fast", version="v1.0.0", le="0.5"}',
         "values": "0+10x30"},
        {"series": 'model_infer_request_duration_bucket{model="fast", version="v1.0.0", le="1.0"}',
         "values": "0+10x30"},
        {"series": 'model_infer_request_duration_bucket{model="fast", version="v1.0.0", le="+Inf"}',
         "values": "0+10x30"},
        {"series": 'mlops_monitor_healthy{model="bad"}', "values": "0x30"},
        {"series": 'mlops_monitor_healthy{model="good"}', "values": "1x30"},
        {"series": 'mlops_monitor_feature_drifted{model="bad", feature="tenure"}', "values": "1x30"},
        {"series": 'mlops_monitor_feature_drifted{model="good", feature="tenure"}', "values": "0x30"},
        {"series": 'mlops_monitor_prediction_psi{model="shifted"}', "values": "0.3x30"},
        {"series": 'mlops_monitor_prediction_psi{model="good"}', "values": "0.05x30"},
        {"series": 'mlops_monitor_model_age_days{model="old"}', "values": "120x30"},
        {"series": 'mlops_monitor_model_age_days{model="good"}', "values": "10x30"},
    ],
    "alert_rule_test": _alerts("20m", {
        "MlopsServerDown": [{
            "exp_labels": _labels(severity="critical", job="mlops-serve", instance="a:8080"),
            "exp_annotations": {"summary": "Model server a:8080 is down",
                                "description": "Prometheus cannot scrape a:8080 (job mlops-serve) for 2 minutes."}}],
        "MlopsModelNotReady": [{
            "exp_labels": _labels(severity="critical", model="bad"),
            "exp_annotations": {"summary": "Model bad is not ready",
                                "description": "No version of bad is loaded in the stable role: its inference "
                                               "requests fail."}}],
        "MlopsHighErrorRate": [{
            "exp_labels": _labels(severity="critical", model="bad"),
            "exp_annotations": {"summary": "Model bad fails 16.67% of its requests",
                                "description": "More than 5% of the inference requests of bad failed over 5 "
                                               "minutes."}}],
        "MlopsHighP99Latency": [{
            "exp_labels": _labels(severity="warning", model="slow"),
            "exp_annotations": {"summary": "Model slow answers in 995ms at p99",
                                "description": "The 99th percentile of the inference request duration of slow is "
                                               "above 500 ms."}}],
        "MlopsModelUnhealthy": [{
            "exp_labels": _labels(severity="warning", model="bad"),
            "exp_annotations": {"summary": "Monitoring of bad is unhealthy",
                                "description": "The last `mlops monitor` run crossed a threshold (drift, decay, "
                                               "staleness...): see its alarm issue and report."}}],
        "MlopsFeatureDrift": [
            {"exp_labels": _labels(severity="warning", model=m),
             "exp_annotations": {"summary": f"Input or prediction drift on {m}",
                                 "description": f"A feature of {m} drifted, or its predictions moved (PSI above "
                                                "0.2), in the last monitored window."}}
            for m in ("bad", "shifted")],
        "MlopsModelTooOld": [{
            "exp_labels": _labels(severity="info", model="old"),
            "exp_annotations": {"summary": "The production model of old is 120 days old",
                                "description": "The version in production was registered more than 90 days ago: "
                                               "retrain it or raise the limit."}}],
    }),
}

HEALTHY = {
    "interval": "1m",
    "input_series": [s for s in FIRING["input_series"]  # type: ignore[attr-defined]
                     if any(f'{k}="{v}"' in s["series"] for k, v in (("model", "good"), ("model", "fast"),
                                                                        ("instance", "b:8080")))],
    "alert_rule_test": _alerts("20m", {}),
}

# Not yet long enough: the server down for 1 minute (for: 2m) and errors for 3 minutes (for: 5m) stay pending.
PENDING = {
    "interval": "1m",
    "input_series": [{"series": 'up{job="mlops-serve", instance="a:8080"}', "values": "1x5 0x5"},
                     {"series": 'model_infer_request_success_total{model="bad", version="v1"}', "values": "0+10x30"},
                     {"series": 'model_infer_request_failure_total{model="bad", version="v1"}',
                      "values": "0x10 0+5x20"}],
    "alert_rule_test": [{"eval_time": "7m", "alertname": "MlopsServerDown", "exp_alerts": []},
                        {"eval_time": "13m", "alertname": "MlopsHighErrorRate", "exp_alerts": []}],
}


def test_promtool_checks_and_tests_the_rules(tmp_path: Path) -> None:
    tool = promtool()
    rules = tmp_path / "prometheus-rules.yml"
    rules.write_text(TEMPLATES.joinpath("alerts.yml").read_text(encoding="utf-8"))
    check = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in check.stdout
    spec = tmp_path / "rules-test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m",
                                    "tests": [FIRING, HEALTHY, PENDING]}, sort_keys=False))
    run = subprocess.run([tool, "test", "rules", str(spec)], cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr


def test_promtool_would_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness is not vacuous: expecting the healthy model to alert fails."""
    tool = promtool()
    (tmp_path / "r.yml").write_text(TEMPLATES.joinpath("alerts.yml").read_text(encoding="utf-8"))
    wrong = {**HEALTHY, "alert_rule_test": [{"eval_time": "20m", "alertname": "MlopsModelUnhealthy",
                                             "exp_alerts": [{"exp_labels": {"severity": "warning",
                                                                            "model": "good"}}]}]}
    (tmp_path / "t.yml").write_text(yaml.safe_dump({"rule_files": ["r.yml"], "tests": [wrong]}))
    run = subprocess.run([tool, "test", "rules", "t.yml"], cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert run.returncode != 0 and "MlopsModelUnhealthy" in run.stdout + run.stderr


# --- the dashboard and init ---------------------------------------------------------------------------------------


def test_dashboard_structure() -> None:
    d = DASHBOARD
    assert d["title"] and d["uid"] == "mlops-model" and isinstance(d["schemaVersion"], int)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in d["panels"]:
        pos = p["gridPos"]
        assert set(pos) == {"h", "w", "x", "y"} and pos["x"] + pos["w"] <= 24, p["title"]
        assert p["type"] in ("row", "timeseries", "stat", "table"), p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"].strip() for t in p["targets"]), p["title"]
    # panels do not overlap
    cells = set()
    for p in d["panels"]:
        pos = p["gridPos"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    titles = " ".join(p["title"] for p in d["panels"]).lower()
    for word in ("error rate", "latency", "drift", "model age", "change failure rate", "time to restore"):
        assert word in titles


def test_init_installs_both_files() -> None:
    templates = resources.files("mlops") / "templates" / "init"  # as mlops.jobs.init reads them
    wanted = {"observability/prometheus-rules.yml": "alerts.yml", "observability/grafana-dashboard.json":
              "dashboard.json"}
    placed = {rel: name for name, rel in FILES.items() if rel.startswith("observability/")}
    assert set(placed) == set(wanted)
    for rel, name in placed.items():
        assert templates.joinpath(name).read_text(encoding="utf-8") == \
            TEMPLATES.joinpath(wanted[rel]).read_text(encoding="utf-8")

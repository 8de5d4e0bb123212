"""`mlops monitor` on the churn test split of a trained project, scored by its real xgboost model.

Shifts are injected one at a time into the held-out rows the reference profile was built from (monthly_charges
x1.3, the contract mix towards month-to-month, 20% missing tenure, a new payment method); each must be flagged on
its feature and on no other; bootstrap resamples of the unshifted rows must almost never alarm.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlops.cli.monitor  # noqa: F401  (registers `mlops monitor` on the app, as mlops.cli will)
from mlops.cli import app
from mlops.config import read_params
from mlops.errors import ParamsInvalid
from mlops.jobs.monitor import monitor, production_registration
from mlops.monitor import (
    MonitorAlert,
    MonitorInputError,
    MonitorParams,
    MonitorResult,
    ReadStats,
    accumulate,
    evaluate,
    parse_duration,
)
from mlops.stages.data import features_and_label, load_prepared
from tests.helpers import git, runner
from tests.monitor_helpers import SHIFTS, Churn, chunk_of, load_churn, shifted, to_csv, write_log

FEATURE_CHECKS = ("drift", "missing", "unseen", "schema")


def quiet(**kwargs: object) -> MonitorParams:
    """Params of a job run whose plots nobody looks at (matplotlib costs a second per report)."""
    return MonitorParams(**{"plots": False, "jobs": 1, **kwargs})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def churn(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Churn:
    return load_churn(_trained_template, tmp_path_factory.mktemp("monitor") / "reference.json")


@pytest.fixture(scope="module")
def project(churn: Churn, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained project with models/reference.json, for the job and the CLI."""
    root = tmp_path_factory.mktemp("monitored") / "project"
    shutil.copytree(churn.root, root, symlinks=True)
    (root / "models" / "reference.json").write_text(json.dumps(churn.profile))
    return root


def check(churn: Churn, frame: pd.DataFrame, scores: np.ndarray | None, labels: np.ndarray | None = None,
          params: MonitorParams | None = None) -> MonitorResult:
    acc = accumulate(churn.profile, [chunk_of(churn, frame, scores, labels)])
    return evaluate(acc, churn.profile, params or MonitorParams(), ReadStats(), source="file", path="-",
                    reference="-")


def feature_alarms(result: MonitorResult) -> set[tuple[str, str]]:
    return {(a.check, a.subject) for a in result.alarms if a.check in FEATURE_CHECKS}


# --- detection ---------------------------------------------------------------------------------------------------


EXPECTED = {"monthly_charges": {("drift", "monthly_charges")}, "contract": {("drift", "contract")},
            "tenure": {("missing", "tenure")}, "payment_method": {("unseen", "payment_method")}}


@pytest.mark.parametrize("kind", SHIFTS)
def test_each_shift_is_flagged_on_its_feature_only(churn: Churn, kind: str) -> None:
    frame = shifted(churn.test, kind)
    result = check(churn, frame, churn.score(frame), churn.y)
    assert feature_alarms(result) == EXPECTED[kind], [a.message for a in result.alarms]
    assert not result.healthy
    drifted = set(result.drifted_features)
    assert drifted <= {kind}
    if kind in ("monthly_charges", "contract"):
        assert result.features[0].name == kind  # the report lists it first


def test_the_unshifted_split_is_healthy_and_matches_the_reference(churn: Churn) -> None:
    result = check(churn, churn.test, churn.scores, churn.y)
    assert result.healthy, [a.message for a in result.alarms]
    assert result.performance.realised is not None
    assert result.performance.realised["roc_auc"] == pytest.approx(churn.profile["metrics"]["roc_auc"], abs=2e-4)
    assert all(f.wasserstein is None or f.wasserstein < 1e-9 for f in result.features)


def test_bootstrap_resamples_of_the_clean_split_rarely_alarm(churn: Churn) -> None:
    rng = np.random.default_rng(2026)
    alarmed = []
    for _ in range(100):
        idx = rng.integers(0, len(churn.test), len(churn.test))
        frame = churn.test.iloc[idx].reset_index(drop=True)
        result = check(churn, frame, churn.scores[idx], churn.y[idx])
        if not result.healthy:
            alarmed.append([a.message for a in result.alarms])
    assert len(alarmed) <= 5, alarmed


def test_windows_of_other_rows_of_the_population_rarely_alarm(churn: Churn) -> None:
    """The honest null: windows of 5,000 rows drawn from the train split, not from the reference's own rows."""
    train = load_prepared(churn.root / "data/prepared/train.csv", churn.params.data)
    _, y = features_and_label(train, churn.params.data)
    scores = churn.score(train)
    rng = np.random.default_rng(99)
    alarmed = []
    for _ in range(100):
        idx = rng.integers(0, len(train), 5000)
        result = check(churn, train.iloc[idx].reset_index(drop=True), scores[idx], y[idx])
        if not result.healthy:
            alarmed.append([a.message for a in result.alarms])
    assert len(alarmed) <= 5, alarmed


def test_a_small_clean_window_is_not_a_drift_alarm(churn: Churn) -> None:
    """KS and chi-square on 150 rows: noise is not drift (the effect sizes alone would alarm here)."""
    rng = np.random.default_rng(11)
    idx = rng.integers(0, len(churn.test), 150)
    result = check(churn, churn.test.iloc[idx].reset_index(drop=True), churn.scores[idx])
    assert not result.drifted_features
    assert max(f.psi or 0 for f in result.features) > 0.02  # the noise is there


# --- decay -------------------------------------------------------------------------------------------------------


def covariate_shift(churn: Churn, rows: int, seed: int) -> np.ndarray:
    """Rows resampled with month-to-month contracts three times as likely: P(churn | inputs) unchanged."""
    w = np.where(churn.test["contract"].astype(str) == "Month-to-month", 3.0, 1.0)
    return np.random.default_rng(seed).choice(len(churn.test), rows, p=w / w.sum())


def test_estimated_auc_is_within_003_of_the_realised_one(churn: Churn) -> None:
    idx = covariate_shift(churn, 5000, seed=1)
    frame = churn.test.iloc[idx].reset_index(drop=True)
    before = check(churn, frame, churn.scores[idx])  # no labels yet: an estimate
    assert before.performance.realised is None
    after = check(churn, frame, churn.scores[idx], churn.y[idx])
    assert after.performance.realised is not None
    est, real = before.performance.estimated["roc_auc"], after.performance.realised["roc_auc"]
    assert est is not None and real is not None
    assert abs(est - real) <= 0.03, (est, real)
    assert real < churn.profile["metrics"]["roc_auc"] - 0.02  # the window really is harder than the reference
    assert after.performance.estimated == before.performance.estimated


def test_decay_alarm_uses_realised_metrics_once_labels_are_there(churn: Churn) -> None:
    flipped = 1 - churn.y  # the model is now wrong about everyone
    result = check(churn, churn.test, churn.scores, flipped)
    decay = {a.subject for a in result.alarms if a.check == "decay"}
    assert {"roc_auc", "accuracy"} <= decay
    assert any("realised roc_auc" in a.message for a in result.alarms)
    few = MonitorParams(min_labelled=5000)
    assert not [a for a in check(churn, churn.test, churn.scores, flipped, few).alarms if a.check == "decay"]


# --- request logs ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logged(churn: Churn, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """The contract-shifted split logged by the server's writer: two workers, a shadow role, refused requests."""
    logs = tmp_path_factory.mktemp("logs")
    frame = shifted(churn.test, "contract")
    scores = churn.score(frame)
    half = len(frame) // 2
    start = time.time() - 2 * 86_400
    write_log(churn, logs, frame.iloc[:half], scores[:half], start=start, step=120.0, worker=0,
              ids=[f"r{i}" for i in range(half)])
    write_log(churn, logs, frame.iloc[half:], scores[half:], start=start + half * 120.0, step=120.0, worker=1,
              errors=3, ids=[f"r{i}" for i in range(half, len(frame))])
    write_log(churn, logs, churn.test.head(300), churn.scores[:300], start=start, role="shadow", worker=2)
    return logs, frame, scores


def test_logs_and_the_same_rows_as_a_file_agree(churn: Churn, logged: tuple[Path, pd.DataFrame, np.ndarray],
                                                tmp_path: Path) -> None:
    logs, frame, scores = logged
    params = quiet()
    from_logs = _run(tmp_path, churn, params, log=logs)
    csv = to_csv(churn, frame, tmp_path / "current.csv", scores=scores)
    from_file = _run(tmp_path, churn, params, current=csv)
    assert from_logs.window.rows == from_file.window.rows == len(frame)
    assert from_logs.window.source == "logs" and from_logs.window.rejected == 3
    assert from_logs.window.roles == {"stable": len(frame), "shadow": 300}
    assert from_logs.window.versions == {"v1.0.0": len(frame)}
    assert from_logs.drifted_features == from_file.drifted_features == ("contract",)
    for a, b in zip(from_logs.features, from_file.features, strict=True):
        assert (a.name, a.valid, a.missing_share, a.unseen) == (b.name, b.valid, b.missing_share, b.unseen)
        assert a.psi == pytest.approx(b.psi, abs=1e-9)
    assert from_logs.performance.estimated["roc_auc"] == pytest.approx(
        from_file.performance.estimated["roc_auc"], abs=1e-4)  # float32 in the log
    assert len(from_logs.performance.windows) >= 2  # a day per window: two days of traffic


def _run(root: Path, churn: Churn, params: MonitorParams, **kwargs: object) -> MonitorResult:
    """The job on ROOT against the churn profile, with no registry; the result whether healthy or not."""
    reference = root / "reference.json"
    reference.write_text(json.dumps(churn.profile))
    try:
        return monitor(root, reference=reference, out=root / "out", registered=None, params=params,
                       **kwargs)  # type: ignore[arg-type]
    except MonitorAlert as alert:
        return alert.result


def test_processes_share_the_logs_and_agree_with_one(churn: Churn, logged: tuple[Path, pd.DataFrame, np.ndarray],
                                                     tmp_path: Path) -> None:
    logs, _, _ = logged
    one = _run(tmp_path, churn, quiet(), log=logs)
    three = _run(tmp_path, churn, quiet(jobs=3), log=logs)
    assert three.window.rows == one.window.rows and three.window.rejected == one.window.rejected
    assert dict(three.window.roles) == dict(one.window.roles)
    assert [(f.name, f.valid, f.psi) for f in three.features] == [(f.name, f.valid, f.psi) for f in one.features]
    assert three.performance.estimated == pytest.approx(one.performance.estimated)
    assert (three.window.start, three.window.end) == (one.window.start, one.window.end)


def test_since_roles_and_rejected_requests(churn: Churn, logged: tuple[Path, pd.DataFrame, np.ndarray],
                                           tmp_path: Path) -> None:
    logs, frame, _ = logged
    recent = _run(tmp_path, churn, quiet(), log=logs, since="1d")
    assert 0 < recent.window.rows < len(frame)
    assert recent.window.since is not None and recent.window.start is not None
    assert recent.window.start >= recent.window.since
    shadow = _run(tmp_path, churn, quiet(roles=("shadow",)), log=logs)
    assert shadow.window.rows == 300 and shadow.healthy
    strict = _run(tmp_path, churn, quiet(max_rejected_share=0.001), log=logs)
    assert ("rejected", "window") in {(a.check, a.subject) for a in strict.alarms}


def test_late_labels_join_by_request_id(churn: Churn, logged: tuple[Path, pd.DataFrame, np.ndarray],
                                        tmp_path: Path) -> None:
    logs, frame, scores = logged
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": [f"r{i}" for i in range(len(frame))],
                  "label": np.where(churn.y == 1, "Yes", "No")}).iloc[::2].to_csv(labels, index=False)
    result = _run(tmp_path, churn, quiet(), log=logs, labels=labels)
    perf = result.performance
    assert perf.labelled == (len(frame) + 1) // 2
    half = np.arange(0, len(frame), 2)
    from sklearn.metrics import accuracy_score, roc_auc_score

    assert perf.realised is not None
    assert perf.realised["roc_auc"] == pytest.approx(roc_auc_score(churn.y[half], scores[half]), abs=2e-3)
    assert perf.realised["accuracy"] == pytest.approx(accuracy_score(churn.y[half], scores[half] >= 0.4), abs=1e-6)
    assert sum(w.labelled for w in perf.windows) == perf.labelled


def test_schema_violations_and_unreadable_lines(churn: Churn, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_log(churn, logs, churn.test, churn.scores)
    with open(logs / "requests-w0.jsonl", "ab") as f:
        bad = {"ts": "2099-01-01T00:00:00.000000Z", "request_id": "x", "model": "churn-model", "version": "v1.0.0",
               "role": "stable", "endpoint": "v1", "row": 0, "rows": 1, "latency_ms": 1.0, "status": 200,
               "inputs": {**{n: 0 for n in churn.names}, "tenure": "twelve", "contract": ["One year"],
                          "monthly_charges": 20.5},
               "outputs": {"probability": 0.5}}
        for _ in range(10):
            f.write((json.dumps(bad) + "\n").encode())
        f.write(b'{"ts": "2099-01-01T00:00:00Z", "inputs": {"tenure"\n')
    result = _run(tmp_path, churn, quiet(), log=logs)
    subjects = {(a.check, a.subject) for a in result.alarms}
    assert ("schema", "tenure") in subjects and ("schema", "contract") in subjects
    assert result.window.unreadable == 1 and any("not JSON" in n for n in result.notes)
    tenure = next(f for f in result.features if f.name == "tenure")
    assert tenure.violations == 10


# --- staleness, volume, params -----------------------------------------------------------------------------------


def test_staleness_and_volume(churn: Churn) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = (now - timedelta(days=400)).isoformat()
    acc = accumulate(churn.profile, [chunk_of(churn, churn.test.head(40), churn.scores[:40])])
    result = evaluate(acc, churn.profile, MonitorParams(), ReadStats(), source="file", path="-", reference="-",
                      registered=("v1.2.0", old), now=now)
    subjects = {(a.check, a.subject) for a in result.alarms}
    assert ("staleness", "v1.2.0") in subjects and ("volume", "window") in subjects
    assert result.staleness is not None and result.staleness.age_days == pytest.approx(400)
    fresh = evaluate(acc, churn.profile, MonitorParams(min_rows=10), ReadStats(), source="file", path="-",
                     reference="-", registered=("v1.2.0", (now - timedelta(days=3)).isoformat()), now=now)
    assert fresh.healthy, [a.message for a in fresh.alarms]


def test_production_registration_from_the_registry(project: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(project, repo, symlinks=True)
    assert production_registration(repo)[0] is None
    git(repo, "tag", "-a", "churn-model@v1.0.0", "-m", "register")
    git(repo, "tag", "-a", "churn-model#production#1", "-m", "assign")
    reg, why = production_registration(repo)
    assert why is None and reg is not None and reg[0] == "v1.0.0"
    assert datetime.fromisoformat(reg[1]) > datetime.now(UTC) - timedelta(minutes=5)


def test_monitor_params(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("monitor:\n  false_alarm_rate: 0.05\n  max_drop: {roc_auc: 0.02}\n"
                                          "  max_age_days: null\n  roles: [stable, canary]\n")
    p = read_params(tmp_path / "params.yaml").monitor
    assert p.false_alarm_rate == 0.05 and p.max_drop == {"roc_auc": 0.02} and p.max_age_days is None
    assert p.roles == ("stable", "canary") and p.wasserstein == 0.1
    (tmp_path / "params.yaml").write_text("monitor:\n  wasserstien: 0.2\n")
    with pytest.raises(ParamsInvalid, match=r"unknown key 'monitor\.wasserstien'"):
        _ = read_params(tmp_path / "params.yaml").monitor
    (tmp_path / "params.yaml").write_text("monitor:\n  false_alarm_rate: 2\n")
    with pytest.raises(ParamsInvalid, match=r"monitor\.false_alarm_rate"):
        _ = read_params(tmp_path / "params.yaml").monitor
    assert read_params(tmp_path / "absent.yaml").monitor == MonitorParams()
    assert parse_duration("36h") == timedelta(hours=36)
    with pytest.raises(MonitorInputError, match="not a duration"):
        parse_duration("soon")


def test_input_errors(churn: Churn, tmp_path: Path) -> None:
    with pytest.raises(MonitorInputError, match="no request logs"):
        _run(tmp_path, churn, quiet(), log=tmp_path)
    with pytest.raises(MonitorInputError, match="nothing to monitor"):
        _run(tmp_path, churn, quiet())
    parquet = tmp_path / "current.parquet"
    parquet.write_bytes(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(MonitorInputError, match="needs pyarrow"):
            _run(tmp_path, churn, quiet(), current=parquet)


# --- reports and the CLI -----------------------------------------------------------------------------------------


def test_cli_exit_codes_and_reports(churn: Churn, project: Path, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    monkeypatch.chdir(project)
    clean = to_csv(churn, churn.test, tmp_path / "clean.csv", labels=churn.y)  # no scores: the model scores it
    res = runner.invoke(app, ["monitor", "--current", str(clean), "--out", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output
    assert "monitor: healthy" in res.output and "roc_auc: estimated" in res.output
    frame = shifted(churn.test, "monthly_charges")
    bad = to_csv(churn, frame, tmp_path / "shifted.csv", scores=churn.score(frame))
    res = runner.invoke(app, ["monitor", "--current", str(bad), "--out", str(tmp_path / "bad")])
    assert res.exit_code == 1
    assert "drift: monthly_charges drifted" in res.output           # the findings first
    assert "error: monitor: monthly_charges drifted" in res.output  # then the one-line cause
    md = (tmp_path / "bad" / "monitor.md").read_text()
    assert "🔴 Monitoring: 1 alarm" in md and "monthly\\_charges" in md and "monitor-plots/monthly-charges.png" in md
    html = (tmp_path / "bad" / "monitor.html").read_text()
    assert html.count("data:image/png;base64,") == len(churn.names) + 1  # every feature and the prediction
    data = json.loads((tmp_path / "bad" / "monitor.json").read_text())
    assert data["healthy"] is False and data["alarms"][0]["subject"] == "monthly_charges"
    res = runner.invoke(app, ["monitor", "--current", str(bad), "--json", "--out", str(tmp_path / "j")])
    assert res.exit_code == 1 and json.loads(res.stdout)["alarms"][0]["check"] == "drift"
    res = runner.invoke(app, ["monitor"])
    assert res.exit_code == 1 and "nothing to monitor" in res.output
    res = runner.invoke(app, ["monitor", "--current", str(bad), "--since", "soon"])
    assert res.exit_code == 1 and "not a duration" in res.output


def test_markdown_keeps_traffic_text_inert(churn: Churn, project: Path, tmp_path: Path) -> None:
    frame = churn.test.copy()
    method = frame["payment_method"].astype(object)
    method[:200] = "@admin <script>x</script> https://evil.example/#1"
    frame["payment_method"] = method
    csv = to_csv(churn, frame, tmp_path / "evil.csv", scores=churn.scores)
    result = _run(project, churn, quiet(), current=csv)
    assert ("unseen", "payment_method") in {(a.check, a.subject) for a in result.alarms}
    md = (project / "out" / "monitor.md").read_text()
    assert "<script>" not in md and "@admin" not in md and "https://evil" not in md
    assert "&lt;script&gt;" in md
    html = (project / "out" / "monitor.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html

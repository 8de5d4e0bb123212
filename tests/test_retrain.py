"""`mlops monitor --retrain`: drifted request logs written by the server's own writer, late labels, a bare git
origin, a local DVC remote and the GitHub double on loopback -> a branch on origin with the new data's .dvc file,
the data in the DVC remote, and one open retraining pull request; a second run opens none; no labels is a clear
exit 1; an alarm that has not held over `monitor.consecutive` windows opens nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

import mlops.cli.monitor  # noqa: F401  (registers `mlops monitor` on the app)
from mlops import dvc as mdvc
from mlops.cli import app
from mlops.errors import GitHubError
from mlops.github.context import CIContext
from mlops.jobs.monitor import monitor
from mlops.jobs.retrain import BRANCH_PREFIX, RetrainAlert
from mlops.monitor import MonitorParams
from tests.github_double import GitHubDoubleWithPullList
from tests.helpers import git, runner
from tests.monitor_helpers import Churn, load_churn, shifted, write_log

pytestmark = pytest.mark.slow

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOKEN = "ghs_retraintoken"


def quiet(**kwargs: object) -> MonitorParams:
    return MonitorParams(**{"plots": False, "jobs": 1, "consecutive": 3, **kwargs})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def churn(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Churn:
    return load_churn(_trained_template, tmp_path_factory.mktemp("retrain") / "reference.json")


@pytest.fixture(scope="module")
def double() -> Iterator[GitHubDoubleWithPullList]:
    d = GitHubDoubleWithPullList().start()
    yield d
    d.stop()


def make_project(churn: Churn, base: Path) -> tuple[Path, Path, Path]:
    """A copy of the trained project with its reference profile committed, pushed to a bare origin, and a local
    DVC remote of its own: (root, origin, dvc remote)."""
    root = base / "project"
    shutil.copytree(churn.root, root, symlinks=True)
    (root / "models" / "reference.json").write_text(json.dumps(churn.profile))
    git(root, "add", "-f", "models/reference.json")
    git(root, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "reference profile")
    origin = base / "origin.git"
    git(base, "init", "-q", "--bare", "-b", "main", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    store = base / "dvc-remote"
    store.mkdir()
    (root / ".dvc" / "config.local").write_text(f"['remote \"local\"']\n    url = {store}\n")
    return root, origin, store


def day_logs(churn: Churn, directory: Path, drifted: list[bool]) -> Path:
    """One day of request logs per entry (the last is yesterday), drifted or not; the labels of every request."""
    rows = []
    for k, bad in enumerate(drifted):
        day = NOW - timedelta(days=len(drifted) - k)
        frame = shifted(churn.test, "monthly_charges") if bad else churn.test
        scores = churn.score(frame)
        ids = [f"d{k}-{i}" for i in range(len(frame))]
        write_log(churn, directory, frame, scores, start=day.replace(hour=1).timestamp(), step=1.0, worker=k,
                  ids=ids)
        rows += [{"request_id": rid, "label": int(y)} for rid, y in zip(ids, churn.y, strict=True)]
    labels = directory.parent / "labels.csv"
    pd.DataFrame(rows).to_csv(labels, index=False)
    return labels


def ci_of(double: GitHubDoubleWithPullList) -> CIContext:
    return CIContext(token=TOKEN, repository=f"{double.owner}/{double.repo}", api_url=double.url)


def test_retrain_opens_one_pull_request(churn: Churn, double: GitHubDoubleWithPullList, tmp_path: Path) -> None:
    root, origin, store = make_project(churn, tmp_path)
    double.opened.clear()
    double.head_exists = lambda head: bool(git(origin, "branch", "--list", head))
    labels = day_logs(churn, tmp_path / "logs", [True, True, True])
    user_head = git(root, "rev-parse", "HEAD")
    with pytest.raises(RetrainAlert) as caught:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(), registered=None, now=NOW,
                out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    done = caught.value.retrain
    assert done.action == "opened", done.message
    assert [w.alarmed for w in done.windows] == [True, True, True]
    assert done.rows == 3 * len(churn.test)
    # the branch on origin holds the data's .dvc file (and nothing of the user's checkout moved)
    assert done.branch is not None and done.branch.startswith(BRANCH_PREFIX)
    assert git(origin, "branch", "--list", done.branch)
    files = git(origin, "ls-tree", "-r", "--name-only", done.branch).splitlines()
    assert f"{done.data}.dvc" in files and "data/feedback/.gitignore" in files
    assert git(root, "rev-parse", "HEAD") == user_head and git(root, "status", "--porcelain") == ""
    assert git(root, "worktree", "list").count("\n") == 0
    # the data is in the DVC remote
    meta = yaml.safe_load(git(origin, "show", f"{done.branch}:{done.data}.dvc"))
    md5 = meta["outs"][0]["md5"]
    assert Path(mdvc.remote_object_url(str(store), md5)).is_file()
    snap = pd.read_csv(mdvc.remote_object_url(str(store), md5))
    assert len(snap) == done.rows and set(churn.names) <= set(snap.columns) and "churn" in snap.columns
    # one open retraining PR into main, with the report as its body
    assert list(double.opened) == [done.pr_number]
    pr = double.opened[done.pr_number]
    assert pr["head"]["ref"] == done.branch and pr["base"]["ref"] == "main"
    report = (tmp_path / "reports" / "monitor.md").read_text()
    assert "monthly\\_charges" in report and report in pr["body"] and len(pr["body"]) < 65_536

    # a second run opens none
    posts = len(double.requests_for("POST", r"/pulls$"))
    with pytest.raises(RetrainAlert) as again:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(), registered=None, out=tmp_path / "reports",
                now=NOW + timedelta(hours=1), retrain=True, ci=ci_of(double))
    assert again.value.retrain.action == "open-already"
    assert again.value.retrain.pr_number == done.pr_number
    assert len(double.requests_for("POST", r"/pulls$")) == posts and len(double.opened) == 1
    assert len([b for b in git(origin, "branch", "--list", f"{BRANCH_PREFIX}*").splitlines() if b.strip()]) == 1


def test_open_pull_request_found_on_a_later_page(churn: Churn, double: GitHubDoubleWithPullList,
                                                 tmp_path: Path) -> None:
    root, origin, _ = make_project(churn, tmp_path)
    double.opened.clear()
    double.head_exists = lambda head: bool(git(origin, "branch", "--list", head))
    for i in range(105):
        double.add_pull(f"feature-{i}")
    double.add_pull(f"{BRANCH_PREFIX}20260101T000000Z")
    labels = day_logs(churn, tmp_path / "logs", [True, True, True])
    with pytest.raises(RetrainAlert) as caught:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(), registered=None, now=NOW,
                out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    assert caught.value.retrain.action == "open-already"
    assert len(double.opened) == 106


def test_not_held_over_n_windows_opens_nothing(churn: Churn, double: GitHubDoubleWithPullList,
                                               tmp_path: Path) -> None:
    root, origin, _ = make_project(churn, tmp_path)
    double.opened.clear()
    double.head_exists = lambda head: bool(git(origin, "branch", "--list", head))
    labels = day_logs(churn, tmp_path / "logs", [True, False, True])
    posts = len(double.requests_for("POST", r"/pulls$"))
    with pytest.raises(RetrainAlert) as caught:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(), registered=None, now=NOW,
                out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    done = caught.value.retrain
    assert done.action == "not-held", done.message
    assert [w.alarmed for w in done.windows] == [True, False, True]
    assert "1 of the last 3" in done.message
    assert len(double.requests_for("POST", r"/pulls$")) == posts and not double.opened
    assert git(origin, "branch", "--list", f"{BRANCH_PREFIX}*") == ""


def test_cli_without_labels_is_a_clear_exit_1(churn: Churn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _, _ = make_project(churn, tmp_path)
    day_logs(churn, tmp_path / "logs", [True])
    monkeypatch.chdir(root)
    res = runner.invoke(app, ["monitor", "--log", str(tmp_path / "logs"), "--retrain"])
    assert res.exit_code == 1
    assert "--retrain needs labels" in res.output and "--labels" in res.output


def days_csv(churn: Churn, path: Path, drifted: list[bool], *, labelled: bool = True) -> Path:
    """Raw records with scores, a timestamp (one day per entry) and, when LABELLED, the label column."""
    frames = []
    for k, bad in enumerate(drifted):
        frame = shifted(churn.test, "monthly_charges") if bad else churn.test
        out = frame[churn.names].copy()
        out["probability"] = churn.score(frame)
        if labelled:
            out["churn"] = ["Yes" if y == 1 else "No" for y in churn.y]
        day = (NOW - timedelta(days=len(drifted) - k)).strftime("%Y-%m-%d")
        out.insert(0, "ts", [f"{day}T{i % 24:02d}:00:00Z" for i in range(len(out))])
        out.insert(0, "request_id", [f"f{k}-{i}" for i in range(len(out))])
        frames.append(out)
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_cli_current_file_opens_a_pull_request(churn: Churn, double: GitHubDoubleWithPullList, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root, origin, _ = make_project(churn, tmp_path)
    double.opened.clear()
    double.head_exists = lambda head: bool(git(origin, "branch", "--list", head))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["monitor"] = {"plots": False, "jobs": 1, "consecutive": 2, "retrain_dir": "data/new", "max_age_days": None}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    current = days_csv(churn, tmp_path / "current.csv", [False, True, True])
    for k, v in {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": f"{double.owner}/{double.repo}",
                 "GITHUB_API_URL": double.url}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(root)
    res = runner.invoke(app, ["monitor", "--current", str(current), "--retrain", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1, res.output
    assert "retrain: opened pull request #" in res.output and "pull request: https://" in res.output
    (pr,) = double.opened.values()
    files = git(origin, "ls-tree", "-r", "--name-only", pr["head"]["ref"]).splitlines()
    assert any(f.startswith("data/new/feedback-") and f.endswith(".csv.dvc") for f in files)
    # a file without the label column: nothing to retrain on, said so
    unlabelled = days_csv(churn, tmp_path / "unlabelled.csv", [True, True], labelled=False)
    double.opened.clear()
    res = runner.invoke(app, ["monitor", "--current", str(unlabelled), "--retrain", "--out", str(tmp_path / "u")])
    assert res.exit_code == 1
    assert "--retrain needs labelled rows" in res.output and not double.opened


def test_github_refusing_the_pull_request_is_a_clear_error(churn: Churn, double: GitHubDoubleWithPullList,
                                                           tmp_path: Path) -> None:
    root, origin, _ = make_project(churn, tmp_path)
    double.opened.clear()
    double.head_exists = lambda head: False  # as if the branch never reached GitHub
    labels = day_logs(churn, tmp_path / "logs", [True, True, True])
    with pytest.raises(GitHubError, match=r"422: head invalid") as caught:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(), registered=None, now=NOW,
                out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    assert "was pushed" in (caught.value.hint or "") and not double.opened
    assert git(origin, "branch", "--list", f"{BRANCH_PREFIX}*") == ""  # the pushed branch was taken back


@pytest.mark.e2e
def test_served_traffic_with_drift_opens_one_retraining_pull_request(churn: Churn, double: GitHubDoubleWithPullList,
                                                                      tmp_path: Path) -> None:
    """The whole loop from real traffic: `mlops serve` answers drifted requests and writes its request log; late
    labels arrive keyed by request id; `mlops monitor --retrain` opens one PR; a second run opens none."""
    import http.client

    from mlops.features import parse_model_interface, records_from_frame
    from tests.serve_helpers import Server, call, install

    root, origin, _ = make_project(churn, tmp_path)
    double.opened.clear()
    double.head_exists = lambda head: bool(git(origin, "branch", "--list", head))
    store, logs = tmp_path / "store", tmp_path / "served-logs"
    install(store, churn.root / "models", "v1.0.0")
    server = Server(store, log_dir=logs)
    try:
        server.wait("/v2/health/ready")
        drifted = shifted(churn.test, "monthly_charges")
        records = records_from_frame(parse_model_interface(churn.schema), drifted[churn.names])
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        labels = []
        for i, (record, y) in enumerate(zip(records, churn.y, strict=True)):
            reply = call(server.port, "POST", "/v1/models/churn-model/predict", {"instances": [record]},
                         headers={"x-request-id": f"served-{i}"}, conn=conn)
            assert reply.status == 200 and reply.headers.get("x-model-version") == "v1.0.0"
            # labels quote the id the server issued (the client's own id is never the join key)
            labels.append({"request_id": reply.headers["x-request-id"], "label": int(y)})
        conn.close()
    finally:
        server.stop()  # flushes the request log
    assert sum(1 for f in logs.glob("*.jsonl") for _ in f.open()) == len(records)
    pd.DataFrame(labels).to_csv(tmp_path / "labels.csv", index=False)
    params = quiet(consecutive=1)  # the traffic above is one window
    with pytest.raises(RetrainAlert) as caught:
        monitor(root, log=logs, labels=tmp_path / "labels.csv", params=params, registered=None,
                out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    done = caught.value.retrain
    assert done.action == "opened", done.message
    assert "monthly_charges" in {a.subject for a in caught.value.result.alarms}
    assert list(double.opened) == [done.pr_number] and done.rows == len(records)
    assert f"{done.data}.dvc" in git(origin, "ls-tree", "-r", "--name-only", str(done.branch)).splitlines()
    with pytest.raises(RetrainAlert) as again:
        monitor(root, log=logs, labels=tmp_path / "labels.csv", params=params, registered=None,
                out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    assert again.value.retrain.action == "open-already" and len(double.opened) == 1


def test_a_fork_pull_request_named_like_ours_does_not_block_retraining(churn: Churn,
                                                                      double: GitHubDoubleWithPullList,
                                                                      tmp_path: Path) -> None:
    root, origin, _ = make_project(churn, tmp_path)
    double.opened.clear()
    double.head_exists = lambda head: bool(git(origin, "branch", "--list", head))
    fork = double.add_pull(f"{BRANCH_PREFIX}20260101T000000Z")
    fork["head"]["label"] = f"mallory:{BRANCH_PREFIX}20260101T000000Z"  # anyone can name a fork's branch so
    labels = day_logs(churn, tmp_path / "logs", [True, True, True])
    with pytest.raises(RetrainAlert) as caught:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(), registered=None, now=NOW,
                out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    assert caught.value.retrain.action == "opened"
    assert len(double.opened) == 2


@pytest.mark.e2e
def test_monitor_gauges_appear_on_the_servers_metrics(churn: Churn, tmp_path: Path) -> None:
    from mlops.monitor import MonitorAlert
    from tests.serve_helpers import Server, call, install

    root, _, _ = make_project(churn, tmp_path)
    store = tmp_path / "store"
    install(store, churn.root / "models", "v1.0.0")
    server = Server(store)
    try:
        server.wait("/v2/health/ready")
        before = call(server.port, "GET", "/metrics").body.decode()
        assert "mlops_monitor_healthy" not in before  # nothing published yet: the scrape still works
        labels = day_logs(churn, tmp_path / "logs", [True])
        with pytest.raises(MonitorAlert):
            monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(consecutive=1), registered=None,
                    now=NOW, out=tmp_path / "reports", publish=store)
        text = call(server.port, "GET", "/metrics").body.decode()
    finally:
        server.stop()
    assert "# TYPE mlops_monitor_healthy gauge" in text
    assert 'mlops_monitor_healthy{model="churn-model"} 0.0' in text
    assert 'mlops_monitor_feature_drifted{model="churn-model",feature="monthly_charges"} 1.0' in text
    assert 'mlops_monitor_feature_drifted{model="churn-model",feature="tenure"} 0.0' in text
    assert "model_infer_request_success" in text or "rest_server_requests" in text  # the server's own still there

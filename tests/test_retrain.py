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
from typing import Any

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
from tests.github_double import GitHubDoubleWithActions, GitHubDoubleWithPullList
from tests.helpers import git, runner
from tests.monitor_helpers import Churn, load_churn, shifted, write_log

pytestmark = pytest.mark.slow

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOKEN = "ghs_retraintoken"


def quiet(**kwargs: object) -> MonitorParams:
    # the data alone by default (no pipeline rerun in the worktree): test_retrain_opens_one_pull_request retrains
    return MonitorParams(**{"plots": False, "jobs": 1, "consecutive": 3, "retrain_repro": False,  # type: ignore[arg-type]
                            **kwargs})


@pytest.fixture(scope="module")
def churn(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Churn:
    return load_churn(_trained_template, tmp_path_factory.mktemp("retrain") / "reference.json")


@pytest.fixture(scope="module")
def double() -> Iterator[GitHubDoubleWithActions]:
    # with the workflow dispatches: retrain dispatches pr.yml for the pull request it opens
    d = GitHubDoubleWithActions().start()
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


def test_retrain_opens_one_pull_request(churn: Churn, double: GitHubDoubleWithActions, tmp_path: Path) -> None:
    root, origin, store = make_project(churn, tmp_path)
    # models/ as a real project has it: a DVC output only (the pipeline reruns on the branch and rewrites it)
    git(root, "rm", "-q", "--cached", "models/reference.json")
    git(root, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "reference from DVC")
    git(root, "push", "-q", "origin", "main")
    mdvc.push(root, run_cache=False)
    double.opened.clear()
    double.head_exists = lambda head: bool(git(origin, "branch", "--list", head))
    labels = day_logs(churn, tmp_path / "logs", [True, True, True])
    user_head = git(root, "rev-parse", "HEAD")
    with pytest.raises(RetrainAlert) as caught:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(retrain_repro=True), registered=None,
                now=NOW, out=tmp_path / "reports", retrain=True, ci=ci_of(double))
    done = caught.value.retrain
    assert done.action == "opened", done.message
    # retrained on the branch: dvc.lock records a new model (main's code, the new data), whose files are in the
    # DVC remote, and the commit says which stages ran
    lock = yaml.safe_load(git(origin, "show", f"{done.branch}:dvc.lock"))
    main_lock = yaml.safe_load(git(origin, "show", "main:dvc.lock"))

    def models_md5(lk: dict[str, Any]) -> str:
        return next(o["md5"] for o in lk["stages"]["train"]["outs"] if o["path"] == "models")

    assert models_md5(lock) != models_md5(main_lock)
    assert Path(mdvc.remote_object_url(str(store), models_md5(lock))).is_file()
    message = git(origin, "log", "-1", "--format=%B", done.branch)
    assert "The pipeline reran on it (prepare" in message and "train" in message
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
    # GITHUB_TOKEN's pull request starts no workflow: pr.yml was dispatched on the branch, for that pull request
    assert double.dispatches[-1:] == [{"workflow": "pr.yml", "ref": done.branch,
                                       "inputs": {"pull-request": str(done.pr_number)}}]
    assert done.workflow == "dispatched" and done.message.endswith(f"pr.yml dispatched on {done.branch}")
    dispatched = len(double.dispatches)

    # a second run opens none
    posts = len(double.requests_for("POST", r"/pulls$"))
    with pytest.raises(RetrainAlert) as again:
        monitor(root, log=tmp_path / "logs", labels=labels, params=quiet(), registered=None, out=tmp_path / "reports",
                now=NOW + timedelta(hours=1), retrain=True, ci=ci_of(double))
    assert again.value.retrain.action == "open-already"
    assert again.value.retrain.pr_number == done.pr_number
    assert len(double.requests_for("POST", r"/pulls$")) == posts and len(double.opened) == 1
    assert len([b for b in git(origin, "branch", "--list", f"{BRANCH_PREFIX}*").splitlines() if b.strip()]) == 1
    assert len(double.dispatches) == dispatched  # nothing dispatched again

    # the snapshot is data the churn pipeline's prepare takes: typed, de-duplicated, added to train
    from mlops.config import load_params
    from mlops.stages.prepare import prepare

    feedback = root / "data" / "feedback" / Path(str(done.data)).name
    feedback.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mdvc.remote_object_url(str(store), md5), feedback)
    prepare(load_params(root / "params.yaml"), root)
    fb = json.loads((root / "reports" / "data.json").read_text())["feedback"]
    assert fb["files"] == 1 and fb["rows_read"] == done.rows
    # the three days carry the same shifted rows: the second and third are duplicates of the first
    assert fb["rows_added"] + fb["duplicates_dropped"] == done.rows and fb["duplicates_dropped"] >= 2 * len(churn.test)
    assert fb["train_rows_added"] == fb["rows_added"] > 0 and fb["test_rows_added"] == 0


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
    params["monitor"] = {"plots": False, "jobs": 1, "consecutive": 2, "retrain_dir": "data/new", "max_age_days": None,
                         "retrain_repro": False}
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


# --- how the retraining pull request starts the PR workflow, and where the dispatched run reports ----------------

def test_pr_trigger_and_workflow_from_the_context() -> None:
    from mlops.jobs.retrain import RetrainError, pr_trigger

    assert pr_trigger(CIContext()) == ("dispatch", "pr.yml")
    assert pr_trigger(CIContext.from_env({"MLOPS_PR_TRIGGER": "app", "MLOPS_PR_WORKFLOW": "mlops-pr.yml"})) == \
        ("app", "mlops-pr.yml")
    with pytest.raises(RetrainError, match=r"MLOPS_PR_TRIGGER='pat': expected dispatch or app"):
        pr_trigger(CIContext(pr_trigger="pat"))
    with pytest.raises(RetrainError, match=r"MLOPS_PR_WORKFLOW='../x.yml'"):
        pr_trigger(CIContext(pr_workflow="../x.yml"))


def test_dispatch_or_not(double: GitHubDoubleWithActions) -> None:
    """dispatch: one POST .../actions/workflows/pr.yml/dispatches, answered 204; app: no request at all (GitHub
    starts the workflow on the App's pull request); a refused dispatch leaves the pull request and says why."""
    from mlops.github.client import Client
    from mlops.jobs.retrain import _start_workflow

    client = Client(f"{double.owner}/{double.repo}", TOKEN, double.url, retries=0)
    double.dispatches.clear()  # the module's double: earlier tests dispatched
    try:
        before = len(double.requests)
        assert _start_workflow(client, "app", "pr.yml", "mlops/retrain-x", 7, lambda _: None)[0] == "app"
        assert len(double.requests) == before and not double.dispatches
        done, how = _start_workflow(client, "dispatch", "pr.yml", "mlops/retrain-x", 7, lambda _: None)
        assert (done, how) == ("dispatched", "pr.yml dispatched on mlops/retrain-x")
        req = double.requests_for("POST", r"/actions/workflows/pr\.yml/dispatches$")[-1]
        assert req.body == {"ref": "mlops/retrain-x", "inputs": {"pull-request": "7"}}
        assert double.dispatches == [{"workflow": "pr.yml", "ref": "mlops/retrain-x", "inputs": {"pull-request": "7"}}]
        double.workflows = {"ci.yml"}  # no such workflow
        done, how = _start_workflow(client, "dispatch", "pr.yml", "mlops/retrain-x", 7, lambda _: None)
        assert done == "dispatch failed" and "pr.yml NOT started: GitHub answered 404" in how
        assert "MLOPS_PR_WORKFLOW" in how
        double.workflows, double.read_only = None, True  # GITHUB_TOKEN without actions: write
        done, how = _start_workflow(client, "dispatch", "pr.yml", "mlops/retrain-x", 7, lambda _: None)
        assert done == "dispatch failed" and "lacks actions: write" in how
        assert len(double.dispatches) == 1
    finally:
        double.workflows, double.read_only = None, False
        double.dispatches.clear()
        client.close()


def test_a_dispatched_run_comments_on_its_own_pull_request_only(double: GitHubDoubleWithActions,
                                                               tmp_path: Path) -> None:
    """`mlops comment --target auto` in a workflow_dispatch run: the pull request of input `pull-request`, once it
    is this repository's branch that the run is on; any other is refused, and so is an input that is no number."""
    from mlops.jobs.comment import comment
    from tests.helpers import init_repo

    root = init_repo(tmp_path / "repo")
    (root / "reports").mkdir()
    (root / "reports" / "report.md").write_text("## report\n\ndata added: 10 rows from data/feedback/\n")
    git(root, "-c", "user.name=t", "-c", "user.email=t@x", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "r")
    double.opened.clear()
    ours = double.add_pull(f"{BRANCH_PREFIX}20260310T120000Z")
    other = double.add_pull("feature")

    def ci(number: object, ref: str) -> CIContext:
        event = tmp_path / f"event-{number}-{ref.replace('/', '_')}.json"
        event.write_text(json.dumps({"inputs": {"pull-request": number}, "ref": f"refs/heads/{ref}",
                                     "repository": {"default_branch": "main"}}))
        return CIContext(token=TOKEN, repository=f"{double.owner}/{double.repo}", api_url=double.url,
                         event_path=str(event), ref_name=ref)

    done = comment(root, ci=ci(str(ours["number"]), ours["head"]["ref"]))
    assert done.posted is not None and done.posted.target.number == ours["number"]
    assert "data added: 10 rows" in double.comments_on(ours["number"])[0]["body"]
    with pytest.raises(GitHubError, match=r"#\d+ is acme:feature at .* not this run's branch mlops/retrain-"):
        comment(root, ci=ci(str(other["number"]), ours["head"]["ref"]))
    assert not double.comments_on(other["number"])
    with pytest.raises(GitHubError, match=r"input 'pull-request': '1; echo' is not a pull request number"):
        comment(root, ci=ci("1; echo", ours["head"]["ref"]))
    double.opened.clear()


def test_monitor_workflow_wiring() -> None:
    """monitor.yml: the permissions the alarm issue and the dispatch need, the App token (pinned) when configured,
    the token on every run, and the report uploaded whatever the outcome."""
    from tests.helpers import REPO

    doc = yaml.safe_load((REPO / ".github/workflows/monitor.yml").read_text())
    job = doc["jobs"]["monitor"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "issues": "write",
                                  "actions": "write"}
    steps = {s.get("id") or s.get("uses", "").split("@")[0]: s for s in job["steps"]}
    app_step = steps["app"]
    assert app_step["if"] == "vars.MLOPS_APP_ID != ''"
    assert app_step["uses"] == "actions/create-github-app-token@1b10c78c7865c340bc4f6099eb2f838309f1e8c3"
    assert app_step["with"]["private-key"] == "${{ secrets.MLOPS_APP_PRIVATE_KEY }}"
    run = steps["./actions/monitor"]["with"]
    assert run["github-token"] == "${{ steps.app.outputs.token || github.token }}"
    assert run["pr-trigger"] == "${{ steps.app.outcome == 'success' && 'app' || 'dispatch' }}"
    assert run["pr-workflow"] == "pr.yml"
    upload = steps["actions/upload-artifact"]
    assert upload["if"] == "always()"
    assert set(upload["with"]["path"].split()) == {f"reports/monitor.{x}" for x in ("md", "html", "json")}
    script = (REPO / "actions/monitor/monitor.sh").read_text()
    assert 'export GITHUB_TOKEN="$MLOPS_TOKEN"' in script.split("MLOPS_RETRAIN", 1)[0]  # not only with retrain

"""The whole loop, as GitHub and a team would run it, once: act for every workflow, the GitHub double for the API,
a bare origin, and two real `mlops serve` processes (staging and production, `deploy.environments`).

v1.0.0 is in staging and in production (released beforehand). Then:

1. customers' traffic with a shifted feature reaches the production server's request log, and their labels arrive;
2. monitor.yml (schedule) alarms: it opens the alarm issue and the retraining pull request (branch
   mlops/retrain-<stamp> on origin: the labelled traffic under data/feedback/ and the pipeline rerun on it in
   dvc.lock), and, opened with GITHUB_TOKEN, dispatches pr.yml for it (no App token here);
3. pr.yml, run for that dispatch (act does not chain runs: the test runs what the double recorded), reports on
   the pull request: the data added, and a changed model;
4. the merge (on origin) starts promote.yml: it registers v1.0.1 and delivers it to staging; production still
   serves v1.0.0;
5. the approved production step (deploy.yml dispatched for production) delivers what staging holds;
6. the window moves on (the server keeps its last --log-keep request files): the next monitor run on clean traffic
   is healthy and closes the alarm issue;
7. `mlops registry stats --json` counts those events: two production deployments, no failure, lead time from the
   pull request's first commit, time to restore from the alarm to v1.0.1 in production.

The tests share the repository, the servers, the double and act, and run in order.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.config import PROMOTE_BOT
from tests.e2e.act import FULL_NAME, Act, ActRun, push_event, workflow_dispatch_event
from tests.e2e.double import GitHubDoubleForLoop
from tests.e2e.projects import (
    add_workflows,
    commit,
    dvc,
    environment,
    git,
    project_env,
    remote_outside,
    with_origin,
)
from tests.monitor_helpers import Churn, load_churn, records, shifted
from tests.serve_helpers import TOKEN, Server, call

pytestmark = pytest.mark.e2e

MONITOR = ".github/workflows/monitor.yml"
PR = ".github/workflows/pr.yml"
PROMOTE = ".github/workflows/promote.yml"
DEPLOY = ".github/workflows/deploy.yml"
PRIVILEGED = ("self-hosted", "mlops-deploy", "ubuntu-latest")  # monitor's, promote's and deploy's runner
E2E_TOKEN = "ghs_e2etoken"  # what act gives the workflows as GITHUB_TOKEN
MODEL = "churn-model"
BATCH = 100  # rows per request: the request log's rows_per_request
KEEP = 10  # request files the production server keeps (--log-keep): the monitored window, 10 requests


@dataclass
class Loop:
    root: Path
    repo: Path
    origin: Path
    staging: Server
    production: Server
    request_log: Path
    labels: Path
    churn: Churn
    record: dict[str, Any]  # one customer, from the model's golden records
    seen: dict[str, Any] = field(default_factory=dict)  # what one step hands the next

    @property
    def home(self) -> Path:
        return self.root / "home"

    def variables(self) -> dict[str, str]:
        """The repository variables monitor.yml reads (pr.yml's DVC remote for pull requests too)."""
        return {"MLOPS_MONITOR": "true", "MLOPS_RETRAIN": "true", "MLOPS_REQUEST_LOG": str(self.request_log),
                "MLOPS_LABELS": str(self.labels), "MLOPS_PR_DVC_REMOTE": "pr"}


@pytest.fixture(scope="module")
def gh() -> Iterator[GitHubDoubleForLoop]:
    double = GitHubDoubleForLoop().start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def loop(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """The trained example project with this checkout's workflows; deploy.environments naming a staging and a
    production `mlops serve` (the production one writes its request log, keeping its last KEEP request files);
    monitoring that retrains after one alarming day; DVC remotes outside the repository (the default one, and `pr`
    for pull-request runs); main on a bare origin; v1.0.0 registered and delivered to staging, then production."""
    root = tmp_path_factory.mktemp("loop")
    (root / "home").mkdir()
    request_log = root / "requestlog"
    env = project_env(root / "home")
    servers: list[Server] = []
    try:
        staging = Server(root / "staging-store", cwd=root)
        servers.append(staging)
        production = Server(root / "production-store", cwd=root, log_dir=request_log,
                            extra=("--log-max-bytes", "1024", "--log-keep", str(KEEP)))  # a file per request
        servers.append(production)
        with environment(env):
            repo = root / "repo"
            shutil.copytree(_trained_template, repo, symlinks=True)
            add_workflows(repo)
            raw = yaml.safe_load((repo / "params.yaml").read_text())
            raw["deploy"] = {"canary_seconds": 1, "canary_requests": 20, "max_p99_ms": 2000, "environments": {
                "staging": {"server_url": f"http://127.0.0.1:{staging.port}", "store": str(staging.store)},
                "production": {"server_url": f"http://127.0.0.1:{production.port}", "store": str(production.store)}}}
            raw["monitor"] = {"consecutive": 1}  # one alarming day is enough to retrain (the default waits three)
            (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
            remote_outside(repo, root / "dvcstore")
            dvc(repo, "remote", "add", "pr", str(root / "dvcstore-pr"))
            commit(repo, "workflows; staging and production; DVC remotes")
            origin = with_origin(repo, root / "origin.git")
        staging.wait()
        production.wait()
        loop = Loop(root, repo, origin, staging, production, request_log, root / "labels.csv",
                    load_churn(repo, root / "profile.json"),
                    json.loads((repo / "models/golden.json").read_text())["records"][0])
        _first_release(loop, env)
        yield loop
    finally:
        for server in servers:
            server.stop()


def _mlops(loop: Loop, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "mlops", *args], cwd=loop.repo, capture_output=True, text=True,
                          env=env or project_env(loop.home), check=False)
    assert proc.returncode == 0, f"mlops {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _first_release(loop: Loop, env: dict[str, str]) -> None:
    """v1.0.0, as the promote workflow registered it earlier (its identity tags), in staging then production."""
    bot = {**env, "GIT_COMMITTER_NAME": PROMOTE_BOT.name, "GIT_COMMITTER_EMAIL": PROMOTE_BOT.email,
           "MLOPS_ADMIN_TOKEN": TOKEN}
    _mlops(loop, "promote", env=bot)
    _mlops(loop, "deploy", "--environment", "staging", "--ref", f"{MODEL}@v1.0.0", env=bot)
    _mlops(loop, "deploy", "--environment", "production", env=bot)
    assert _serving(loop.staging, loop) == "v1.0.0" and _serving(loop.production, loop) == "v1.0.0"


# --- reading the world ---------------------------------------------------------------------------------------------


def _serving(server: Server, loop: Loop) -> str | None:
    reply = call(server.port, "POST", f"/v1/models/{MODEL}/predict", {"instances": [loop.record]})
    assert reply.status == 200, reply.body
    return reply.version


def _origin_refs(loop: Loop, kind: str) -> dict[str, str]:
    """refs/KIND/* on origin: name -> sha (tags peeled to their commit)."""
    out = git(loop.repo, "ls-remote", f"--{kind}", str(loop.origin))
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, ref = line.split("\t")
        name = ref.split(f"refs/{kind}/", 1)[1]
        if name.endswith("^{}"):
            refs[name[:-3]] = sha
        else:
            refs.setdefault(name, sha)
    return refs


def _stage_tags(loop: Loop, stage: str) -> list[str]:
    return sorted((t for t in _origin_refs(loop, "tags") if t.startswith(f"{MODEL}#{stage}#")),
                  key=lambda t: int(t.rsplit("#", 1)[1]))


def _tag_time(loop: Loop, tag: str) -> datetime:
    """When TAG (fetched from origin) was made: its tagger date."""
    return datetime.fromisoformat(git(loop.repo, "for-each-ref", f"refs/tags/{tag}",
                                      "--format=%(taggerdate:iso-strict)"))


def _model_md5(loop: Loop, rev: str) -> str:
    """The md5 that REV's dvc.lock records for the train stage's models/ output."""
    lock = yaml.safe_load(git(loop.repo, "show", f"{rev}:dvc.lock"))
    return str(next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models"))


def _alarm_issues(gh: GitHubDoubleForLoop) -> list[dict[str, Any]]:
    return [i for i in gh.issues.values() if "mlops-alarm" in {lab["name"] for lab in i["labels"]}]


def _log_rows(loop: Loop, ids: list[str]) -> list[dict[str, Any]]:
    """The request log's lines once the requests IDS are all in it (the server writes off the response path)."""
    deadline = time.monotonic() + 30
    while True:
        rows = []
        for path in sorted(loop.request_log.glob("*.jsonl")):
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if set(ids) <= {r["request_id"] for r in rows} or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _send(loop: Loop, frame: Any) -> list[str]:
    """FRAME's customers as an application sends them, BATCH per request; the server's request ids."""
    recs = records(loop.churn, frame)
    ids = []
    for start in range(0, len(recs), BATCH):
        reply = call(loop.production.port, "POST", f"/v1/models/{MODEL}/predict",
                     {"instances": recs[start:start + BATCH]})
        assert reply.status == 200, reply.body
        ids.append(reply.headers["x-request-id"])
    return ids


def _monitor(act: Act, loop: Loop) -> ActRun:
    event = {"schedule": "17 6 * * *", "repository": {"full_name": FULL_NAME, "default_branch": "main"}}
    return act.run(loop.repo, "schedule", event, MONITOR, platforms=PRIVILEGED, variables=loop.variables())


# --- the loop ------------------------------------------------------------------------------------------------------


def test_shifted_traffic_and_its_labels_reach_the_production_request_log(loop: Loop) -> None:
    frame = shifted(loop.churn.test, "monthly_charges").iloc[:KEEP * BATCH]
    ids = _send(loop, frame)
    # The labels arrive later, keyed by the server's request id and the row in the request.
    y = loop.churn.y[:KEEP * BATCH]
    with open(loop.labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["request_id", "row", "label"])
        for k, rid in enumerate(ids):
            for row in range(BATCH):
                w.writerow([rid, row, "Yes" if y[k * BATCH + row] == 1 else "No"])

    logged = _log_rows(loop, ids)
    mine = [r for r in logged if r["request_id"] in set(ids)]
    assert len(mine) == KEEP * BATCH and {r["request_id"] for r in mine} == set(ids)
    assert {r["version"] for r in mine} == {"v1.0.0"} and {r["role"] for r in mine} == {"stable"}
    assert len(logged) - len(mine) < BATCH  # besides, at most the deploy's last check (the files are per request)
    # what was logged is the shifted feature (x1.3), as the application sent it
    first = next(r for r in logged if r["request_id"] == ids[0] and r["row"] == 0)
    assert first["inputs"]["monthly_charges"] == pytest.approx(float(loop.churn.test["monthly_charges"].iloc[0]) * 1.3)
    loop.seen["traffic"] = ids


def test_monitor_raises_the_alarm_issue_and_opens_the_retraining_pull_request(loop: Loop, act: Act,
                                                                              gh: GitHubDoubleForLoop) -> None:
    main_before = _origin_refs(loop, "heads")["main"]

    run = _monitor(act, loop)

    out = run.output("monitor")
    assert run.jobs == {"runner": "success", "monitor": "failure"} and "monthly_charges" in out, run.log()
    # the alarm issue: one, open, labelled, with the monitoring report
    issues = _alarm_issues(gh)
    assert len(issues) == 1, gh.issues
    issue = issues[0]
    assert issue["state"] == "open" and issue["title"] == f"Monitoring alarm: {MODEL}"
    assert "monthly\\_charges" in issue["body"] or "monthly_charges" in issue["body"], issue["body"]
    # the retraining pull request: its branch on origin, from main, adding the labelled traffic under data/feedback
    heads = _origin_refs(loop, "heads")
    branches = [b for b in heads if b.startswith("mlops/retrain-")]
    assert len(branches) == 1, heads
    branch = branches[0]
    assert heads["main"] == main_before
    prs = [p for p in gh.opened.values() if p["head"]["ref"] == branch]
    assert len(prs) == 1 and prs[0]["base"]["ref"] == "main" and prs[0]["state"] == "open", gh.opened
    number = int(prs[0]["number"])
    with environment(project_env(loop.home)):
        git(loop.repo, "fetch", "-q", "origin", f"{branch}:{branch}")
        added = git(loop.repo, "diff", "--name-only", f"main...{branch}").split()
        head = git(loop.repo, "rev-parse", branch)
        first = git(loop.repo, "log", "--reverse", "--format=%H %aI", f"main..{branch}").splitlines()[0]
    data = [p for p in added if p.startswith("data/feedback/feedback-") and p.endswith(".csv.dvc")]
    # the labelled traffic (a .dvc file, DVC's ignore line beside it) and the pipeline rerun on it (dvc.lock)
    assert len(data) == 1 and set(added) <= {data[0], "data/feedback/.gitignore", "dvc.lock"}, added
    models = {k: _model_md5(loop, k) for k in ("main", branch)}
    assert models["main"] != models[branch], models  # the branch's lock names another model
    assert f"{len(loop.seen['traffic']) * BATCH:,} labelled rows" in out, out
    # What GitHub knows of the pull request once the branch is pushed: its head and its commits.
    gh.opened[number]["head"]["sha"] = head
    gh.pulls[number] = (head, FULL_NAME)
    sha, when = first.split(" ")
    gh.pull_commits[number] = [(sha, when)]
    loop.seen.update(branch=branch, pr=number, issue=int(issue["number"]))
    # No App token here: retrain dispatched the PR workflow for the branch (a PR opened with GITHUB_TOKEN starts
    # none).
    assert gh.dispatches == [{"workflow": "pr.yml", "ref": branch, "inputs": {"pull-request": str(number)}}], \
        gh.dispatches


def test_the_pr_workflow_runs_on_the_retraining_branch_and_reports_the_new_data(loop: Loop, act: Act,
                                                                                gh: GitHubDoubleForLoop) -> None:
    branch, number = loop.seen["branch"], loop.seen["pr"]
    dispatched = gh.dispatches[-1]
    workflow = f".github/workflows/{dispatched['workflow']}"
    assert workflow == PR
    with environment(project_env(loop.home)):
        git(loop.repo, "checkout", "-q", branch)
    try:
        event = workflow_dispatch_event(ref=f"refs/heads/{dispatched['ref']}", inputs=dispatched["inputs"],
                                        workflow=workflow)
        run = act.run(loop.repo, "workflow_dispatch", event, workflow, variables=loop.variables())
    finally:
        with environment(project_env(loop.home)):
            git(loop.repo, "checkout", "-q", "main")

    assert run.jobs == {"pipeline": "success"}, run.log()  # the same-repository job, on the branch's code
    comments = gh.issue_comments.get(number, [])
    assert len(comments) == 1, gh.issue_comments
    body = str(comments[0]["body"])
    # the new data: the labelled traffic, every row of it (none was in the raw data), into the training split
    added = next((line for line in body.splitlines() if line.startswith("data added:")), None)
    assert added is not None and added.startswith(f"data added: {KEEP * BATCH:,} rows from data/feedback/"), body
    train = len((loop.repo / "data/prepared/train.csv").read_text().splitlines()) - 1  # main's training split
    assert f"train {train:,} → {train + KEEP * BATCH:,} rows" in added, added
    # a changed model: its held-out metrics differ from main's (the model that production serves)
    metrics = body.split("### Metrics", 1)[1]
    row = next(line for line in metrics.splitlines() if line.startswith("| test.roc\\_auc | "))
    main_auc, branch_auc = (float(v) for v in row.split("|")[2:4])
    assert main_auc != branch_auc, row
    assert body.startswith("## ✅ mlops report: all"), body.splitlines()[0]  # its gates passed


def test_the_merge_promotes_the_retrained_model_and_delivers_it_to_staging(loop: Loop, act: Act) -> None:
    branch, number = loop.seen["branch"], loop.seen["pr"]
    repo = loop.repo
    with environment(project_env(loop.home)):
        before = git(repo, "rev-parse", "main")
        git(repo, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{number} from acme/{branch}", branch)
        git(repo, "push", "-q", "origin", "main")
        after = git(repo, "rev-parse", "HEAD")
    assert _model_md5(loop, "main") == _model_md5(loop, branch) != _model_md5(loop, before)

    # Approval is GitHub's: act runs job `production` at once, so the merge's run is promote and staging (-j),
    # and production is the separate, approved step below.
    run = act.run(repo, "push", push_event(ref="refs/heads/main", before=before, after=after), PROMOTE,
                  platforms=PRIVILEGED, variables=loop.variables(), secrets={"MLOPS_ADMIN_TOKEN": TOKEN},
                  job="staging")

    assert run.jobs == {"runner": "success", "promote": "success", "staging": "success"}, run.log()
    tags = _origin_refs(loop, "tags")
    assert f"{MODEL}@v1.0.1" in tags and tags[f"{MODEL}@v1.0.1"] == after
    assert _stage_tags(loop, "staging")[-1:] and tags[_stage_tags(loop, "staging")[-1]] == after
    assert _serving(loop.staging, loop) == "v1.0.1"
    assert _serving(loop.production, loop) == "v1.0.0"
    assert len(_stage_tags(loop, "production")) == 1


def test_the_approved_production_step_delivers_what_staging_holds(loop: Loop, act: Act) -> None:
    event = workflow_dispatch_event(ref="refs/heads/main", inputs={"environment": "production", "ref": "",
                                                                  "tag": "", "target": "default"},
                                    workflow=DEPLOY, sender="octo-maintainer")
    run = act.run(loop.repo, "workflow_dispatch", event, DEPLOY, platforms=PRIVILEGED, variables=loop.variables(),
                  secrets={"MLOPS_ADMIN_TOKEN": TOKEN})

    assert run.jobs == {"runner": "success", "production": "success"}, run.log()
    # no ref given: the version staging holds, admitted by staging's tag
    assert f'"admitted_by": "{_stage_tags(loop, "staging")[-1]}"' in run.output("production"), run.log()
    assert _serving(loop.production, loop) == "v1.0.1" and _serving(loop.staging, loop) == "v1.0.1"
    production = _stage_tags(loop, "production")
    assert len(production) == 2
    tags = _origin_refs(loop, "tags")
    assert tags[production[-1]] == tags[f"{MODEL}@v1.0.1"]
    loop.seen["delivered"] = production[-1]


def test_the_next_healthy_monitor_run_closes_the_alarm_issue(loop: Loop, act: Act, gh: GitHubDoubleForLoop) -> None:
    # The window moves on: clean traffic; the server keeps its last KEEP request files, none of the shifted ones.
    clean = loop.churn.test.iloc[-KEEP * BATCH:]
    ids = _send(loop, clean)
    logged = _log_rows(loop, ids)
    assert {r["request_id"] for r in logged} >= set(ids) and {r["version"] for r in logged} == {"v1.0.1"}
    assert not {r["request_id"] for r in logged} & set(loop.seen["traffic"])  # the shifted requests are gone

    run = _monitor(act, loop)

    assert run.jobs == {"runner": "success", "monitor": "success"}, run.log()
    issue = gh.issues[loop.seen["issue"]]
    assert issue["state"] == "closed" and issue["state_reason"] == "completed", issue
    assert any(str(c["body"]).startswith("🟢 Healthy again") for c in gh.issue_comments.get(loop.seen["issue"], []))
    assert len(_alarm_issues(gh)) == 1  # no new one
    assert [b for b in _origin_refs(loop, "heads") if b.startswith("mlops/retrain-")] == [loop.seen["branch"]]


def test_registry_stats_reports_the_loop(loop: Loop, gh: GitHubDoubleForLoop) -> None:
    env = {**project_env(loop.home), "GITHUB_TOKEN": E2E_TOKEN, "GITHUB_API_URL": gh.url,
           "GITHUB_REPOSITORY": FULL_NAME}
    with environment(project_env(loop.home)):
        git(loop.repo, "fetch", "-q", "--tags", "--force", "origin")
    stats = json.loads(_mlops(loop, "registry", "stats", "--json", env=env).stdout)

    assert stats["sources"] == {"tags": True, "pull_requests": True, "alarm_issues": True}
    deployments = stats["deployments"]
    assert [(d["version"], d["pr"], d["rollback"], d["failed"]) for d in deployments] == \
        [("v1.0.0", None, False, False), ("v1.0.1", loop.seen["pr"], False, False)], deployments
    figures = stats["figures"]
    assert figures["change_failure_rate"]["value"] == 0 and figures["change_failure_rate"]["samples"] == 2
    assert figures["deployment_frequency"]["samples"] == 2
    assert figures["deployment_frequency"]["value"] == pytest.approx(14.0)  # two in a window under a day
    delivered = _tag_time(loop, loop.seen["delivered"])
    first_commit = datetime.fromisoformat(gh.pull_commits[loop.seen["pr"]][0][1])
    lead = figures["lead_time"]
    assert lead["samples"] == 1 and lead["value"] > 0
    assert lead["value"] == pytest.approx((delivered - first_commit).total_seconds() / 3600, abs=1e-3)
    issue = gh.issues[loop.seen["issue"]]
    opened = datetime.fromisoformat(issue["created_at"].replace("Z", "+00:00"))
    incidents = stats["incidents"]
    assert len(incidents) == 1 and incidents[0]["kind"] == "alarm", incidents
    assert datetime.fromisoformat(incidents[0]["started"].replace("Z", "+00:00")) == opened
    assert datetime.fromisoformat(incidents[0]["restored"].replace("Z", "+00:00")) == delivered
    ttr = figures["time_to_restore"]
    assert ttr["samples"] == 1
    assert ttr["value"] == pytest.approx((delivered - opened).total_seconds() / 3600, abs=1e-3)
    assert ttr["value"] > 0

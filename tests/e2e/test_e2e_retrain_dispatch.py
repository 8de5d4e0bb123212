"""pr.yml dispatched for a retraining pull request, as `mlops monitor --retrain` does when it opened the pull request
with GITHUB_TOKEN (which starts no workflow): act runs the workflow_dispatch event on the branch that holds a
feedback snapshot (DVC-tracked, in the production remote as retrain pushes it); the pipeline reruns from prepare and
the sticky report on that pull request says what data was added. An input that is no number stops the run first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.act import FULL_NAME, Act, workflow_dispatch_event
from tests.e2e.projects import (
    add_workflows,
    branch,
    commit,
    dvc,
    environment,
    git,
    project_env,
    remote_outside,
    with_origin,
)
from tests.github_double import GitHubDoubleWithPulls
from tests.helpers import REPO

pytestmark = pytest.mark.e2e

PR = ".github/workflows/pr.yml"
BRANCH = "mlops/retrain-20261206T060000Z"
NUMBER = 12
ROWS = 150


@pytest.fixture(scope="module")
def retrain_branch(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The trained example project with this checkout's workflows, on origin; a retraining branch with ROWS new
    labelled rows under data/feedback/ (dvc add, pushed to the default DVC remote, the .dvc file committed)."""
    root = tmp_path_factory.mktemp("retrain-dispatch")
    (root / "home").mkdir()
    with environment(project_env(root / "home")):
        repo = root / "repo"
        shutil.copytree(_trained_template, repo, symlinks=True)
        add_workflows(repo)
        remote_outside(repo, root / "dvcstore")
        dvc(repo, "remote", "add", "pr", str(root / "dvcstore-pr"))
        commit(repo, "workflows; DVC remotes")
        with_origin(repo, root / "origin.git")
        branch(repo, BRANCH)
        raw = pd.read_csv(REPO / "data/raw/telco_churn.csv").sample(ROWS, random_state=5)
        raw["monthly_charges"] = (raw["monthly_charges"] * 1.3 + 0.01).round(2)
        raw["churn"] = ["Yes" if v == "Yes" else 0 for v in raw["churn"]]  # joined labels, as --retrain writes
        raw.insert(0, "ts", "2026-12-06T05:00:00Z")
        raw.insert(0, "request_id", [f"r{i}" for i in range(ROWS)])
        raw.to_csv(repo / "data/feedback/feedback-20261206T060000Z.csv", index=False)
        dvc(repo, "add", "-q", "data/feedback/feedback-20261206T060000Z.csv")
        dvc(repo, "push", "-q")
        head = commit(repo, "Retrain: new labelled data")
        git(repo, "push", "-q", "origin", BRANCH)
    return repo, head


def test_dispatched_pr_workflow_reports_the_new_data_on_the_pull_request(
        retrain_branch: tuple[Path, str], act: Act, gh: GitHubDoubleWithPulls) -> None:
    repo, head = retrain_branch
    gh.pulls[NUMBER] = (head, FULL_NAME)  # what GitHub knows of the retraining pull request
    event = workflow_dispatch_event(ref=f"refs/heads/{BRANCH}", inputs={"pull-request": str(NUMBER)},
                                    workflow="pr.yml")
    run = act.run(repo, "workflow_dispatch", event, PR, variables={"MLOPS_PR_DVC_REMOTE": "pr"})
    assert run.returncode == 0, run.log()
    assert run.jobs == {"pipeline": "success"}, run.log()  # never the fork job
    out = run.output("pipeline")
    assert "prepare" in out.split("stages run:", 1)[1].splitlines()[0], out
    (posted,) = gh.issue_comments.get(NUMBER, [])
    body = str(posted["body"])
    added = next((line for line in body.splitlines() if line.startswith("data added:")), None)
    assert added is not None, body
    assert added.startswith(f"data added: {ROWS} rows from data/feedback/ \\({ROWS} to train, 0 to test;"), added
    assert f"train 5,634 → {5634 + ROWS:,} rows, test 1,409 → 1,409 rows vs origin/main" in added, added


def test_a_dispatch_input_that_is_no_number_stops_the_run(retrain_branch: tuple[Path, str], act: Act,
                                                          gh: GitHubDoubleWithPulls) -> None:
    repo, _ = retrain_branch
    before = {n: len(c) for n, c in gh.issue_comments.items()}
    event = workflow_dispatch_event(ref=f"refs/heads/{BRANCH}", inputs={"pull-request": "12; echo owned"},
                                    workflow="pr.yml")
    run = act.run_refused(repo, "workflow_dispatch", event, PR,
                          expect="input pull-request must be a pull request number")
    assert run.returncode != 0 and run.jobs == {"pipeline": "failure"}, run.log()
    assert "input pull-request must be a pull request number" in run.log(), run.log()
    assert run.step_results("pipeline")[1:] == [], run.step_results("pipeline")  # nothing after the check ran
    assert "owned" not in run.output("pipeline")
    assert {n: len(c) for n, c in gh.issue_comments.items()} == before

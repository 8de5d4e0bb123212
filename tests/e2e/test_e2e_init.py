"""`mlops init` into a DVC project that is not ours (tests/foreign.py: scikit-learn, joblib, dvclive metrics under
eval/), then act runs the pull-request workflow it generated, with this toolkit's actions swapped in from this
checkout at the SHA the workflow pins: one sticky comment with the project's own metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import mlops.cli.init  # noqa: F401  (registers `mlops init` until mlops.cli does)
from mlops.cli import app
from tests.e2e.act import REPO, TOOLKIT_REPO, Act, pull_request_event, toolkit_copy
from tests.e2e.projects import branch, commit, environment, project_env, remote_outside, set_param, with_origin
from tests.foreign import make_foreign_project
from tests.github_double import GitHubDoubleWithPulls
from tests.helpers import runner

pytestmark = pytest.mark.e2e

SHA = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The foreign project after `mlops init`, committed and pushed to a bare origin; (repo, main's SHA)."""
    root = tmp_path_factory.mktemp("adopt")
    (root / "home").mkdir()
    with environment(project_env(root / "home")):
        repo = make_foreign_project(root / "repo")
        result = runner.invoke(app, ["init", str(repo), "--actions-sha", SHA])
        assert result.exit_code == 0, result.output
        remote_outside(repo, root / "dvcstore")
        main = commit(repo, "mlops init; DVC remote")
        with_origin(repo, root / "origin.git")
    return repo, main


def test_generated_pr_workflow_posts_one_comment_with_the_projects_metrics(
        adopted: tuple[Path, str], act: Act, gh: GitHubDoubleWithPulls, tmp_path_factory: pytest.TempPathFactory
) -> None:
    repo, main = adopted
    workflow = repo / ".github/workflows/mlops-pr.yml"
    assert f"uses: {TOOLKIT_REPO}/actions/setup@{SHA} # v" in workflow.read_text()
    act.toolkit = toolkit_copy(tmp_path_factory.mktemp("toolkit") / "mlops")
    branch(repo, "stronger-regularisation")
    set_param(repo, "C: 1.0", "C: 2.0")
    head = commit(repo, "train.C 1.0 -> 2.0")

    event = pull_request_event("opened", 4, head_sha=head, head_ref="stronger-regularisation", base_sha=main)
    run = act.run(repo, "pull_request", event, ".github/workflows/mlops-pr.yml")

    assert run.returncode == 0, run.log()
    assert run.jobs == {"pipeline": "success"}, run.log()
    assert f"/{TOOLKIT_REPO} with ref {SHA} to {act.toolkit}" in run.log()  # our actions, from this checkout
    out = run.output("pipeline")
    assert "stages run: train" in out, out  # featurize does not read train.C
    comments = gh.issue_comments.get(4, [])
    assert len(comments) == 1
    body = str(comments[0]["body"])
    assert "| accuracy |" in body and "| f1 |" in body  # eval/metrics.json, dvclive's
    assert "vs origin/main" in body
    assert "train.C" in body and "| 1.0 | 2.0 |" in body
    assert "CML watermark" in body

"""The first pull request after adoption, run by act as GitHub would run it: the DVC remote lacks outputs (main's,
or the branch's own, never pushed), and the pull-request workflow must still post one full report comment that
names what it recomputed and why.

1. This repository's pr.yml on the churn project, with a new, empty DVC remote: every stage of the branch and of
   main is recomputed (main's in a temporary worktree), and the comment says so.
2. The foreign project (tests/foreign.py) after `mlops init`, main's outputs pushed, the pull request's branch
   reproduced locally and committed without `dvc push`: its new train outputs are recomputed, the rest pulled.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlops.cli.init  # noqa: F401  (registers `mlops init`)
from mlops.cli import app
from tests.e2e.act import REPO, Act, pull_request_event, toolkit_copy
from tests.e2e.projects import (
    add_workflows,
    branch,
    commit,
    dvc,
    environment,
    git,
    project_env,
    remote_outside,
    set_param,
    with_origin,
)
from tests.foreign import make_foreign_project
from tests.github_double import GitHubDoubleWithPulls
from tests.helpers import runner

pytestmark = pytest.mark.e2e

SHA = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
NOT_IN_REMOTE = "outputs not in the remote"


def _empty_remote(repo: Path, store: Path) -> None:
    """Point the default DVC remote at STORE, a new bucket that holds nothing (nothing is pushed to it)."""
    store.mkdir(parents=True)
    dvc(repo, "remote", "modify", dvc(repo, "remote", "default"), "url", str(store))


def _body(gh: GitHubDoubleWithPulls, number: int) -> str:
    comments = gh.issue_comments.get(number, [])
    assert len(comments) == 1, comments
    return str(comments[0]["body"])


def test_churn_pr_with_an_empty_remote_posts_one_full_report_naming_what_was_recomputed(
        _trained_template: Path,  # noqa: PT019 (its value: the trained project, copied)
        act: Act, gh: GitHubDoubleWithPulls, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("empty-remote")
    (root / "home").mkdir()
    with environment(project_env(root / "home")):
        repo = root / "repo"
        shutil.copytree(_trained_template, repo, symlinks=True)
        add_workflows(repo)
        _empty_remote(repo, root / "dvcstore")
        main = commit(repo, "workflows; a new DVC remote, empty")
        with_origin(repo, root / "origin.git")
        branch(repo, "tune")
        set_param(repo, "n_estimators: 400", "n_estimators: 300")
        head = commit(repo, "fewer trees")
        git(repo, "push", "-q", "origin", "tune")

    run = act.run(repo, "pull_request", pull_request_event("opened", 11, head_sha=head, head_ref="tune",
                                                           base_sha=main), ".github/workflows/pr.yml")

    assert run.returncode == 0, run.log()
    assert run.jobs == {"pipeline": "success"}, run.log()
    out = run.output("pipeline")
    assert "Missing cache files" in out or "Unable to pull" in out, out  # the remote really had nothing
    expected = (f"prepare ({NOT_IN_REMOTE}), validate ({NOT_IN_REMOTE}), train (changed params), "
                f"evaluate ({NOT_IN_REMOTE}), check ({NOT_IN_REMOTE})")
    assert f"stages recomputed: {expected}" in out, out
    body = _body(gh, 11)
    assert "gates passed" in body and "| test.roc\\_auc |" in body  # a full report, gates and all
    assert "n\\_estimators" in body or "n_estimators" in body  # the param diff against main
    assert "Recomputed in this run: prepare (outputs not in the remote)" in body
    assert "recomputed in a temporary worktree" in body  # main's side, recomputed since the remote lacks it
    assert "could not be read" not in body


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """The foreign project after `mlops init`, main's outputs pushed to a remote outside the repository."""
    root = tmp_path_factory.mktemp("adopt-first-pr")
    (root / "home").mkdir()
    env = project_env(root / "home")
    with environment(env):
        repo = make_foreign_project(root / "repo")
        result = runner.invoke(app, ["init", str(repo), "--actions-sha", SHA])
        assert result.exit_code == 0, result.output
        remote_outside(repo, root / "dvcstore")
        main = commit(repo, "mlops init; DVC remote")
        with_origin(repo, root / "origin.git")
    return repo, main, root / "home"


def test_foreign_pr_whose_outputs_were_never_pushed_posts_its_metrics_diff(
        adopted: tuple[Path, str, Path], act: Act, gh: GitHubDoubleWithPulls,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    repo, main, home = adopted
    act.toolkit = toolkit_copy(tmp_path_factory.mktemp("toolkit") / "mlops")
    with environment(project_env(home)):
        branch(repo, "more-features")
        set_param(repo, "max_features: 300", "max_features: 50")
        # The most common state of a real branch: reproduced locally, dvc.lock committed, outputs never pushed.
        subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=repo, check=True)
        head = commit(repo, "max_features 300 -> 50, reproduced locally")
        git(repo, "push", "-q", "origin", "more-features")

    event = pull_request_event("opened", 12, head_sha=head, head_ref="more-features", base_sha=main)
    run = act.run(repo, "pull_request", event, ".github/workflows/mlops-pr.yml")

    assert run.returncode == 0, run.log()
    assert run.jobs == {"pipeline": "success"}, run.log()
    out = run.output("pipeline")
    assert f"stages recomputed: train ({NOT_IN_REMOTE})" in out, out  # featurize's outputs came from the remote
    body = _body(gh, 12)
    assert "| accuracy |" in body and "| f1 |" in body and "vs origin/main" in body
    assert "max\\_features" in body or "max_features" in body
    assert f"Recomputed in this run: train ({NOT_IN_REMOTE})" in body
    assert "no metrics in the workspace" not in body

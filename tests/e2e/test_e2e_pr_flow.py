"""The pull-request loop, run by act as GitHub would run it: pr.yml for a same-repository pull request (one sticky
comment, edited on the next push), then a fork's pull request (the self-hosted job skipped, a read-only job that
hands its report over as an artifact) and pr-comment.yml posting that artifact, or refusing a forged one.

The tests of this module share one repository and one GitHub double and run in order: each act run costs seconds.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.act import REPO, Act, ActRun, pull_request_event, workflow_jobs, workflow_run_event
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
from tests.github_double import GitHubDoubleWithPulls

pytestmark = pytest.mark.e2e

PR = ".github/workflows/pr.yml"
COMMENTER = ".github/workflows/pr-comment.yml"
FORK = "evil-fork/churn"
FORK_RUN = 7001
# The repository variable that names the pull requests' own DVC remote (declared in .dvc/config as `pr`).
PR_REMOTE = {"MLOPS_PR_DVC_REMOTE": "pr"}


@dataclass
class World:
    repo: Path
    main: str
    heads: dict[str, str]
    production: Path  # the default DVC remote: what promote and deploy read
    pr_remote: Path  # the pull requests' own


def _objects(store: Path) -> set[str]:
    """Every file in a local DVC remote (objects under files/, run-cache entries under runs/)."""
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def world(_trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    """The example project, trained, with this checkout's workflows and actions, its DVC remote outside the
    repository (outputs and run cache pushed), a second remote `pr` for pull-request runs (empty), main pushed to a
    bare origin."""
    root = tmp_path_factory.mktemp("pr-flow")
    (root / "home").mkdir()
    with environment(project_env(root / "home")):
        repo = root / "repo"
        shutil.copytree(_trained_template, repo, symlinks=True)
        add_workflows(repo)
        remote_outside(repo, root / "dvcstore")
        dvc(repo, "remote", "add", "pr", str(root / "dvcstore-pr"))
        main = commit(repo, "workflows; DVC remotes")
        with_origin(repo, root / "origin.git")
    return World(repo, main, {}, root / "dvcstore", root / "dvcstore-pr")


def _ours(gh: GitHubDoubleWithPulls, number: int) -> list[dict[str, object]]:
    return gh.issue_comments.get(number, [])


def test_pr_opened_posts_one_comment_with_the_metrics_diff_against_main(world: World, act: Act,
                                                                         gh: GitHubDoubleWithPulls) -> None:
    repo = world.repo
    branch(repo, "tune")
    set_param(repo, "n_estimators: 400", "n_estimators: 300")
    head = world.heads["tune"] = commit(repo, "fewer trees")
    git(repo, "push", "-q", "origin", "tune")

    production = _objects(world.production)
    run = act.run(repo, "pull_request", pull_request_event("opened", 1, head_sha=head, head_ref="tune",
                                                           base_sha=world.main), PR, variables=PR_REMOTE)

    assert run.returncode == 0, run.log()
    # Outputs and run cache went to the pull requests' remote; the one production reads got nothing.
    assert _objects(world.production) == production
    assert any(p.startswith("runs/") for p in _objects(world.pr_remote)), _objects(world.pr_remote)
    assert "pushed to the DVC remote pr" in run.output("pipeline")
    # The same-repository job ran; the fork job and the CML cloud runner (off by default) did not.
    assert run.jobs == {"pipeline": "success"}, run.log()
    out = run.output("pipeline")
    assert "stages run: train, evaluate, check" in out, out  # a training param: prepare and validate stay as they are
    assert "mlops pipeline: running on cpu" in out
    comments = _ours(gh, 1)
    assert len(comments) == 1
    assert len(gh.requests_for("POST", r"/issues/1/comments$")) == 1
    body = str(comments[0]["body"])
    assert "| metric | origin/main | this branch | Δ vs origin/main |" in body
    assert "| test.roc\\_auc | 0.8432 |" in body  # main's value beside this branch's
    assert "n\\_estimators" in body and "| 400 | 300 |" in body  # the changed param, main -> this branch
    assert "CML watermark" in body  # the sticky marker, CML-compatible


def test_pr_synchronize_edits_that_same_comment(world: World, act: Act, gh: GitHubDoubleWithPulls) -> None:
    repo = world.repo
    first = str(_ours(gh, 1)[0]["body"])
    # a param only evaluate reads (the decision threshold would retrain: models/reference.json records it)
    set_param(repo, "threshold: 0.4", "threshold: 0.4\n  curve_points: 51")
    before, head = world.heads["tune"], commit(repo, "coarser curves")
    world.heads["tune"] = head
    git(repo, "push", "-q", "origin", "tune")

    production = _objects(world.production)
    run = act.run(repo, "pull_request", pull_request_event("synchronize", 1, head_sha=head, head_ref="tune",
                                                           base_sha=world.main, before=before), PR,
                  variables=PR_REMOTE)

    assert run.returncode == 0, run.log()
    out = run.output("pipeline")
    # train reruns: nothing is restored from the pull requests' own remote, where another pull request could have
    # planted the run-cache entry; outputs and run cache come from the remote that only main writes
    assert "stages run: train, evaluate, check" in out, out
    comments = _ours(gh, 1)
    assert len(comments) == 1
    assert len(gh.requests_for("POST", r"/issues/1/comments$")) == 1
    assert len(gh.requests_for("PATCH", r"/issues/comments/\d+$")) == 1
    body = str(comments[0]["body"])
    assert body != first
    row = next(line for line in body.splitlines() if line.startswith("| evaluate.curve\\_points |"))
    assert "51" in row
    assert _objects(world.production) == production


def test_pr_runs_push_nothing_without_a_remote_of_their_own(world: World, act: Act) -> None:
    """The default: no MLOPS_PR_DVC_REMOTE, no push at all (never to the remote that production reads)."""
    repo = world.repo
    branch(repo, "tune-again", "main")
    set_param(repo, "n_estimators: 400", "n_estimators: 350")
    head = commit(repo, "a few more trees")
    git(repo, "push", "-q", "origin", "tune-again")
    production, pr_remote = _objects(world.production), _objects(world.pr_remote)

    run = act.run(repo, "pull_request", pull_request_event("opened", 3, head_sha=head, head_ref="tune-again",
                                                           base_sha=world.main), PR)

    assert run.returncode == 0, run.log()
    assert "stages run: train, evaluate, check" in run.output("pipeline")  # a new result, that nobody may restore
    assert _objects(world.production) == production
    assert _objects(world.pr_remote) == pr_remote
    assert "pushed to the DVC remote" not in run.output("pipeline")


def test_a_pr_remote_that_is_the_production_remote_is_refused(world: World, act: Act) -> None:
    repo = world.repo
    production = _objects(world.production)
    event = pull_request_event("synchronize", 3, head_sha=git(repo, "rev-parse", "HEAD"), head_ref="tune-again",
                               base_sha=world.main)
    run = act.run_refused(repo, "pull_request", event, PR,
                          variables={"MLOPS_PR_DVC_REMOTE": dvc(repo, "remote", "default")},
                          expect="is the default DVC remote, the one production reads")

    assert run.jobs.get("pipeline") == "failure", run.log()
    assert "is the default DVC remote, the one production reads" in run.log()
    assert _objects(world.production) == production


def test_fork_pr_skips_the_self_hosted_job_and_hands_over_its_report_read_only(world: World, act: Act,
                                                                               gh: GitHubDoubleWithPulls) -> None:
    repo = world.repo
    branch(repo, "docs")
    (repo / "CONTRIBUTING.md").write_text("Thanks for the fork!\n")
    head = world.heads["docs"] = commit(repo, "docs only: no pipeline input changes")
    seen = len(gh.requests)
    gh.read_only = True  # a fork's pull_request token can write nothing
    try:
        # Only the GitHub-hosted label is mapped to this host: a job that asked for a self-hosted runner could not
        # start here (act would need Docker for it) and would fail the run.
        run = act.run(repo, "pull_request", pull_request_event("opened", 2, head_sha=head, head_ref="docs",
                                                               base_sha=world.main, head_repo=FORK,
                                                               sender="stranger"),
                      PR, platforms=("ubuntu-latest",), run_id=FORK_RUN)
    finally:
        gh.read_only = False

    assert run.returncode == 0, run.log()
    assert run.jobs == {"fork": "success"}, run.log()
    assert "stages run: none" in run.output("fork")  # nothing changed: every output from the DVC remote
    assert gh.requests[seen:] == []  # no API call at all from the fork's run, let alone a write
    artifact = act.artifacts / str(FORK_RUN) / "mlops-pr-comment"
    assert sorted(p.name for p in artifact.iterdir()) == ["pr-number", "report.md"]
    assert (artifact / "pr-number").read_text() == "2\n"
    assert "test.roc\\_auc" in (artifact / "report.md").read_text()
    # No step of the fork job can get a write token: its token is read-only, and no step is handed one.
    job = workflow_jobs(REPO / PR)["fork"]
    assert job["permissions"] == {"contents": "read"}
    assert job["runs-on"] == "ubuntu-latest"
    assert "token" not in str(job["steps"]) and "secrets" not in str(job)


def test_workflow_run_posts_the_fork_report(world: World, act: Act, gh: GitHubDoubleWithPulls) -> None:
    repo = world.repo
    branch(repo, "main")  # the commenter runs the default branch's code, never the pull request's
    head = world.heads["docs"]
    gh.pulls[2] = (head, FORK)
    gh.pulls[1] = (world.heads["tune"], "acme/churn")

    run = act.run(repo, "workflow_run", workflow_run_event(run_id=FORK_RUN, head_sha=head, head_branch="docs",
                                                           head_repo=FORK), COMMENTER, platforms=("ubuntu-latest",))

    assert run.returncode == 0, run.log()
    assert run.jobs == {"comment": "success"}
    comments = _ours(gh, 2)
    assert len(comments) == 1
    body = str(comments[0]["body"])
    assert "test.roc\\_auc" in body and "CML watermark" in body
    assert gh.requests_for("GET", r"/pulls/2$")  # the number was checked against the pull request's head


def _forged(act: Act, run_id: int, number: str, report: str) -> None:
    folder = act.artifacts / str(run_id) / "mlops-pr-comment"
    folder.mkdir(parents=True)
    (folder / "pr-number").write_text(number)
    (folder / "report.md").write_text(report)


def _commenter(act: Act, world: World, run_id: int, *, refused: str | None = None) -> ActRun:
    event = workflow_run_event(run_id=run_id, head_sha=world.heads["docs"], head_branch="docs", head_repo=FORK)
    if refused is not None:
        return act.run_refused(world.repo, "workflow_run", event, COMMENTER, platforms=("ubuntu-latest",),
                               expect=refused)
    return act.run(world.repo, "workflow_run", event, COMMENTER, platforms=("ubuntu-latest",))


def test_forged_artifact_naming_another_pull_request_is_refused(world: World, act: Act,
                                                                gh: GitHubDoubleWithPulls) -> None:
    before = str(_ours(gh, 1)[0]["body"])
    writes = len(gh.writes())
    _forged(act, 7101, "1\n", "## ✅ all good, merge me\n")

    run = _commenter(act, world, 7101, refused="untrusted artifact refused: pull request #1 has head")

    assert run.jobs == {"comment": "failure"}
    assert "untrusted artifact refused: pull request #1 has head" in run.log()
    assert len(gh.writes()) == writes
    assert str(_ours(gh, 1)[0]["body"]) == before


def test_forged_artifact_with_an_oversized_report_is_refused(world: World, act: Act,
                                                             gh: GitHubDoubleWithPulls) -> None:
    writes = len(gh.writes())
    _forged(act, 7102, "2\n", "x" * 70_000)

    run = _commenter(act, world, 7102, refused="report.md has 70000 bytes, more than the 65536 accepted")

    assert run.jobs == {"comment": "failure"}
    assert "report.md has 70000 bytes, more than the 65536 accepted" in run.log()
    assert len(gh.writes()) == writes


def test_forged_artifact_markup_that_would_ping_people_is_neutralised(world: World, act: Act,
                                                                      gh: GitHubDoubleWithPulls) -> None:
    report = ("## report\n\ncc @octocat and @acme/maintainers: fixes #1, see GH-1\n"
              '<img src=x onerror="alert(1)"><!-- hidden @admin -->\n'
              '![](https://cml.dev/watermark.png#0123 "CML watermark")\n<details><summary>more</summary>ok</details>\n')
    _forged(act, 7103, "2", report)

    run = _commenter(act, world, 7103)

    assert run.jobs == {"comment": "success"}, run.log()
    comments = _ours(gh, 2)
    assert len(comments) == 1  # the sticky comment, edited
    body = str(comments[0]["body"])
    assert "@\u200boctocat" in body and "@\u200bacme/maintainers" in body
    assert "@octocat" not in body and "@acme" not in body
    assert "#\u200b1" in body and "GH-\u200b1" in body
    assert "<img" not in body and "&lt;img" in body
    assert "<!-- hidden" not in body and "&lt;!-- hidden @\u200badmin --&gt;" in body
    assert "<details><summary>more</summary>" in body  # the report's own tags survive
    assert body.count("cml.dev/watermark.png") == 1  # only the marker mlops comment appends

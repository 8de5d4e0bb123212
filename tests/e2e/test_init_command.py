"""`mlops init` on a project that is not ours: what it writes, that a second run changes nothing, and that a file
the user changed is kept unless --force. (The workflows it writes run under act in test_e2e_init.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import mlops.cli.init  # noqa: F401  (registers `mlops init` until mlops.cli does)
from mlops.cli import app
from mlops.jobs.init import FILES, Actions, init
from tests.foreign import MODEL, make_foreign_project
from tests.helpers import git, runner

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """The foreign project, reproduced and committed (tests/foreign.py builds it once per process)."""
    return make_foreign_project(tmp_path / "project")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts and ".dvc" not in p.relative_to(root).parts}


def test_init_writes_pinned_workflows_and_appends_params(foreign: Path) -> None:
    params_before = (foreign / "params.yaml").read_bytes()

    result = runner.invoke(app, ["init", str(foreign), "--actions-sha", SHA])

    assert result.exit_code == 0, result.output
    assert f"model artifact: {MODEL} · metrics: eval/metrics.json · production stage: production" in result.output
    for rel in FILES.values():
        assert (foreign / rel).is_file(), rel
    pr = (foreign / ".github/workflows/mlops-pr.yml").read_text()
    for action in ("setup", "pipeline", "report"):
        assert f"uses: mlops-toolkit/mlops/actions/{action}@{SHA} # v0.1.0" in pr
    assert "extras:" not in pr  # the project's stages run its own scripts, not `mlops stage`
    assert "requirements:" not in pr  # it has no requirements file: the next steps say so
    assert "no requirements file was found" in result.output
    for word in ("runner", "DVC remote", "`production` environment"):
        assert word in result.output
    # params.yaml: the user's bytes first, untouched, then the sections it lacked.
    params = (foreign / "params.yaml").read_bytes()
    assert params.startswith(params_before)
    data = yaml.safe_load(params)
    assert data["gates"] == {"accuracy": {"max_drop": 0.01}}
    assert data["registry"] == {"artifact": MODEL}
    record = json.loads((foreign / ".mlops/init.json").read_text())
    assert record["actions"] == {"repo": "mlops-toolkit/mlops", "sha": SHA, "version": "v0.1.0"}
    assert set(record["files"]) == set(FILES.values())


def test_init_twice_changes_nothing(foreign: Path) -> None:
    assert runner.invoke(app, ["init", str(foreign), "--actions-sha", SHA]).exit_code == 0
    before = _snapshot(foreign)

    again = runner.invoke(app, ["init", str(foreign), "--actions-sha", SHA])

    assert again.exit_code == 0, again.output
    assert _snapshot(foreign) == before
    assert again.output.count(": unchanged") == len(FILES)
    assert "appended" not in again.output


def test_a_file_the_user_changed_is_kept_unless_force(foreign: Path) -> None:
    first = init(foreign, Actions(sha=SHA))
    assert {o.action for o in first.files} == {"created"}
    mine = foreign / ".github/workflows/mlops-pr.yml"
    mine.write_text(mine.read_text().replace("timeout-minutes: 120", "timeout-minutes: 30"))
    untouched = foreign / ".github/workflows/mlops-deploy.yml"

    # A new release: files still as mlops init wrote them follow it; the one the user edited is kept.
    second = init(foreign, Actions(sha=OTHER_SHA))

    actions = {o.path: o.action for o in second.files}
    assert actions[".github/workflows/mlops-pr.yml"] == "kept"
    assert actions[".github/workflows/mlops-deploy.yml"] == "updated"
    assert "timeout-minutes: 30" in mine.read_text() and SHA in mine.read_text()
    assert OTHER_SHA in untouched.read_text()
    assert "Some files were kept" in second.next_steps[0]

    third = init(foreign, Actions(sha=OTHER_SHA), force=True)

    assert {o.path: o.action for o in third.files}[".github/workflows/mlops-pr.yml"] == "overwritten"
    assert OTHER_SHA in mine.read_text() and "timeout-minutes: 30" not in mine.read_text()


def test_a_users_own_file_at_that_path_is_kept(foreign: Path) -> None:
    own = foreign / ".github/actionlint.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("self-hosted-runner:\n  labels: [big-box]\n")

    result = init(foreign, Actions(sha=SHA))

    outcome = {o.path: o for o in result.files}[".github/actionlint.yaml"]
    assert (outcome.action, outcome.reason) == ("kept", "not written by mlops init")
    assert own.read_text() == "self-hosted-runner:\n  labels: [big-box]\n"


def test_existing_sections_and_gto_stage_names_are_respected(foreign: Path) -> None:
    with open(foreign / "params.yaml", "a") as fh:
        fh.write("gates:\n  f1: {min: 0.5}\n")
    git(foreign, "commit", "-qam", "our own gate")
    git(foreign, "tag", "-a", f"{MODEL}@v1.0.0", "-m", "registered with gto")
    git(foreign, "tag", "-a", f"{MODEL}#prod#1", "-m", "assigned with gto")

    result = init(foreign, Actions(sha=SHA))

    assert result.production_stage == "prod"
    assert result.params_added == ("registry",)
    data = yaml.safe_load((foreign / "params.yaml").read_text())
    assert data["gates"] == {"f1": {"min": 0.5}}
    assert data["registry"] == {"artifact": MODEL, "production_stage": "prod"}
    assert '- "**#prod#*"' in (foreign / ".github/workflows/mlops-stage-tag.yml").read_text()  # the dispatcher


@pytest.mark.parametrize(("args", "says"), [
    (["--actions-sha", "abc123"], "is not a full 40-character commit SHA"),
    (["--actions-sha", SHA, "--actions-repo", "not a repo"], "is not OWNER/NAME"),
    (["--actions-sha", SHA, "--artifact", "nope"], "'nope' is not declared under artifacts:"),
])
def test_bad_input_exits_1_with_the_cause(foreign: Path, args: list[str], says: str) -> None:
    result = runner.invoke(app, ["init", str(foreign), *args])
    assert result.exit_code == 1, result.output
    assert says in result.output
    assert not (foreign / ".github").exists()


def test_a_repository_without_dvc_is_refused(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    result = runner.invoke(app, ["init", str(tmp_path), "--actions-sha", SHA])
    assert result.exit_code == 1
    assert "not a DVC project" in result.output and "hint: `dvc init`" in result.output

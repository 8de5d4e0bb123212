"""`mlops score`: the ML Test Score of a project, read from its dvc.yaml, params.yaml, workflows and tests."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mlops.jobs.score import score
from mlops.mltestscore import SECTIONS
from tests.helpers import runner

ROOT = Path(__file__).resolve().parents[1]
KEEP = (".github", "actions", "tests", "bench", "requirements", "models", "dvc.yaml", "dvc.lock", "params.yaml")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The files of this repo that the score reads (workflows, actions, pipeline, params, tests, benchmarks)."""
    dest = tmp_path / "repo"
    dest.mkdir()
    for name in KEEP:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.ubj"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
    return dest


def test_score_json_on_this_repo_is_a_per_test_table() -> None:
    from mlops.cli import app

    result = runner.invoke(app, ["score", "--json", "--root", str(ROOT)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["tests"]) == 28
    assert [t["section"] for t in data["tests"]] == [s for s in SECTIONS for _ in range(7)]
    assert all(t["points"] in (0, 0.5, 1) and t["evidence"] for t in data["tests"])
    assert data["sections"] == {s: sum(t["points"] for t in data["tests"] if t["section"] == s) for s in SECTIONS}
    assert data["final"] == min(data["sections"].values())
    canary = next(t for t in data["tests"] if t["section"] == "infrastructure" and t["number"] == 6)
    assert canary["points"] == 1 and "deploy.yml" in canary["evidence"]


def _drop_deploy_step(workflow: Path) -> None:
    """Delete every step that uses the deploy action (the canary and smoke test: staging's and production's) from
    WORKFLOW."""
    text, n = re.subn(r"\n      - id: deploy\n        uses: \./actions/deploy\n(?:        .*\n)*", "\n",
                      workflow.read_text())
    assert n, "the deploy step moved: update this test"
    workflow.write_text(text)


def test_deleting_the_canary_step_lowers_infrastructure_by_exactly_its_points(repo_copy: Path) -> None:
    before = score(repo_copy)
    canary = next(t for t in before.tests if t.section == "infrastructure" and t.number == 6)
    assert canary.points == 1
    _drop_deploy_step(repo_copy / ".github" / "workflows" / "deploy.yml")
    after = score(repo_copy)
    assert after.section_sum("infrastructure") == before.section_sum("infrastructure") - canary.points
    changed = [(a.section, a.number) for a, b in zip(after.tests, before.tests, strict=True) if a != b]
    assert changed == [("infrastructure", 6)]
    left = next(t for t in after.tests if t.section == "infrastructure" and t.number == 6)
    assert left.points == 0 and left.evidence == "no canary"  # params.yaml has no deploy: section either


def test_an_echoed_command_is_not_a_run_one(repo_copy: Path) -> None:
    wf = repo_copy / ".github" / "workflows" / "extra.yml"
    wf.write_text("on: {push: {}}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                  "      - run: echo \"::error title=mlops rollback::not here\"\n")
    assert next(t for t in score(repo_copy).tests if t.title.startswith("Models can be quickly")).points == 0.5
    wf.write_text("on: {schedule: [{cron: '0 0 * * *'}]}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                  "      - run: |\n          set -e\n          mlops rollback churn-model\n")
    rollback = next(t for t in score(repo_copy).tests if t.title.startswith("Models can be quickly"))
    assert rollback.points == 1 and "extra.yml" in rollback.evidence


def test_an_empty_project_scores_zero(tmp_path: Path) -> None:
    result = score(tmp_path)
    assert result.final == 0 and len(result.tests) == 28

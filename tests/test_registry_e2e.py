"""The whole story on the real trained project (real DVC lock, real xgboost model) with a real bare origin:
merge, promote, promote again (no-op), change the model's inputs (major), production, rollback; GTO agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops.cli import app
from mlops.registry.model import dvc_hash
from tests.helpers import commit_all, git, runner
from tests.registry_helpers import parse_block, remote_tags


def cli_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_promotion_story_on_the_trained_project(trained_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = trained_project
    origin = repo.parent / "origin.git"
    git(repo.parent, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    monkeypatch.chdir(repo)

    # a pull request merged to main
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "NOTES.md").write_text("tuning notes\n")
    commit_all(repo, "notes")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "Merge pull request #3 from team/feature")

    first = cli_json("promote")
    assert (first["action"], first["version"]) == ("registered", "v1.0.0")
    block = parse_block(git(repo, "for-each-ref", "--format=%(contents)", "refs/tags/churn-model@v1.0.0"))
    assert block is not None
    train = json.loads((repo / "reports/train.json").read_text())
    assert block["model_sha256"] == train["model_sha256"]  # the real model file's digest
    assert block["pr"] == 3
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert block["metrics"]["test.roc_auc"] == metrics["test"]["roc_auc"]
    assert len(block["interface"]["features"]) == train["features"]

    assert cli_json("promote")["action"] == "already_registered"  # a retried CI job is safe

    # change the model's inputs: drop a feature from the interface, and dvc.lock's hash of models/ with it
    schema_path = repo / "models/feature_schema.json"
    schema = json.loads(schema_path.read_text())
    schema["features"] = [f for f in schema["features"] if f["name"] != "total_charges"]
    old_hash = dvc_hash(repo / "models")
    schema_path.write_text(json.dumps(schema, indent=2))
    manifest = repo / "models/mlops-model.yaml"  # the package's interface is the one the registry versions
    manifest.write_text("".join(line for line in manifest.read_text().splitlines(keepends=True)
                                if "{name: total_charges," not in line))
    lock = (repo / "dvc.lock").read_text()
    assert lock.count(old_hash) == 3  # train's output, evaluate's and check's dependency
    (repo / "dvc.lock").write_text(lock.replace(old_hash, dvc_hash(repo / "models")))
    commit_all(repo, "Merge pull request #4 from team/drop-total-charges")

    major = cli_json("promote", "--stage", "production")
    assert (major["version"], major["bump"], major["bump_reason"]) == ("v2.0.0", "major",
                                                                       "input removed: total_charges")
    assert major["stage_tag"] == "churn-model#production#1"

    assign = cli_json("promote", "--ref", "churn-model@v1.0.0", "--stage", "production")
    assert assign["stage_tag"] == "churn-model#production#2"
    back = cli_json("rollback", "churn-model")
    assert (back["version"], back["previous"]) == ("v2.0.0", "v1.0.0")

    tags = remote_tags(origin)
    assert sorted(tags) == ["churn-model#production#1", "churn-model#production#2", "churn-model#production#3",
                            "churn-model@v1.0.0", "churn-model@v2.0.0"]
    ours = cli_json("registry", "show")["artifacts"]
    assert ours["churn-model"]["latest"] == "v2.0.0"
    assert ours["churn-model"]["stages"] == {"production": "v2.0.0"}
    gto = json.loads(subprocess.run([str(Path(sys.executable).parent / "gto"), "show", "--json"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout)
    assert gto["churn-model"]["version"] == ours["churn-model"]["latest"]
    assert {s: v for s, v in gto["churn-model"]["stage"].items() if v} == ours["churn-model"]["stages"]
    history = cli_json("registry", "history", "churn-model")["events"]
    assert [e["event"] for e in history] == ["register", "register", "assign", "assign", "assign"]

"""`mlops rollback`, `mlops registry show|history`, and GTO itself as the oracle of what our tags mean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops.cli import app
from tests.helpers import git, runner
from tests.registry_helpers import FEATURES, fake_project, merge, remote_tags

GTO = str(Path(sys.executable).parent / "gto")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = fake_project(tmp_path)
    monkeypatch.chdir(r)
    return r


def cli_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def gto_show(repo: Path) -> dict[str, Any]:
    proc = subprocess.run([GTO, "show", "--json", "-r", str(repo)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def assert_gto_agrees(repo: Path) -> None:
    ours = cli_json("registry", "show")["artifacts"]
    theirs = gto_show(repo)
    assert set(ours) == set(theirs)
    for name, art in ours.items():
        assert theirs[name]["version"] == art["latest"]
        assert {s: v for s, v in theirs[name]["stage"].items() if v} == art["stages"]


def two_versions_in_production(repo: Path) -> None:
    cli_json("promote", "--stage", "production")  # v1.0.0, production#1
    merge(repo, features=[*FEATURES, {"name": "region", "type": "int"}])
    cli_json("promote", "--stage", "production")  # v1.1.0, production#2


def test_rollback_goes_back_to_the_previous_production_version(repo: Path) -> None:
    two_versions_in_production(repo)
    out = cli_json("rollback", "churn-model")
    assert (out["action"], out["version"], out["previous"], out["stage_tag"]) == \
        ("rolled_back", "v1.0.0", "v1.1.0", "churn-model#production#3")
    tags = remote_tags(repo.parent / "origin.git")
    assert tags["churn-model#production#3"] == tags["churn-model@v1.0.0"]
    assert {"churn-model#production#1", "churn-model#production#2"} <= set(tags)  # history keeps both
    shown = cli_json("registry", "show")["artifacts"]["churn-model"]
    assert (shown["latest"], shown["stages"]) == ("v1.1.0", {"production": "v1.0.0"})
    assert_gto_agrees(repo)
    events = cli_json("registry", "history", "churn-model")["events"]
    assert [(e["event"], e["version"], e["stage"]) for e in events] == [
        ("register", "v1.0.0", None), ("assign", "v1.0.0", "production"),
        ("register", "v1.1.0", None), ("assign", "v1.1.0", "production"),
        ("assign", "v1.0.0", "production")]
    assert events[-1]["message"] == "churn-model: production -> v1.0.0 (rollback from v1.1.0)"
    assert all(e["by"] == "Test Committer <committer@example.com>" for e in events)
    assert events[0]["commit"] == tags["churn-model@v1.0.0"]


def test_rollback_to_a_given_version(repo: Path) -> None:
    two_versions_in_production(repo)
    merge(repo, weights="w3", features=[*FEATURES, {"name": "region", "type": "int"}])
    cli_json("promote", "--stage", "production")  # v1.1.1
    out = cli_json("rollback", "churn-model", "--to", "v1.0.0")
    assert (out["version"], out["previous"]) == ("v1.0.0", "v1.1.1")
    assert cli_json("rollback", "churn-model", "--to", "1.0.0")["action"] == "already_assigned"
    assert_gto_agrees(repo)


def test_rollback_errors(repo: Path) -> None:
    cli_json("promote")
    result = runner.invoke(app, ["rollback", "churn-model"])
    assert result.exit_code == 1
    assert "no version in production" in result.stderr
    cli_json("promote", "--stage", "production")
    result = runner.invoke(app, ["rollback", "churn-model"])
    assert result.exit_code == 1
    assert "no other version" in result.stderr
    assert "hint: name one with --to" in result.stderr
    result = runner.invoke(app, ["rollback", "churn-model", "--to", "v7.0.0"])
    assert result.exit_code == 1
    assert "not registered" in result.stderr
    result = runner.invoke(app, ["rollback", "other-model"])
    assert result.exit_code == 1
    assert "has no registry tags" in result.stderr


def test_show_ignores_foreign_lightweight_and_malformed_tags_with_notes(repo: Path) -> None:
    cli_json("promote", "--stage", "production")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "-a", "-m", "a release of the app", "v2.3.4")  # not a registry tag: silently ignored
    git(repo, "tag", "churn-model@v5.0.0", head)  # lightweight
    git(repo, "tag", "-a", "-m", "x", "churn-model@5.0")  # malformed
    # a version registered by GTO itself (its message, no metadata block) is read too
    subprocess.run([GTO, "register", "other-model", "--version", "v0.3.0", "-r", str(repo)], check=True,
                   capture_output=True)
    result = runner.invoke(app, ["--verbose", "registry", "show", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["artifacts"]
    assert data["churn-model"]["latest"] == "v1.0.0"
    assert data["other-model"]["latest"] == "v0.3.0"
    assert "ignored tag 'churn-model@v5.0.0': lightweight tag" in result.stderr
    assert "ignored tag 'churn-model@5.0'" in result.stderr
    assert "v2.3.4" not in result.stderr
    assert_gto_agrees(repo)
    table = runner.invoke(app, ["registry", "show"])
    assert table.stdout.splitlines() == ["name         latest  #production",
                                         "churn-model  v1.0.0  v1.0.0",
                                         "other-model  v0.3.0  -"]
    assert "ignored" not in table.stderr  # notes only under --verbose


def test_show_and_history_on_an_empty_registry(repo: Path) -> None:
    assert cli_json("registry", "show") == {"artifacts": {}}
    assert cli_json("registry", "history", "churn-model") == {"artifact": "churn-model", "events": []}
    assert "no registry tags" in runner.invoke(app, ["registry", "show"]).stdout


def test_history_table(repo: Path) -> None:
    two_versions_in_production(repo)
    lines = runner.invoke(app, ["registry", "history", "churn-model"]).stdout.splitlines()
    assert len(lines) == 4
    assert "register" in lines[0]
    assert "v1.0.0" in lines[0]
    assert "production -> v1.1.0" in lines[3]


def _tag_later(repo: Path, name: str, target: str, seconds: int) -> None:
    """An annotated tag dated SECONDS after the newest registry tag (GTO orders events by tagger date)."""
    import os
    import time

    env = {**os.environ, "GIT_COMMITTER_DATE": f"@{int(time.time()) + seconds} +0000"}
    subprocess.run(["git", "tag", "-a", "-m", name, name, target], cwd=repo, env=env, check=True)


def test_a_deregistered_version_leaves_its_stages_as_gto_says(repo: Path) -> None:
    two_versions_in_production(repo)  # production: v1.0.0 (#1), then v1.1.0 (#2)
    cli_json("promote", "--stage", "staging")  # staging: v1.1.0 (#3)
    _tag_later(repo, "churn-model@v1.1.0!", "churn-model@v1.1.0^{}", 10)  # `gto deprecate churn-model v1.1.0`
    shown = cli_json("registry", "show")["artifacts"]["churn-model"]
    # production falls back to its assignment before, staging had no other: gone
    assert (shown["latest"], shown["stages"]) == ("v1.0.0", {"production": "v1.0.0"})
    assert_gto_agrees(repo)
    # an assignment made at a deregistered version's commit assigns nothing
    _tag_later(repo, "churn-model#qa#9", "churn-model@v1.1.0^{}", 20)
    assert cli_json("registry", "show")["artifacts"]["churn-model"]["stages"] == {"production": "v1.0.0"}
    assert_gto_agrees(repo)
    back = runner.invoke(app, ["rollback", "churn-model"])  # production had no other (registered) version
    assert back.exit_code == 1
    assert "no other version" in back.stderr

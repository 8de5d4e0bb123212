"""Staging, then production (`deploy.environments`): each environment its own server, token and stage; production
takes only versions staging has held (without --ref: the one staging holds); rollback moves one environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import mlops.cli.deploy  # noqa: F401  (registers `mlops deploy` on the app)
from mlops.cli import app
from mlops.config import DeployParams, load_sections
from mlops.errors import ParamsInvalid
from mlops.jobs.promote import PromoteOptions, promote
from mlops.registry.environments import NotHeldInStage, admit
from mlops.registry.tags import read_events
from tests.deploy_helpers import build_released_project, copy_tree, template_env
from tests.helpers import commit_all, git, runner
from tests.helpers import dvc as run_dvc
from tests.serve_helpers import TOKEN, Server, call

STAGING_TOKEN = "staging-admin-token-0123456789abcdef"  # another secret than production's
ENVIRONMENTS = {"staging": {"server_url": "http://127.0.0.1:1", "token_env": "MLOPS_STAGING_TOKEN"},
                "production": {"server_url": "http://127.0.0.1:1"}}


# --- the rule and the settings, on a registry of real tags -------------------------------------------------------


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("released")
    with template_env(tmp_path_factory.mktemp("released-home")):
        build_released_project(root)
    return root


@pytest.fixture
def repo(_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = copy_tree(_template, tmp_path / "copy")
    monkeypatch.chdir(r)
    return r


def _set_environments(repo: Path, environments: dict[str, Any]) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["deploy"]["environments"] = environments
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    git(repo, "commit", "-q", "-am", "deploy environments")


def test_environments_resolve_over_the_deploy_section() -> None:
    params = DeployParams.model_validate({"canary_percent": 20, "environments": {
        "staging": {"server_url": "http://127.0.0.1:8081", "token_env": "MLOPS_STAGING_TOKEN", "store": "s"},
        "production": {"server_url": "http://127.0.0.1:8080"}}})
    staging, production = params.environment("staging"), params.environment(None)
    assert (staging.stage, staging.requires, staging.params.server_url, staging.params.token_env,
            staging.params.store, staging.params.canary_percent) == \
        ("staging", None, "http://127.0.0.1:8081", "MLOPS_STAGING_TOKEN", "s", 20)
    assert (production.name, production.stage, production.requires, production.params.token_env) == \
        ("production", "production", "staging", "MLOPS_ADMIN_TOKEN")
    assert params.environment("production", production_stage="prod").stage == "prod"
    # only an explicit null turns the staging rule off
    off = DeployParams.model_validate({"environments": {"staging": {}, "production": {"requires": None}}})
    assert off.environment("production").requires is None
    # no environments: production alone, on deploy.server_url, no rule (as before environments)
    legacy = DeployParams().environment(None)
    assert (legacy.name, legacy.stage, legacy.requires, legacy.configured) == ("production", "production", None,
                                                                              False)
    with pytest.raises(ParamsInvalid, match="no environment 'staging'"):
        DeployParams().environment("staging")
    with pytest.raises(ParamsInvalid, match=r"deploy\.environments has no 'qa' \(it has staging, production\)"):
        params.environment("qa")


def test_a_requires_naming_no_environments_stage_is_refused_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"deploy": {"environments": {
        "staging": {}, "production": {"requires": "qa"}}}}))
    with pytest.raises(ParamsInvalid, match=r"key 'deploy.environments'.*production.requires: 'qa' is no "
                                            r"environment's stage"):
        load_sections(tmp_path / "params.yaml")


def test_admission_reads_the_stage_history(repo: Path) -> None:
    events, _ = read_events(repo)
    # v1.0.0 was assigned production (churn-model#production#1) and never staging
    with pytest.raises(NotHeldInStage, match=r"churn-model@v1\.0\.0 was never in staging"):
        admit(events, "churn-model", "v1.0.0", stage="qa", requires="staging", environment="qa")
    # ...but the environment's own stage held it: a rollback there may go back to it
    assert admit(events, "churn-model", "v1.0.0", stage="production", requires="staging",
                 environment="production").tag == "churn-model#production#1"
    assert admit(events, "churn-model", "v1.0.1", stage="production", requires=None,
                 environment="production").held_by is None


def test_production_refuses_a_version_staging_never_held_before_touching_anything(repo: Path) -> None:
    _set_environments(repo, ENVIRONMENTS)
    before = set(git(repo, "tag").split())
    result = runner.invoke(app, ["deploy", "--environment", "production", "--ref", "churn-model@v1.0.1",
                                 "--no-push"])
    assert result.exit_code == 1, result.output
    assert "churn-model@v1.0.1 was never in staging: production takes only versions that staging has held" \
        in result.stderr
    assert "Traceback" not in result.output
    assert set(git(repo, "tag").split()) == before
    # production without --ref delivers what staging holds: staging holds nothing yet
    empty = runner.invoke(app, ["deploy", "--environment", "production", "--no-push"])
    assert empty.exit_code == 1 and "has no version in stage 'staging'" in empty.stderr, empty.output


def test_requires_null_turns_the_rule_off(repo: Path) -> None:
    _set_environments(repo, {**ENVIRONMENTS, "production": {"server_url": "http://127.0.0.1:1", "requires": None}})
    result = runner.invoke(app, ["deploy", "--environment", "production", "--ref", "churn-model@v1.0.1",
                                 "--no-push"])
    # past the rule: it fails only at the server (no admin token here, and none listens on port 1)
    assert result.exit_code == 1
    assert "never in staging" not in result.stderr and "model server" in result.stderr, result.output


# --- two real servers side by side ---------------------------------------------------------------------------------


def _promote(root: Path, message: str) -> str:
    commit_all(root, message)
    result = promote(root, PromoteOptions(push=False))
    run_dvc(root, "push", "-q")
    return f"{result.artifact}@{result.version}"


def _flipped_model(root: Path) -> None:
    """A registrable version without a pipeline run: a booster on flipped labels, recorded in dvc.lock."""
    import xgboost as xgb

    from mlops.config import load_params
    from mlops.stages.data import TRAIN_FILE, features_and_label, load_prepared

    params = load_params(root / "params.yaml")
    x, y = features_and_label(load_prepared(root / TRAIN_FILE, params.data), params.data)
    model = xgb.XGBClassifier(n_estimators=10, max_depth=2, tree_method="hist", enable_categorical=True,
                              max_cat_to_onehot=4, n_jobs=2, random_state=0)
    model.fit(x, 1 - y)
    target = root / "models/model.ubj"
    target.chmod(0o644)
    target.unlink()  # the workspace copy may be a link into the cache: never write through it
    model.get_booster().save_model(str(target))
    run_dvc(root, "commit", "-f", "-q", "models")


def _deploy(*args: str) -> Any:
    return runner.invoke(app, ["deploy", *args, "--no-push", "--json"])


def _state(server: Server) -> dict[str, Any] | None:
    reply = call(server.port, "GET", "/admin/models/churn-model", token=server.token)
    return None if reply.status == 404 else dict(reply.json())


def _answers(server: Server, record: dict[str, Any]) -> str | None:
    reply = call(server.port, "POST", "/v1/models/churn-model/predict", {"instances": [record]})
    assert reply.status == 200, reply.body
    return reply.version


def _stage_tags(root: Path, stage: str) -> list[str]:
    return sorted(t for t in git(root, "tag").split() if t.startswith(f"churn-model#{stage}#"))


class _Env(Server):
    def __init__(self, store: Path, token: str) -> None:
        super().__init__(store, token=token)
        self.token = token


@pytest.mark.e2e
@pytest.mark.slow
def test_staging_and_production_servers_side_by_side(trained_project: Path, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    root = trained_project
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("MLOPS_STAGING_TOKEN", STAGING_TOKEN)
    (tmp_path / "staging").mkdir()
    (tmp_path / "production").mkdir()
    staging = _Env(tmp_path / "staging" / "store", STAGING_TOKEN)
    production = _Env(tmp_path / "production" / "store", TOKEN)
    try:
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["gates"] = {}  # the versions below are promoted whatever their metrics: this tests delivery
        raw["registry"]["promote_identities"] = [{"name": "Test Committer", "email": "committer@example.com"}]
        raw["deploy"] = {"canary_percent": 20, "canary_seconds": 1.0, "canary_requests": 40, "max_p99_ms": 2000.0,
                         "environments": {
                             "staging": {"server_url": f"http://127.0.0.1:{staging.port}", "store": str(staging.store),
                                         "token_env": "MLOPS_STAGING_TOKEN"},
                             "production": {"server_url": f"http://127.0.0.1:{production.port}",
                                            "store": str(production.store)}}}
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        run_dvc(root, "push", "-q")
        v1 = _promote(root, "two environments")
        record = json.loads((root / "models/golden.json").read_text())["records"][0]
        staging.wait()
        production.wait()

        # v1 to staging: staging's server, staging's token, the staging stage; production untouched
        out = _deploy("--environment", "staging", "--ref", v1)
        assert out.exit_code == 0, out.output
        got = json.loads(out.stdout)
        assert (got["environment"], got["stage"], got["stage_tag"], got["where"]) == \
            ("staging", "staging", "churn-model#staging#1", f"http://127.0.0.1:{staging.port}")
        assert _answers(staging, record) == "v1.0.0"
        assert _state(production) is None

        # production without --ref: the version staging holds, admitted by staging's tag
        out = _deploy("--environment", "production")
        assert out.exit_code == 0, out.output
        got = json.loads(out.stdout)
        assert (got["version"], got["stage_tag"], got["admitted_by"]) == \
            ("v1.0.0", "churn-model#production#2", "churn-model#staging#1")
        assert _answers(production, record) == "v1.0.0"

        # v2 to staging: production still serves v1
        raw["train"]["seed"] = 7
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        run_dvc(root, "repro", "-q")
        v2 = _promote(root, "retrain with another seed")
        assert v2 == "churn-model@v1.0.1"
        out = _deploy("--environment", "staging", "--ref", v2)
        assert out.exit_code == 0, out.output
        assert _answers(staging, record) == "v1.0.1"
        assert _answers(production, record) == "v1.0.0"

        # v3, registered but never in staging: production refuses it, one line, exit 1, nothing changes there
        _flipped_model(root)
        v3 = _promote(root, "a version that skips staging")
        assert v3 == "churn-model@v1.0.2"
        tags = set(git(root, "tag").split())
        state = _state(production)
        refused = runner.invoke(app, ["deploy", "--environment", "production", "--ref", v3, "--no-push"])
        assert refused.exit_code == 1, refused.output
        error = [line for line in refused.stderr.splitlines() if line.startswith("error")]
        assert len(error) == 1 and "churn-model@v1.0.2 was never in staging" in error[0], refused.stderr
        assert _state(production) == state
        assert not (production.store / "churn-model" / "v1.0.2").exists()
        assert set(git(root, "tag").split()) == tags
        assert _answers(production, record) == "v1.0.0"

        # production deploy of v2 (staging held it) works
        out = _deploy("--environment", "production", "--ref", v2)
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["admitted_by"] == "churn-model#staging#3"
        assert _answers(production, record) == "v1.0.1"
        assert _stage_tags(root, "production") == ["churn-model#production#2", "churn-model#production#4"]

        # rollback per environment: production back to v1 moves production's stage and server only
        staging_tags = _stage_tags(root, "staging")
        back = runner.invoke(app, ["rollback", "churn-model", "--environment", "production", "--deploy",
                                   "--no-push", "--json"])
        assert back.exit_code == 0, back.output
        got = json.loads(back.stdout)
        assert (got["stage"], got["version"], got["previous"]) == ("production", "v1.0.0", "v1.0.1")
        assert _answers(production, record) == "v1.0.0"
        assert _answers(staging, record) == "v1.0.1"
        assert _stage_tags(root, "staging") == staging_tags
        # ...and staging back to v1 moves staging's only
        production_tags = _stage_tags(root, "production")
        back = runner.invoke(app, ["rollback", "churn-model", "--environment", "staging", "--deploy", "--no-push",
                                   "--json"])
        assert back.exit_code == 0, back.output
        got = json.loads(back.stdout)
        assert (got["stage"], got["version"], got["previous"]) == ("staging", "v1.0.0", "v1.0.1")
        assert _answers(staging, record) == "v1.0.0"
        assert _answers(production, record) == "v1.0.0"
        assert _stage_tags(root, "production") == production_tags
        assert git(root, "status", "--porcelain") == ""
    finally:
        staging.stop()
        production.stop()

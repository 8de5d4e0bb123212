"""`mlops promote` on a real git repo with a real bare origin (a fake model, so no training: fast)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.cli import app
from mlops.registry.model import dvc_hash
from tests.helpers import commit_all, git, init_repo, runner
from tests.registry_helpers import (
    FEATURES,
    METRICS,
    clone,
    fake_project,
    lock_hash,
    merge,
    parse_block,
    remote_tags,
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = fake_project(tmp_path)
    monkeypatch.chdir(r)
    return r


def promote(*args: str) -> Any:
    return runner.invoke(app, ["promote", *args])


def promote_json(*args: str) -> dict[str, Any]:
    result = promote("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def tag_message(repo: Path, tag: str) -> str:
    return git(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/{tag}")


def test_first_promotion_registers_v1_with_the_metadata_block_and_pushes(repo: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/churn")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    merge(repo, "Merge pull request #12 from acme/feature", weights="w1")
    out = promote_json()
    head = git(repo, "rev-parse", "HEAD")
    assert out["action"] == "registered"
    assert out["tag"] == "churn-model@v1.0.0"
    assert out["pushed"] is True
    assert remote_tags(repo.parent / "origin.git") == {"churn-model@v1.0.0": head}
    assert git(repo, "cat-file", "-t", "churn-model@v1.0.0") == "tag"  # annotated
    message = tag_message(repo, "churn-model@v1.0.0")
    assert message.splitlines()[0] == "churn-model v1.0.0 (first version)"
    block = parse_block(message)
    assert block is not None
    assert block["dvc_md5"] == lock_hash(repo) == dvc_hash(repo / "models")
    assert block["path"] == "models"
    assert block["model_file"] == "models/model.ubj"
    assert block["model_sha256"] == __import__("hashlib").sha256((repo / "models/model.ubj").read_bytes()).hexdigest()
    assert block["data_md5"] == "b9f3583475e1cf6fdf2eb78604f3cc5f"
    assert block["data"] == {"data/raw/telco_churn.csv": "b9f3583475e1cf6fdf2eb78604f3cc5f"}
    assert len(block["params_sha256"]) == 64
    assert block["metrics"]["test.roc_auc"] == METRICS["test"]["roc_auc"]
    assert [f["name"] for f in block["interface"]["features"]] == [f["name"] for f in FEATURES]
    assert block["commit"] == head
    assert block["pr"] == 12
    assert block["run_url"] == "https://github.com/acme/churn/actions/runs/42"


def test_rerun_on_a_registered_commit_is_a_noop_that_reports_the_version(repo: Path) -> None:
    assert promote_json()["action"] == "registered"
    result = promote()
    assert result.exit_code == 0
    assert "already registered as churn-model@v1.0.0" in result.stdout
    assert list(remote_tags(repo.parent / "origin.git")) == ["churn-model@v1.0.0"]


def test_unchanged_model_on_a_new_commit_registers_nothing(repo: Path) -> None:
    promote_json()
    (repo / "README.md").write_text("docs only\n")
    commit_all(repo, "docs")
    git(repo, "push", "-q", "origin", "main")
    result = promote()
    assert result.exit_code == 0, result.output
    assert "unchanged since v1.0.0" in result.stdout
    assert list(remote_tags(repo.parent / "origin.git")) == ["churn-model@v1.0.0"]


@pytest.mark.parametrize(("change", "expected", "reason"), [
    ({"weights": "w2"}, "v1.0.1", "interface unchanged"),
    ({"features": [*FEATURES, {"name": "region", "type": "int"}]}, "v1.1.0", "input added: region"),
    ({"features": FEATURES[1:]}, "v2.0.0", "input removed: tenure"),
    ({"features": [{"name": "tenure", "type": "float"}, *FEATURES[1:]]}, "v2.0.0", "input retyped"),
])
def test_bump_derives_from_the_interface(repo: Path, change: dict[str, Any], expected: str, reason: str) -> None:
    promote_json()
    merge(repo, **change)
    out = promote_json()
    assert out["version"] == expected
    assert reason in out["bump_reason"]
    block = parse_block(tag_message(repo, f"churn-model@{expected}"))
    assert block is not None
    assert block["bump_reason"] == out["bump_reason"]


def test_trailer_and_bump_option_override_the_interface(repo: Path) -> None:
    promote_json()
    merge(repo, "Retrain\n\nModel-Version: major\n", weights="w2")
    assert promote_json()["version"] == "v2.0.0"
    merge(repo, "Retrain again\n\nModel-Version: major\n", weights="w3")
    out = promote_json("--bump", "minor")  # the option beats the trailer
    assert (out["version"], out["bump_reason"]) == ("v2.1.0", "--bump minor")


def test_first_version_is_configurable(repo: Path) -> None:
    params = (repo / "params.yaml").read_text().replace("first_version: v1.0.0", "first_version: v0.1.0")
    (repo / "params.yaml").write_text(params)
    commit_all(repo, "start at 0.1.0")
    assert promote_json()["version"] == "v0.1.0"


def test_failed_gate_tags_nothing_and_prints_the_table(repo: Path) -> None:
    promote_json("--stage", "production")
    merge(repo, weights="worse", metrics={"test": {"roc_auc": 0.846, "pr_auc": 0.60, "log_loss": 0.40}})
    result = promote()
    assert result.exit_code == 1
    row = next(line for line in result.stdout.splitlines() if "test.pr_auc" in line and "max_drop" in line)
    assert row.split()[:5] == ["test.pr_auc", "max_drop", "0.01", "0.6000", "0.6600"] and "FAIL" in row
    assert "error: 1 of 4 gate(s) failed against production: test.pr_auc (max_drop); nothing tagged" in result.stderr
    assert "hint:" in result.stderr
    assert sorted(remote_tags(repo.parent / "origin.git")) == ["churn-model#production#1", "churn-model@v1.0.0"]
    assert git(repo, "tag", "-l", "churn-model@v1.0.1") == ""


def test_gates_compare_with_productions_metrics_from_its_tag(repo: Path) -> None:
    promote_json("--stage", "production")  # production recorded test.roc_auc 0.85 in its tag
    merge(repo, weights="w2", metrics={"test": {"roc_auc": 0.847, "pr_auc": 0.66, "log_loss": 0.41}})
    out = promote_json("--stage", "production")  # drop 0.003 <= 0.005: passes against production
    assert out["gates_passed"] is True
    assert (out["version"], out["stage_tag"], out["previous"]) == ("v1.0.1", "churn-model#production#2", "v1.0.0")


def test_stage_assignment_with_registration_and_of_an_existing_version(repo: Path) -> None:
    out = promote_json("--stage", "staging")
    assert out["created"] == ["churn-model@v1.0.0", "churn-model#staging#1"]
    head = git(repo, "rev-parse", "HEAD")
    assert remote_tags(repo.parent / "origin.git") == {"churn-model@v1.0.0": head, "churn-model#staging#1": head}
    assert promote_json("--stage", "staging")["action"] == "already_assigned"
    out = promote_json("--ref", "churn-model@v1.0.0", "--stage", "production")
    assert (out["action"], out["stage_tag"]) == ("assigned", "churn-model#production#2")
    shown = json.loads(runner.invoke(app, ["registry", "show", "--json"]).stdout)
    assert shown["artifacts"]["churn-model"]["stages"] == {"production": "v1.0.0", "staging": "v1.0.0"}
    missing = promote("--ref", "churn-model@v9.9.9", "--stage", "production")
    assert missing.exit_code == 1
    assert "not registered" in missing.stderr


def test_no_push_creates_the_tag_locally_only(repo: Path) -> None:
    out = promote_json("--no-push")
    assert out["pushed"] is False
    assert git(repo, "tag", "-l") == "churn-model@v1.0.0"
    assert remote_tags(repo.parent / "origin.git") == {}


def test_a_later_promote_publishes_what_no_push_only_tagged(repo: Path) -> None:
    origin = repo.parent / "origin.git"
    head = git(repo, "rev-parse", "HEAD")
    promote_json("--no-push")
    out = promote_json()
    assert (out["action"], out["pushed"], out["published"], out["created"]) == \
        ("already_registered", True, ["churn-model@v1.0.0"], [])
    assert remote_tags(origin) == {"churn-model@v1.0.0": head}
    again = promote_json()
    assert (again["action"], again["pushed"], again["published"]) == ("already_registered", False, [])
    # a stage assigned with --no-push, then the same promotion with push on
    promote_json("--no-push", "--stage", "staging")
    result = promote("--stage", "staging")
    assert result.exit_code == 0, result.output
    assert "published churn-model#staging#1" in result.stdout
    assert remote_tags(origin) == {"churn-model@v1.0.0": head, "churn-model#staging#1": head}
    # a new stage tag is never pushed without the version it assigns
    merge(repo, weights="w2")
    promote_json("--no-push")
    out = promote_json("--stage", "production")
    assert (out["action"], out["created"], out["published"]) == \
        ("assigned", ["churn-model#production#2"], ["churn-model@v1.0.1"])
    assert {"churn-model@v1.0.1", "churn-model#production#2"} <= set(remote_tags(origin))


def test_an_unrelated_tag_moved_on_origin_does_not_block_promotion(repo: Path) -> None:
    """The actions' moving `v1` tag (or any other non-registry tag) force-moved on origin after we fetched it."""
    origin = repo.parent / "origin.git"
    other = clone(origin, repo.parent / "other")
    git(other, "tag", "v1")
    git(other, "push", "-q", "origin", "v1")
    git(repo, "fetch", "-q", "--tags", "origin")
    git(other, "commit", "-q", "--allow-empty", "-m", "action release")
    git(other, "tag", "-f", "v1")
    git(other, "push", "-q", "-f", "origin", "v1")
    out = promote_json()
    assert (out["action"], out["pushed"]) == ("registered", True)
    assert "churn-model@v1.0.0" in remote_tags(origin)


def test_metrics_edited_after_the_pipeline_are_refused(repo: Path) -> None:
    """reports/metrics.json is a DVC output (git-ignored): its md5 in dvc.lock is what vouches for it."""
    path = repo / "reports/metrics.json"
    path.write_text(json.dumps({"test": {"roc_auc": 0.95, "pr_auc": 0.9, "log_loss": 0.1}}))
    assert_error(promote(), "reports/metrics.json does not match dvc.lock: it changed after the pipeline ran")
    assert remote_tags(repo.parent / "origin.git") == {}
    assert git(repo, "tag", "-l") == ""
    path.unlink()
    assert_error(promote(), "reports/metrics.json: not found in the workspace")


@pytest.mark.parametrize("lock", [{"schema": "2.0", "stages": 5},
                                  {"schema": "2.0", "stages": {"train": {"cmd": "x", "outs": [5]}}},
                                  {"schema": "2.0", "stages": {"train": {"cmd": "x", "outs": 5}}},
                                  {"schema": "2.0", "stages": {"train": {"deps": [{"md5": "a"}]}}}])
def test_a_malformed_dvc_lock_is_a_one_line_error(repo: Path, lock: dict[str, Any]) -> None:
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    commit_all(repo, "odd lock")
    result = promote()
    assert_error(result, "dvc.lock")
    assert len(result.stderr.strip().splitlines()) == 2  # error + hint
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_project_with_only_registry_and_gates_in_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another DVC project: its own artifact, model files, metrics file and data; params.yaml has only the
    sections promote reads."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    repo = init_repo(tmp_path / "fraud")
    (repo / "params.yaml").write_text(yaml.safe_dump({
        "registry": {"artifact": "fraud-model", "model_file": "model.pkl", "schema_file": "schema.json"},
        "gates": {"auc": {"min": 0.7}}}))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({
        "stages": {"train": {"cmd": "python train.py", "deps": ["data/tx.csv", "train.py"], "outs": ["model"]},
                   "score": {"cmd": "python score.py", "deps": ["model"], "metrics": ["eval/scores.json"]}},
        "artifacts": {"fraud-model": {"path": "model", "type": "model"}}}))
    (repo / "model").mkdir()
    (repo / "model/model.pkl").write_bytes(b"pickle")
    (repo / "model/schema.json").write_text(json.dumps({"features": [{"name": "amount", "type": "float"}],
                                                        "output": {"name": "p", "type": "float"}}))
    (repo / "eval").mkdir()
    (repo / "eval/scores.json").write_text('{"auc": 0.8}')
    scores_md5 = hashlib.md5(b'{"auc": 0.8}').hexdigest()
    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "train": {"cmd": "python train.py", "deps": [{"path": "data/tx.csv", "hash": "md5", "md5": "abc123"},
                                                     {"path": "train.py", "hash": "md5", "md5": "def456"}],
                  "outs": [{"path": "model", "hash": "md5", "md5": dvc_hash(repo / "model")}]},
        "score": {"cmd": "python score.py", "deps": [{"path": "model", "hash": "md5", "md5": "x.dir"}],
                  "outs": [{"path": "eval/scores.json", "hash": "md5", "md5": scores_md5}]}}}))
    (repo / ".gitignore").write_text("/model\n/eval\n")
    commit_all(repo, "fraud project")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    monkeypatch.chdir(repo)
    out = promote_json("--stage", "production")
    assert (out["action"], out["tag"], out["gates_passed"]) == ("registered", "fraud-model@v1.0.0", True)
    block = parse_block(tag_message(repo, "fraud-model@v1.0.0"))
    assert block is not None
    assert (block["data"], block["data_md5"], block["metrics"]) == ({"data/tx.csv": "abc123"}, "abc123", {"auc": 0.8})
    assert block["model_file"] == "model/model.pkl"
    assert set(remote_tags(origin)) == {"fraud-model@v1.0.0", "fraud-model#production#1"}
    back = runner.invoke(app, ["rollback", "fraud-model"])
    assert back.exit_code == 1
    assert "no other version" in back.stderr  # rollback reads the same two sections


def test_signs_the_tag_when_a_signing_key_is_configured(repo: Path, tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed")
    key = tmp_path / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key))
    promote_json()
    raw = git(repo, "cat-file", "tag", "churn-model@v1.0.0")
    assert "-----BEGIN SSH SIGNATURE-----" in raw
    shown = json.loads(runner.invoke(app, ["registry", "show", "--json"]).stdout)
    assert shown["artifacts"]["churn-model"]["latest"] == "v1.0.0"
    assert promote_json()["action"] == "already_registered"  # the block is still read through the signature


# --- errors -----------------------------------------------------------------------------------------------


def assert_error(result: Any, text: str) -> None:
    assert result.exit_code == 1, result.output
    assert text in result.stderr
    assert "hint:" in result.stderr


def test_dirty_working_tree_is_refused(repo: Path) -> None:
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n# edited\n")
    assert_error(promote(), "uncommitted changes (params.yaml)")
    assert remote_tags(repo.parent / "origin.git") == {}


def test_not_on_main_is_refused_unless_allowed(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    assert_error(promote(), "not on the main branch 'main' (HEAD is feature)")
    assert promote_json("--allow-branch")["version"] == "v1.0.0"


def test_detached_head_at_main_is_main(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach", "main")
    assert promote_json()["version"] == "v1.0.0"


def test_no_dvc_lock_is_refused(repo: Path) -> None:
    git(repo, "rm", "-q", "dvc.lock")
    commit_all(repo, "drop the lock")
    assert_error(promote(), "dvc.lock: not found")


def test_no_model_artifact_in_dvc_lock_is_refused(repo: Path) -> None:
    lock = (repo / "dvc.lock").read_text().replace("path: models", "path: other")
    (repo / "dvc.lock").write_text(lock)
    commit_all(repo, "lock without the model")
    assert_error(promote(), "dvc.lock has no output 'models'")


def test_workspace_model_must_match_dvc_lock(repo: Path) -> None:
    (repo / "models/model.ubj").write_bytes(b"something else")
    assert_error(promote(), "models: the workspace does not match dvc.lock")
    shutil.rmtree(repo / "models")
    assert_error(promote(), "models: the model artifact is not in the workspace")


def test_remote_refusing_the_push_leaves_nothing_half_done(repo: Path) -> None:
    hook = repo.parent / "origin.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'tags are protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = promote("--stage", "production")
    assert_error(result, "origin refused the push")
    assert git(repo, "tag", "-l") == ""  # the local tags were dropped: a rerun starts clean
    assert remote_tags(repo.parent / "origin.git") == {}


def test_missing_remote_is_refused(repo: Path) -> None:
    git(repo, "remote", "remove", "origin")
    assert_error(promote(), "no git remote 'origin'")


def test_a_tag_name_that_exists_pointing_elsewhere_is_never_moved(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    merge(repo, weights="w2")
    git(repo, "tag", "churn-model@v1.0.0", first)  # a stray lightweight tag: not a registry tag, but the name
    result = promote()
    assert_error(result, "tag 'churn-model@v1.0.0' already exists and points at")
    assert git(repo, "rev-parse", "churn-model@v1.0.0") == first
    assert remote_tags(repo.parent / "origin.git") == {}


def test_a_local_tag_differing_from_origins_fails_the_fetch(repo: Path) -> None:
    other = clone(repo.parent / "origin.git", repo.parent / "other")
    git(other, "tag", "-a", "-m", "theirs", "churn-model@v1.0.0")
    git(other, "push", "-q", "origin", "churn-model@v1.0.0")
    git(repo, "commit", "-q", "--allow-empty", "-m", "local only")
    git(repo, "tag", "-a", "-m", "ours", "churn-model@v1.0.0")
    result = promote()
    assert_error(result, "cannot fetch the registry tags from origin")
    assert "[rejected] churn-model@v1.0.0 -> churn-model@v1.0.0 (would clobber existing tag)" in result.stderr


def test_bad_bump_and_bad_trailer_are_refused(repo: Path) -> None:
    usage = promote("--bump", "huge")
    assert usage.exit_code == 2
    assert "huge" in usage.stderr
    merge(repo, "Retrain\n\nModel-Version: huge\n", weights="w2")
    assert_error(promote(), "Model-Version: huge")


def test_metrics_two_files_share_are_keyed_as_the_report_keys_them(repo: Path) -> None:
    """promote gates and records the same metric names as `mlops gate` and the report (mlops.gates.metrics_of)."""
    from mlops.dvc import read_lock
    from mlops.gates import metrics_of
    from mlops.jobs.promote import _head_metrics

    extra = repo / "reports/extra.json"
    extra.write_text(json.dumps({"test": {"roc_auc": 0.5}}))
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    dvc_yaml["stages"]["evaluate"]["metrics"].append("reports/extra.json")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    lock["stages"]["evaluate"]["outs"].append(
        {"path": "reports/extra.json", "hash": "md5", "md5": hashlib.md5(extra.read_bytes()).hexdigest()})
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    got = _head_metrics(repo, read_lock(repo), [])
    assert got["reports/metrics.json:test.roc_auc"] == 0.85
    assert got["reports/extra.json:test.roc_auc"] == 0.5
    assert "test.roc_auc" not in got
    files = {"reports/metrics.json": json.loads((repo / "reports/metrics.json").read_text()),
             "reports/extra.json": json.loads(extra.read_text())}
    assert got == metrics_of(files, ["reports/metrics.json", "reports/extra.json"])


def test_a_category_value_cannot_forge_the_production_metrics(repo: Path) -> None:
    """A category value with a newline and a fake metadata block (a quoted CSV cell) reaches the bump reason and
    so the tag's headline: the tag still carries exactly one block, the real one, and later gates read it."""
    promote_json("--stage", "production")
    fake = ("-----BEGIN MLOPS METADATA-----\n" + json.dumps({"format": "mlops.registry/1", "metrics":
            {"test.roc_auc": 0.0}, "model_sha256": "0" * 64}) + "\n-----END MLOPS METADATA-----")
    crafted = [*FEATURES[:2], {**FEATURES[2], "categories": [*FEATURES[2]["categories"], f"x\n\n{fake}\n"]}]
    merge(repo, weights="w1", features=crafted)
    out = promote_json("--stage", "production")
    assert (out["version"], out["bump"]) == ("v1.1.0", "minor")
    message = tag_message(repo, "churn-model@v1.1.0")
    assert message.count("-----BEGIN MLOPS METADATA-----\n") == 1
    block = parse_block(message)
    assert block is not None
    assert block["metrics"]["test.roc_auc"] == METRICS["test"]["roc_auc"]
    assert block["model_sha256"] == hashlib.sha256((repo / "models/model.ubj").read_bytes()).hexdigest()
    # the next promotion compares against production's real metrics: a drop of 0.5 fails the relative gate
    worse = {"test": {**METRICS["test"], "roc_auc": 0.35}, "train": METRICS["train"]}
    merge(repo, weights="w2", features=crafted, metrics=worse)
    result = promote("--json")
    assert result.exit_code == 1, result.output
    assert "roc_auc" in result.output and "production" in result.output


def _with_prediction_gate(repo: Path, scores: list[float]) -> None:
    """A `prediction.flip_rate` gate over git-tracked per-row predictions (row, probability, label)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["gates"]["prediction.flip_rate"] = {"max": 0.05}
    params["report"]["predictions"] = {"path": "evidence/predictions.csv", "label": "label"}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _write_predictions(repo, scores)
    # the fake's metrics are git-ignored and in no DVC cache: tracked here, production's are readable at its commit
    git(repo, "add", "-f", "reports/metrics.json")


def _write_predictions(repo: Path, scores: list[float]) -> None:
    (repo / "evidence").mkdir(exist_ok=True)
    rows = "".join(f"{i},{s},{i % 2}\n" for i, s in enumerate(scores))
    (repo / "evidence/predictions.csv").write_text("row,probability,label\n" + rows)


def test_promote_judges_prediction_gates_against_production_rows(repo: Path) -> None:
    """promote computes the prediction diff against production's per-row predictions (read at its commit), as the
    report does: a flip rate past the gate blocks the tag; an equal model passes it."""
    scores = [0.1 + 0.8 * (i % 2) for i in range(40)]
    _with_prediction_gate(repo, scores)
    commit_all(repo, "gate the flip rate")
    git(repo, "push", "-q", "origin", "main")
    promote_json("--stage", "production")
    flipped = [1.0 - s if i < 8 else s for i, s in enumerate(scores)]  # 8 of 40 labels flip: 0.2 > 0.05
    _write_predictions(repo, flipped)
    merge(repo, weights="w-flips")
    result = promote()
    assert result.exit_code == 1, result.output
    assert "prediction.flip_rate (max)" in result.stderr and "nothing tagged" in result.stderr
    _write_predictions(repo, scores)
    merge(repo, weights="w-same")
    out = promote_json("--stage", "production")
    assert out["gates_passed"] is True and out["version"] == "v1.0.1"


def test_promote_refuses_a_prediction_gate_it_cannot_evaluate(repo: Path) -> None:
    """No per-row predictions at production: the gate is not evaluated, and promote refuses (never passes it)."""
    promote_json("--stage", "production")
    _with_prediction_gate(repo, [0.2, 0.8])
    merge(repo, weights="w-new")
    result = promote()
    assert result.exit_code == 1, result.output
    assert "not evaluated" in result.stderr and "prediction.flip_rate" in result.stderr

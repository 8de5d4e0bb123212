"""dvc.lock and dvc.yaml reading: malformed files are one-line DvcErrors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.dvc import output_hash, parse_lock, read_lock
from mlops.errors import DvcError


@pytest.mark.parametrize(("text", "message"), [
    ("stages: 5", "key 'stages' must be a mapping of stage names, got int"),
    ("stages: {train: 5}", "stage 'train' must be a mapping, got int"),
    ("stages: {train: {outs: 5}}", "key 'stages.train.outs' must be a list, got int"),
    ("stages: {train: {outs: [5]}}", r"key 'stages.train.outs\[0\]' must be a mapping with a 'path'"),
    ("stages: {train: {deps: [{md5: abc}]}}", r"key 'stages.train.deps\[0\]' must be a mapping with a 'path'"),
    ("- a list", "expected a mapping at the top level"),
    ("stages: [unclosed", "line 1: not valid YAML"),
])
def test_malformed_lock(text: str, message: str) -> None:
    with pytest.raises(DvcError, match=rf"^dvc\.lock: {message}"):
        parse_lock(text)


def test_read_lock_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text("stages:\n  train:\n    outs: 7\n")
    with pytest.raises(DvcError, match=r"dvc\.lock: key 'stages\.train\.outs' must be a list"):
        read_lock(tmp_path)
    (tmp_path / "dvc.lock").unlink()
    with pytest.raises(DvcError, match=r"dvc\.lock: file not found"):
        read_lock(tmp_path)


def test_output_hash_of_a_well_formed_lock() -> None:
    lock = parse_lock("schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: models\n      md5: abc.dir\n")
    assert output_hash(lock, "models/") == "abc.dir"
    assert output_hash(lock, "other") is None


def test_artifacts_must_be_a_mapping(tmp_path: Path) -> None:
    from mlops.dvc import artifacts

    (tmp_path / "dvc.yaml").write_text("artifacts:\n  - churn-model\n")
    with pytest.raises(DvcError, match=r"dvc\.yaml: key 'artifacts' must map artifact names"):
        artifacts(tmp_path)


def test_the_committed_dvc_lock_records_the_code_as_it_is() -> None:
    """A stage's code changed after dvc.lock was written would make a fresh clone's `make run` rerun stages and
    leave dvc.lock modified: the file deps it records (code, params files, raw data) must match the repo."""
    import hashlib

    repo = Path(__file__).resolve().parents[1]
    lock = read_lock(repo)
    stale = []
    for name, stage in lock["stages"].items():
        for dep in stage.get("deps") or []:
            path = repo / dep["path"]
            if path.is_file() and dep.get("md5") and hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]:
                stale.append(f"{name}: {dep['path']}")
    assert stale == [], "rerun `mlops run` and commit dvc.lock"

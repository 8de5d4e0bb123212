"""Pure parts of the registry: interface diffs and bumps, tag names, DVC's hash (tag metadata: test_tagmeta.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from mlops import versions
from mlops.registry.interface import diff_interfaces, parse_versioned_interface
from mlops.registry.model import dvc_hash
from mlops.registry.tags import parse_tag_name
from tests.helpers import dvc, init_repo
from tests.registry_helpers import FEATURES, OUTPUT


def iface(features: list[dict[str, object]] = FEATURES, output: dict[str, str] = OUTPUT):  # type: ignore[assignment]
    return parse_versioned_interface({"features": features, "output": output})


@pytest.mark.parametrize(("features", "output", "bump", "change"), [
    (FEATURES, OUTPUT, "patch", "interface unchanged"),
    ([*FEATURES, {"name": "region", "type": "int"}], OUTPUT, "minor", "input added: region"),
    ([FEATURES[0], FEATURES[1], {**FEATURES[2], "categories": ["Month-to-month", "One year", "Two year", "Ten"]}],
     OUTPUT, "minor", "categories added to contract: Ten"),
    (FEATURES[1:], OUTPUT, "major", "input removed: tenure"),
    ([{"name": "tenure_months", "type": "int"}, *FEATURES[1:]], OUTPUT, "major", "input removed: tenure"),
    ([{"name": "tenure", "type": "float"}, *FEATURES[1:]], OUTPUT, "major", "input retyped: tenure int -> float"),
    ([FEATURES[1], FEATURES[0], FEATURES[2]], OUTPUT, "major", "inputs reordered"),
    ([FEATURES[0], FEATURES[1], {**FEATURES[2], "categories": ["One year", "Two year"]}], OUTPUT, "major",
     "categories removed from contract: Month-to-month"),
    (FEATURES, {**OUTPUT, "positive": "No"}, "major", "output changed"),
    ([*FEATURES[1:], {"name": "region", "type": "int"}], OUTPUT, "major", "input added: region"),
])
def test_interface_diff_decides_the_bump_like_a_library(features, output, bump, change) -> None:
    diff = diff_interfaces(iface(), iface(features, output))
    assert diff.bump == bump
    assert change in diff.reason


def test_interface_round_trips_through_its_json_and_hash_is_stable() -> None:
    a = iface()
    assert parse_versioned_interface(a.to_json()) == a
    assert a.sha256() == iface().sha256()
    assert a.sha256() != iface(FEATURES[:2]).sha256()
    with pytest.raises(ValueError, match="features"):
        parse_versioned_interface({"output": {}})


@pytest.mark.parametrize(("version", "bump", "expected"), [
    ("v1.2.3", "patch", "v1.2.4"), ("v1.2.3", "minor", "v1.3.0"), ("v1.2.3", "major", "v2.0.0"),
    ("v0.9.9-rc.1", "patch", "v0.9.10"),
])
def test_bump_version(version: str, bump: str, expected: str) -> None:
    assert versions.bump(version, bump) == expected


@pytest.mark.parametrize(("name", "kind", "version", "stage", "number"), [
    ("churn-model@v1.2.0", "register", "v1.2.0", None, None),
    ("churn-model@v1.2.0!", "deregister", "v1.2.0", None, None),
    ("churn-model#production#7", "assign", None, "production", 7),
    ("churn-model#production!", "unassign", None, "production", None),
])
def test_gto_tag_names(name, kind, version, stage, number) -> None:
    parsed = parse_tag_name(name)
    assert parsed is not None
    assert (parsed.artifact, parsed.kind, parsed.version, parsed.stage, parsed.number) == \
        ("churn-model", kind, version, stage, number)


@pytest.mark.parametrize("name", ["v1.0.0", "churn-model@1.0.0", "churn-model#production", "churn-model@v1.0",
                                  "Churn@v1.0.0", "churn-model#production#0",
                                  "churn-model@v1.0.0-01", "churn-model@v01.0.0", "churn-model@v1.0.0\n",
                                  "churn-model#production#1\n", "churn-model@v1.0.0-\u0661"])
def test_not_registry_tag_names(name: str) -> None:
    assert parse_tag_name(name) is None


def test_dvc_hash_matches_dvc_for_a_directory(tmp_path: Path) -> None:
    """The .dir hash DVC 3 writes (what promote checks the workspace against), checked against `dvc add`."""
    repo = init_repo(tmp_path / "repo")
    dvc(repo, "init", "-q")
    d = repo / "models"
    (d / "sub").mkdir(parents=True)
    (d / "model.ubj").write_bytes(b"\x00\x01model")
    (d / "sub" / "b.json").write_text("{}\n")
    (d / "a-b.txt").write_text("x")
    dvc(repo, "add", "-q", "models")
    recorded = yaml.safe_load((repo / "models.dvc").read_text())["outs"][0]["md5"]
    assert dvc_hash(d) == recorded
    assert dvc_hash(d / "model.ubj") == hashlib.md5(b"\x00\x01model").hexdigest()


@pytest.mark.parametrize(("lock", "message"), [
    ({"stages": 5}, "key 'stages' must be a mapping of stage names, got int"),
    ({"stages": {"train": 5}}, "stage 'train' must be a mapping"),
    ({"stages": {"train": {"outs": 5}}}, "key 'stages.train.outs' must be a list"),
    ({"stages": {"train": {"outs": [5]}}}, "key 'stages.train.outs[0]' must be a mapping with a 'path'"),
    ({"stages": {"train": {"deps": [{"md5": "a"}]}}}, "key 'stages.train.deps[0]' must be a mapping with a 'path'"),
    ({"stages": {"train": {"outs": [{"path": True}]}}}, "key 'stages.train.outs[0]' must be a mapping"),
])
def test_odd_dvc_lock_shapes_are_one_validators_errors_naming_dvc_lock(lock: dict[str, object],
                                                                        message: str) -> None:
    from mlops.dvc import check_lock_shape, parse_lock
    from mlops.errors import DvcError

    with pytest.raises(DvcError, match=r"^dvc\.lock: ") as err:
        check_lock_shape(lock)
    assert message in err.value.message
    with pytest.raises(DvcError, match=r"dvc\.lock at main"):
        parse_lock(yaml.safe_dump(lock), "dvc.lock at main (0123abcd)")


def test_data_deps_are_the_inputs_no_stage_produces() -> None:
    from mlops.dvc import data_deps

    lock = {"stages": {"prepare": {"deps": [{"path": "data/raw.csv", "md5": "r"}, {"path": "prep.py", "md5": "c"}],
                                   "outs": [{"path": "data/prepared/", "md5": "p.dir"}]},
                       "train": {"deps": [{"path": "data/prepared", "md5": "p.dir"}, {"path": "extra/", "md5": "e"}]},
                       "empty": None}}
    assert data_deps(lock) == {"data/raw.csv": "r", "extra": "e"}

"""mlops.project: the one artifact resolver and the headline rule, on dvc.yaml files of every shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops.config import RegistryParams
from mlops.errors import ArtifactNotFound
from mlops.project import artifact_name, headline, resolve_artifact


def _dvc_yaml(root: Path, artifacts: dict[str, dict[str, str]]) -> Path:
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {}, "artifacts": artifacts}))
    return root


def test_the_only_model_artifact_wins_over_a_dataset_listed_first(tmp_path: Path) -> None:
    root = _dvc_yaml(tmp_path, {"tickets": {"path": "data/t.csv", "type": "dataset"},
                                "text-clf": {"path": "model/clf.joblib", "type": "model"}})
    found = resolve_artifact(root, RegistryParams())
    assert (found.name, found.path) == ("text-clf", "model/clf.joblib")


def test_registry_artifact_names_the_model_and_must_be_declared(tmp_path: Path) -> None:
    root = _dvc_yaml(tmp_path, {"a": {"path": "a.pkl", "type": "model"}, "b": {"path": "b.onnx", "type": "model"}})
    assert resolve_artifact(root, RegistryParams(artifact="b")).path == "b.onnx"
    with pytest.raises(ArtifactNotFound, match=r"registry\.artifact': 'c' is not declared .*declared: a \(model\), "
                                               r"b \(model\)"):
        resolve_artifact(root, RegistryParams(artifact="c"))


def test_two_models_and_no_setting_is_an_error_naming_both(tmp_path: Path) -> None:
    root = _dvc_yaml(tmp_path, {"a": {"path": "a.pkl", "type": "model"}, "b": {"path": "b.onnx", "type": "model"}})
    with pytest.raises(ArtifactNotFound, match=r"2 artifacts of type model \(a \(model\), b \(model\)\)") as err:
        resolve_artifact(root, RegistryParams())
    assert err.value.hint == "set registry.artifact in params.yaml"


def test_no_model_artifact_is_an_error_for_promote_and_none_for_the_report(tmp_path: Path) -> None:
    root = _dvc_yaml(tmp_path, {"tickets": {"path": "data/t.csv", "type": "dataset"}})
    with pytest.raises(ArtifactNotFound, match=r"no artifact of type model under artifacts: \(declared: tickets "
                                               r"\(dataset\)\)"):
        resolve_artifact(root, RegistryParams())
    assert artifact_name(root, RegistryParams()) is None
    with pytest.raises(ArtifactNotFound):  # a named artifact that is not declared stays an error
        artifact_name(root, RegistryParams(artifact="churn-model"))


def test_headline_is_configured_else_the_first_metric() -> None:
    assert headline("test.f1", ["accuracy", "f1"]) == "test.f1"
    assert headline(None, ["accuracy", "f1"]) == "accuracy"
    assert headline(None, []) is None

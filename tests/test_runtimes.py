"""The model package's formats (mlops.formats.manifest, golden) and the runtimes (mlops.runtimes) on four example
models that are not churn (tests/examples.py): each runtime's answers equal the framework's own offline ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlops.errors import MissingExtra, ModelInvalid
from mlops.files import sha256_file
from mlops.formats.golden import Golden, parse_golden, read_golden, write_golden
from mlops.formats.manifest import (
    ManifestInvalid,
    dump_manifest,
    feature_schema_of,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from mlops.package import PackageRequest, package_model
from mlops.profile import check_profile, load_profile
from mlops.registry.interface import parse_versioned_interface, versioned_interface_of
from mlops.runtimes import RuntimeMissing, UnverifiedModel, load_runtime
from tests.examples import BUILDERS, Example, as_records, build


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Example, Path]]:
    root = tmp_path_factory.mktemp("examples")
    out: dict[str, tuple[Example, Path]] = {}
    for name in BUILDERS:
        ex = build(name, root / name)
        package_model(PackageRequest(ex.model, ex.data, ex.target, ex.task, code=ex.code, out=root / name / "pkg"))
        out[name] = (ex, root / name / "pkg")
    return out


def trusted(pkg: Path) -> dict[str, str]:
    return {f.path: sha256_file(pkg / f.path) for f in read_manifest(pkg).files}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_runtime_equals_the_frameworks_offline_predictions(packaged: dict[str, Any], name: str) -> None:
    ex, pkg = packaged[name]
    rt = load_runtime(pkg, sha256=trusted(pkg))
    x = ex.features()
    got = rt.predict_records(as_records(x))
    offline = ex.offline(x)
    assert got.values.shape == offline.shape
    np.testing.assert_allclose(got.values, offline, rtol=0, atol=1e-6)
    # The columns entry point (what a V2 request carries) gives the same answers as records.
    cols = {c: x[c].tolist() for c in x.columns}
    np.testing.assert_array_equal(rt.predict_columns(cols).values, got.values)
    if rt.takes_matrix:  # the encoded-matrix entry point too
        from mlops.features import encode_records

        np.testing.assert_array_equal(rt.predict_matrix(encode_records(rt.interface, as_records(x), rt.dtype)).values,
                                      got.values)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_golden_records_equal_a_fresh_load(packaged: dict[str, Any], name: str) -> None:
    ex, pkg = packaged[name]
    m = read_manifest(pkg)
    golden = read_golden(pkg / m.golden)
    assert golden.task == ex.task and len(golden.records) == 32
    fresh = load_runtime(pkg, sha256=trusted(pkg)).predict_records([dict(r) for r in golden.records])
    assert golden.compare(fresh.rows()) == []
    np.testing.assert_allclose(np.asarray(golden.flat()), fresh.values.reshape(-1), rtol=0, atol=1e-6)
    assert golden.model_sha256 == sha256_file(pkg / m.files[0].path)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_manifest_round_trips_and_outputs_follow_the_task(packaged: dict[str, Any], name: str) -> None:
    ex, pkg = packaged[name]
    text = (pkg / "mlops-model.yaml").read_text()
    m = read_manifest(pkg)
    assert dump_manifest(m) == text
    assert parse_manifest(yaml.safe_load(text)) == m
    assert m.runtime == ex.runtime and m.task == ex.task and m.target == ex.target
    names = [o.name for o in m.outputs]
    assert names == {"binary": ["probability", "label"], "multiclass": ["probabilities", "label"],
                     "regression": ["value"]}[ex.task]
    rt = load_runtime(pkg, sha256=trusted(pkg))
    recs = rt.predict_records(as_records(ex.features().head(3))).records()
    assert [sorted(r) for r in recs] == [sorted(names)] * 3
    if ex.task == "multiclass":
        assert list(recs[0]["probabilities"]) == list(m.classes or ())
        assert recs[0]["label"] == max(recs[0]["probabilities"], key=recs[0]["probabilities"].get)
    profile = load_profile(pkg / m.reference)
    assert profile.get("task", "binary") == ex.task
    assert profile["rows"] == len(ex.features())
    # The registry versions the same interface the runtimes serve.
    iface = versioned_interface_of(m)
    assert [f.name for f in iface.features] == m.interface.names
    assert parse_versioned_interface(iface.to_json()) == iface


def test_binary_manifest_describes_its_output_as_churn_does(packaged: dict[str, Any]) -> None:
    _, pkg = packaged["sklearn-binary"]
    m = read_manifest(pkg)
    assert m.output_description() == {"name": "probability", "type": "float", "label": "diagnosis",
                                      "positive": "malignant"}
    schema = feature_schema_of(m)
    assert schema["format"] == "mlops.feature-schema/1"
    assert [f["name"] for f in schema["features"]] == m.interface.names


def test_labels_follow_the_threshold(packaged: dict[str, Any]) -> None:
    ex, pkg = packaged["sklearn-binary"]
    rt = load_runtime(pkg, sha256=trusted(pkg))
    p = rt.predict_records(as_records(ex.features()))
    assert p.labels() == ["malignant" if v >= 0.5 else "benign" for v in p.values]


def test_bad_records_are_refused_naming_the_field(packaged: dict[str, Any]) -> None:
    from mlops.features import FeatureError

    ex, pkg = packaged["sklearn-binary"]
    rt = load_runtime(pkg, sha256=trusted(pkg))
    rec = as_records(ex.features().head(1))[0]
    with pytest.raises(FeatureError, match="size_band") as exc:
        rt.predict_records([{**rec, "size_band": "huge"}])
    assert exc.value.field == "size_band"
    with pytest.raises(FeatureError, match="'mean radius' is missing"):
        rt.predict_records([{k: v for k, v in rec.items() if k != "mean radius"}])


def test_code_running_files_load_only_after_a_trusted_sha256(packaged: dict[str, Any], tmp_path: Path) -> None:
    _, pkg = packaged["python-multiclass"]
    with pytest.raises(UnverifiedModel, match="runs code when loaded"):
        load_runtime(pkg)
    bad = dict(trusted(pkg))
    bad["iris_model.py"] = "0" * 64
    with pytest.raises(ModelInvalid, match="differs from the trusted"):
        load_runtime(pkg, sha256=bad)
    # A model file changed after packaging: the manifest's own sha256 refuses it, whatever the caller trusts.
    import shutil

    copy = tmp_path / "pkg"
    shutil.copytree(pkg, copy)
    (copy / "centroids.json").write_text((copy / "centroids.json").read_text().replace("4.0", "5.0"))
    with pytest.raises(ModelInvalid, match="differs from the manifest"):
        load_runtime(copy, sha256=trusted(copy))


def test_a_pickled_pipeline_needs_its_sha256(packaged: dict[str, Any], tmp_path: Path) -> None:
    import joblib
    import skops.io as sio

    ex, _ = packaged["sklearn-binary"]
    pipe = sio.load(ex.model, trusted=sio.get_untrusted_types(file=str(ex.model)))
    model = tmp_path / "model.joblib"
    joblib.dump(pipe, model)
    package_model(PackageRequest(model, ex.data, ex.target, "binary", out=tmp_path / "pkg"))
    with pytest.raises(UnverifiedModel, match="runs code when loaded"):
        load_runtime(tmp_path / "pkg")
    rt = load_runtime(tmp_path / "pkg", sha256={"model.joblib": sha256_file(model)})
    x = ex.features()
    np.testing.assert_allclose(rt.predict_records(as_records(x)).values, ex.offline(x), rtol=0, atol=1e-6)


def test_a_missing_framework_names_the_install_line(packaged: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, pkg = packaged["lightgbm-multiclass"]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "lightgbm" else real(n, *a))
    with pytest.raises(RuntimeMissing) as exc:
        load_runtime(pkg)
    assert isinstance(exc.value, MissingExtra) and exc.value.exit_code == 1
    assert exc.value.hint == 'pip install "mlops[lightgbm]"'


# --- the formats alone -------------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "format": 1, "runtime": "sklearn", "files": [{"path": "model.skops"}], "task": "binary", "classes": ["No", "Yes"],
    "interface": {"inputs": [{"name": "tenure", "type": "int", "range": [0, 72]},
                             {"name": "contract", "type": "category", "categories": ["a", "b"]},
                             {"name": "note", "type": "string", "nullable": True}]},
}


@pytest.mark.parametrize(("change", "needle"), [
    ({"format": 2}, "key 'format'"),
    ({"runtime": "torch"}, "key 'runtime'"),
    ({"task": "ranking"}, "key 'task'"),
    ({"files": ["../model.skops"]}, "key 'files[0]'"),
    ({"files": ["/abs/model.skops"]}, "key 'files[0]'"),
    ({"classes": ["No", True]}, "key 'classes[1]'"),
    ({"classes": ["No", "Yes", "Maybe"]}, "key 'classes'"),
    ({"threshold": 1.5}, "key 'threshold'"),
    ({"golden": "../g.json"}, "key 'golden'"),
    ({"entrypoint": "m.py:M"}, "key 'entrypoint'"),
    ({"runtime": "python"}, "key 'entrypoint'"),
    ({"colour": "red"}, "key 'colour'"),
    ({"interface": {"inputs": [{"name": "x", "type": "text"}]}}, "interface.inputs[0]"),
    ({"interface": {"inputs": [{"name": "x", "type": "int", "range": [3, 1]}]}}, "interface.inputs[0].range"),
    ({"interface": {"inputs": [{"name": "x", "type": "int"}], "outputs": [{"name": "p", "type": "float"}]}},
     "interface.outputs"),
])
def test_manifest_errors_are_one_line_naming_file_and_key(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(ManifestInvalid) as exc:
        parse_manifest({**BASE, **change}, "models/mlops-model.yaml")
    assert exc.value.message.startswith("models/mlops-model.yaml: ")
    assert needle in exc.value.message and "\n" not in exc.value.message


def test_manifest_writer_reader_round_trip(tmp_path: Path) -> None:
    m = parse_manifest(BASE)
    assert m.positive == "Yes" and m.decision_threshold == 0.5
    assert m.interface.input("note").nullable and m.interface.input("tenure").range == (0.0, 72.0)
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    with pytest.raises(ManifestInvalid, match=r"string has no feature_schema\.json form"):
        feature_schema_of(m)
    with pytest.raises(ManifestInvalid, match="file not found"):
        read_manifest(tmp_path / "nope")


def test_golden_round_trip_and_tolerance(tmp_path: Path) -> None:
    g = Golden(records=({"a": 1},), predictions=((0.2, 0.8),), task="multiclass", classes=("x", "y"),
               output="probabilities")
    write_golden(tmp_path / "g.json", g)
    assert read_golden(tmp_path / "g.json") == g
    reg = Golden(records=({"a": 1}, {"a": 2}), predictions=(150.0, 0.5), task="regression", output="value")
    # relative beyond 1: 150 +- 1e-4 matches, 0.5 + 1e-5 does not
    assert [m.record for m in reg.compare([150.0001, 0.50001])] == [1]
    assert parse_golden({"records": [{"a": 1}], "predictions": [[0.3]]}).predictions == (0.3,)
    with pytest.raises(ModelInvalid, match=r"key 'predictions\[0\]'"):
        parse_golden({"task": "multiclass", "classes": ["x", "y"], "records": [{"a": 1}], "predictions": [[0.3]]},
                     "g.json")


def test_profile_per_task_validates() -> None:
    from mlops.profile import build_profile

    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=200).tolist()}
    iface = {"features": [{"name": "a", "type": "float"}], "output": {}}
    probs = rng.dirichlet([1, 1, 1], size=200)
    multi = build_profile(x, iface, probs, rng.integers(0, 3, 200), task="multiclass", classes=["p", "q", "r"])
    assert multi["task"] == "multiclass" and set(multi["prediction"]["probabilities"]) == {"p", "q", "r"}
    assert sum(multi["prediction"]["labels"]["counts"]) == 200 and 0 <= multi["metrics"]["macro_f1"] <= 1
    values = rng.normal(100, 10, 200)
    reg = build_profile(x, iface, values, values + 1.0, task="regression")
    assert reg["metrics"]["mae"] == pytest.approx(1.0) and reg["prediction"]["kind"] == "numeric"
    for p in (multi, reg):
        check_profile(p)
    with pytest.raises(ModelInvalid, match="class indices"):
        build_profile(x, iface, probs, np.full(200, 5), task="multiclass", classes=["p", "q", "r"])

"""`mlops package` (the CLI, the library call and a DVC stage) on the four example models of tests/examples.py."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlops.cli import app
from mlops.errors import DataInvalid, ParamsInvalid
from mlops.files import sha256_file
from mlops.formats.golden import read_golden
from mlops.formats.manifest import dump_manifest, read_manifest
from mlops.package import PackageRequest, package_model
from mlops.runtimes import load_runtime
from tests.examples import BUILDERS, Example, as_records, build
from tests.helpers import dvc, init_repo, runner


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Example]:
    root = tmp_path_factory.mktemp("pkg-examples")
    return {name: build(name, root / name) for name in BUILDERS}


def trusted(pkg: Path) -> dict[str, str]:
    return {f.path: sha256_file(pkg / f.path) for f in read_manifest(pkg).files}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_cli_writes_a_package_that_serves_the_offline_answers(examples: dict[str, Example], name: str,
                                                              tmp_path: Path) -> None:
    ex = examples[name]
    out = tmp_path / "pkg"
    res = runner.invoke(app, ex.cli_args(out))
    assert res.exit_code == 0, res.output
    assert f"({ex.runtime}, {ex.task})" in res.output and "golden records: 32" in res.output
    m = read_manifest(out)
    assert dump_manifest(m) == (out / "mlops-model.yaml").read_text()  # the file round-trips byte for byte
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f.path for f in m.files] + ["mlops-model.yaml", "golden.json", "reference.json"])  # no staging left
    rt = load_runtime(out, sha256=trusted(out))
    x = ex.features()
    np.testing.assert_allclose(rt.predict_records(as_records(x)).values, ex.offline(x), rtol=0, atol=1e-6)
    golden = read_golden(out / "golden.json")
    assert golden.compare(load_runtime(out, sha256=trusted(out)).predict_records(
        [dict(r) for r in golden.records]).rows()) == []


def test_library_call_packages_in_place_and_is_reproducible(examples: dict[str, Example], tmp_path: Path) -> None:
    ex = examples["sklearn-binary"]
    d = tmp_path / "models"
    d.mkdir()
    shutil.copy(ex.model, d / "model.skops")
    req = PackageRequest(d / "model.skops", ex.data, ex.target, "binary")
    first = package_model(req)
    assert first.directory == d and (d / "mlops-model.yaml").is_file()
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    package_model(req)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # same inputs, same bytes


def test_params_override_what_is_inferred(examples: dict[str, Example], tmp_path: Path) -> None:
    ex = examples["sklearn-binary"]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"package": {
        "threshold": 0.3, "golden_rows": 5, "seed": 7, "positive": "benign",
        "overrides": {"size_band": {"categories": ["small", "medium", "large", "huge"]}}}}))
    res = runner.invoke(app, [*ex.cli_args(tmp_path / "pkg"), "--params", str(params)])
    assert res.exit_code == 0, res.output
    m = read_manifest(tmp_path / "pkg")
    assert m.threshold == 0.3 and m.classes == ("malignant", "benign") and m.positive == "benign"
    assert m.interface.input("size_band").categories == ("small", "medium", "large", "huge")
    golden = read_golden(tmp_path / "pkg" / "golden.json")
    assert len(golden.records) == 5
    rt = load_runtime(tmp_path / "pkg", sha256=trusted(tmp_path / "pkg"))
    x = ex.features()
    p = rt.predict_records(as_records(x))
    np.testing.assert_allclose(p.values, 1 - ex.offline(x), rtol=0, atol=1e-6)  # P(benign) now
    assert p.labels() == ["benign" if v >= 0.3 else "malignant" for v in p.values]


@pytest.mark.parametrize(("change", "needle"), [
    ({"target": "nope"}, "test.csv: column 'nope' (the target) is not in the data"),
    ({"task": "multiclass"}, None),  # a binary pipeline as multiclass: its 2 classes are fine, so this passes
    ({"data": "missing.csv"}, "missing.csv: data file not found"),
    ({"model": "model.bin"}, "model.bin: model file not found"),
])
def test_bad_input_is_one_line_naming_file_and_column(examples: dict[str, Example], tmp_path: Path,
                                                       change: dict[str, str], needle: str | None) -> None:
    ex = examples["sklearn-binary"]
    args = {"model": str(ex.model), "data": str(ex.data), "target": ex.target, "task": ex.task}
    for k, v in change.items():
        args[k] = str(tmp_path / v) if k in ("data", "model") else v
    out = tmp_path / "pkg"
    res = runner.invoke(app, ["package", *[x for k, v in args.items() for x in (f"--{k}", v)], "--out", str(out)])
    if needle is None:
        assert res.exit_code == 0, res.output
        return
    assert res.exit_code == 1, res.output
    error = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and needle in error[0]
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_bad_package_params_and_data_name_key_and_column(examples: dict[str, Example], tmp_path: Path) -> None:
    ex = examples["lightgbm-multiclass"]
    params = tmp_path / "params.yaml"
    params.write_text("package:\n  golden_rows: many\n")
    res = runner.invoke(app, [*ex.cli_args(tmp_path / "pkg"), "--params", str(params)])
    assert res.exit_code == 1 and "key 'package.golden_rows'" in res.output
    frame = ex.features()
    frame[ex.target] = 7  # one class only, and not the model's
    bad = tmp_path / "bad.csv"
    frame.drop(columns=["alcohol"]).to_csv(bad, index=False)
    with pytest.raises(DataInvalid, match=r"bad\.csv: column 'alcohol' .* not in the data"):
        package_model(PackageRequest(ex.model, bad, ex.target, "multiclass", out=tmp_path / "p2"))
    from mlops.config import read_params

    with pytest.raises(ParamsInvalid, match=r"package\.golden_rows"):
        _ = read_params(params).package
    res = runner.invoke(app, [*ex.cli_args(tmp_path / "p3")[:-2], "--task", "ranking"])
    assert res.exit_code == 1 and "--task: 'ranking' is not a task" in res.output


@pytest.mark.slow
def test_package_runs_as_a_dvc_stage(examples: dict[str, Example], tmp_path: Path) -> None:
    """An adopter's dvc.yaml: `mlops package` as a stage after their own training, its package one DVC output."""
    ex = examples["lightgbm-multiclass"]
    repo = init_repo(tmp_path / "wine")
    dvc(repo, "init", "-q")
    (repo / "models").mkdir()
    (repo / "data").mkdir()
    shutil.copy(ex.model, repo / "models/model.lgb")
    shutil.copy(ex.data, repo / "data/test.csv")
    (repo / "params.yaml").write_text(yaml.safe_dump({"package": {"golden_rows": 8, "seed": 3}}))
    cmd = (f"{sys.executable} -m mlops package --model models/model.lgb --data data/test.csv --target cultivar "
           "--task multiclass --out package")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({
        "stages": {"package": {"cmd": cmd, "deps": ["models/model.lgb", "data/test.csv"],
                               "params": ["package"], "outs": ["package"]}},
        "artifacts": {"wine-model": {"path": "package", "type": "model"}}}, sort_keys=False))
    dvc(repo, "repro", "-q")
    m = read_manifest(repo / "package")
    assert m.runtime == "lightgbm" and m.classes == ("0", "1", "2")
    assert len(read_golden(repo / "package/golden.json").records) == 8
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert [o["path"] for o in lock["stages"]["package"]["outs"]] == ["package"]
    again = dvc(repo, "repro")
    assert "didn't change, skipping" in again.stdout or "up to date" in again.stdout
    rt = load_runtime(repo / "package", sha256=trusted(repo / "package"))
    x = ex.features()
    np.testing.assert_allclose(rt.predict_records(as_records(x)).values, ex.offline(x), rtol=0, atol=1e-6)
    profile = json.loads((repo / "package/reference.json").read_text())
    assert profile["task"] == "multiclass" and profile["classes"] == ["0", "1", "2"]


# --- one code path: the churn train stage writes its package through mlops.packaging, as `mlops package` does --


@pytest.mark.slow
def test_churn_train_stage_and_mlops_package_write_the_same_package(trained_project: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlops package` on the trained churn model and its test split, with the train stage's settings written as a
    `package:` section, writes the very bytes the train stage wrote (manifest, golden records, reference profile);
    the manifest's interface is the one feature_schema.json states, so the registry versions it the same."""
    from mlops.config import load_params
    from mlops.registry.interface import read_versioned_interface, versioned_interface_of
    from mlops.stages.data import TRAIN_FILE, features_and_label, load_prepared
    from mlops.stages.train import package_params

    root = trained_project
    models = root / "models"
    params = load_params(root / "params.yaml")
    x, _ = features_and_label(load_prepared(root / TRAIN_FILE, params.data), params.data)
    section = package_params(x, params).model_dump(mode="json", exclude_defaults=True)
    assert section["golden_spread"] is True and section["threshold"] == 0.4
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"package": section}, sort_keys=False))
    out = tmp_path / "pkg"
    monkeypatch.chdir(root)  # golden.json records its source relative to the project, as the stage does
    res = runner.invoke(app, ["package", "--model", "models/model.ubj", "--data", "data/prepared/test.csv",
                              "--target", "churn", "--task", "binary", "--out", str(out), "--params",
                              str(params_file)])
    assert res.exit_code == 0, res.output
    for name in ("mlops-model.yaml", "golden.json", "reference.json", "model.ubj"):
        assert (out / name).read_bytes() == (models / name).read_bytes(), name
    m = read_manifest(models)
    assert (m.runtime, m.task, m.classes, m.threshold, m.target) == ("xgboost", "binary", ("No", "Yes"), 0.4,
                                                                     "churn")
    assert m.files[0].sha256 == sha256_file(models / "model.ubj")
    # The registry's view (bump and hash) is the same whichever file it reads.
    assert versioned_interface_of(m) == read_versioned_interface(models / "feature_schema.json")
    # The package serves the offline answers of the evaluate stage (reports/predictions.csv).
    golden = read_golden(models / "golden.json")
    offline = np.loadtxt(root / "reports/predictions.csv", delimiter=",", skiprows=1)[:, 1]
    np.testing.assert_allclose(golden.predictions, offline[list(golden.rows or ())], rtol=0, atol=1e-6)
    rt = load_runtime(models, sha256=trusted(models))
    assert golden.compare(rt.predict_records([dict(r) for r in golden.records]).rows()) == []


# --- `mlops init`: the package stage a project without a manifest needs --------------------------------------------


def test_init_suggests_a_package_stage_for_a_model_without_a_manifest(tmp_path: Path) -> None:
    from mlops.dvc import Artifact
    from mlops.jobs.init import package_stage

    (tmp_path / "models").mkdir()
    (tmp_path / "models/model.skops").write_bytes(b"not read")
    dvc_yaml = {"stages": {"train": {"cmd": "python train.py", "deps": ["data/train.csv", "data/test.csv"],
                                     "outs": ["models"]}}}
    art = Artifact("clf", "models", "model", "", ())
    text = package_stage(tmp_path, art, dvc_yaml)
    assert text is not None
    doc = yaml.safe_load(text)
    stage = doc["stages"]["package"]
    assert stage["cmd"] == ("mlops package --model models/model.skops --data data/test.csv --target "
                            "<TARGET COLUMN> --task <binary|multiclass|regression> --out package")
    assert stage["deps"] == ["models/model.skops", "data/test.csv"] and stage["outs"] == ["package"]
    assert doc["artifacts"] == {"clf": {"path": "package", "type": "model"}}
    # A model file whose runtime the suffix does not tell asks for --runtime; no held-out file: a placeholder.
    odd = package_stage(tmp_path, Artifact("clf", "model/clf.bin", "model", "", ()), {"stages": {}})
    assert odd is not None and "--runtime <xgboost|lightgbm|sklearn|onnx|python>" in odd
    assert "--data <HELD-OUT DATA>" in odd
    # Packaged already: a manifest in the artifact, or a stage that runs `mlops package`.
    (tmp_path / "models/mlops-model.yaml").write_text("format: 1\n")
    assert package_stage(tmp_path, art, dvc_yaml) is None
    (tmp_path / "models/mlops-model.yaml").unlink()
    staged = {"stages": {**dvc_yaml["stages"], "pkg": {"cmd": "mlops package --model models/model.skops"}}}
    assert package_stage(tmp_path, art, staged) is None


@pytest.mark.slow
def test_init_prints_the_package_stage_and_leaves_dvc_yaml_alone(tmp_path: Path) -> None:
    import mlops.cli.init  # noqa: F401  (registers `mlops init`)
    from tests.foreign import MODEL_PATH, make_foreign_project

    root = make_foreign_project(tmp_path / "project")
    before = (root / "dvc.yaml").read_bytes()
    res = runner.invoke(app, ["init", str(root), "--actions-sha", "0123456789abcdef0123456789abcdef01234567"])
    assert res.exit_code == 0, res.output
    assert "Package the model: merge the `package` stage printed below into dvc.yaml" in res.output
    printed = res.output.split("the package stage to add to dvc.yaml:\n", 1)[1]
    doc = yaml.safe_load("\n".join(line[4:] for line in printed.splitlines() if line.startswith("    ")))
    assert doc["stages"]["package"]["deps"][0] == MODEL_PATH
    assert doc["stages"]["package"]["cmd"].startswith(f"mlops package --model {MODEL_PATH} --data <HELD-OUT DATA>")
    assert (root / "dvc.yaml").read_bytes() == before

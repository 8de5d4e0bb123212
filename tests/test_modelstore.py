"""The model store that deploy writes and the server reads: checksums before and after installation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops import modelstore
from mlops.errors import ModelStoreError
from mlops.files import sha256_file
from mlops.modelstore import META_FILE, NotInStore


def artifact(tmp_path: Path, content: bytes = b"model bytes v1", name: str = "art") -> tuple[Path, str]:
    d = tmp_path / name
    d.mkdir()
    (d / "model.ubj").write_bytes(content)
    (d / "feature_schema.json").write_text(json.dumps({"format": "mlops.feature-schema/1",
                                                      "features": [{"name": "x", "type": "int"}], "output": {}}))
    (d / "golden.json").write_text("{}")
    return d, sha256_file(d / "model.ubj")


def test_install_then_get(tmp_path: Path) -> None:
    src, sha = artifact(tmp_path)
    store = tmp_path / "store"
    got = modelstore.install(store, "churn-model", "v1.0.0", src, model_file="model.ubj", model_sha256=sha,
                             meta={"tag": "churn-model@v1.0.0", "commit": "abc", "metrics": {"auc": 0.8}})
    assert got.path == store / "churn-model" / "v1.0.0"
    assert sorted(p.name for p in got.path.iterdir()) == ["feature_schema.json", "golden.json", META_FILE,
                                                          "model.ubj"]
    meta = json.loads((got.path / META_FILE).read_text())
    assert list(meta)[:9] == ["format", "name", "version", "model_file", "model_sha256", "tag", "commit",
                              "installed_at", "interface"]
    assert meta["format"] == "mlops.modelstore/1" and meta["model_sha256"] == sha and meta["metrics"] == {"auc": 0.8}
    assert meta["interface"]["features"] == [{"name": "x", "type": "int"}]  # read from the artifact when not given
    again = modelstore.get(store, "churn-model", "v1.0.0")
    assert again == got and again.model_path.read_bytes() == b"model bytes v1" and again.interface is not None
    assert [p.name for p in (store / "churn-model").iterdir()] == ["v1.0.0"]  # no temporary directory left


def test_checksum_mismatch_refused_before_install(tmp_path: Path) -> None:
    src, _ = artifact(tmp_path)
    with pytest.raises(ModelStoreError, match="does not match the registered"):
        modelstore.install(tmp_path / "store", "m", "v1.0.0", src, model_file="model.ubj", model_sha256="0" * 64,
                           meta={})
    assert modelstore.versions(tmp_path / "store", "m") == []
    assert not (tmp_path / "store" / "m" / "v1.0.0").exists()


def test_install_is_idempotent_and_versions_immutable(tmp_path: Path) -> None:
    src, sha = artifact(tmp_path)
    other, other_sha = artifact(tmp_path, b"other bytes", "other")
    store = tmp_path / "store"
    first = modelstore.install(store, "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha, meta={})
    second = modelstore.install(store, "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha.upper(),
                                meta={})
    assert second.meta.installed_at == first.meta.installed_at
    with pytest.raises(ModelStoreError, match="already installed"):
        modelstore.install(store, "m", "v1.0.0", other, model_file="model.ubj", model_sha256=other_sha, meta={})
    assert modelstore.get(store, "m", "v1.0.0").model_path.read_bytes() == b"model bytes v1"


def test_tampered_copy_refused_on_get_and_repaired_by_reinstall(tmp_path: Path) -> None:
    src, sha = artifact(tmp_path)
    store = tmp_path / "store"
    installed = modelstore.install(store, "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha, meta={})
    installed.model_path.write_bytes(b"model bytes v1 + a backdoor")
    with pytest.raises(ModelStoreError, match="changed after it was installed"):
        modelstore.get(store, "m", "v1.0.0")
    repaired = modelstore.install(store, "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha, meta={})
    assert repaired.model_path.read_bytes() == b"model bytes v1"
    installed.model_path.unlink()
    with pytest.raises(ModelStoreError, match="missing"):
        modelstore.get(store, "m", "v1.0.0")


def test_missing_versions_and_names(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with pytest.raises(NotInStore, match="not in the model store"):
        modelstore.get(store, "m", "v1.0.0")
    assert modelstore.versions(store, "m") == [] and modelstore.names(store) == []
    assert modelstore.latest(store, "m") is None
    (store / "m" / "v2.0.0").mkdir(parents=True)  # a directory without metadata is not a version
    assert modelstore.versions(store, "m") == []
    with pytest.raises(NotInStore, match="not installed"):
        modelstore.get(store, "m", "v2.0.0")


def test_versions_in_semver_order(tmp_path: Path) -> None:
    src, sha = artifact(tmp_path)
    store = tmp_path / "store"
    order = ["v1.0.0-rc.1", "v1.0.0", "v1.2.0", "v1.9.0", "v1.10.0-alpha", "v1.10.0-alpha.2", "v1.10.0-beta",
             "v1.10.0", "v2.0.0"]
    for v in reversed(order):
        modelstore.install(store, "m", v, src, model_file="model.ubj", model_sha256=sha, meta={})
    assert modelstore.versions(store, "m") == order
    assert modelstore.latest(store, "m") == "v2.0.0" and modelstore.names(store) == ["m"]


@pytest.mark.parametrize(("name", "version", "model_file"), [
    ("../evil", "v1.0.0", "model.ubj"), ("m/x", "v1.0.0", "model.ubj"), ("m", "latest", "model.ubj"),
    ("m", "v1.0", "model.ubj"), ("m", "v1.0.0", "../model.ubj"), ("m", "v1.0.0", "/etc/passwd"),
])
def test_names_versions_and_paths_are_checked(tmp_path: Path, name: str, version: str, model_file: str) -> None:
    src, sha = artifact(tmp_path)
    with pytest.raises(ModelStoreError):
        modelstore.install(tmp_path / "store", name, version, src, model_file=model_file, model_sha256=sha, meta={})


def test_damaged_metadata_is_an_error(tmp_path: Path) -> None:
    src, sha = artifact(tmp_path)
    store = tmp_path / "store"
    got = modelstore.install(store, "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha, meta={})
    (got.path / META_FILE).write_text("{not json")
    with pytest.raises(ModelStoreError, match="not valid JSON"):
        modelstore.get(store, "m", "v1.0.0")
    (got.path / META_FILE).write_text(json.dumps({"format": "mlops.modelstore/1", "name": "m", "version": "v9.9.9",
                                                  "model_file": "model.ubj", "model_sha256": sha}))
    with pytest.raises(ModelStoreError, match=r"describes m v9\.9\.9"):
        modelstore.get(store, "m", "v1.0.0")


@pytest.mark.parametrize("link", ["notes.txt", "sub/deep.txt", "model.ubj"])
def test_symlinks_in_an_artifact_are_refused_not_followed(tmp_path: Path, link: str) -> None:
    """A link to a host file (/etc/hostname) was installed as a regular file holding the host's content."""
    src, sha = artifact(tmp_path)
    secret = tmp_path / "secret"
    secret.write_bytes(b"model bytes v1" if link == "model.ubj" else b"host secret")
    target = src / link
    target.parent.mkdir(exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(secret)
    store = tmp_path / "store"
    with pytest.raises(ModelStoreError, match=rf"contains symlinks \({link}\): refused"):
        modelstore.install(store, "churn-model", "v1.0.0", src, model_file="model.ubj", model_sha256=sha, meta={})
    assert not store.exists()  # refused before anything was written


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    src, sha = artifact(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_text("x")
    (src / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelStoreError, match=r"contains symlinks \(linked\)"):
        modelstore.install(tmp_path / "store", "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha, meta={})


def test_a_model_file_swapped_for_a_link_in_the_store_is_not_loaded(tmp_path: Path) -> None:
    src, sha = artifact(tmp_path)
    store = tmp_path / "store"
    got = modelstore.install(store, "m", "v1.0.0", src, model_file="model.ubj", model_sha256=sha, meta={})
    same = tmp_path / "same-bytes"
    same.write_bytes(got.model_path.read_bytes())
    got.model_path.unlink()
    got.model_path.symlink_to(same)
    with pytest.raises(ModelStoreError, match="not a regular file"):
        modelstore.get(store, "m", "v1.0.0")


@pytest.mark.parametrize(("name", "version"), [("churn-model\n", "v1.0.0"), ("churn-model", "v1.0.0\n"),
                                               ("churn-model", "1.0.0"), ("../x", "v1.0.0"), ("churn-model", "v1.0")])
def test_names_and_versions_must_match_whole(tmp_path: Path, name: str, version: str) -> None:
    with pytest.raises(ModelStoreError, match="is not a"):
        modelstore.get(tmp_path, name, version)

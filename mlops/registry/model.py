"""What the registry records about the model at HEAD: hashes from dvc.lock, checked against the workspace."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops import dvc
from mlops.config import RegistryParams
from mlops.errors import RegistryError
from mlops.files import md5_file, sha256_of
from mlops.formats.manifest import MANIFEST_FILE, ManifestInvalid, read_manifest
from mlops.registry.interface import VersionedInterface, read_versioned_interface, versioned_interface_of

_HINT_LOCK = "run the pipeline (`mlops run` or `dvc repro`) and commit dvc.lock"


@dataclass(frozen=True)
class ModelFacts:
    artifact: str
    path: str  # the artifact's path (dvc.yaml `artifacts:`), a DVC output
    dvc_md5: str  # its hash in dvc.lock ("<md5>.dir" for a directory)
    model_file: str  # repo-relative path of the model file (or of the artifact directory, checksummed whole)
    model_sha256: str  # sha256 of that file, or of the directory's manifest (files.sha256_tree)
    interface: VersionedInterface | None  # None: the artifact carries no feature_schema.json (any other model format)
    data_md5: str | None  # the input data's hash in dvc.lock (when the pipeline has one data dependency)
    params_sha256: str  # sha256 of every stage's params as dvc.lock recorded them (canonical JSON)
    data: dict[str, str] = field(default_factory=dict)  # every input data dependency in dvc.lock: path -> hash

    def block(self) -> dict[str, Any]:
        """The facts as keyword arguments of the tag's metadata (mlops.formats.tagmeta.TagMeta)."""
        return {"artifact": self.artifact, "path": self.path, "dvc_md5": self.dvc_md5,
                "model_file": self.model_file, "model_sha256": self.model_sha256,
                "interface": self.interface.to_json() if self.interface else None,
                "interface_sha256": self.interface.sha256() if self.interface else None,
                "data_md5": self.data_md5, "data": self.data, "params_sha256": self.params_sha256}


def dvc_hash(path: Path) -> str:
    """DVC 3's `hash: md5` of a file, or of a directory ("<md5 of the sorted entry list>.dir")."""
    if path.is_file():
        return md5_file(path)
    entries = [{"md5": md5_file(p), "relpath": p.relative_to(path).as_posix()}
               for p in path.rglob("*") if p.is_file()]
    entries.sort(key=lambda e: e["relpath"].split("/"))
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"  # noqa: S324


def params_hash(lock: dict[str, Any]) -> str:
    stages = lock.get("stages") or {}
    recorded = {name: (stage or {}).get("params") or {} for name, stage in stages.items()}
    return hashlib.sha256(json.dumps(recorded, sort_keys=True, default=str).encode()).hexdigest()


def require_lock(root: Path) -> dict[str, Any]:
    """The workspace's dvc.lock, checked by the one validator (dvc.check_lock_shape)."""
    if not (root / dvc.DVC_LOCK).is_file():
        raise RegistryError(f"{dvc.DVC_LOCK}: not found: cannot tell which model the pipeline made",
                            hint=_HINT_LOCK)
    return dvc.read_lock(root)


def lock_artifact_hash(root: Path, artifact: dvc.Artifact, lock: dict[str, Any]) -> str:
    """The artifact's hash in dvc.lock; RegistryError when no stage outputs it."""
    h = dvc.output_hash(lock, artifact.path)
    if h is None:
        raise RegistryError(f"dvc.lock has no output '{artifact.path}' (artifact {artifact.name}): no model to "
                            "register", hint=_HINT_LOCK)
    return h


def check_output_file(root: Path, lock: dict[str, Any], path: str) -> bool:
    """Check the workspace file PATH against its md5 in dvc.lock (DVC 3 hashes a file's raw bytes; DVC 2 also
    accepted CRLF turned to LF). True: it matches; False: dvc.lock does not record it as an output.
    RegistryError when it is missing from the workspace or differs from what the pipeline wrote.

    A file inside a directory output (dvclive's `eval/metrics.json` in `outs: [eval]`) is checked through the
    directory's `.dir` hash: any change under it means the pipeline's outputs were edited after it ran."""
    out = dvc.lock_out(lock, path)
    if out is None:
        return _check_inside_dir_output(root, lock, path)
    recorded = out.get("md5")
    target = root / path
    if not target.is_file():
        raise RegistryError(f"{path}: not found in the workspace (dvc.lock records it)",
                            hint="run `dvc pull` or `dvc checkout` to restore it, or `dvc repro`")
    if isinstance(recorded, str) and recorded:
        data = target.read_bytes()
        actual = {hashlib.md5(data).hexdigest()}  # noqa: S324 - DVC's content hash, not security
        if out.get("hash") != "md5":  # a DVC 2 lock: text files were hashed with CRLF turned to LF
            actual.add(hashlib.md5(data.replace(b"\r\n", b"\n")).hexdigest())  # noqa: S324
        if recorded not in actual:
            raise RegistryError(f"{path} does not match dvc.lock: it changed after the pipeline ran",
                                hint="run `dvc repro` to reproduce it (then commit dvc.lock), or `dvc checkout "
                                     f"{path}` to restore the recorded one")
    return True


def _check_inside_dir_output(root: Path, lock: dict[str, Any], path: str) -> bool:
    norm = path.rstrip("/")
    for out in dvc.lock_entries(lock, "outs"):
        out_path, recorded = dvc.entry_path(out), dvc.entry_hash(out)
        if recorded is None or not recorded.endswith(".dir") or not norm.startswith(out_path + "/"):
            continue
        if not (root / norm).is_file():
            raise RegistryError(f"{path}: not found in the workspace (dvc.lock records {out_path}/)",
                                hint="run `dvc pull` or `dvc checkout` to restore it, or `dvc repro`")
        if out.get("hash") == "md5" and dvc_hash(root / out_path) != recorded:
            raise RegistryError(f"{path} does not match dvc.lock: {out_path}/ changed after the pipeline ran",
                                hint=f"run `dvc repro` (then commit dvc.lock), or `dvc checkout {out_path}`")
        return True
    return False


def _model_file(root: Path, target: Path, reg: RegistryParams) -> Path:
    """The file deploy verifies and a server loads: the artifact itself when it is a file, else
    `registry.model_file` inside it; a directory artifact without one is checksummed as a whole."""
    if target.is_file() or reg.model_file is None:
        return target
    model = target / reg.model_file
    if not model.is_file():
        raise RegistryError(f"{model.relative_to(root)}: not found in the model artifact",
                            hint="set registry.model_file in params.yaml to the model file inside "
                                 f"{target.relative_to(root)}/ (or leave it unset to checksum the whole directory)")
    return model


def _interface(root: Path, target: Path, reg: RegistryParams) -> VersionedInterface | None:
    """The model's interface when the artifact carries one: a model package's manifest (mlops-model.yaml, read by
    the one manifest parser), else our feature_schema.json; None for any other model (a pickle, joblib, ONNX or a
    directory of someone else's): it registers all the same, bumping patch."""
    if target.is_dir() and (target / MANIFEST_FILE).is_file():
        try:
            return versioned_interface_of(read_manifest(target))
        except ManifestInvalid as exc:
            raise RegistryError(exc.message, hint=exc.hint) from None
    schema = target / reg.schema_file if target.is_dir() else target.with_name(reg.schema_file)
    if not schema.is_file():
        return None
    try:
        return read_versioned_interface(schema)
    except ManifestInvalid as exc:
        raise RegistryError(f"not a valid feature schema: {exc.message}", hint=exc.hint) from None


def collect_facts(root: Path, artifact: dvc.Artifact, reg: RegistryParams) -> ModelFacts:
    """The model at HEAD: its DVC hash from dvc.lock, checked against the files in the workspace."""
    lock = require_lock(root)
    path = artifact.path
    dvc_md5 = lock_artifact_hash(root, artifact, lock)
    out = dvc.lock_out(lock, path) or {}
    target = root / path
    if not target.exists():
        raise RegistryError(f"{path}: the model artifact is not in the workspace",
                            hint="run `dvc pull` (or `mlops run`) to restore it")
    if out.get("hash") == "md5" and dvc_hash(target) != dvc_md5:
        raise RegistryError(f"{path}: the workspace does not match dvc.lock (hash {dvc_md5})",
                            hint="run `dvc pull` or `dvc checkout` to restore the committed model, "
                                 "or reproduce and commit dvc.lock")
    model = _model_file(root, target, reg)
    data = dict(sorted(dvc.data_deps(lock).items()))
    return ModelFacts(artifact=artifact.name, path=path, dvc_md5=dvc_md5,
                      model_file=model.relative_to(root).as_posix(), model_sha256=sha256_of(model),
                      interface=_interface(root, target, reg),
                      data_md5=next(iter(data.values())) if len(data) == 1 else None,
                      data=data, params_sha256=params_hash(lock))

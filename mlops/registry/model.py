"""What the registry records about the model at HEAD: hashes from dvc.lock, checked against the workspace."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops import dvc
from mlops.config import Params
from mlops.errors import DvcError, RegistryError
from mlops.registry.interface import Interface, parse_interface

_HINT_LOCK = "run the pipeline (`mlops run` or `dvc repro`) and commit dvc.lock"


@dataclass(frozen=True)
class ModelFacts:
    artifact: str
    path: str  # the artifact's path (dvc.yaml `artifacts:`), a DVC output
    dvc_md5: str  # its hash in dvc.lock ("<md5>.dir" for a directory)
    model_file: str  # repo-relative path of the model file
    model_sha256: str
    interface: Interface
    data_md5: str | None  # the raw data's md5 in dvc.lock
    params_sha256: str  # sha256 of every stage's params as dvc.lock recorded them (canonical JSON)

    def block(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "path": self.path, "dvc_md5": self.dvc_md5,
                "model_file": self.model_file, "model_sha256": self.model_sha256,
                "interface": self.interface.to_json(), "interface_sha256": self.interface.sha256(),
                "data_md5": self.data_md5, "params_sha256": self.params_sha256}


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - DVC's content hash, not security
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dvc_hash(path: Path) -> str:
    """DVC 3's `hash: md5` of a file, or of a directory ("<md5 of the sorted entry list>.dir")."""
    if path.is_file():
        return _md5(path)
    entries = [{"md5": _md5(p), "relpath": p.relative_to(path).as_posix()}
               for p in path.rglob("*") if p.is_file()]
    entries.sort(key=lambda e: e["relpath"].split("/"))
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"  # noqa: S324


def _lock_out(lock: dict[str, Any], path: str) -> dict[str, Any] | None:
    norm = path.rstrip("/")
    for stage in (lock.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            if str(out.get("path", "")).rstrip("/") == norm:
                return dict(out)
    return None


def _dep_md5(lock: dict[str, Any], path: str) -> str | None:
    for stage in (lock.get("stages") or {}).values():
        for dep in (stage or {}).get("deps") or []:
            if str(dep.get("path", "")).rstrip("/") == path.rstrip("/"):
                h = dep.get("md5") or dep.get("hash")
                return str(h) if h else None
    return None


def params_hash(lock: dict[str, Any]) -> str:
    recorded = {name: (stage or {}).get("params") or {} for name, stage in (lock.get("stages") or {}).items()}
    return hashlib.sha256(json.dumps(recorded, sort_keys=True, default=str).encode()).hexdigest()


def lock_artifact_hash(root: Path, params: Params) -> tuple[str, str]:
    """(artifact path, its hash in dvc.lock); RegistryError when there is no dvc.lock or no such output."""
    name = params.registry.artifact
    try:
        declared = dvc.artifacts(root)
        lock = dvc.read_lock(root)
    except DvcError as exc:
        raise RegistryError(f"cannot read the model's hash: {exc.message}", hint=_HINT_LOCK) from None
    path = declared[name].path if name in declared else "models"
    h = dvc.output_hash(lock, path)
    if h is None:
        raise RegistryError(f"dvc.lock has no output '{path}' (artifact {name}): no model to register",
                            hint=_HINT_LOCK)
    return path, h


def collect_facts(root: Path, params: Params) -> ModelFacts:
    """The model at HEAD: its DVC hash from dvc.lock, checked against the files in the workspace."""
    reg = params.registry
    path, dvc_md5 = lock_artifact_hash(root, params)
    lock = dvc.read_lock(root)
    out = _lock_out(lock, path) or {}
    target = root / path
    if not target.exists():
        raise RegistryError(f"{path}: the model artifact is not in the workspace",
                            hint="run `dvc pull` (or `mlops run`) to restore it")
    if out.get("hash") == "md5" and dvc_hash(target) != dvc_md5:
        raise RegistryError(f"{path}: the workspace does not match dvc.lock (hash {dvc_md5})",
                            hint="run `dvc pull` or `dvc checkout` to restore the committed model, "
                                 "or reproduce and commit dvc.lock")
    model = target / reg.model_file if target.is_dir() else target
    schema = target / reg.schema_file if target.is_dir() else target.with_name(reg.schema_file)
    for p in (model, schema):
        if not p.is_file():
            raise RegistryError(f"{p.relative_to(root)}: not found in the model artifact",
                                hint="set registry.model_file / registry.schema_file in params.yaml")
    try:
        interface = parse_interface(json.loads(schema.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise RegistryError(f"{schema.relative_to(root)}: not a valid feature schema: {exc}") from None
    return ModelFacts(artifact=reg.artifact, path=path, dvc_md5=dvc_md5,
                      model_file=model.relative_to(root).as_posix(), model_sha256=_sha256(model),
                      interface=interface, data_md5=_dep_md5(lock, params.data.raw),
                      params_sha256=params_hash(lock))

"""What the registry records about the model at HEAD: hashes from dvc.lock, checked against the workspace."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops import dvc
from mlops.config import RegistryParams
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
    data_md5: str | None  # the input data's hash in dvc.lock (when the pipeline has one data dependency)
    params_sha256: str  # sha256 of every stage's params as dvc.lock recorded them (canonical JSON)
    data: dict[str, str] = field(default_factory=dict)  # every input data dependency in dvc.lock: path -> hash

    def block(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "path": self.path, "dvc_md5": self.dvc_md5,
                "model_file": self.model_file, "model_sha256": self.model_sha256,
                "interface": self.interface.to_json(), "interface_sha256": self.interface.sha256(),
                "data_md5": self.data_md5, "data": self.data, "params_sha256": self.params_sha256}


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()  # DVC's content hash, not security


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def dvc_hash(path: Path) -> str:
    """DVC 3's `hash: md5` of a file, or of a directory ("<md5 of the sorted entry list>.dir")."""
    if path.is_file():
        return _md5(path)
    entries = [{"md5": _md5(p), "relpath": p.relative_to(path).as_posix()}
               for p in path.rglob("*") if p.is_file()]
    entries.sort(key=lambda e: e["relpath"].split("/"))
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"  # noqa: S324


_HINT_BAD_LOCK = "regenerate it with `dvc repro` (or restore the committed one with `git checkout dvc.lock`)"


def _bad_lock(what: str) -> RegistryError:
    return RegistryError(f"{dvc.DVC_LOCK}: malformed: {what}", hint=_HINT_BAD_LOCK)


def lock_entries(lock: Any, key: str) -> list[tuple[str, dict[str, Any]]]:
    """(stage name, entry) for every `deps` or `outs` entry (KEY) of a parsed dvc.lock, checking its shape:
    RegistryError naming dvc.lock for anything that is not `stages: {NAME: {KEY: [{path: ...}, ...]}}`."""
    if not isinstance(lock, dict):
        raise _bad_lock("expected a mapping at the top level")
    stages = lock.get("stages")
    if stages is None:
        return []
    if not isinstance(stages, dict):
        raise _bad_lock(f"'stages' must map stage names to stages, not {type(stages).__name__}")
    found: list[tuple[str, dict[str, Any]]] = []
    for name, stage in stages.items():
        if stage is None:
            continue
        if not isinstance(stage, dict):
            raise _bad_lock(f"stage '{name}' must be a mapping, not {type(stage).__name__}")
        entries = stage.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise _bad_lock(f"stage '{name}': '{key}' must be a list, not {type(entries).__name__}")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str | int | float) or \
                    isinstance(entry.get("path"), bool):
                raise _bad_lock(f"stage '{name}': each of its {key} needs a 'path'")
            found.append((str(name), entry))
    return found


def lock_out(lock: Any, path: str) -> dict[str, Any] | None:
    """The dvc.lock entry of output PATH, or None when no stage outputs it; RegistryError when malformed."""
    lock_entries(lock, "outs")
    return dvc.lock_out(lock, path)


def output_hash(lock: Any, path: str) -> str | None:
    """The hash dvc.lock recorded for output PATH (None when no stage outputs it); RegistryError when malformed."""
    out = lock_out(lock, path)
    return dvc.entry_hash(out) if out is not None else None


def data_deps(lock: Any) -> dict[str, str]:
    """Path -> hash of every dependency in dvc.lock that is input data (dvc.data_deps), sorted by path;
    RegistryError when malformed."""
    lock_entries(lock, "outs")
    lock_entries(lock, "deps")
    return dict(sorted(dvc.data_deps(lock).items()))


def params_hash(lock: Any) -> str:
    lock_entries(lock, "outs")  # the shape check
    stages = lock.get("stages") or {}
    recorded = {name: (stage or {}).get("params") or {} for name, stage in stages.items()}
    return hashlib.sha256(json.dumps(recorded, sort_keys=True, default=str).encode()).hexdigest()


def read_lock(root: Path) -> dict[str, Any]:
    try:
        lock = dvc.read_lock(root)
    except DvcError as exc:
        raise RegistryError(f"cannot read the model's hash: {exc.message}", hint=_HINT_LOCK) from None
    lock_entries(lock, "outs")
    lock_entries(lock, "deps")
    return lock


def lock_artifact_hash(root: Path, reg: RegistryParams, lock: dict[str, Any] | None = None) -> tuple[str, str]:
    """(artifact path, its hash in dvc.lock); RegistryError when there is no dvc.lock or no such output."""
    name = reg.artifact
    try:
        declared = dvc.artifacts(root)
    except DvcError as exc:
        raise RegistryError(f"cannot read the model's hash: {exc.message}", hint=_HINT_LOCK) from None
    lock = read_lock(root) if lock is None else lock
    path = declared[name].path if name in declared else "models"
    h = output_hash(lock, path)
    if h is None:
        raise RegistryError(f"dvc.lock has no output '{path}' (artifact {name}): no model to register",
                            hint=_HINT_LOCK)
    return path, h


def check_output_file(root: Path, lock: dict[str, Any], path: str) -> bool:
    """Check the workspace file PATH against its md5 in dvc.lock (DVC 3 hashes a file's raw bytes; DVC 2 also
    accepted CRLF turned to LF). True: it matches; False: dvc.lock does not record it as an output.
    RegistryError when it is missing from the workspace or differs from what the pipeline wrote."""
    out = lock_out(lock, path)
    if out is None:
        return False
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


def collect_facts(root: Path, reg: RegistryParams) -> ModelFacts:
    """The model at HEAD: its DVC hash from dvc.lock, checked against the files in the workspace."""
    lock = read_lock(root)
    path, dvc_md5 = lock_artifact_hash(root, reg, lock)
    out = lock_out(lock, path) or {}
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
    data = data_deps(lock)
    return ModelFacts(artifact=reg.artifact, path=path, dvc_md5=dvc_md5,
                      model_file=model.relative_to(root).as_posix(), model_sha256=_sha256(model),
                      interface=interface, data_md5=next(iter(data.values())) if len(data) == 1 else None,
                      data=data, params_sha256=params_hash(lock))

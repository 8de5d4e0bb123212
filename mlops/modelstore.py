"""The model store: installed model artifacts that the server loads, each checked against its registered sha256.

Layout (deploy writes it, `mlops serve` reads it):

    STORE/NAME/VERSION/            the artifact's files as registered (model.ubj, feature_schema.json, golden.json...)
    STORE/NAME/VERSION/mlops-model.json   the store metadata (its format: mlops.formats.store)
    STORE/NAME/serving.json        the server's persisted serving state (written by the server, see mlops.serve)

An install is atomic (a temporary directory renamed into place) and checks the model's sha256 before it is
visible; `get` checks it again on every load, with every other file the install recorded under `files` (the
manifest, the golden records, a python runtime's module...), so a file changed after installation is refused, never
served. `StoredModel.files` is what a runtime gets as its trusted hashes: pickles and Python code are loaded only
when they match them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from mlops import versions as semver
from mlops.errors import ModelStoreError
from mlops.files import sha256_file
from mlops.formats.manifest import ManifestInvalid, feature_schema_json, read_feature_schema
from mlops.formats.store import META_FILE as META_FILE
from mlops.formats.store import STORE_FORMAT as STORE_FORMAT
from mlops.formats.store import StoreMeta, read_store_meta, write_store_meta

DEFAULT_STORE = Path(".mlops/store")

# fullmatch everywhere: `$` would accept a trailing newline ("churn-model\n")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}")
LEGACY_SCHEMA = "feature_schema.json"  # the churn stages' interface file, beside model.ubj


class NotInStore(ModelStoreError):
    """The store has no such model name or version."""


@dataclass(frozen=True)
class StoredModel:
    name: str
    version: str
    path: Path
    model_file: str
    model_sha256: str
    meta: StoreMeta

    @property
    def model_path(self) -> Path:
        return self.path / self.model_file

    @property
    def interface(self) -> dict[str, Any] | None:
        return dict(self.meta.interface) if self.meta.interface is not None else None

    @property
    def files(self) -> dict[str, str]:
        """relpath -> sha256 of the artifact's files as installed, checked by `get` (the model file at least)."""
        out = dict(self.meta.files or {})
        out[self.model_file] = self.model_sha256
        return out


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelStoreError(f"model name {name!r} is not a valid store name",
                              hint="letters, digits, '.', '_' and '-', starting with a letter or digit")
    return name


def check_version(version: str) -> str:
    if not semver.is_valid(version):
        raise ModelStoreError(f"model version {version!r} is not a SemVer version (vX.Y.Z[-pre][+build])")
    return version


def _links(root: Path) -> list[str]:
    """Symlinks anywhere under ROOT (not followed), relative paths; the root itself counts too."""
    found = ["."] if root.is_symlink() else []
    for folder, dirs, files in os.walk(root):
        for entry in (*dirs, *files):
            path = Path(folder) / entry
            if path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _refuse_links(root: Path, name: str, version: str) -> None:
    links = _links(root)
    if links:
        raise ModelStoreError(f"{root}: the artifact of {name} {version} contains symlinks ({', '.join(links[:3])}"
                              f"{' ...' if len(links) > 3 else ''}): refused, links are never followed into the store",
                              hint="install regular files (e.g. `dvc checkout` with cache.type copy, or copy the "
                                   "files out of the cache)")


def _relative(model_file: str) -> str:
    p = PurePosixPath(model_file)
    if not model_file or p.is_absolute() or ".." in p.parts or "\\" in model_file:
        raise ModelStoreError(f"model file {model_file!r} must be a relative path inside the artifact")
    return str(p)


def _read_meta(path: Path) -> StoreMeta:
    try:
        return read_store_meta(path / META_FILE)
    except FileNotFoundError:
        raise NotInStore(f"{path}: not installed (no {META_FILE})", hint="install it with `mlops deploy`") from None


def _verified(path: Path, meta: StoreMeta) -> StoredModel:
    model_file = _relative(meta.model_file)
    model_path = path / model_file
    if model_path.is_symlink() or not model_path.is_file():
        raise ModelStoreError(f"{model_path}: the model file is missing from the store (or is not a regular file)",
                              hint="reinstall the version with `mlops deploy`")
    digest = sha256_file(model_path)
    if digest != meta.model_sha256:
        raise ModelStoreError(f"{model_path}: sha256 {digest[:12]}... does not match the registered "
                              f"{meta.model_sha256[:12]}...: the file changed after it was installed",
                              hint="reinstall the version with `mlops deploy` (the store's copy is not trusted)")
    recorded = meta.files
    if recorded is not None:
        for rel, expected in sorted(recorded.items()):
            file = path / _relative(str(rel))
            if file.is_symlink() or not file.is_file():
                raise ModelStoreError(f"{file}: missing from the store (or not a regular file)",
                                      hint="reinstall the version with `mlops deploy`")
            if rel != model_file and sha256_file(file) != expected:
                raise ModelStoreError(f"{file}: sha256 does not match the one recorded at install ({expected[:12]}"
                                      "...): the file changed after it was installed",
                                      hint="reinstall the version with `mlops deploy` (the store's copy is not "
                                           "trusted)")
    return StoredModel(meta.name, meta.version, path, model_file, meta.model_sha256, meta)


def tree_sha256(directory: Path) -> dict[str, str]:
    """relpath -> sha256 of every regular file under DIRECTORY but the store's own metadata file."""
    return {p.relative_to(directory).as_posix(): sha256_file(p)
            for p in sorted(directory.rglob("*")) if p.is_file() and not p.is_symlink() and p.name != META_FILE}


def get(store: Path, name: str, version: str) -> StoredModel:
    """The installed NAME VERSION, its model file checked against the registered sha256 (ModelStoreError when it
    changed; NotInStore when it is not installed)."""
    check_name(name)
    check_version(version)
    path = Path(store) / name / version
    if not path.is_dir():
        raise NotInStore(f"{name} {version} is not in the model store {store}",
                         hint="install it with `mlops deploy --target local`")
    meta = _read_meta(path)
    if meta.name != name or meta.version != version:
        raise ModelStoreError(f"{path / META_FILE}: describes {meta.name} {meta.version}, not {name} {version}")
    return _verified(path, meta)


def versions(store: Path, name: str) -> list[str]:
    """The installed versions of NAME, oldest first in SemVer order (empty when none)."""
    check_name(name)
    base = Path(store) / name
    if not base.is_dir():
        return []
    found = [p.name for p in base.iterdir()
             if semver.is_valid(p.name) and p.is_dir() and not p.is_symlink() and (p / META_FILE).is_file()]
    return semver.ordered(found)


def names(store: Path) -> list[str]:
    """The model names in the store that have at least one installed version."""
    base = Path(store)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and _NAME.fullmatch(p.name) and versions(base, p.name))


def latest(store: Path, name: str) -> str | None:
    found = versions(store, name)
    return found[-1] if found else None


def install(store: Path, name: str, version: str, src_dir: Path, *, model_file: str, model_sha256: str,
            meta: Mapping[str, Any]) -> StoredModel:
    """Install the artifact in SRC_DIR as NAME VERSION, checking SRC_DIR/MODEL_FILE against MODEL_SHA256 first.

    Idempotent: the same version with the same sha256 already installed is returned as is (a damaged copy is
    replaced). ModelStoreError on a checksum mismatch, or when the version is installed with another sha256
    (versions are immutable, as their tags are). META adds `tag`, `commit`, `interface` and any other keys.
    """
    check_name(name)
    check_version(version)
    rel = _relative(model_file)
    expected = model_sha256.lower() if isinstance(model_sha256, str) else ""
    if not _SHA256.fullmatch(expected):
        raise ModelStoreError(f"{name} {version}: {model_sha256!r} is not a sha256 hex digest")
    src = Path(src_dir)
    _refuse_links(src, name, version)
    if not (src / rel).is_file():
        raise ModelStoreError(f"{src / rel}: model file not found in the artifact")
    digest = sha256_file(src / rel)
    if digest != expected:
        raise ModelStoreError(f"{src / rel}: sha256 {digest[:12]}... does not match the registered "
                              f"{expected[:12]}... of {name} {version}: refused before it was installed",
                              hint="the artifact in the DVC remote differs from the one the tag registered")
    base = Path(store) / name
    dest = base / version
    replace = False
    if dest.exists():
        try:
            current = _read_meta(dest)
        except ModelStoreError:
            current = None
        if current is not None and current.model_sha256 != expected:
            raise ModelStoreError(f"{name} {version} is already installed in {store} with sha256 "
                                  f"{current.model_sha256[:12]}..., not {expected[:12]}...",
                                  hint="versions are immutable: register the new model as a new version")
        try:
            return get(store, name, version)
        except ModelStoreError:
            replace = True  # the same version, damaged or half-written: install a fresh copy over it
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        # symlinks=True copies a link as a link (never its target); one that appeared after the check is refused
        shutil.copytree(src, tmp, symlinks=True, ignore=shutil.ignore_patterns(META_FILE, ".git", "__pycache__"))
        _refuse_links(tmp, name, version)
        if sha256_file(tmp / rel) != expected:  # changed while it was copied
            raise ModelStoreError(f"{src / rel}: the file changed while it was being installed")
        interface = meta.get("interface")
        if interface is None and (tmp / LEGACY_SCHEMA).is_file():
            try:  # a legacy artifact: its interface as the one feature_schema.json reader reads it
                schema = read_feature_schema(tmp / LEGACY_SCHEMA)
                interface = feature_schema_json(schema.interface.inputs, schema.output)
            except ManifestInvalid:
                interface = None  # the server refuses the version at load, naming the file and the key
        tag, commit = meta.get("tag"), meta.get("commit")
        write_store_meta(tmp / META_FILE, StoreMeta(
            name=name, version=version, model_file=rel, model_sha256=expected,
            tag=str(tag) if tag is not None else None, commit=str(commit) if commit is not None else None,
            installed_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            interface=interface if isinstance(interface, Mapping) else None, files=tree_sha256(tmp),
            extra={k: v for k, v in meta.items() if k not in ("tag", "commit", "interface")}))
        if replace:
            trash = base / f".old-{version}-{uuid.uuid4().hex[:8]}"
            os.replace(dest, trash)
            os.replace(tmp, dest)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            try:
                os.rename(tmp, dest)
            except OSError:
                if dest.is_dir():  # another install of the same version won the race: same sha256 or a refusal
                    return install(store, name, version, src, model_file=model_file, model_sha256=expected,
                                   meta=meta)
                raise
    except OSError as exc:
        raise ModelStoreError(f"cannot install {name} {version} into {store}: {exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return get(store, name, version)


# --- monitoring gauges: written by `mlops monitor --store`, exported by the server's /metrics ---------------------

GAUGES_FILE = "monitor-gauges.json"
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def write_gauges(store: Path, name: str, gauges: list[tuple[str, dict[str, str], float]], updated: str) -> Path:
    """Publish the latest monitoring figures of NAME beside its versions (atomically): the server exports them."""
    check_name(name)
    folder = Path(store) / name
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": "mlops.monitor-gauges/1", "updated": updated,
           "gauges": [{"name": n, "labels": dict(labels), "value": v} for n, labels, v in gauges
                      if _METRIC_NAME.fullmatch(n) and math.isfinite(v)]}
    tmp = folder / f".{GAUGES_FILE}.tmp"
    tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
    tmp.replace(folder / GAUGES_FILE)
    return folder / GAUGES_FILE


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def gauges_text(store: Path, names: list[str]) -> str:
    """The published gauges of NAMES in Prometheus' text format (label `model` added); an absent or unreadable
    file contributes nothing (monitoring is optional, and a scrape must never fail for it)."""
    by_metric: dict[str, list[str]] = {}
    for name in names:
        try:
            doc = json.loads((Path(store) / name / GAUGES_FILE).read_text(encoding="utf-8"))
            rows = doc["gauges"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for g in rows if isinstance(rows, list) else ():
            try:
                metric, labels, value = str(g["name"]), dict(g.get("labels") or {}), float(g["value"])
            except (KeyError, TypeError, ValueError):
                continue
            if not _METRIC_NAME.fullmatch(metric) or not math.isfinite(value):
                continue
            pairs = {"model": name, **{str(k): str(v) for k, v in labels.items() if _METRIC_NAME.fullmatch(str(k))}}
            rendered = ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items())
            by_metric.setdefault(metric, []).append(f"{metric}{{{rendered}}} {value!r}")
    return "".join(f"# TYPE {m} gauge\n" + "\n".join(lines) + "\n" for m, lines in sorted(by_metric.items()))

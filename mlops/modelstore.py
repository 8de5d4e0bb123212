"""The model store: installed model artifacts that the server loads, each checked against its registered sha256.

Layout (deploy writes it, `mlops serve` reads it):

    STORE/NAME/VERSION/            the artifact's files as registered (model.ubj, feature_schema.json, golden.json...)
    STORE/NAME/VERSION/mlops-model.json
        {"format": "mlops.modelstore/1", "name", "version", "model_file" (relative to the version directory),
         "model_sha256", "tag", "commit", "installed_at" (UTC, ISO 8601), "interface": {...} | null, ...}
    STORE/NAME/serving.json        the server's persisted serving state (written by the server, see mlops.serve)

An install is atomic (a temporary directory renamed into place) and checks the model's sha256 before it is
visible; `get` checks it again on every load, so a file changed after installation is refused, never served.
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

from mlops.errors import ModelStoreError
from mlops.files import sha256_file

STORE_FORMAT = "mlops.modelstore/1"
META_FILE = "mlops-model.json"
DEFAULT_STORE = Path(".mlops/store")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                      r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
                      r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class NotInStore(ModelStoreError):
    """The store has no such model name or version."""


@dataclass(frozen=True)
class StoredModel:
    name: str
    version: str
    path: Path
    model_file: str
    model_sha256: str
    meta: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / self.model_file

    @property
    def interface(self) -> dict[str, Any] | None:
        iface = self.meta.get("interface")
        return iface if isinstance(iface, dict) else None


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelStoreError(f"model name {name!r} is not a valid store name",
                              hint="letters, digits, '.', '_' and '-', starting with a letter or digit")
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ModelStoreError(f"model version {version!r} is not a SemVer version (vX.Y.Z)")
    return version


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key in SemVer precedence: a pre-release sorts before its release; build metadata is ignored."""
    m = _VERSION.match(version)
    if m is None:
        return (-1, -1, -1, 0, ())
    pre = m.group(4)
    if pre is None:
        return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0, parts)


def _relative(model_file: str) -> str:
    p = PurePosixPath(model_file)
    if not model_file or p.is_absolute() or ".." in p.parts or "\\" in model_file:
        raise ModelStoreError(f"model file {model_file!r} must be a relative path inside the artifact")
    return str(p)


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotInStore(f"{path}: not installed (no {META_FILE})", hint="install it with `mlops deploy`") from None
    except (ValueError, UnicodeDecodeError):
        raise ModelStoreError(f"{meta_path}: not valid JSON", hint="reinstall the version with `mlops deploy`"
                              ) from None
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        raise ModelStoreError(f"{meta_path}: not a {STORE_FORMAT} document",
                              hint="reinstall the version with `mlops deploy`")
    for key in ("name", "version", "model_file", "model_sha256"):
        if not isinstance(meta.get(key), str):
            raise ModelStoreError(f"{meta_path}: key '{key}' is missing or not a string")
    return meta


def _verified(path: Path, meta: dict[str, Any]) -> StoredModel:
    model_file = _relative(meta["model_file"])
    model_path = path / model_file
    if not model_path.is_file():
        raise ModelStoreError(f"{model_path}: the model file is missing from the store",
                              hint="reinstall the version with `mlops deploy`")
    digest = sha256_file(model_path)
    if digest != meta["model_sha256"]:
        raise ModelStoreError(f"{model_path}: sha256 {digest[:12]}... does not match the registered "
                              f"{meta['model_sha256'][:12]}...: the file changed after it was installed",
                              hint="reinstall the version with `mlops deploy` (the store's copy is not trusted)")
    return StoredModel(meta["name"], meta["version"], path, model_file, meta["model_sha256"], meta)


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
    if meta["name"] != name or meta["version"] != version:
        raise ModelStoreError(f"{path / META_FILE}: describes {meta['name']} {meta['version']}, not {name} {version}")
    return _verified(path, meta)


def versions(store: Path, name: str) -> list[str]:
    """The installed versions of NAME, oldest first in SemVer order (empty when none)."""
    check_name(name)
    base = Path(store) / name
    if not base.is_dir():
        return []
    found = [p.name for p in base.iterdir() if p.is_dir() and _VERSION.match(p.name) and (p / META_FILE).is_file()]
    return sorted(found, key=semver_key)


def names(store: Path) -> list[str]:
    """The model names in the store that have at least one installed version."""
    base = Path(store)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and _NAME.match(p.name) and versions(base, p.name))


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
    if not _SHA256.match(expected):
        raise ModelStoreError(f"{name} {version}: {model_sha256!r} is not a sha256 hex digest")
    src = Path(src_dir)
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
        if current is not None and current["model_sha256"] != expected:
            raise ModelStoreError(f"{name} {version} is already installed in {store} with sha256 "
                                  f"{current['model_sha256'][:12]}..., not {expected[:12]}...",
                                  hint="versions are immutable: register the new model as a new version")
        try:
            return get(store, name, version)
        except ModelStoreError:
            replace = True  # the same version, damaged or half-written: install a fresh copy over it
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(META_FILE, ".git", "__pycache__"))
        if sha256_file(tmp / rel) != expected:  # changed while it was copied
            raise ModelStoreError(f"{src / rel}: the file changed while it was being installed")
        interface = meta.get("interface")
        if interface is None and (tmp / "feature_schema.json").is_file():
            try:
                interface = json.loads((tmp / "feature_schema.json").read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                interface = None
        doc: dict[str, Any] = {
            "format": STORE_FORMAT, "name": name, "version": version, "model_file": rel, "model_sha256": expected,
            "tag": meta.get("tag"), "commit": meta.get("commit"),
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "interface": interface}
        doc.update({k: v for k, v in meta.items() if k not in doc})
        (tmp / META_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
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

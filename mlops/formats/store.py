"""The model store's metadata (`STORE/NAME/VERSION/mlops-model.json`): the one reader and the one writer.

Deploy (mlops.modelstore.install) writes it when it installs a version; the server, monitoring's scorer and a
reinstall read it through mlops.modelstore.get:

    {"format": "mlops.modelstore/1", "name": "churn-model", "version": "v1.2.0",
     "model_file": "model.ubj",             relative to the version directory
     "model_sha256": "d42157...",           the registered digest, checked on every load
     "tag": "churn-model@v1.2.0" | null, "commit": "0123..." | null,
     "installed_at": "2026-01-29T10:00:00Z",   UTC, seconds
     "interface": {...} | null,              the feature_schema.json document of a legacy artifact
     "files": {relpath: sha256},             every file of the artifact as installed
     ...}                                    any other keys deploy passed (metrics...), kept verbatim
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import ModelStoreError
from mlops.formats._io import json_text, write_text_atomic

STORE_FORMAT = "mlops.modelstore/1"
META_FILE = "mlops-model.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KNOWN = ("format", "name", "version", "model_file", "model_sha256", "tag", "commit", "installed_at", "interface",
          "files")
_REINSTALL = "reinstall the version with `mlops deploy`"


class StoreMetaInvalid(ModelStoreError):
    """An installed version's mlops-model.json is not JSON or not a store metadata document; names file and key."""


@dataclass(frozen=True)
class StoreMeta:
    name: str
    version: str
    model_file: str
    model_sha256: str
    tag: str | None = None
    commit: str | None = None
    installed_at: str | None = None
    interface: Mapping[str, Any] | None = None
    files: Mapping[str, str] | None = None  # None: written before installs recorded every file
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": STORE_FORMAT, "name": self.name, "version": self.version, "model_file": self.model_file,
            "model_sha256": self.model_sha256, "tag": self.tag, "commit": self.commit,
            "installed_at": self.installed_at,
            "interface": dict(self.interface) if self.interface is not None else None}
        if self.files is not None:
            doc["files"] = dict(self.files)
        doc.update({k: v for k, v in self.extra.items() if k not in doc and k not in _KNOWN})
        return doc


def _opt_str(raw: Mapping[str, Any], key: str, source: str) -> str | None:
    v = raw.get(key)
    if v is not None and not isinstance(v, str):
        raise StoreMetaInvalid(f"{source}: key '{key}' must be a string or null", hint=_REINSTALL)
    return v


def parse_store_meta(raw: Any, source: str = META_FILE) -> StoreMeta:
    """RAW (a parsed mlops-model.json) as StoreMeta; StoreMetaInvalid naming SOURCE and the key when malformed."""
    if not isinstance(raw, Mapping) or raw.get("format") != STORE_FORMAT:
        raise StoreMetaInvalid(f"{source}: not a {STORE_FORMAT} document", hint=_REINSTALL)
    for key in ("name", "version", "model_file", "model_sha256"):
        if not isinstance(raw.get(key), str):
            raise StoreMetaInvalid(f"{source}: key '{key}' is missing or not a string", hint=_REINSTALL)
    files = raw.get("files")
    if files is not None and (not isinstance(files, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in files.items())):
        raise StoreMetaInvalid(f"{source}: key 'files' must map paths to sha256 digests", hint=_REINSTALL)
    interface = raw.get("interface")
    return StoreMeta(name=raw["name"], version=raw["version"], model_file=raw["model_file"],
                     model_sha256=raw["model_sha256"], tag=_opt_str(raw, "tag", source),
                     commit=_opt_str(raw, "commit", source), installed_at=_opt_str(raw, "installed_at", source),
                     interface=interface if isinstance(interface, Mapping) else None,
                     files=dict(files) if files is not None else None,
                     extra={k: v for k, v in raw.items() if k not in _KNOWN})


def read_store_meta(path: Path | str) -> StoreMeta:
    """The metadata file at PATH; FileNotFoundError when absent (the caller says what is not installed),
    StoreMetaInvalid when it is not JSON or malformed."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise StoreMetaInvalid(f"{p}: not valid JSON", hint=_REINSTALL) from None
    return parse_store_meta(raw, str(p))


def write_store_meta(path: Path | str, meta: StoreMeta) -> Path:
    """Write META to PATH atomically (indented JSON, keys in the documented order)."""
    return write_text_atomic(path, json_text(meta.to_json()))

"""The model a batch run scores with: its files (or where they are) with the sha256 of each, trusted because the job
checked them against the registry tag (deploy's verified fetch), and the loader every process runs before it
predicts a row: copy the files into a private directory, hash every one against the trusted sha256, then load
the runtime (mlops.runtimes, the server's). A Dask worker runs this loader itself: what it loads is what the tag
vouches for even when the bytes crossed a network or sat in an object store in between.

Loaded runtimes are cached per process, keyed by the trusted hashes: a worker that scores many partitions loads
(and verifies) the model once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mlops.errors import MlopsError, ModelInvalid
from mlops.formats.manifest import (
    MANIFEST_FILE,
    Manifest,
    ModelFile,
    RuntimeName,
    outputs_for,
    read_feature_schema,
    read_manifest,
)
from mlops.formats.profile import PROFILE_FILE, read_profile
from mlops.runtimes import Runtime, load_runtime


class PredictError(MlopsError):
    """`mlops predict` cannot run: bad input or output location, an unreadable file, a refused row."""


class ModelTampered(ModelInvalid):
    """A model file's bytes differ from the sha256 the registry tag vouches for; nothing was loaded."""


_SUFFIX_RUNTIME: dict[str, RuntimeName] = {".ubj": "xgboost", ".json": "xgboost"}


@dataclass(frozen=True)
class ModelSource:
    """A registered model version, ready to ship to another process.

    FILES: relpath -> bytes (sent with the task), or empty when URL (an fsspec directory every worker can read)
    holds them. SHA256: relpath -> the trusted digest of every file that is loaded. CLASSES and THRESHOLD: for a
    model directory without mlops-model.yaml (the built-in churn artifact), what its manifest would say."""

    name: str
    version: str
    sha256: Mapping[str, str]
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    url: str | None = None
    model_file: str = "model.ubj"
    classes: tuple[str, ...] | None = None
    threshold: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def key(self) -> str:
        """The cache key: the trusted hashes (equal keys: byte-identical models)."""
        doc = json.dumps(sorted(self.sha256.items()), separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()


def source_from_directory(directory: Path, name: str, version: str, *, model_file: str = "model.ubj",
                          trusted: Mapping[str, str] | None = None, inline: bool = True, url: str | None = None,
                          classes: tuple[str, ...] | None = None, threshold: float | None = None) -> ModelSource:
    """A ModelSource of the verified files in DIRECTORY. TRUSTED: digests the caller checked against the tag
    (each must equal the file's); the other files are hashed here, after the caller's check of the whole
    directory (deploy's fetch checks every file against its md5 in dvc.lock). INLINE: ship the bytes with the
    source; else URL names the directory every process reads them from."""
    from mlops.files import sha256_file

    digests: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    for p in sorted(directory.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(directory).as_posix()
        digest = sha256_file(p)
        want = (trusted or {}).get(rel)
        if want is not None and want != digest:
            raise ModelTampered(f"{p}: sha256 {digest} does not match the trusted {want}: refused before loading")
        digests[rel] = digest
        if inline:
            blobs[rel] = p.read_bytes()
    if not digests:
        raise ModelInvalid(f"{directory}: no model files")
    return ModelSource(name, version, digests, blobs, None if inline else url, model_file, classes, threshold)


def legacy_manifest(directory: Path, source: ModelSource) -> Manifest:
    """The manifest of a model directory written before mlops-model.yaml existed (`mlops stage train`: model.ubj,
    feature_schema.json, reference.json): an xgboost binary classifier."""
    schema = read_feature_schema(directory / "feature_schema.json")
    model = source.model_file
    runtime = _SUFFIX_RUNTIME.get(PurePosixPath(model).suffix.lower())
    if runtime is None:
        raise ModelInvalid(f"{directory / model}: no {MANIFEST_FILE} beside it and not an xgboost model file",
                           hint="package the model with `mlops package` (it writes mlops-model.yaml)")
    positive = str(schema.output.get("positive") or "1")
    classes = source.classes or (f"not {positive}", positive)
    threshold = source.threshold
    if threshold is None:
        try:
            threshold = read_profile(directory / PROFILE_FILE).threshold
        except ModelInvalid:
            threshold = None
    iface = type(schema.interface)(schema.interface.inputs, outputs_for("binary", classes))
    target = schema.output.get("label")
    return Manifest(runtime=runtime, files=(ModelFile(model, source.sha256.get(model)),), task="binary",
                    interface=iface, classes=classes, threshold=threshold,
                    target=str(target) if isinstance(target, str) else None)


def _materialise(source: ModelSource, dest: Path) -> None:
    """Write SOURCE's files into DEST (from the bytes it carries, or from its URL) and hash every one."""
    import hashlib as _h

    if source.files:
        items: Any = source.files.items()
    else:
        if source.url is None:
            raise ModelInvalid(f"{source.ref}: the model source carries no files and no URL")
        import fsspec

        fs, base = fsspec.core.url_to_fs(source.url)
        items = ((rel, fs.cat_file(f"{base.rstrip('/')}/{rel}")) for rel in source.sha256)
    seen = set()
    for rel, data in items:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or rel not in source.sha256:
            raise ModelTampered(f"{source.ref}: model file '{rel}' is not one the tag vouches for")
        digest = _h.sha256(data).hexdigest()
        if digest != source.sha256[rel]:
            where = source.url or "the model sent with the task"
            raise ModelTampered(f"{rel} of {source.ref} ({where}): sha256 {digest} does not match the tag's "
                                f"{source.sha256[rel]}: refused before loading",
                                hint="the copy the workers read was changed after the registry check; rerun "
                                     "`mlops predict` (it fetches and verifies the model again)")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        seen.add(rel)
    missing = sorted(set(source.sha256) - seen)
    if missing:
        raise ModelTampered(f"{source.ref}: model file '{missing[0]}' is missing")


_CACHE: dict[str, Runtime] = {}
_LOCK = threading.Lock()


def load(source: ModelSource) -> Runtime:
    """The runtime of SOURCE in this process: verified and loaded on first use, then cached by its hashes."""
    with _LOCK:
        cached = _CACHE.get(source.key)
        if cached is not None:
            return cached
        # Kept while the process lives: a python model may read its own files after load().
        tmp = Path(tempfile.mkdtemp(prefix="mlops-predict-model-"))
        try:
            _materialise(source, tmp)
            manifest = read_manifest(tmp) if (tmp / MANIFEST_FILE).is_file() else legacy_manifest(tmp, source)
            runtime = load_runtime(tmp, manifest, sha256=dict(source.sha256))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _CACHE[source.key] = runtime
        return runtime


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()

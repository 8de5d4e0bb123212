"""The reference profile (`reference.json`, in the model package): the one reader and the one writer.

mlops.profile builds the document (its layout is documented there); this module owns the file: its name, its
format version, its bytes (sorted keys, compact, one trailing newline: the same profile gives the same bytes, so
the pipeline's output is reproducible) and its validation. Train and `mlops package` write it here; monitoring,
retraining and batch scoring read it here. The sketches stay a JSON document (`ReferenceProfile.doc`), read by
mlops.profile's arithmetic; what the readers outside it need (task, classes, threshold, the interface) is typed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mlops.errors import ModelInvalid
from mlops.formats._io import write_text_atomic
from mlops.formats.manifest import REFERENCE_FILE, TASKS, FeatureSchema, ManifestInvalid, Task, parse_feature_schema

PROFILE_FORMAT = "mlops.reference-profile/1"
PROFILE_FILE = REFERENCE_FILE  # the name a manifest gives its profile by default
_REQUIRED = ("rows", "interface", "features", "prediction", "threshold")


class ProfileInvalid(ModelInvalid):
    """reference.json is missing, not JSON or not a reference profile this mlops reads; names the file and key."""


@dataclass(frozen=True)
class ReferenceProfile:
    """A validated reference profile: the typed facts its readers need, and the document itself for the sketches."""

    doc: Mapping[str, Any]
    task: Task
    rows: int
    threshold: float | None
    classes: tuple[str, ...] | None
    schema: FeatureSchema  # the model's interface as the profile recorded it (feature_schema.json's shape)

    @property
    def feature_names(self) -> list[str]:
        return [i.name for i in self.schema.interface.inputs]

    @property
    def categorical(self) -> list[str]:
        return [i.name for i in self.schema.interface.inputs if i.type == "category"]

    @property
    def output_name(self) -> str:
        name = self.schema.output.get("name")
        return str(name) if name else "probability"

    @property
    def label(self) -> str | None:
        """The label column named by the interface's output (`label`), None when it names none."""
        v = self.schema.output.get("label")
        return v if isinstance(v, str) else None

    @property
    def positive(self) -> Any:
        return self.schema.output.get("positive")


def parse_profile(raw: Any, source: str = PROFILE_FILE) -> ReferenceProfile:
    """RAW (a parsed reference.json) as a profile; ProfileInvalid naming SOURCE and the key when it is not one."""
    doc = check_profile(raw, source)
    try:
        schema = parse_feature_schema(doc["interface"], f"{source}: key 'interface'")
    except ManifestInvalid as exc:
        raise ProfileInvalid(exc.message, hint="rebuild the reference profile with this mlops (dvc repro)") from None
    rows = doc["rows"]
    if type(rows) is not int or rows <= 0:
        raise ProfileInvalid(f"{source}: key 'rows' must be a positive integer")
    threshold = doc["threshold"]
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
        raise ProfileInvalid(f"{source}: key 'threshold' must be a number or null")
    classes = doc.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise ProfileInvalid(f"{source}: key 'classes' must be a list of class names")
    return ReferenceProfile(doc=doc, task=cast(Task, doc.get("task", "binary")), rows=rows,
                            threshold=float(threshold) if threshold is not None else None,
                            classes=tuple(classes) if classes is not None else None, schema=schema)


def check_profile(raw: Any, source: str = PROFILE_FILE) -> dict[str, Any]:
    """RAW as a profile document (the checks of parse_profile that the sketches need); ProfileInvalid naming
    SOURCE and the key when it is not one this mlops reads."""
    if not isinstance(raw, dict):
        raise ProfileInvalid(f"{source}: expected a JSON object, got {type(raw).__name__}")
    fmt = raw.get("format")
    if fmt != PROFILE_FORMAT:
        raise ProfileInvalid(f"{source}: key 'format' is {fmt!r}, this mlops reads {PROFILE_FORMAT!r}",
                             hint="rebuild the reference profile with this mlops (dvc repro)")
    for key in _REQUIRED:
        if key not in raw:
            raise ProfileInvalid(f"{source}: key '{key}' is missing", hint="rebuild the reference profile")
    task = raw.get("task", "binary")
    if task not in TASKS:
        raise ProfileInvalid(f"{source}: key 'task' is {task!r}, expected binary, multiclass or regression")
    if task == "multiclass" and not isinstance(raw.get("classes"), list):
        raise ProfileInvalid(f"{source}: key 'classes' is missing (a multiclass profile names its classes)")
    feats = raw["features"]
    if not isinstance(feats, dict) or not feats:
        raise ProfileInvalid(f"{source}: key 'features' must be a non-empty object")
    for name, f in feats.items():
        kind = f.get("kind") if isinstance(f, dict) else None
        need = ("grid", "counts", "bins", "below", "above") if kind == "numeric" else ("categories", "counts")
        if kind not in ("numeric", "categorical") or any(k not in f for k in need):
            raise ProfileInvalid(f"{source}: key 'features.{name}' is not a feature sketch")
        if kind == "numeric" and (not isinstance(f["grid"], dict) or not isinstance(f["counts"], list)
                                  or len(f["counts"]) != f["grid"].get("cells")):
            raise ProfileInvalid(f"{source}: key 'features.{name}.counts' does not match its grid")
    return raw


def _load(path: Path | str) -> tuple[Any, str]:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8")), str(p)
    except FileNotFoundError:
        raise ProfileInvalid(f"{p}: reference profile not found",
                             hint="the pipeline writes it beside the model (models/reference.json); run dvc repro") \
            from None
    except IsADirectoryError:
        raise ProfileInvalid(f"{p}: is a directory, not a reference profile") from None
    except (ValueError, UnicodeDecodeError):
        raise ProfileInvalid(f"{p}: not valid JSON") from None


def read_profile(path: Path | str) -> ReferenceProfile:
    """The profile in PATH, typed; ProfileInvalid when it is missing, not JSON or not a reference profile."""
    raw, source = _load(path)
    return parse_profile(raw, source)


def load_profile(path: Path | str) -> dict[str, Any]:
    """The profile document in PATH, validated as read_profile validates it (what mlops.profile's sketches take)."""
    return dict(read_profile(path).doc)


def dumps(profile: Mapping[str, Any]) -> str:
    """The profile's bytes: sorted keys, compact, one trailing newline (the same profile gives the same bytes)."""
    return json.dumps(profile, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"


def write_profile(path: Path | str, profile: Mapping[str, Any]) -> Path:
    """Write PROFILE to PATH atomically, after the reader's checks (a profile nobody could read is never written)."""
    parse_profile(json.loads(dumps(profile)), str(path))
    return write_text_atomic(path, dumps(profile))

"""The model's interface (models/feature_schema.json) versioned like a library's API, and SemVer bumps.

Rules, from the previous version's recorded interface to the current one:
- an input removed, renamed (= removed + added) or retyped, a category removed, the inputs' order changed, or
  the output changed: **major**;
- an input that accepted null no longer does: **major**;
- inputs added, a category added to a category input, or an input that now accepts null (the model accepts more
  than before): **minor**;
- the interface unchanged: **patch** (same inputs and output, new weights).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlops.formats.manifest import Input, Manifest, ManifestInvalid, parse_feature_schema, read_feature_schema


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    categories: tuple[str, ...] | None
    nullable: bool = False


@dataclass(frozen=True)
class VersionedInterface:
    features: tuple[Feature, ...]
    output: tuple[tuple[str, str], ...]  # sorted (key, value) pairs of the output description

    def to_json(self) -> dict[str, Any]:
        feats: list[dict[str, Any]] = []
        for f in self.features:
            entry: dict[str, Any] = {"name": f.name, "type": f.type}
            if f.categories is not None:
                entry["categories"] = list(f.categories)
            if f.nullable:  # only when set: the recorded hash of every earlier interface stays what it was
                entry["nullable"] = True
            feats.append(entry)
        return {"features": feats, "output": dict(self.output)}

    def sha256(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _interface(inputs: Sequence[Input], output: Mapping[str, Any]) -> VersionedInterface:
    features = tuple(Feature(i.name, i.type, i.categories, i.nullable) for i in inputs)
    pairs = tuple(sorted((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in output.items()))
    return VersionedInterface(features, pairs)


def parse_versioned_interface(raw: Mapping[str, Any]) -> VersionedInterface:
    """A VersionedInterface from a feature_schema.json dict (or the `interface` of a tag's metadata block), read by the
    one interface parser (mlops.formats.manifest): what the registry accepts, the server accepts. ValueError with
    the parser's one-line message when malformed."""
    try:
        schema = parse_feature_schema(raw, "interface", allow_string=True)
    except ManifestInvalid as exc:
        raise ValueError(exc.message) from None
    # `nullable` is not part of feature_schema.json format 1; a recorded block may carry it (see to_json).
    feats = raw.get("features") if isinstance(raw, Mapping) else None
    nullable = {str(f.get("name")) for f in feats or () if isinstance(f, Mapping) and f.get("nullable") is True}
    inputs = [replace(i, nullable=i.name in nullable) for i in schema.interface.inputs]
    return _interface(inputs, schema.output)


def read_versioned_interface(path: Path) -> VersionedInterface:
    """The registry's view of the feature_schema.json at PATH, read by the one reader (mlops.formats.manifest);
    ManifestInvalid naming the file and the key when missing or malformed."""
    schema = read_feature_schema(path)
    return _interface(schema.interface.inputs, schema.output)


def versioned_interface_of(manifest: Manifest) -> VersionedInterface:
    """The registry's view of a model package's interface: its inputs and its output description (for a binary
    model the very pairs a feature_schema.json of the same model gives, so the bump and hash carry over)."""
    return _interface(manifest.interface.inputs, manifest.output_description())


@dataclass(frozen=True)
class InterfaceDiff:
    bump: str  # "patch", "minor" or "major"
    changes: tuple[str, ...]  # human lines, e.g. "input removed: tenure"

    @property
    def reason(self) -> str:
        return "; ".join(self.changes) if self.changes else "interface unchanged"


def diff_interfaces(old: VersionedInterface, new: VersionedInterface) -> InterfaceDiff:
    """The bump that NEW needs after OLD, and why."""
    major: list[str] = []
    minor: list[str] = []
    old_by = {f.name: f for f in old.features}
    new_by = {f.name: f for f in new.features}
    for name in old_by:
        if name not in new_by:
            major.append(f"input removed: {name}")
    for name, nf in new_by.items():
        of = old_by.get(name)
        if of is None:
            minor.append(f"input added: {name}")
            continue
        if of.type != nf.type:
            major.append(f"input retyped: {name} {of.type} -> {nf.type}")
            continue
        if of.nullable and not nf.nullable:
            major.append(f"input no longer nullable: {name}")
        elif nf.nullable and not of.nullable:
            minor.append(f"input now nullable: {name}")
        old_c, new_c = set(of.categories or ()), set(nf.categories or ())
        if old_c - new_c:
            major.append(f"categories removed from {name}: {', '.join(sorted(old_c - new_c))}")
        if new_c - old_c:
            minor.append(f"categories added to {name}: {', '.join(sorted(new_c - old_c))}")
    common_old = [f.name for f in old.features if f.name in new_by]
    common_new = [f.name for f in new.features if f.name in old_by]
    if common_old != common_new:
        major.append("inputs reordered")
    if old.output != new.output:
        major.append("output changed")
    if major:
        return InterfaceDiff("major", tuple(major + minor))
    if minor:
        return InterfaceDiff("minor", tuple(minor))
    return InterfaceDiff("patch", ())

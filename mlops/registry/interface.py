"""The model's interface (models/feature_schema.json) versioned like a library's API, and SemVer bumps.

Rules, from the previous version's recorded interface to the current one:
- an input removed, renamed (= removed + added) or retyped, a category removed, the inputs' order changed, or
  the output changed: **major**;
- inputs added, or a category added to a category input (the model accepts more than before): **minor**;
- the interface unchanged: **patch** (same inputs and output, new weights).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BUMPS = ("patch", "minor", "major")
_RANK = {b: i for i, b in enumerate(BUMPS)}
_CORE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    categories: tuple[str, ...] | None


@dataclass(frozen=True)
class Interface:
    features: tuple[Feature, ...]
    output: tuple[tuple[str, str], ...]  # sorted (key, value) pairs of the output description

    def to_json(self) -> dict[str, Any]:
        feats: list[dict[str, Any]] = []
        for f in self.features:
            entry: dict[str, Any] = {"name": f.name, "type": f.type}
            if f.categories is not None:
                entry["categories"] = list(f.categories)
            feats.append(entry)
        return {"features": feats, "output": dict(self.output)}

    def sha256(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_interface(raw: Mapping[str, Any]) -> Interface:
    """An Interface from a feature_schema.json dict (or the `interface` of a tag's metadata block)."""
    feats = raw.get("features")
    if not isinstance(feats, list):
        raise ValueError("'features' must be a list")
    features = []
    for f in feats:
        if not isinstance(f, Mapping) or "name" not in f or "type" not in f:
            raise ValueError("each feature needs a 'name' and a 'type'")
        cats = f.get("categories")
        features.append(Feature(str(f["name"]), str(f["type"]),
                                tuple(str(c) for c in cats) if isinstance(cats, list) else None))
    output = raw.get("output") or {}
    if not isinstance(output, Mapping):
        raise ValueError("'output' must be a mapping")
    return Interface(tuple(features), tuple(sorted((str(k), str(v)) for k, v in output.items())))


@dataclass(frozen=True)
class InterfaceDiff:
    bump: str  # "patch", "minor" or "major"
    changes: tuple[str, ...]  # human lines, e.g. "input removed: tenure"

    @property
    def reason(self) -> str:
        return "; ".join(self.changes) if self.changes else "interface unchanged"


def diff_interfaces(old: Interface, new: Interface) -> InterfaceDiff:
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


def bump_version(version: str, bump: str) -> str:
    """v1.2.3 + minor -> v1.3.0 (pre-release and build parts are dropped)."""
    m = _CORE.match(version)
    if m is None or bump not in _RANK:
        raise ValueError(f"cannot bump '{version}' by '{bump}'")
    major, minor, patch = (int(g) for g in m.groups())
    if bump == "major":
        return f"v{major + 1}.0.0"
    if bump == "minor":
        return f"v{major}.{minor + 1}.0"
    return f"v{major}.{minor}.{patch + 1}"

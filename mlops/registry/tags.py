"""The registry's read side: GTO-format git tags, read with one `git for-each-ref` call.

`NAME@vX.Y.Z` registers a version, `NAME@vX.Y.Z!` deregisters it, `NAME#STAGE#N` assigns STAGE (N counts
across the artifact), `NAME#STAGE!` unassigns. Annotated tags only: lightweight tags and other names are
ignored, with a note each for `--verbose`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from mlops import git
from mlops import versions as semver

_NAME = r"[a-z0-9](?:[a-z0-9\-/]*[a-z0-9])?"
# the version group is mlops.versions' grammar with its named groups dropped (one SemVer, see that module)
_SEMVER = re.sub(r"\(\?P<\w+>", "(?:", semver.PATTERN)
TAG_RE = re.compile(
    rf"(?P<artifact>{_NAME})"
    rf"(?:@(?P<version>{_SEMVER})(?P<dereg>!)?"
    rf"|#(?P<stage>{_NAME})(?:#(?P<number>[1-9][0-9]*)|(?P<unassign>!)))",
    re.ASCII,
)
_FIELDS = ("refname:strip=2", "objecttype", "*objectname", "objectname", "taggername", "taggeremail",
           "taggerdate:iso-strict", "contents")


_MAX_TAG = 255  # git allows longer names; nothing mlops or GTO makes comes close

Kind = Literal["register", "deregister", "assign", "unassign"]


@dataclass(frozen=True, slots=True)
class TagEvent:
    tag: str
    artifact: str
    kind: Kind
    version: str | None
    stage: str | None
    number: int | None
    commit: str
    created: str  # ISO 8601, the tagger's date
    tagger: str
    message: str


@dataclass(frozen=True)
class ParsedName:
    artifact: str
    kind: Kind
    version: str | None
    stage: str | None
    number: int | None


def epoch(created: str) -> float:
    """Seconds since the epoch of an ISO 8601 tagger date (0 when unreadable), so time zones sort right."""
    try:
        return datetime.fromisoformat(created).timestamp()
    except ValueError:
        return 0.0


def parse_tag_name(name: str) -> ParsedName | None:
    """Parse a GTO tag name; None for anything else."""
    m = TAG_RE.fullmatch(name) if len(name) <= _MAX_TAG else None
    if m is None:
        return None
    if m.group("version"):
        if not semver.is_valid(m["version"]):
            return None
        return ParsedName(m["artifact"], "deregister" if m["dereg"] else "register", m["version"], None, None)
    if m.group("unassign"):
        return ParsedName(m["artifact"], "unassign", None, m["stage"], None)
    return ParsedName(m["artifact"], "assign", None, m["stage"], int(m["number"]))




def read_events(root: Path | str = ".", *, messages: bool = True) -> tuple[list[TagEvent], list[str]]:
    """All registry events from tags, in time order (tagger date, then assignment number); plus ignore notes.

    MESSAGES=False reads only each tag's first line (what show and history print): mlops' metadata blocks make
    the full messages ten times the size, and reading 10,000 of them costs a tenth of a second more."""
    events: list[TagEvent] = []
    notes: list[str] = []
    fields = _FIELDS if messages else (*_FIELDS[:-1], "contents:subject")
    for row in git.for_each_ref("refs/tags", fields, root):
        if len(row) < len(_FIELDS):
            continue
        name, objtype, peeled, obj, tagger, email, date, message = row[:8]
        parsed = parse_tag_name(name)
        if parsed is None:
            if "@" in name or "#" in name:
                notes.append(f"ignored tag '{name}': not a registry tag name (NAME@vX.Y.Z or NAME#STAGE#N)")
            continue
        if objtype != "tag":
            notes.append(f"ignored tag '{name}': lightweight tag (registry tags must be annotated)")
            continue
        events.append(TagEvent(tag=name, artifact=parsed.artifact, kind=parsed.kind, version=parsed.version,
                               stage=parsed.stage, number=parsed.number, commit=peeled or obj, created=date,
                               tagger=f"{tagger} {email}".strip(), message=message.strip()))
    events.sort(key=lambda e: (epoch(e.created), e.number or 0, e.tag))
    return events, notes


@dataclass(frozen=True, slots=True)
class VersionInfo:
    artifact: str
    version: str
    tag: str
    commit: str
    created: str
    tagger: str
    message: str


@dataclass
class ArtifactState:
    name: str
    versions: dict[str, VersionInfo] = field(default_factory=dict)  # registered and not deregistered
    stages: dict[str, VersionInfo] = field(default_factory=dict)  # current assignment of each stage
    stage_tags: dict[str, str] = field(default_factory=dict)  # the tag (NAME#STAGE#N) of each current assignment
    last_number: int = 0  # the highest NAME#STAGE#N seen: the next assignment uses N+1

    def latest(self) -> VersionInfo | None:
        if not self.versions:
            return None
        return self.versions[max(self.versions, key=semver.key)]

    def version_at(self, commit: str) -> VersionInfo | None:
        """The highest registered version whose tag points at COMMIT."""
        here = [v for v in self.versions.values() if v.commit == commit]
        return max(here, key=lambda v: semver.key(v.version)) if here else None


def build_state(events: list[TagEvent]) -> dict[str, ArtifactState]:
    """Fold events in time order into each artifact's versions and current stages.

    As GTO 1.10.1 does: a stage is at the version of its latest assignment among the versions still registered.
    Deregistering a version withdraws its assignments (the stage falls back to the one before, or to none), and
    an assignment made at the commit of a deregistered version assigns nothing."""
    state: dict[str, ArtifactState] = {}
    by_commit: dict[tuple[str, str], list[VersionInfo]] = {}  # registered versions, by their commit
    assigned: dict[tuple[str, str], list[tuple[VersionInfo, str]]] = {}  # (artifact, stage) -> (version, tag)s
    for e in events:
        art = state.setdefault(e.artifact, ArtifactState(e.artifact))
        if e.kind == "register" and e.version:
            info = VersionInfo(e.artifact, e.version, e.tag, e.commit, e.created, e.tagger, e.message)
            art.versions[e.version] = info
            by_commit.setdefault((e.artifact, e.commit), []).append(info)
        elif e.kind == "deregister" and e.version:
            gone = art.versions.pop(e.version, None)
            if gone is not None:
                here = by_commit.get((e.artifact, gone.commit), [])
                by_commit[(e.artifact, gone.commit)] = [v for v in here if v.version != e.version]
                for (name, _), entries in assigned.items():
                    if name == e.artifact:
                        entries[:] = [(v, t) for v, t in entries if v.version != e.version]
        elif e.kind == "assign" and e.stage:
            art.last_number = max(art.last_number, e.number or 0)
            at = by_commit.get((e.artifact, e.commit))
            if at:
                assigned.setdefault((e.artifact, e.stage), []).append(
                    (max(at, key=lambda v: semver.key(v.version)), e.tag))
        elif e.kind == "unassign" and e.stage:
            assigned.pop((e.artifact, e.stage), None)
    for (name, stage), entries in assigned.items():
        if entries:
            state[name].stages[stage] = entries[-1][0]
            state[name].stage_tags[stage] = entries[-1][1]
    return state


def read_state(root: Path | str = ".") -> tuple[dict[str, ArtifactState], list[str]]:
    events, notes = read_events(root)
    return build_state(events), notes


def stage_commit(root: Path | str, artifact: str, stage: str) -> VersionInfo | None:
    """The version currently assigned to STAGE (e.g. production), or None."""
    state, _ = read_state(root)
    art = state.get(artifact)
    return art.stages.get(stage) if art else None


@dataclass(frozen=True)
class HistoryEntry:
    event: TagEvent
    version: str | None  # the version an assignment resolved to when it was made (registered at its commit)


def history(events: list[TagEvent], artifact: str) -> list[HistoryEntry]:
    """ARTIFACT's events in time order, each assignment resolved to its version as build_state resolves it."""
    by_commit: dict[str, list[str]] = {}
    out: list[HistoryEntry] = []
    for e in events:
        if e.artifact != artifact:
            continue
        version = e.version
        if e.kind == "register" and e.version:
            by_commit.setdefault(e.commit, []).append(e.version)
        elif e.kind in ("assign", "unassign"):
            here = by_commit.get(e.commit)
            version = max(here, key=semver.key) if here else None
        out.append(HistoryEntry(e, version))
    return out

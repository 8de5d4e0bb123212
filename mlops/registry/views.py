"""`mlops registry show` / `history` as plain data: the --json documents (stable) and the table rows.

show --json:
    {"artifacts": {NAME: {"latest": "v1.3.0" | null, "latest_commit": SHA | null,
                          "stages": {STAGE: VERSION},
                          "versions": [{"version", "tag", "commit", "created", "tagger"}, ...]}}}
    versions in SemVer order (oldest first); registered ones only (a deregistered version is gone).
history --json:
    {"artifact": NAME, "events": [{"time", "event", "tag", "version", "stage", "number", "commit", "by",
                                   "message"}, ...]}
    events in time order; event is register | deregister | assign | unassign; message is the tag's first line.
"""

from __future__ import annotations

from typing import Any

from mlops import versions as semver
from mlops.formats.tagmeta import headline
from mlops.registry.tags import ArtifactState, HistoryEntry


def show_data(state: dict[str, ArtifactState]) -> dict[str, Any]:
    arts: dict[str, Any] = {}
    for name in sorted(state):
        art = state[name]
        latest = art.latest()
        versions = sorted(art.versions.values(), key=lambda v: semver.key(v.version))
        arts[name] = {
            "latest": latest.version if latest else None,
            "latest_commit": latest.commit if latest else None,
            "stages": {stage: info.version for stage, info in sorted(art.stages.items())},
            "versions": [{"version": v.version, "tag": v.tag, "commit": v.commit, "created": v.created,
                          "tagger": v.tagger} for v in versions],
        }
    return {"artifacts": arts}


def history_data(artifact: str, entries: list[HistoryEntry]) -> dict[str, Any]:
    return {"artifact": artifact, "events": [
        {"time": h.event.created, "event": h.event.kind, "tag": h.event.tag, "version": h.version,
         "stage": h.event.stage, "number": h.event.number, "commit": h.event.commit, "by": h.event.tagger,
         "message": headline(h.event.message)}
        for h in entries]}

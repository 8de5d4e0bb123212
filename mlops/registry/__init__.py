"""The model registry on git tags (GTO's format): versions, stages, gates' consumer, promotion, rollback."""

from mlops.registry.tags import (
    ArtifactState,
    TagEvent,
    VersionInfo,
    parse_tag_name,
    read_events,
    read_state,
    stage_commit,
)

__all__ = ["ArtifactState", "TagEvent", "VersionInfo", "parse_tag_name", "read_events", "read_state",
           "stage_commit"]

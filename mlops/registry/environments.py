"""Which versions may enter a delivery environment: staging before production, read from the stage tags.

An environment that `requires` a stage (production requires staging by default) takes only a version that stage
has held at some time: its assignment tag (`NAME#staging#N`) is in the registry's history, whatever holds the
stage now. A version the environment's own stage held before is also accepted, so that a rollback can go back to
it. Nothing here knows servers or workflows: the deploy job asks before it touches either.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops.errors import RefNotFound, RegistryError
from mlops.registry.tags import ArtifactState, TagEvent, VersionInfo, history


class NotHeldInStage(RegistryError):
    """An environment was asked to take a version that the stage it requires never held."""


@dataclass(frozen=True)
class Admission:
    version: str
    held_by: str | None  # the stage whose history vouches for the version (None: nothing required)
    tag: str | None  # the assignment tag that shows it


def held(events: list[TagEvent], artifact: str, stage: str, version: str) -> str | None:
    """The first assignment tag by which STAGE held VERSION of ARTIFACT, or None when it never did."""
    for entry in history(events, artifact):
        if entry.event.kind == "assign" and entry.event.stage == stage and entry.version == version:
            return entry.event.tag
    return None


def admit(events: list[TagEvent], artifact: str, version: str, *, stage: str, requires: str | None,
          environment: str) -> Admission:
    """May ENVIRONMENT (assigning STAGE) take VERSION? It may when REQUIRES is None, or when REQUIRES (or STAGE
    itself, for a rollback) has held it; else NotHeldInStage, one line."""
    if requires is None:
        return Admission(version, None, None)
    for vouching in (requires, stage):
        tag = held(events, artifact, vouching, version)
        if tag is not None:
            return Admission(version, vouching, tag)
    raise NotHeldInStage(f"{artifact}@{version} was never in {requires}: {environment} takes only versions that "
                         f"{requires} has held", hint=f"deploy it to {requires} first (`mlops deploy --environment "
                                                      f"{requires} --ref {artifact}@{version}`)")


def held_now(art: ArtifactState, stage: str) -> VersionInfo:
    """The version STAGE holds now; RefNotFound when it holds none."""
    info = art.stages.get(stage)
    if info is None:
        raise RefNotFound(f"{art.name} has no version in stage '{stage}': nothing to deliver from it",
                          hint=f"deploy one to {stage} first, or name it with --ref NAME@vX.Y.Z")
    return info

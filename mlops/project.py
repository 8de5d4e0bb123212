"""What the toolkit reads off a DVC project it did not write: which artifact is the model, which metric leads.

One resolver, used by report, gate, promote, rollback, registry and deploy, so that they can never disagree:
`registry.artifact` in params.yaml, else the only `type: model` entry under `artifacts:` in dvc.yaml, else an
error naming the candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mlops import dvc
from mlops.config import RegistryParams
from mlops.errors import ArtifactNotFound

_HINT = "set registry.artifact in params.yaml, or declare the model under `artifacts:` in dvc.yaml with `type: model`"


def _listed(artifacts: Iterable[dvc.Artifact]) -> str:
    return ", ".join(f"{a.name} ({a.type or 'no type'})" for a in artifacts) or "none"


def resolve_artifact(root: Path | str, registry: RegistryParams) -> dvc.Artifact:
    """The model artifact of the project at ROOT; ArtifactNotFound naming the candidates when it is ambiguous."""
    declared = dvc.artifacts(root)
    if registry.artifact is not None:
        found = declared.get(registry.artifact)
        if found is None:
            raise ArtifactNotFound(f"params.yaml: key 'registry.artifact': '{registry.artifact}' is not declared "
                                   f"under artifacts: in {dvc.DVC_YAML} (declared: {_listed(declared.values())})",
                                   hint=_HINT)
        return found
    models = [a for a in declared.values() if a.type == "model"]
    if len(models) == 1:
        return models[0]
    if not models:
        raise ArtifactNotFound(f"{dvc.DVC_YAML}: no artifact of type model under artifacts: "
                               f"(declared: {_listed(declared.values())})", hint=_HINT)
    raise ArtifactNotFound(f"{dvc.DVC_YAML}: {len(models)} artifacts of type model ({_listed(models)}): "
                           "cannot tell which one to register", hint="set registry.artifact in params.yaml")


def artifact_name(root: Path | str, registry: RegistryParams) -> str | None:
    """The model artifact's name, or None when the project declares none (the report then has no production)."""
    try:
        return resolve_artifact(root, registry).name
    except ArtifactNotFound:
        if registry.artifact is not None:
            raise
        return None


def headline(configured: str | None, metrics: Iterable[str]) -> str | None:
    """The report's and the run summary's lead metric: the configured one, else the first metric of the first
    metrics file (METRICS in dvc.yaml's order, as gates.metrics_of keys them)."""
    return configured or next(iter(metrics), None)

"""What the toolkit reads off a DVC project it did not write: which artifact is the model, which metric leads.

One resolver, used by report, gate, promote, rollback, registry and deploy, so that they can never disagree:
`registry.artifact` in params.yaml, else the only `type: model` entry under `artifacts:` in dvc.yaml, else an
error naming the candidates.
"""

from __future__ import annotations

import re
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


HELD_OUT = frozenset({"test", "testing", "eval", "evaluation", "val", "valid", "validation", "holdout", "heldout",
                      "dev", "oos", "oof"})
TRAIN = frozenset({"train", "training", "fit", "insample"})
_WORD = re.compile(r"[A-Za-z]+")


def split(metric: str) -> str:
    """Which data a metric key was measured on, read off its words (`avg_prec.test`, `eval/val.json:acc`):
    "held-out", "train" or "" (cannot tell)."""
    path, sep, key = metric.rpartition(":")
    # a file-prefixed key ("eval/train.json:acc"): the file's own name counts, not its folder (dvclive's eval/)
    named = f"{path.rsplit('/', 1)[-1].rsplit('.', 1)[0]} {key}" if sep else metric
    words = {w.lower() for w in _WORD.findall(named)}
    if words & HELD_OUT:
        return "held-out"
    return "train" if words & TRAIN else ""


def headline(configured: str | None, metrics: Iterable[str]) -> str | None:
    """The report's, the run summary's and `mlops init`'s gate metric: the configured one, else the first held-out
    metric (a key or file named test, eval, val, valid, holdout...), else the first that is not a train metric,
    else the first (METRICS in dvc.yaml's order, as gates.metrics_of keys them). A train metric leads only when
    there is nothing else: its rise says little about the model a reviewer is asked to merge."""
    if configured:
        return configured
    names = list(metrics)
    for wanted in ("held-out", ""):
        found = next((m for m in names if split(m) == wanted), None)
        if found is not None:
            return found
    return next(iter(names), None)

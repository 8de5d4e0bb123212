"""The main job (`mlops run`) and single stages (`mlops stage NAME`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops import dvc
from mlops.config import PARAMS_FILE, load_params
from mlops.errors import MlopsError
from mlops.progress import Progress, silent
from mlops.stages import STAGES


@dataclass(frozen=True)
class RunSummary:
    stages_run: tuple[str, ...]
    metrics: dict[str, Any]
    validation_passed: bool | None
    validation_failed: tuple[str, ...]
    device: str | None
    outputs: tuple[str, ...]


def run_stage(name: str, root: Path = Path("."), progress: Progress = silent) -> None:
    """Run one stage in-process (what `dvc.yaml` calls)."""
    if name not in STAGES:
        raise MlopsError(f"unknown stage '{name}'", hint=f"one of: {', '.join(STAGES)}")
    params = load_params(root / PARAMS_FILE)
    if name == "prepare":
        from mlops.stages.prepare import prepare

        prepare(params, root, progress)
    elif name == "validate":
        from mlops.stages.validate import validate

        validate(params, root, progress)
    elif name == "train":
        from mlops.stages.train import train

        train(params, root, progress)
    else:
        from mlops.stages.evaluate import evaluate

        evaluate(params, root, progress)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def summarize(root: Path, stages_run: tuple[str, ...]) -> RunSummary:
    metrics = _read_json(root / "reports/metrics.json") or {}
    validation = _read_json(root / "reports/validation.json")
    train = _read_json(root / "reports/train.json") or {}
    failed: tuple[str, ...] = ()
    passed = None
    if isinstance(validation, dict):
        passed = bool(validation.get("passed"))
        failed = tuple(c["name"] for c in validation.get("checks", []) if not c.get("passed"))
    outputs = tuple(p for p in ("models/model.ubj", "reports/metrics.json", "reports/validation.html",
                                "reports/model_card.md", "reports/plots") if (root / p).exists())
    return RunSummary(stages_run, metrics, passed, failed, train.get("device"), outputs)


def run_pipeline(root: Path = Path("."), progress: Progress = silent, *, pull: bool = False) -> RunSummary:
    """Check params first (a clear error beats a failed stage), then `dvc repro`, then summarise."""
    load_params(root / PARAMS_FILE)
    progress("pipeline: dvc repro")
    ran = dvc.repro(root, pull=pull, on_line=lambda line: progress(f"  {line}") if line.strip() else None)
    return summarize(root, tuple(ran))


def run_with_report(root: Path = Path("."), progress: Progress = silent, *, pull: bool = False,
                    base: str | None = None, production: str = "auto", report: bool = True) -> tuple[RunSummary, Any]:
    """The main job: the pipeline, then the report against the base branch and production (jobs.report.build)."""
    from mlops.jobs.report import build

    summary = run_pipeline(root, progress, pull=pull)
    result = build(root, base=base, production=production, progress=progress) if report else None
    return summary, result

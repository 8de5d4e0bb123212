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


def uses_mlops_stages(root: Path) -> bool:
    stages = dvc.read_dvc_yaml(root).get("stages") or {}
    if not isinstance(stages, dict):
        return False
    cmds = [str(s.get("cmd", "")) for s in stages.values() if isinstance(s, dict)]
    return any("mlops stage" in c for c in cmds)


def run_pipeline(root: Path = Path("."), progress: Progress = silent, *, pull: bool = False) -> RunSummary:
    """Check params first (a clear error beats a failed stage), then `dvc repro`, then summarise.

    The full params schema is checked only when dvc.yaml's stages run `mlops stage`: another project's stages
    run its own commands, and its params.yaml is its own.
    """
    if uses_mlops_stages(root):
        load_params(root / PARAMS_FILE)
    progress("pipeline: dvc repro")
    ran = dvc.repro(root, pull=pull, on_line=lambda line: progress(f"  {line}") if line.strip() else None)
    return summarize(root, tuple(ran))


def _stage_outputs(dvc_yaml: dict[str, Any]) -> dict[str, list[str]]:
    """stage name -> the paths it writes (outs, metrics, plots), from dvc.yaml."""
    out: dict[str, list[str]] = {}
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        if not isinstance(stage, dict):
            continue
        paths = []
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key) or []:
                if isinstance(entry, str):
                    paths.append(entry)
                elif isinstance(entry, dict) and len(entry) == 1:
                    paths.append(str(next(iter(entry))))
        out[str(name)] = paths
    return out


@dataclass
class _StageLog:
    """Which stages `dvc repro` ran, skipped as unchanged or restored, from its output lines."""

    ran: list[str]
    current: list[str]  # skipped (unchanged) or restored from the run cache: their outputs are up to date

    def see(self, line: str) -> None:
        text = line.strip()
        if text.startswith("Running stage '"):
            self.ran.append(text.split("'")[1])
        elif (text.startswith("Stage '") and ("didn't change" in text or "is cached" in text)) \
                or text.startswith("Restored stage '"):
            self.current.append(text.split("'")[1])


def _failure(root: Path, error: MlopsError, log: _StageLog) -> Any:
    """What the report of a failed pipeline says: the error, the failing stage, the outputs not reproduced."""
    from mlops.report import PipelineFailure

    failed_stage = log.ran[-1] if log.ran else None  # DVC stops at the first stage that fails
    done = set(log.current) | set(log.ran[:-1])
    try:
        outputs = _stage_outputs(dvc.read_dvc_yaml(root))
    except MlopsError:
        outputs = {}
    # The failing stage's outputs were removed by DVC before it ran: what exists of them it wrote in this run
    # (validate writes reports/validation.json before it fails, precisely so that the report can show it).
    stale = tuple(p for name, paths in outputs.items() if name not in done and name != failed_stage for p in paths)
    return PipelineFailure(error.message, failed_stage, metrics_reproduced=True, not_reproduced=stale)


def run_with_report(root: Path = Path("."), progress: Progress = silent, *, pull: bool = False,
                    base: str | None = None, production: str = "auto", report: bool = True) -> tuple[RunSummary, Any]:
    """The main job: the pipeline, then the report against the base branch and production (jobs.report.build).

    When the pipeline fails the report is still built (it says first that the pipeline failed and why, and shows
    the validation results), then the pipeline's error is raised again; if even that report cannot be built, the
    pipeline's error is raised unchanged.
    """
    from mlops.jobs.report import build

    log = _StageLog([], [])

    def watch(message: str) -> None:
        log.see(message)
        progress(message)

    try:
        summary = run_pipeline(root, watch if report else progress, pull=pull)
    except MlopsError as exc:
        if not report:
            raise
        try:
            failure = _failure(root, exc, log)
            progress("report: the pipeline failed; building the report of what it got to")
            written = build(root, base=base, production=production, progress=progress, failed=failure)
            progress(f"report: {', '.join(str(p) for p in written.files[:3])} (the pipeline failed)")
        except Exception as report_exc:  # never mask the pipeline's own error
            progress(f"report: could not be built after the failure: {type(report_exc).__name__}: {report_exc}")
        raise
    result = build(root, base=base, production=production, progress=progress) if report else None
    return summary, result

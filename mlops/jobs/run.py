"""The main job (`mlops run`): reproduce the pipeline, summarise it from dvc.yaml, then build the report.

Nothing here knows the churn project: the summary names the metrics files and outputs dvc.yaml declares, and
the headline is `report.headline`, else a held-out metric (project.headline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops import dvc, project
from mlops.config import PARAMS_FILE, ParamsFile, read_params
from mlops.errors import MlopsError, ReproFailed
from mlops.files import parse_structured
from mlops.gates import metrics_of
from mlops.github import LOCAL, CIContext
from mlops.progress import Progress, silent


@dataclass(frozen=True)
class RunSummary:
    stages_run: tuple[str, ...]
    stages_current: tuple[str, ...]  # unchanged, or restored from the run cache
    headline: tuple[str, float] | None  # (metric, value)
    metrics: Mapping[str, float]  # every metric of the declared metrics files (gates.metrics_of keys)
    metrics_files: tuple[str, ...]
    validation_passed: bool | None  # from `report.validation` when the pipeline writes one
    validation_failed: tuple[str, ...]
    outputs: tuple[str, ...]  # declared outputs (outs, metrics, plots) present in the workspace
    # (stage, why) for each stage that ran, when --pull told why ("outputs not in the remote", "changed params")
    recomputed: tuple[tuple[str, str], ...] = ()


def stage_outputs(dvc_yaml: Mapping[str, Any]) -> dict[str, list[str]]:
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


def _read(root: Path, rel: str) -> Any:
    p = root / rel
    return parse_structured(rel, p.read_bytes()) if p.is_file() else None


def summarize(root: Path, result: dvc.ReproResult, config: ParamsFile | None = None) -> RunSummary:
    dvc_yaml = dvc.read_dvc_yaml(root)
    sections = (config or read_params(root / PARAMS_FILE)).sections
    paths = dvc.metrics_paths(dvc_yaml)
    metrics = metrics_of({p: _read(root, p) for p in paths}, paths)
    lead = project.headline(sections.report.headline, metrics)
    validation = _read(root, sections.report.validation)
    passed: bool | None = None
    failed: tuple[str, ...] = ()
    if isinstance(validation, dict) and "passed" in validation:
        passed = bool(validation.get("passed"))
        failed = tuple(str(c.get("name")) for c in validation.get("checks", [])
                       if isinstance(c, dict) and not c.get("passed"))
    declared = [p for paths_ in stage_outputs(dvc_yaml).values() for p in paths_]
    outputs = tuple(p for p in dict.fromkeys(declared) if (root / p).exists())
    return RunSummary(tuple(result.ran), tuple(result.current),
                      (lead, metrics[lead]) if lead is not None and lead in metrics else None,
                      metrics, tuple(paths), passed, failed, outputs,
                      tuple(result.recomputed) if result.why else ())


def uses_mlops_stages(root: Path) -> bool:
    stages = dvc.read_dvc_yaml(root).get("stages") or {}
    if not isinstance(stages, dict):
        return False
    cmds = [str(s.get("cmd", "")) for s in stages.values() if isinstance(s, dict)]
    return any("mlops stage" in c for c in cmds)


def run_pipeline(root: Path = Path("."), progress: Progress = silent, *, pull: bool = False,
                 config: ParamsFile | None = None) -> RunSummary:
    """Check params first (a clear error beats a failed stage), then `dvc repro`, then summarise.

    The full params schema is checked only when dvc.yaml's stages run `mlops stage`: another project's stages
    run its own commands, and its params.yaml is its own. CONFIG: params.yaml as the command read it (read here
    when not given).
    """
    config = config or read_params(root / PARAMS_FILE)
    if uses_mlops_stages(root):
        _ = config.params
    progress("pipeline: dvc repro")
    result = dvc.repro(root, pull=pull, on_line=lambda line: progress(f"  {line}") if line.strip() else None)
    return summarize(root, result, config)


def _result_of(error: MlopsError) -> dvc.ReproResult:
    return error.result if isinstance(error, ReproFailed) and error.result is not None else dvc.ReproResult()


def _failure(root: Path, error: MlopsError) -> Any:
    """What the report of a failed pipeline says: the error, the failing stage, the outputs not reproduced."""
    from mlops.report import PipelineFailure

    got = _result_of(error)
    done = set(got.current) | set(got.ran[:-1] if got.failed else got.ran)
    try:
        outputs = stage_outputs(dvc.read_dvc_yaml(root))
    except MlopsError:
        outputs = {}
    # The failing stage's outputs were removed by DVC before it ran: what exists of them it wrote in this run
    # (validate writes reports/validation.json before it fails, precisely so that the report can show it).
    stale = tuple(p for name, paths in outputs.items() if name not in done and name != got.failed for p in paths)
    return PipelineFailure(error.message, got.failed, metrics_reproduced=True, not_reproduced=stale)


def run_with_report(root: Path = Path("."), progress: Progress = silent, *, pull: bool = False,
                    base: str | None = None, production: str = "auto", report: bool = True,
                    ci: CIContext = LOCAL) -> tuple[RunSummary, Any]:
    """The main job: the pipeline, then the report against the base branch and production (jobs.report.build).

    When the pipeline fails the report is still built (it says first that the pipeline failed and why, and shows
    the validation results), then the pipeline's error is raised again; if even that report cannot be built, the
    pipeline's error is raised unchanged.
    """
    from mlops.jobs.report import build

    config = read_params(root / PARAMS_FILE)  # once: the params check, the summary and the report share it
    try:
        summary = run_pipeline(root, progress, pull=pull, config=config)
    except MlopsError as exc:
        if not report:
            raise
        try:
            failure = _failure(root, exc)
            progress("report: the pipeline failed; building the report of what it got to")
            got = _result_of(exc)
            written = build(root, base=base, production=production, progress=progress, failed=failure, ci=ci,
                            recomputed=got.recomputed if got.why else (), config=config)
            progress(f"report: {', '.join(str(p) for p in written.files[:3])} (the pipeline failed)")
        except Exception as report_exc:  # never mask the pipeline's own error
            progress(f"report: could not be built after the failure: {type(report_exc).__name__}: {report_exc}")
        raise
    result = (build(root, base=base, production=production, progress=progress, ci=ci,
                    recomputed=summary.recomputed, config=config) if report else None)
    return summary, result

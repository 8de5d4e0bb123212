"""`mlops monitor`: check served traffic (request logs) or a file of raw records against the reference profile.

Picks the inputs (the source, the window's start, the labels, the model that scores a file without scores, the
production version's registration date for staleness), runs the check in mlops.monitor, writes
reports/monitor.{md,html,json}, and raises MonitorAlert carrying the result when a threshold is crossed. With
`retrain`, an alarm also goes to mlops.jobs.retrain (the retraining pull request) and the alert carries what it did.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlops import project
from mlops.config import PARAMS_FILE, ParamsFile, read_params
from mlops.errors import MlopsError
from mlops.formats.profile import ReferenceProfile, read_profile
from mlops.github.context import LOCAL, CIContext
from mlops.monitor import (
    MonitorAlert,
    MonitorInputError,
    MonitorParams,
    MonitorResult,
    ReadStats,
    Scorer,
    iso_z,
    parse_duration,
    read_record_chunks,
    run,
    write_reports,
)
from mlops.monitor.tasks import read_task_labels
from mlops.progress import Progress, silent
from mlops.registry import stage_commit

DEFAULT_OUT = Path("reports")
Registered = tuple[str | None, str] | None


def production_registration(root: Path, config: ParamsFile | None = None) -> tuple[Registered, str | None]:
    """(version, registration date) of the version in the production stage, or None and why not. CONFIG: the
    command's params.yaml (read here when not given)."""
    try:
        sections = (config or read_params(root / PARAMS_FILE)).sections
        artifact = project.artifact_name(root, sections.registry)
        if artifact is None:
            return None, "staleness not checked: the project declares no model artifact"
        info = stage_commit(root, artifact, sections.registry.production_stage)
    except MlopsError as exc:
        return None, f"staleness not checked: {exc.message}"
    if info is None:
        return None, f"staleness not checked: no version of {artifact} is in {sections.registry.production_stage}"
    return (info.version, info.created), None


def model_scorer(profile: ReferenceProfile, model_path: Path) -> Scorer | None:
    """A scorer of encoded rows by the model beside the reference (loaded on first use), or None without one: a
    model package through its runtime (mlops.monitor.scoring), else the churn stages' xgboost model."""
    from mlops.monitor.scoring import package_scorer

    packaged = package_scorer(model_path.parent)
    if packaged is not None:
        return packaged
    if not model_path.is_file():
        return None
    from mlops import features

    iface = features.ModelInterface.of(profile.schema.interface.inputs, profile.schema.output)
    loaded: list[Any] = []

    def score(matrix: Any) -> Any:
        if not loaded:
            try:
                import xgboost as xgb
            except ImportError:
                raise MonitorInputError("scoring the file needs xgboost, which is not installed",
                                        hint='pip install "mlops[serve]", or give the file the output column') \
                    from None
            booster = xgb.Booster()
            try:
                booster.load_model(str(model_path))
            except xgb.core.XGBoostError as exc:
                raise MonitorInputError(f"{model_path}: not a readable xgboost model: "
                                        f"{str(exc).splitlines()[0]}") from None
            features.bind_booster(booster, iface, str(model_path))
            loaded.append(booster)
        return features.predict(loaded[0], matrix)

    return score


def monitor(root: Path = Path("."), *, log: Path | None = None, current: Path | None = None,
            reference: Path | None = None, since: str | None = None, labels: Path | None = None,
            out: Path | None = None, registered: Registered | Literal["auto"] = "auto",
            now: datetime | None = None, params: MonitorParams | None = None,
            progress: Progress = silent, retrain: bool = False, ci: CIContext = LOCAL,
            publish: Path | None = None, alarm_issue: bool | None = None, scheduler: str | None = None,
            client: Any = None, config: ParamsFile | None = None) -> MonitorResult:
    """The monitoring result when healthy; MonitorAlert carrying it when a threshold is crossed (the reports are
    written either way). RETRAIN: when alarming, also the retraining pull request (mlops.jobs.retrain), and the
    alert is a RetrainAlert that carries what it did. PUBLISH: a model store whose server exports this result's
    gauges on its /metrics (written healthy or not, before any alert). ALARM_ISSUE: keep the sticky alarm issue
    on GitHub (None: in Actions with a token); the report goes to the job summary on every run (mlops.jobs.alarm).
    SCHEDULER: read the window on that Dask cluster (`local`: a LocalCluster here), or on CLIENT's; CURRENT may
    be a directory of part files (what `mlops predict` writes), one task per file. CONFIG: params.yaml as this
    command read it (read here, once, when not given); PARAMS overrides its `monitor:` section."""
    config = config or read_params(root / PARAMS_FILE)
    if client is None and scheduler:
        from mlops.jobs.predict import dask_client

        with dask_client(scheduler) as c:
            return monitor(root, log=log, current=current, reference=reference, since=since, labels=labels,
                           out=out, registered=registered, now=now, params=params, progress=progress,
                           retrain=retrain, ci=ci, publish=publish, alarm_issue=alarm_issue, client=c,
                           config=config)
    from mlops.jobs import alarm

    issue = alarm.wanted(ci, alarm_issue)
    if retrain:
        from mlops.jobs.retrain import require_labels

        require_labels(current, labels)  # before the check: it is the user's mistake, not the data's
    cfg = params or config.monitor
    moment = now or datetime.now(UTC)
    if log is not None and current is not None:
        raise MonitorInputError("give either --log DIR or --current FILE, not both")
    if log is None and current is None:
        if cfg.log_dir is None:
            raise MonitorInputError("nothing to monitor: give --log DIR (the server's request logs) or "
                                    "--current FILE (raw records)", hint="or set monitor.log_dir in params.yaml")
        log = root / cfg.log_dir
    ref_path = reference if reference is not None else root / cfg.reference
    ref = read_profile(ref_path)
    profile = dict(ref.doc)
    output_name, target, positive, names = ref.output_name, ref.label, ref.positive, ref.feature_names
    cutoff = iso_z(moment - parse_duration(since)) if since else None
    label_map = read_task_labels(labels, profile, target, positive) if labels is not None else None
    notes: list[str] = []
    read = ReadStats()
    tables: list[Path] = []
    chunks: Any = None
    if current is not None:
        categorical = ref.categorical
        tables = current_files(current)
        if client is None:
            chunks = (c for f in tables for c in read_record_chunks(f, names, output_name, target,
                                                                    categorical=categorical,
                                                                    chunk_rows=cfg.chunk_rows, stats=read))
        scorer = model_scorer(ref, ref_path.parent / _model_file(config))
        source, path = "file", str(current)
        if since:
            notes.append("--since applies to request logs only: the whole file was checked")
            cutoff = None
    else:
        assert log is not None  # one of the two is set above
        scorer = None
        source, path = "logs", str(log)
    if registered == "auto":
        reg, why = production_registration(root, config)
        if why:
            notes.append(why)
    else:
        reg = registered
    progress(f"monitor: checking {source} {path} against {ref_path}")
    result = run(profile, chunks, cfg, read, source=source, path=path, reference=str(ref_path), labels=label_map,
                 scorer=scorer, since=cutoff, registered=reg, now=moment, notes=notes, progress=progress,
                 log_dir=log if current is None else None, client=client, files=tables)
    stats, why = alarm.delivery(root, ci, moment, use_github=issue, progress=progress, config=config)
    files = write_reports(result, out if out is not None else root / DEFAULT_OUT, plots=cfg.plots, root=root,
                          delivery=stats.lines() if stats else [("delivery figures", why or "unavailable")])
    result = dataclasses.replace(result, files=files)
    if publish is not None:
        written = _publish(root, publish, result, moment, stats.gauges() if stats else [], config)
        progress(f"monitor: gauges published to {written} (the server's /metrics exports them)")
    alarm.publish(root, result, ci, issue=issue, now=moment, progress=progress, config=config)
    if retrain and not result.healthy:
        from mlops.jobs.retrain import RetrainAlert
        from mlops.jobs.retrain import retrain as retrain_job

        done = retrain_job(root, result, profile, log=log if current is None else None, current=current,
                           labels=label_map, scorer=scorer, since=since, params=cfg, ci=ci, now=moment,
                           progress=progress, main_branch=config.sections.registry.main_branch)
        raise RetrainAlert(result, done)
    if not result.healthy:
        raise MonitorAlert(result)
    return result


TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".csv.gz", ".tsv.gz")


def current_files(path: Path) -> list[Path]:
    """PATH, or the data files of the directory PATH (name order; `_` and `.` files are metadata): a partitioned
    output such as `mlops predict` writes."""
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(TABLE_SUFFIXES)
                   and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts))
    if not found:
        raise MonitorInputError(f"{path}: no .parquet or .csv files in this directory",
                                hint="pass a CSV or Parquet file of raw records, or a directory of them")
    return found


def _publish(root: Path, store: Path, result: MonitorResult, moment: datetime,
             extra: list[tuple[str, dict[str, str], float]], config: ParamsFile) -> Path:
    from mlops import modelstore, project

    try:
        name = project.artifact_name(root, config.sections.registry)
    except MlopsError:
        name = None
    if name is None:
        raise MonitorInputError("--store: cannot tell which model the gauges belong to (no model artifact in "
                                "dvc.yaml)", hint="declare it under artifacts: with type: model, or set "
                                                  "registry.artifact in params.yaml")
    try:
        return modelstore.write_gauges(store, name, result.gauges() + extra, iso_z(moment))
    except OSError as exc:
        raise MonitorInputError(f"--store {store}: cannot write the gauges ({exc.strerror or type(exc).__name__})"
                                ) from None


def _model_file(config: ParamsFile) -> str:
    try:
        return config.sections.registry.model_file or "model.ubj"
    except MlopsError:
        return "model.ubj"

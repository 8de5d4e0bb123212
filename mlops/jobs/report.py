"""`mlops report`, `mlops gate` and `mlops comment`: read three states, diff them, render, gate, post.

The workspace is read from disk; the base (merge-base with main) and production (the commit of the newest
`NAME#production#N` tag) are read at their commits: git-tracked files with `git show`, DVC outputs from the local
cache by the hashes in that commit's dvc.lock. What the cache lacks is fetched from the DVC remote in a worktree
of that commit, or, failing that, reproduced there (`dvc repro --pull`: what the run cache holds is restored, every
stage whose outputs are still missing is recomputed). The report says which. When one side cannot be had at all
(its commit's data is gone from the remote and cannot be recomputed), the report is still built: it says which side
is missing and why, and the gates that need that side are shown as not evaluated (never as passed).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops import __version__, dvc, git, project
from mlops.config import PARAMS_FILE, GateSpec, ParamsFile, RegistryParams, ReportParams, read_params
from mlops.errors import DvcError, GitError, RefNotFound, ReportError, SideUnavailable
from mlops.evidence import read_parquet
from mlops.files import parse_structured, yaml_mapping
from mlops.gates import PREDICTION_PREFIX, GateEvidence, GateReport, evaluate_gates, metrics_of
from mlops.github import LOCAL, CIContext
from mlops.mltestscore import assess, read_facts
from mlops.progress import Progress, silent
from mlops.registry import stage_commit
from mlops.report import (
    Comparison,
    Meta,
    PipelineFailure,
    Report,
    State,
    as_json,
    build_report,
    compare,
    flatten_params,
    html,
    markdown,
    with_renderings,
)

PNG_DIR = "report-plots"


@dataclass(frozen=True)
class ReportConfig:
    report: ReportParams
    gates: Mapping[str, GateSpec]
    registry: RegistryParams
    params: ParamsFile | None = None  # the workspace's params.yaml as this command read it (its params table)


def load_report_config(root: Path, config: ParamsFile | None = None) -> ReportConfig:
    """Only the sections the report needs (`report`, `gates`, `registry`), so any project's params.yaml works.
    CONFIG: params.yaml as the command read it (read here when not given)."""
    config = config or read_params(root / PARAMS_FILE)
    sections = config.sections
    return ReportConfig(sections.report, sections.gates, sections.registry, config)


# --- reading states --------------------------------------------------------------------------------------------



def _plot_specs(root: Path, dvc_yaml: dict[str, Any]) -> list[dvc.PlotSpec]:
    """dvc.yaml's plots, with directory entries expanded to one spec per file (as DVC shows them)."""
    out = []
    for spec in dvc.plot_specs(dvc_yaml):
        path = next(iter(spec.y), "")
        if len(spec.y) == 1 and (root / path).is_dir():
            for f in sorted(p for p in (root / path).rglob("*") if p.is_file()):
                rel = f.relative_to(root).as_posix()
                out.append(replace(spec, id=rel, title=rel, y={rel: spec.y[path]},
                                   x={rel: spec.x[path]} if path in spec.x else {}))
        else:
            out.append(spec)
    return out


def _wanted(cfg: ReportParams, metrics: Sequence[str], specs: Sequence[dvc.PlotSpec]) -> list[str]:
    files = [*metrics, *(f for s in specs for f in s.y), cfg.data_summary, cfg.validation, cfg.segments,
             cfg.predictions.path, *([cfg.predictions.labels] if cfg.predictions.labels else [])]
    return list(dict.fromkeys(files))


def _parse(path: str, raw: bytes) -> Any:
    """parse_structured, plus Parquet (per-row predictions may be Parquet); None when unreadable."""
    if path.lower().endswith(".parquet"):
        try:
            return read_parquet(raw)
        except Exception:  # pyarrow raises many types for a bad file: unreadable is None, as for JSON
            return None
    return parse_structured(path, raw)


def _params(read: Any, dvc_yaml: dict[str, Any]) -> dict[str, str]:
    """The flattened params files of DVC_YAML; READ gives a file's bytes, or its parsed mapping when the command
    has read it already (params.yaml), or None."""
    out: dict[str, str] = {}
    for path in dvc.params_paths(dvc_yaml):
        raw = read(path)
        if raw is None:
            continue
        if isinstance(raw, dict):
            data: Any = raw
        else:
            data = yaml_mapping(raw) if not path.endswith(".json") else parse_structured(path, raw)
        prefix = "" if path == PARAMS_FILE else f"{path}:"
        out.update(flatten_params(data or {}, prefix))
    return out


def read_workspace(root: Path, cfg: ReportConfig, specs: Sequence[dvc.PlotSpec], name: str, ref: str) -> State:
    dvc_yaml = dvc.read_dvc_yaml(root)
    metrics = dvc.metrics_paths(dvc_yaml)
    files: dict[str, Any] = {}
    missing = []
    for path in _wanted(cfg.report, metrics, specs):
        p = root / path
        if p.is_file():
            files[path] = _parse(path, p.read_bytes())
        elif path in metrics:
            missing.append(path)
    lock = dvc.read_lock(root) if (root / dvc.DVC_LOCK).is_file() else {}
    try:
        commit: str | None = git.head(root)
    except GitError:
        commit = None

    def read(path: str) -> Any:
        if path == PARAMS_FILE and cfg.params is not None:
            return cfg.params.raw if isinstance(cfg.params.raw, dict) else {}  # read once, by load_report_config
        return (root / path).read_bytes() if (root / path).is_file() else None

    dirty = bool(commit) and bool(git.is_dirty(root))
    return State("head", name, ref + (" + uncommitted changes" if dirty else ""), commit, "workspace",
                 metrics_of(files, metrics), _params(read, dvc_yaml), dvc.data_deps(lock), files, tuple(missing))


def _from_commit(root: Path, rev: str, wanted: Sequence[str], lock: dict[str, Any],
                 into: dict[str, Any]) -> list[str]:
    """Fill INTO from git and the local cache; returns the DVC outputs the cache lacks."""
    lacking = []
    for path in wanted:
        if path in into:
            continue
        raw = git.show_file(rev, path, root)
        if raw is None:
            declared, raw = dvc.cached_output(root, lock, path)
            if declared and raw is None:
                lacking.append(path)
                continue
        if raw is not None:
            into[path] = _parse(path, raw)
    return lacking


def _worktree_fill(root: Path, rev: str, lacking: Sequence[str], into: dict[str, Any],
                   progress: Progress, label: str) -> str:
    """Fetch, else reproduce, LACKING outputs of REV in a temporary worktree; returns how they were obtained."""
    tmp = Path(tempfile.mkdtemp(prefix="mlops-rev-"))
    wt = tmp / "wt"
    git.worktree_add(wt, rev, root)
    try:
        dvc.prepare_worktree(root, wt)
        lock = dvc.read_lock(wt) if (wt / dvc.DVC_LOCK).is_file() else {}
        if dvc.has_remote(root):
            progress(f"report: fetching {label} outputs from the DVC remote")
            dvc.fetch(wt)
            still = _from_commit(root, rev, lacking, lock, into)
            if not still:
                return "fetched from the DVC remote"
            lacking = still
        progress(f"report: reproducing {label} outputs in a temporary worktree (dvc repro --pull)")
        try:
            result = dvc.repro(wt, pull=dvc.has_remote(root), explain=True)
        except DvcError as exc:
            raise SideUnavailable(f"cannot get the {label} outputs ({', '.join(lacking)}) at {rev[:12]}: "
                                  f"{exc.message}",
                                  hint="push them from main (`dvc push --run-cache`) or use --base with another ref") \
                from None
        for path in lacking:
            if (wt / path).is_file():
                into[path] = _parse(path, (wt / path).read_bytes())
        if result.ran:
            why = ", ".join(f"{name} ({reason})" for name, reason in result.recomputed)
            return f"recomputed in a temporary worktree: {why}"
        return "restored from the run cache"
    finally:
        git.worktree_remove(wt, root)
        shutil.rmtree(tmp, ignore_errors=True)


def read_commit(root: Path, cfg: ReportConfig, specs: Sequence[dvc.PlotSpec], rev: str, role: str, name: str,
                ref: str, progress: Progress = silent) -> State:
    dvc_yaml = yaml_mapping(git.show_file(rev, dvc.DVC_YAML, root))
    # the one validator, naming the commit: a malformed lock at the base is a clear error, not a crash
    lock = dvc.parse_lock(git.show_file(rev, dvc.DVC_LOCK, root), f"{dvc.DVC_LOCK} at {ref} ({rev[:12]})")
    metrics = dvc.metrics_paths(dvc_yaml)
    wanted = _wanted(cfg.report, metrics, specs)
    files: dict[str, Any] = {}
    lacking = _from_commit(root, rev, wanted, lock, files)
    source = "local DVC cache"
    if lacking:
        source = _worktree_fill(root, rev, lacking, files, progress, name)
    missing = tuple(p for p in metrics if p not in files)
    return State(role, name, ref, rev, source, metrics_of(files, metrics),
                 _params(lambda p: git.show_file(rev, p, root), dvc_yaml), dvc.data_deps(lock), files, missing)


# --- choosing the states -----------------------------------------------------------------------------------------

def resolve_base(root: Path, base: str | None, main: str) -> tuple[str, str]:
    """(commit, name): --base REF, else the merge-base of HEAD with MAIN (or origin/MAIN in a CI checkout)."""
    if base:
        return git.rev_parse(base, root), base
    for candidate in (main, f"origin/{main}", f"refs/remotes/origin/{main}"):
        if git.ref_exists(candidate, root):
            return git.merge_base("HEAD", candidate, root), main
    raise RefNotFound(f"base branch '{main}' not found (nor origin/{main})",
                      hint=f"fetch it (`git fetch origin {main}:{main}`, or checkout with fetch-depth: 0) "
                           "or pass --base REF")


def resolve_production(root: Path, cfg: ReportConfig, production: str) -> tuple[str | None, str, str]:
    """(commit, ref, note) of the production model per --production auto|REF|none; auto is the version that
    `registry.production_stage` of the resolved model artifact points at."""
    if production == "none":
        return None, "", "Production comparison turned off (--production none)."
    if production != "auto":
        return git.rev_parse(production, root), production, f"Production: {production}."
    artifact = project.artifact_name(root, cfg.registry)
    if artifact is None:
        return None, "", "No production model: no model artifact is declared (dvc.yaml `artifacts:`, type: model)."
    stage = cfg.registry.production_stage
    info = stage_commit(root, artifact, stage)
    if info is None:
        return None, "", (f"No production model yet: no {artifact}#{stage}#N tag, "
                          "so nothing is compared with production.")
    return info.commit, f"{artifact} {info.version}", f"Production: {artifact} {info.version} ({info.tag})."


def _needs_evidence(cfg: ReportConfig) -> bool:
    return any(s.judge == "interval" or m.startswith(PREDICTION_PREFIX) for m, s in cfg.gates.items())


def with_headline(cfg: ReportConfig, metrics: Mapping[str, float]) -> ReportConfig:
    """CFG with the lead metric resolved: configured, else a held-out metric of the first metrics file."""
    lead = project.headline(cfg.report.headline, metrics)
    return replace(cfg, report=cfg.report.model_copy(update={"headline": lead or ""}))


def _compare(cfg: ReportConfig, head: State, ref: State, against: str) -> Comparison:
    return compare(with_headline(cfg, head.metrics).report, head, ref, against)


def _evidence(comparison: Comparison) -> GateEvidence:
    """What a comparison gives the gates: the prediction diff's metrics, the intervals, why either is missing."""
    return GateEvidence(comparison.diff.metrics() if comparison.diff is not None else {},
                        comparison.interval_bounds, "; ".join(comparison.notes) or None)


def gate_report(cfg: ReportConfig, head: State, ref: State | None, against: str,
                unavailable: str | None = None, comparison: Comparison | None = None) -> GateReport:
    """The gates of CFG for HEAD against REF. COMPARISON (the per-row evidence against REF) is computed here when
    a gate needs it (`judge: interval`, a `prediction.*` metric) and the caller has none."""
    if comparison is None and ref is not None and _needs_evidence(cfg):
        comparison = _compare(cfg, head, ref, against)
    evidence = _evidence(comparison) if comparison is not None else None
    return evaluate_gates(cfg.gates, head.metrics, ref.metrics if ref is not None else None, against, unavailable,
                          evidence)


def evidence_against(root: Path, rev: str, against: str, name: str, progress: Progress = silent,
                     config: ParamsFile | None = None) -> GateEvidence | None:
    """The per-row evidence of the workspace against the outputs at REV, for `mlops promote`, which judges the same
    gates as the report (`prediction.*`, `judge: interval`) against production: None when no gate needs it; with
    the reason (`why_not`) when the rows cannot be compared, so those gates are not evaluated rather than passed.
    CONFIG: params.yaml as the command read it (read here when not given)."""
    cfg = load_report_config(root, config)
    if not _needs_evidence(cfg):
        return None
    head = read_workspace(root, cfg, [], "this commit", "HEAD")
    ref, missing = read_side(lambda: read_commit(root, cfg, [], rev, against, name, name, progress), progress)
    if ref is None:
        return GateEvidence(why_not=f"{name} could not be read ({missing})")
    return _evidence(_compare(cfg, head, ref, against))


def read_side(read: Callable[[], State], progress: Progress) -> tuple[State | None, str | None]:
    """(state, None), or (None, why) when that side of the comparison cannot be had at all: its outputs are in
    neither the cache nor the remote and recomputing them failed (data gone). The report goes on without it."""
    try:
        return read(), None
    except SideUnavailable as exc:
        progress(f"report: {exc.message}")
        return None, exc.message


@dataclass(frozen=True)
class ReportResult:
    report: Report
    files: tuple[Path, ...]  # report.md, report.html, report.json (and PNGs)
    markdown: str


def _under(path: str, outputs: Sequence[str]) -> bool:
    return any(path == o.rstrip("/") or path.startswith(o.rstrip("/") + "/") for o in outputs)


def _without_stale(head: State, failed: PipelineFailure, metrics: Sequence[str]) -> tuple[State, PipelineFailure]:
    """HEAD without the outputs of stages that did not run in the failed pipeline (they are from an earlier run)."""
    stale = failed.not_reproduced
    files = {p: v for p, v in head.files.items() if not _under(p, stale)}
    # A stage that did not run left an earlier run's file; the failing stage's own outputs were deleted by DVC
    # before it ran, so a metrics file it should have written is simply absent: neither counts as reproduced.
    reproduced = not any(_under(p, stale) for p in metrics) and all(p in files for p in metrics)
    head = replace(head, files=files, metrics=metrics_of(files, metrics) if reproduced else {})
    return head, replace(failed, metrics_reproduced=reproduced)


def _comparisons(cfg: ReportConfig, head: State, base: State | None, prod: State | None,
                 failed: PipelineFailure | None) -> list[Comparison]:
    """The per-row evidence against each side that was read (none when this branch's metrics were not
    reproduced: its predictions would be an earlier run's)."""
    if failed is not None and not failed.metrics_reproduced:
        return []
    return [compare(cfg.report, head, ref, against) for against, ref in (("base", base), ("production", prod))
            if ref is not None]


def build(root: Path = Path("."), *, base: str | None = None, production: str = "auto",
          out: Path | None = None, progress: Progress = silent, pngs: bool = True,
          failed: PipelineFailure | None = None, ci: CIContext = LOCAL,
          recomputed: Sequence[tuple[str, str]] = (), config: ParamsFile | None = None) -> ReportResult:
    """Read the three states, diff them, and write report.md, report.html and report.json under OUT.

    FAILED: the pipeline failed; the report says so first, shows validation and compares whatever metrics exist,
    leaving out the workspace outputs of stages that did not run (`failed.not_reproduced`) rather than showing an
    earlier run's values as this branch's. RECOMPUTED: (stage, why) of the stages this run's pipeline recomputed,
    for the footer. CONFIG: params.yaml as this command read it (read here, once, when not given).
    """
    started = time.perf_counter()
    root = root.resolve()
    cfg = load_report_config(root, config)
    out_dir = (root / "reports") if out is None else (out if out.is_absolute() else Path.cwd() / out)
    dvc_yaml = dvc.read_dvc_yaml(root)
    specs = _plot_specs(root, dvc_yaml)
    branch = ci.head_ref or git.current_branch(root) or "detached HEAD"
    progress("report: reading the workspace")
    head = read_workspace(root, cfg, specs, "this branch", branch)
    if failed is not None:
        head, failed = _without_stale(head, failed, dvc.metrics_paths(dvc_yaml))
    elif not head.metrics:
        raise ReportError("no metrics in the workspace: " + (", ".join(head.missing) or "dvc.yaml declares none"),
                          hint="run the pipeline first (`mlops run`)")
    base_commit, base_name = resolve_base(root, base, cfg.registry.main_branch)
    progress(f"report: reading {base_name} at {base_commit[:12]}")
    base_state, base_missing = read_side(lambda: read_commit(root, cfg, specs, base_commit, "base", base_name,
                                                         base_name, progress), progress)
    prod_commit, prod_ref, note = resolve_production(root, cfg, production)
    prod_state = prod_missing = None
    # the lead metric: configured, else a held-out metric of the first metrics file that has one (project.headline)
    cfg = with_headline(cfg, head.metrics or (base_state.metrics if base_state else {}))
    if prod_commit is not None:
        progress(f"report: reading production at {prod_commit[:12]}")
        prod_state, prod_missing = read_side(lambda: read_commit(root, cfg, specs, prod_commit, "production",
                                                             "production", prod_ref, progress), progress)
    notes = [f"{s.name}: {', '.join(s.missing)} not found, its metrics are missing"
             for s in (head, base_state, prod_state) if s is not None and s.missing
             and (failed is None or s is not head)]
    if base_missing is not None:
        notes.insert(0, f"{base_name} ({base_commit[:12]}) could not be read, so nothing is compared with it and "
                        f"the gates against it were not evaluated: {base_missing}")
    if prod_missing is not None and prod_commit is not None:
        notes.insert(0, f"Production ({prod_ref}, {prod_commit[:12]}) could not be read, so this report compares "
                        f"with {base_name} only and the gates against production were not evaluated: {prod_missing}. "
                        "`mlops promote` still checks them after the merge, against the metrics the production "
                        "tag records.")
    progress("report: intervals and prediction diffs")
    comparisons = _comparisons(cfg, head, base_state, prod_state, failed)
    by = {c.against: c for c in comparisons}
    gates: GateReport | None = gate_report(cfg, head, base_state, "base", base_missing, by.get("base"))
    prod_gates = (gate_report(cfg, head, prod_state, "production", prod_missing, by.get("production"))
                  if prod_commit is not None else None)
    if failed is not None and not failed.metrics_reproduced:
        gates = prod_gates = None  # nothing of this branch to gate: the report says why instead
    url = ci.run_url
    where = f"`mlops-report` artifact of the workflow run: {url}" if url else str(out_dir / "report.html")
    meta = Meta(__version__, 0.0, url, datetime.now(UTC).isoformat(timespec="seconds"), where)
    facts = read_facts(root, (cfg.params.raw or {}) if cfg.params is not None else None)
    report = build_report(cfg.report, head, base_state, prod_state, note, gates, specs, meta, notes,
                          test_score=assess(facts),
                          production_gates=prod_gates, pipeline=failed, recomputed=recomputed,
                          comparisons=comparisons)
    progress("report: rendering")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {"head": head.name, "base": base_name, "production": "production"}
    report = replace(report, charts=with_renderings(report.charts, out_dir / PNG_DIR if pngs else None, names))
    report = replace(report, meta=replace(meta, seconds=time.perf_counter() - started))
    md_text = markdown(report, root)
    html_text = html(report, out_dir / PNG_DIR, root)
    files = []
    for name, text in (("report.md", md_text), ("report.html", html_text), ("report.json", as_json(report))):
        (out_dir / name).write_text(text, encoding="utf-8")
        files.append(out_dir / name)
    files += [out_dir / PNG_DIR / c.png for c in report.charts if c.png]
    return ReportResult(report, tuple(files), md_text)



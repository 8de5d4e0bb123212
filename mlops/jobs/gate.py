"""`mlops gate`: the gates of params.yaml for the workspace's metrics against the base branch or production."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mlops import dvc, git
from mlops.config import PARAMS_FILE
from mlops.errors import GateFailed, ReportError
from mlops.gates import GateReport, blocked
from mlops.jobs.report import (
    gate_report,
    load_report_config,
    read_commit,
    read_side,
    read_workspace,
    resolve_base,
    resolve_production,
)
from mlops.progress import Progress, silent
from mlops.report import State

Against = Literal["base", "production"]


def gate(root: Path = Path("."), *, against: Against = "base", base: str | None = None,
         progress: Progress = silent) -> GateReport:
    """The gate report when every gate passes; GateFailed carrying it when one fails (no rendering here)."""
    root = root.resolve()
    cfg = load_report_config(root)
    if not cfg.gates:
        raise GateFailed(f"{root / PARAMS_FILE}: no gates configured (the `gates:` section is empty)",
                         hint="add e.g. `gates: {test.roc_auc: {min: 0.8, max_drop: 0.005}}`")
    specs: list[dvc.PlotSpec] = []
    head = read_workspace(root, cfg, specs, "this branch", git.current_branch(root) or "HEAD")
    if not head.metrics:
        raise ReportError("no metrics in the workspace", hint="run the pipeline first (`mlops run`)")
    ref_state: State | None = None
    missing: str | None = None  # why the reference side could not be had: its relative gates are not evaluated
    if against == "production":
        found, ref, _ = resolve_production(root, cfg, "auto")
        if found is not None:
            prod = found
            ref_state, missing = read_side(lambda: read_commit(root, cfg, specs, prod, "production", "production",
                                                               ref, progress), progress)
    elif against == "base":
        commit, name = resolve_base(root, base, cfg.registry.main_branch)
        ref_state, missing = read_side(lambda: read_commit(root, cfg, specs, commit, "base", name, name, progress),
                                       progress)
    else:
        raise ReportError(f"--against must be base or production, got '{against}'")
    report = gate_report(cfg, head, ref_state, against, missing)
    if not report.passed:
        raise blocked(report, "", "thresholds are under `gates:` in params.yaml")
    return report

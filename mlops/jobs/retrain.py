"""`mlops monitor --retrain`: when the check alarms over the last N time windows, a pull request with new data.

The trigger is stateless (a fresh CI checkout has no memory of earlier runs): the checked data is split by its time
windows (`monitor.window`: day or hour), the last `monitor.consecutive` windows are each checked on their own, and
the trigger holds when every one of them alarms. Then the labelled rows (the label column of --current, or --labels
joined by request id) are written as a CSV under `monitor.retrain_dir`, `dvc add`ed and pushed to the DVC remote,
committed on a new branch `mlops/retrain-<UTC stamp>` made from the main branch in a temporary worktree (the user's
checkout is never touched) where the pipeline reruns on it (`monitor.retrain_repro`: its dvc.lock is committed with
the data and its outputs pushed, so the pull request carries the retrained model), pushed to origin, and a pull
request is opened with the monitoring report as its body. Never a second one while a retraining pull request is
open. The PR workflow must then run on it: a pull request opened with a run's GITHUB_TOKEN starts no workflow, so
(MLOPS_PR_TRIGGER=dispatch, the default) the PR workflow (MLOPS_PR_WORKFLOW, default pr.yml) is dispatched on the
branch with input `pull-request`; with a GitHub App's token (MLOPS_PR_TRIGGER=app) GitHub starts it by itself. The
churn pipeline's prepare adds the snapshot's rows to its data (data.feedback in params.yaml).
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlops import dvc, git
from mlops.config import PARAMS_FILE, load_sections
from mlops.errors import MlopsError, ReproFailed
from mlops.github.client import DEFAULT_API, Client
from mlops.github.context import DISPATCH_INPUT, LOCAL, CIContext
from mlops.monitor import (
    Accumulator,
    Chunk,
    MonitorAlert,
    MonitorParams,
    MonitorResult,
    ReadStats,
    Scorer,
    evaluate,
    iso_z,
    parse_duration,
    read_logs,
    read_record_chunks,
)
from mlops.monitor.sources import label_codes
from mlops.progress import Progress, silent

BRANCH_PREFIX = "mlops/retrain-"
MAX_BODY = 65_536 - 512  # GitHub's limit on a pull request's body, less room for the note that it was cut
Action = Literal["opened", "open-already", "not-held", "healthy"]


class RetrainError(MlopsError):
    """The retraining pull request cannot be made (no labels, no token, no remote)."""


def require_labels(current: Path | None, labels: Any) -> None:
    """RetrainError unless labels can come: --labels, or a --current file (its label column is checked later)."""
    if current is None and labels is None:
        raise RetrainError("--retrain needs labels: the request logs carry none and no --labels file was given",
                           hint="pass --labels FILE (request_id, label), or --current FILE with the label column")


@dataclass(frozen=True)
class WindowCheck:
    window: str
    rows: int
    alarms: tuple[str, ...]     # "check subject" of each alarm of this window alone

    @property
    def alarmed(self) -> bool:
        return bool(self.alarms)


@dataclass(frozen=True)
class RetrainResult:
    action: Action
    message: str
    windows: tuple[WindowCheck, ...] = ()
    required: int = 0
    rows: int = 0                       # labelled rows in the snapshot
    data: str | None = None             # the snapshot, repo-relative
    branch: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    # How the PR workflow starts on it: "app" (GitHub starts it: an App token opened the pull request),
    # "dispatched" (workflow_dispatch on the branch), "dispatch failed" (see message); None: nothing opened.
    workflow: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "message": self.message, "required": self.required,
                "windows": [{"window": w.window, "rows": w.rows, "alarms": list(w.alarms)} for w in self.windows],
                "rows": self.rows, "data": self.data, "branch": self.branch, "pr_number": self.pr_number,
                "pr_url": self.pr_url, "workflow": self.workflow}


class RetrainAlert(MonitorAlert):
    """The check alarmed (exit 1) and --retrain ran: carries what it did besides the result."""

    def __init__(self, result: MonitorResult, retrain: RetrainResult) -> None:
        super().__init__(result)
        self.retrain = retrain


# --- one pass: per-window accumulators for the last N windows, and the labelled rows ------------------------------


def _pick(values: Any, idx: Any) -> Any:
    if values is None:
        return None
    if hasattr(values, "iloc"):
        return values.iloc[idx].reset_index(drop=True)
    if hasattr(values, "dtype"):
        return values[idx]
    return [values[i] for i in idx.tolist()]


def _take(chunk: Chunk, idx: Any) -> Chunk:
    return Chunk(rows=len(idx), columns={k: _pick(v, idx) for k, v in chunk.columns.items()},
                 scores=_pick(chunk.scores, idx), labels=_pick(chunk.labels, idx),
                 request_ids=_pick(chunk.request_ids, idx), row_index=_pick(chunk.row_index, idx),
                 ts=_pick(chunk.ts, idx))


def _chunk_labels(chunk: Chunk, labels: Mapping[Any, int] | None, positive: Any) -> Any:
    """1/0 per row, -1 where the row has no label."""
    import numpy as np

    if chunk.labels is not None:
        return label_codes(chunk.labels, positive)
    out = np.full(chunk.rows, -1, dtype=np.int8)
    if labels is None or chunk.request_ids is None:
        return out
    rows = chunk.row_index if chunk.row_index is not None else [None] * chunk.rows
    for i, (rid, row) in enumerate(zip(chunk.request_ids, rows, strict=False)):
        v = labels.get((rid, row))
        out[i] = labels.get((rid, None), -1) if v is None else v
    return out


def _cell(v: Any) -> Any:
    """A CSV cell: missing (None, NaN) is empty."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


@dataclass(frozen=True)
class _Pass:
    windows: dict[str, Accumulator]
    labelled: int


def _one_pass(chunks: Iterator[Chunk], profile: Mapping[str, Any], cfg: MonitorParams, keys: Sequence[str],
              names: Sequence[str], target: str, positive: Any, labels: Mapping[Any, int] | None,
              scorer: Scorer | None, out_csv: Path) -> _Pass:
    import numpy as np

    accs = {k: Accumulator(profile, window=cfg.window, labels=labels, scorer=scorer) for k in keys}
    width = 13 if cfg.window == "hour" else 10
    labelled = 0
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["request_id", "ts", *names, target])
        for chunk in chunks:
            if not chunk.rows:
                continue
            if chunk.ts is not None and keys:
                ts = np.asarray(list(chunk.ts), dtype=f"U{width}")
                for k in keys:
                    idx = np.flatnonzero(ts == k)
                    if len(idx):
                        accs[k].add(_take(chunk, idx))
            elif keys:  # no timestamps: the whole input is the one window
                accs[keys[0]].add(chunk)
            y = _chunk_labels(chunk, labels, positive)
            have = np.flatnonzero(y >= 0)
            if not len(have):
                continue
            labelled += len(have)
            cols = [list(_pick(chunk.columns.get(n), have)) if chunk.columns.get(n) is not None
                    else [None] * len(have) for n in names]
            rids = list(_pick(chunk.request_ids, have)) if chunk.request_ids is not None else [None] * len(have)
            tss = list(_pick(chunk.ts, have)) if chunk.ts is not None else [None] * len(have)
            # The file's own label values (the class names training compares with); joined labels are 1/0:
            # the positive class's name for 1, 0 otherwise (anything but the positive class is negative).
            ys = list(_pick(chunk.labels, have)) if chunk.labels is not None else \
                [(positive if positive else 1) if v == 1 else 0 for v in y[have].tolist()]
            for i in range(len(have)):
                w.writerow([_cell(rids[i]), _cell(tss[i]), *(_cell(c[i]) for c in cols), ys[i]])
    return _Pass(accs, labelled)


# --- the job ------------------------------------------------------------------------------------------------------


def retrain(root: Path, result: MonitorResult, profile: Mapping[str, Any], *, log: Path | None, current: Path | None,
            labels: Mapping[Any, int] | None, scorer: Scorer | None, since: str | None, params: MonitorParams,
            ci: CIContext = LOCAL, now: datetime | None = None, remote: str = "origin",
            progress: Progress = silent, main_branch: str | None = None) -> RetrainResult:
    """What --retrain did after the check RESULT (see the module's docstring); RetrainError when it cannot.
    MAIN_BRANCH: the branch the pull request goes into (registry.main_branch; read from params.yaml when not given)."""
    n = params.consecutive
    if result.healthy:
        return RetrainResult("healthy", "retrain: healthy, nothing to retrain", required=n)
    iface = profile["interface"]
    names = [str(f["name"]) for f in iface["features"]]
    output = iface.get("output") or {}
    output_name = str(output.get("name") or "probability")
    target = str(output.get("label") or "label")
    positive = output.get("positive")
    require_labels(current, labels)
    trigger, workflow = pr_trigger(ci)
    keys = sorted(w.window for w in result.performance.windows if w.rows)[-n:]
    if not result.performance.windows:
        keys = ["(all)"]  # no timestamps: the whole input is one window
    moment = now or datetime.now(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    tmp = Path(tempfile.mkdtemp(prefix="mlops-retrain-"))
    try:
        snapshot = tmp / f"feedback-{stamp}.csv"
        read = ReadStats()
        chunks: Iterator[Chunk]
        if current is not None:
            categorical = [str(f["name"]) for f in iface["features"] if f["type"] == "category"]
            chunks = read_record_chunks(current, names, output_name, str(output.get("label") or "") or None,
                                categorical=categorical, chunk_rows=params.chunk_rows, stats=read)
        else:
            assert log is not None  # checked by the monitor job: one source is set
            cutoff = iso_z(moment - parse_duration(since)) if since else None
            chunks = read_logs(log, names, output_name, since=cutoff, roles=params.roles,
                               chunk_rows=params.chunk_rows, keep_ids=True, stats=read)
        progress(f"retrain: checking the last {len(keys)} window(s) on their own and writing the labelled rows")
        done = _one_pass(chunks, profile, params, keys, names, target, positive, labels, scorer, snapshot)
        if not done.labelled:
            where = "--current has no label column" if labels is None and current is not None else \
                "no row of the checked data has a label in --labels"
            raise RetrainError(f"--retrain needs labelled rows: {where}",
                               hint=f"give the file a '{target}' column, or pass --labels FILE keyed by request_id")
        checks = []
        for k in keys:
            r = evaluate(done.windows[k], profile, params, ReadStats(), source=result.window.source,
                         path=result.window.path, reference=result.reference, now=moment)
            checks.append(WindowCheck(k, done.windows[k].rows, tuple(f"{a.check} {a.subject}" for a in r.alarms)))
        windows = tuple(checks)
        if len(windows) < n or not all(w.alarmed for w in windows):
            held = sum(1 for _ in _trailing(windows))
            return RetrainResult("not-held", f"retrain: no pull request: the alarm held over {held} of the last "
                                 f"{n} consecutive {params.window} windows (monitor.consecutive: {n})",
                                 windows=windows, required=n, rows=done.labelled)
        client = _client(ci)
        try:
            open_ = client.open_pulls(BRANCH_PREFIX)
            if open_:
                p = open_[0]
                return RetrainResult("open-already", f"retrain: pull request #{p.number} ({p.head}) is open "
                                     "already: no second one", windows=windows, required=n, rows=done.labelled,
                                     branch=p.head, pr_number=p.number, pr_url=p.url)
            branch = f"{BRANCH_PREFIX}{stamp}"
            base = main_branch or load_sections(Path(root) / PARAMS_FILE).registry.main_branch
            rel = _commit_snapshot(root, snapshot, params, branch, base, remote, n, progress)
            body = _body(result)
            progress(f"retrain: opening a pull request from {branch} into {base}")
            try:
                made = client.create_pull(title=f"Retrain: monitoring alarmed over {n} {params.window} windows "
                                          f"({stamp})", body=body, head=branch, base=base)
            except MlopsError:
                # No pull request for it: take the branch back, so that origin keeps no orphan of each failed run.
                git.delete_remote_branch(remote, branch, git.toplevel(root))
                raise
            started, how = _start_workflow(client, trigger, workflow, branch, made.number, progress)
        finally:
            client.close()
        return RetrainResult("opened", f"retrain: opened pull request #{made.number} from {branch} with "
                             f"{done.labelled:,} labelled rows ({rel}); {how}", windows=windows, required=n,
                             rows=done.labelled, data=rel, branch=branch, pr_number=made.number, pr_url=made.url,
                             workflow=started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PR_TRIGGERS = ("dispatch", "app")
DEFAULT_PR_WORKFLOW = "pr.yml"
_WORKFLOW_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}\.ya?ml")


def pr_trigger(ci: CIContext) -> tuple[str, str]:
    """(how the retraining pull request starts the PR workflow, that workflow's file name), from MLOPS_PR_TRIGGER
    (`dispatch`, the default, or `app`) and MLOPS_PR_WORKFLOW (default pr.yml); RetrainError for other values,
    before anything is written."""
    trigger = (ci.pr_trigger or "dispatch").strip().lower()
    if trigger not in PR_TRIGGERS:
        raise RetrainError(f"MLOPS_PR_TRIGGER={ci.pr_trigger!r}: expected dispatch or app",
                           hint="app: the token is a GitHub App's (its pull requests start workflows by themselves); "
                                "dispatch: GITHUB_TOKEN, so the PR workflow is dispatched on the branch")
    workflow = (ci.pr_workflow or DEFAULT_PR_WORKFLOW).strip()
    if not _WORKFLOW_FILE.fullmatch(workflow):
        raise RetrainError(f"MLOPS_PR_WORKFLOW={ci.pr_workflow!r}: expected a workflow file name such as pr.yml")
    return trigger, workflow


def _start_workflow(client: Client, trigger: str, workflow: str, branch: str, number: int,
                    progress: Progress) -> tuple[str, str]:
    """Make sure the PR workflow runs on the new pull request: (RetrainResult.workflow, what the message says).

    A pull request opened with the run's GITHUB_TOKEN starts no workflow (GitHub's rule against recursive runs),
    except workflow_dispatch: so the PR workflow is dispatched on the branch, with the pull request's number as
    its input (its report goes there). With an App token GitHub starts it on `pull_request` by itself. A failed
    dispatch leaves the pull request open and says so: the pull request is made, and a push to it starts it."""
    if trigger == "app":
        return "app", f"GitHub starts {workflow} on it (opened with a GitHub App token)"
    progress(f"retrain: dispatching {workflow} on {branch} for pull request #{number}")
    try:
        client.dispatch_workflow(workflow, branch, {DISPATCH_INPUT: str(number)})
    except MlopsError as exc:
        return "dispatch failed", f"{workflow} NOT started: {exc.message} ({exc.hint or 'dispatch it by hand'})"
    return "dispatched", f"{workflow} dispatched on {branch}"


def _trailing(windows: Sequence[WindowCheck]) -> Iterator[WindowCheck]:
    for w in reversed(windows):
        if not w.alarmed:
            return
        yield w


def _client(ci: CIContext) -> Client:
    if not ci.token:
        raise RetrainError("--retrain needs a GitHub token to open the pull request",
                           hint="set GITHUB_TOKEN (contents: write, pull-requests: write; actions: write to "
                                "dispatch the PR workflow)")
    if not ci.repository:
        raise RetrainError("--retrain needs the repository to open the pull request in",
                           hint="set GITHUB_REPOSITORY=owner/name")
    return Client(ci.repository, ci.token, ci.api_url or DEFAULT_API)


def _body(result: MonitorResult) -> str:
    md = next((p for p in result.files if p.suffix == ".md"), None)
    text = md.read_text(encoding="utf-8") if md is not None and md.is_file() else result.summary()
    head = "Opened by `mlops monitor --retrain`: the monitoring check alarmed; this branch adds the labelled " \
           "traffic as new data (and, with monitor.retrain_repro, the model retrained on it in dvc.lock). The pull " \
           "request workflow reruns the pipeline and reports.\n\n"
    text = head + text
    if len(text) > MAX_BODY:
        text = text[:MAX_BODY] + "\n\n_(the report was cut to fit a pull request: see the workflow's artifacts)_"
    return text


def _repro(proj: Path, progress: Progress) -> list[str]:
    """Rerun the pipeline in the retraining worktree (main's own code and production's labelled data, on the
    privileged runner: nothing unreviewed) and push its outputs and run cache, so that the pull request's run
    restores them and a merge promotes a model the remote holds; the stages that ran. RetrainError (no branch, no
    pull request) when a stage fails on the new data."""
    progress("retrain: rerunning the pipeline on the new data (dvc repro)")
    try:
        result = dvc.repro(proj, pull=True)
    except ReproFailed as exc:
        stage = getattr(exc.result, "failed", None)
        raise RetrainError(f"--retrain: the pipeline failed{f' at stage {stage}' if stage else ''} on the new "
                           f"data: {exc.message}; no pull request",
                           hint="see the stage's log above; monitor.retrain_repro: false opens the pull request with "
                                "the data alone") from None
    progress("retrain: dvc push (outputs and run cache)")
    dvc.push(proj, run_cache=True)
    return list(result.ran)


def _commit_snapshot(root: Path, snapshot: Path, params: MonitorParams, branch: str, base: str, remote: str, n: int,
                     progress: Progress) -> str:
    """Commit SNAPSHOT (dvc add + dvc push; with params.retrain_repro, the pipeline rerun on it and its dvc.lock)
    on BRANCH made from BASE in a temporary worktree, push the branch to REMOTE; the data's repo-relative path."""
    top = git.toplevel(root)
    sub = Path(root).resolve().relative_to(top.resolve())
    if not git.remote_exists(remote, top):
        raise RetrainError(f"--retrain: the repository has no remote '{remote}' to push the branch to",
                           hint="git remote add origin URL")
    sha = git.fetch_branch(remote, base, top)
    wt = Path(tempfile.mkdtemp(prefix="mlops-retrain-wt-")) / "wt"
    git.worktree_add(wt, sha, top)
    try:
        proj = wt / sub
        dvc.prepare_worktree(root, proj)
        data_rel = f"{params.retrain_dir.strip('/')}/{snapshot.name}"
        dest = proj / data_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snapshot, dest)
        progress(f"retrain: dvc add {data_rel} and dvc push")
        dvc.add(data_rel, proj)
        dvc.push_targets([f"{data_rel}.dvc"], proj)
        paths = [f"{data_rel}.dvc"]
        if (dest.parent / ".gitignore").is_file():
            paths.append(str(Path(params.retrain_dir.strip("/")) / ".gitignore"))
        retrained = ""
        if params.retrain_repro:
            ran = _repro(proj, progress)
            paths.append(dvc.DVC_LOCK)
            retrained = f"\n\nThe pipeline reran on it ({', '.join(ran) or 'nothing changed'}): dvc.lock records " \
                "the retrained model, whose outputs are in the DVC remote."
        new = git.commit_paths(paths, f"Retrain: new labelled data {snapshot.name}\n\nThe monitoring check alarmed "
                               f"over {n} consecutive windows (mlops monitor --retrain).{retrained}", proj)
        progress(f"retrain: pushing {branch} to {remote}")
        git.push_new_branch(remote, new, branch, proj)
    finally:
        git.worktree_remove(wt, top)
        shutil.rmtree(wt.parent, ignore_errors=True)
    return str(sub / data_rel) if str(sub) != "." else data_rel

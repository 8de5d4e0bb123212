"""`mlops sweep`, `mlops sweep-apply` and `mlops sweep-request`: parameter sweeps as DVC experiments, a leaderboard
with paired intervals and gates, the one sticky leaderboard comment, and the `/mlops` comment commands on GitHub.

A sweep writes each setting into params.yaml (as text, value by value: mlops.sweep), queues the workspace as it is
then (`dvc exp run --queue --name sw-...`), puts params.yaml back, and runs the queue W experiments at a time
(`dvc exp run --run-all -j W`: temporary workspaces sharing the DVC cache and the run cache, so prepare and
validate are restored, not rerun). Each experiment's outputs are then read at its commit (refs/exps/...) the way
the report reads main: git-tracked files with `git show`, DVC outputs from the cache by that commit's dvc.lock.
The baseline is the workspace (this branch's own result, which must be reproduced first): each experiment gets the
delta of the headline metric with its paired-bootstrap interval over the held-out rows (mlops.evidence, through the
report's `compare`), and every gate of params.yaml judged against the baseline.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlops import dvc, git
from mlops.config import PARAMS_FILE, parse_params
from mlops.errors import GitHubError, MlopsError, SweepError
from mlops.github import LOCAL, CIContext, Target
from mlops.github.client import CommandEvent, command_event
from mlops.jobs.comment import marked_body, open_client
from mlops.jobs.report import (
    ReportConfig,
    _plot_specs,
    gate_report,
    load_report_config,
    read_commit,
    read_workspace,
    with_headline,
)
from mlops.progress import Progress, silent
from mlops.report import State, compare
from mlops.sweep import (
    MARKER_LABEL,
    Board,
    Command,
    Delta,
    Entry,
    GateVerdict,
    Setting,
    SweepSpec,
    board_dict,
    board_markdown,
    describe,
    expand,
    is_command,
    name_of,
    parse_command,
    set_params_text,
    settings_from_markdown,
    with_setting,
)

BOARD_JSON = "sweep.json"
BOARD_MD = "sweep.md"
SWEEP_LABEL = "mlops-sweep"  # the pull-request label that starts a sweep
WRITE = ("admin", "maintain", "write")
TRUSTED_ASSOCIATIONS = ("OWNER", "MEMBER", "COLLABORATOR")
MAX_COLUMNS = 3  # metrics shown per experiment: the headline and the first gated ones


def default_jobs() -> int:
    """Experiments at a time: the cores this process may use (a runner's), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SweepResult:
    board: Board
    markdown: str
    files: tuple[Path, ...]
    posted: Any = None  # mlops.github.Posted, when the leaderboard was commented


# --- running -------------------------------------------------------------------------------------------------------

def plan(root: Path, spec: SweepSpec) -> list[Setting]:
    """The settings of SPEC, every key and value checked against ROOT's params.yaml (and against the project's
    own schema when params.yaml follows the toolkit's: a depth of 0 is refused before anything runs)."""
    text = _params_text(root)
    raw = _load(text)
    settings = expand(spec, raw)
    try:
        parse_params(raw, PARAMS_FILE)
        schema = True
    except MlopsError:
        schema = False  # a project with params of its own: the types of its values are what is checked
    for s in settings:
        set_params_text(text, s)  # every key must be editable in place before anything is queued
        if schema:
            try:
                parse_params(with_setting(raw, s), PARAMS_FILE)
            except MlopsError as exc:
                raise SweepError(f"{describe(s)}: {exc.message.removeprefix(PARAMS_FILE + ': ')}",
                                 hint="give values params.yaml accepts") from None
    return settings


def _params_text(root: Path) -> str:
    path = root / PARAMS_FILE
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"{path}: file not found", hint="a sweep changes values of params.yaml") from None


def _load(text: str) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"{PARAMS_FILE}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{PARAMS_FILE}: top level must be a mapping")
    return raw


def _todo(root: Path, settings: list[Setting], known: dict[str, dvc.Experiment],
          progress: Progress) -> list[Setting]:
    """The settings without a successful experiment at this commit yet (a failed or stuck one is removed: it runs
    again)."""
    names = {name_of(s) for s in settings}
    dvc.exp_remove([n for n, e in known.items() if e.state != "success" and n in names], root)
    todo = []
    for s in settings:
        if name_of(s) in known and known[name_of(s)].state == "success":
            progress(f"sweep: {name_of(s)} ({describe(s)}) already ran at this commit, reused")
        else:
            todo.append(s)
    return todo


def _run(root: Path, todo: list[Setting], workers: int, engine: str, progress: Progress) -> dict[str, str]:
    """Run TODO as DVC experiments, WORKERS at a time; params.yaml is put back byte for byte afterwards, whatever
    happens. Returns name -> error line of the experiments that failed.

    engine "temp" (the default): `dvc exp run --temp` processes, started one after another (each takes its copy
    of the workspace before params.yaml changes for the next) and run side by side. engine "queue": the DVC queue
    (`dvc exp run --queue`, then `dvc exp run --run-all -j W`); its workers cost seconds each (celery), measured in
    bench/sweep.py."""
    path = root / PARAMS_FILE
    original = path.read_bytes()
    text = original.decode("utf-8")
    failed: dict[str, str] = {}
    running: list[dvc.TempExperiment] = []

    def finish(run: dvc.TempExperiment) -> None:
        run.wait()
        err = run.error()
        if err is not None:
            failed[run.name] = err
        progress(f"sweep: {run.name} {'failed: ' + err if err else 'done'}")

    try:
        for s in todo:
            name = name_of(s)
            path.write_text(set_params_text(text, s), encoding="utf-8")
            if engine == "queue":
                dvc.exp_queue(name, root)
                progress(f"sweep: queued {name} ({describe(s)})")
                continue
            while len(running) >= workers:
                done = next((r for r in running if r.done), None)
                if done is None:
                    time.sleep(0.2)
                    continue
                running.remove(done)
                finish(done)
            progress(f"sweep: running {name} ({describe(s)})")
            running.append(dvc.TempExperiment(name, root))
    finally:
        path.write_bytes(original)
        for run in running:
            finish(run)
    if engine == "queue" and todo:
        progress(f"sweep: running {len(todo)} queued experiment(s), {workers} at a time")
        dvc.exp_run_queued(workers, root)
    return failed


def _headline_direction(cfg: ReportConfig) -> bool:
    return cfg.report.spec(cfg.report.headline or "").higher_is_better


def _columns(cfg: ReportConfig, metrics: dict[str, float]) -> tuple[str, ...]:
    lead = cfg.report.headline or ""
    gated = [m for m in cfg.gates if m in metrics and m != lead]
    return tuple(dict.fromkeys([lead, *gated]))[:MAX_COLUMNS]


def _entry(root: Path, cfg: ReportConfig, specs: list[dvc.PlotSpec], baseline: State, columns: tuple[str, ...],
           setting: Setting, exp: dvc.Experiment | None) -> Entry:
    name = name_of(setting)
    if exp is None:
        return Entry(name, setting, "missing", note="no experiment was recorded (see the DVC queue's log)")
    if exp.state != "success":
        return Entry(name, setting, exp.state, note=exp.error or f"`dvc queue logs {name}` says why", rev=exp.rev)
    try:
        state = read_commit(root, cfg, specs, exp.rev, "head", name, name)
    except MlopsError as exc:  # its outputs are gone from the cache: say so in its row, rank the others
        return Entry(name, setting, "unreadable", note=exc.message, rev=exp.rev)
    comparison = compare(cfg.report, state, baseline, "base")
    gates = gate_report(cfg, state, baseline, "base", comparison=comparison)
    deltas = []
    for m in columns:
        v, b = state.metrics.get(m), baseline.metrics.get(m)
        iv = comparison.intervals.get(m)
        if iv is not None:
            deltas.append(Delta(m, v, b, iv.delta, iv.low, iv.high, iv.verdict))
        else:
            deltas.append(Delta(m, v, b, v - b if v is not None and b is not None else None,
                                verdict="no interval"))
    note = "; ".join(comparison.notes) if cfg.report.headline not in comparison.intervals else ""
    verdicts = tuple(GateVerdict(r.metric, r.rule, r.passed, r.evaluated, r.detail) for r in gates.rows)
    return Entry(name, setting, "success", tuple(deltas), verdicts, note, exp.rev)


def sweep(root: Path = Path("."), spec: SweepSpec | None = None, *, jobs: int | None = None,
          out: Path | None = None, comment: bool = False, pr: int | None = None, engine: str = "temp",
          progress: Progress = silent, ci: CIContext = LOCAL) -> SweepResult:
    """Run SPEC's settings as DVC experiments from ROOT's workspace, JOBS at a time, and build the leaderboard
    (OUT/sweep.json and sweep.md, OUT defaults to ROOT/reports). COMMENT: post it as the one sticky leaderboard
    comment of pull request PR (else the pull request of CI's event, else of the commit)."""
    started = time.perf_counter()
    root = root.resolve()
    if spec is None:
        raise SweepError("no sweep asked for", hint="--set KEY=V1,V2 ...")
    if engine not in ("temp", "queue"):
        raise SweepError(f"--engine {engine!r}: expected temp or queue")
    settings = plan(root, spec)
    workers = max(1, min(jobs or default_jobs(), len(settings)))
    cfg = load_report_config(root)
    specs = _plot_specs(root, dvc.read_dvc_yaml(root))
    stale = dvc.stale_stages(root, dvc.NOT_IN_CACHE)
    if stale:
        first = next(iter(stale))
        raise SweepError(f"the workspace's pipeline is not up to date (stage {first}: {stale[first]}): the "
                         "baseline every experiment is compared with must be this commit's own result",
                         hint="run `mlops run` (or `dvc repro`) first")
    head = git.head(root)
    baseline = read_workspace(root, cfg, specs, "baseline", git.current_branch(root) or head[:12])
    if not baseline.metrics:
        raise SweepError("no metrics in the workspace: nothing to compare the experiments with",
                         hint="run the pipeline first (`mlops run`)")
    cfg = with_headline(cfg, baseline.metrics)
    known = {e.name: e for e in dvc.experiments(root) if e.baseline == head}
    todo = _todo(root, settings, known, progress)
    failed = _run(root, todo, workers, engine, progress)
    found = {e.name: e for e in dvc.experiments(root) if e.baseline == head}
    for name, err in failed.items():  # a failed --temp run leaves no experiment behind: keep its error line
        found[name] = dvc.Experiment(name, "", head, "failed", err)
    columns = _columns(cfg, dict(baseline.metrics))
    progress("sweep: reading each experiment's outputs, intervals and gates")
    entries = tuple(_entry(root, cfg, specs, baseline, columns, s, found.get(name_of(s))) for s in settings)
    notes = []
    if not cfg.report.resamples:
        notes.append("report.resamples is 0: no intervals")
    board = Board(head, cfg.report.headline or "", _headline_direction(cfg), columns, entries,
                  {m: baseline.metrics[m] for m in columns if m in baseline.metrics}, workers, 0.0, tuple(notes),
                  cfg.report.resamples, cfg.report.confidence)
    board = replace(board, seconds=time.perf_counter() - started)
    text = board_markdown(board, run_url=ci.run_url)
    out_dir = out if out is not None else root / "reports"
    out_dir = out_dir if out_dir.is_absolute() else Path.cwd() / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    files = (out_dir / BOARD_JSON, out_dir / BOARD_MD)
    files[0].write_text(json.dumps(board_dict(board), indent=2) + "\n", encoding="utf-8")
    files[1].write_text(text, encoding="utf-8")
    posted = post_board(root, text, pr=pr, ci=ci, progress=progress) if comment else None
    return SweepResult(board, text, files, posted)


def post_board(root: Path, text: str, *, pr: int | None, ci: CIContext, progress: Progress = silent) -> Any:
    """The leaderboard as the one sticky comment with its own marker (never the report's, never a second one)."""
    from mlops.github import pr_from_event

    client, repo = open_client(root, ci)
    try:
        sha = git.head(root)
        number = pr if pr is not None else pr_from_event(ci.event_path)
        if number is None:
            number = client.pr_of_commit(sha)
        if number is None:
            raise GitHubError("no pull request to post the leaderboard on",
                              hint="pass --pr N, or run in a pull request's workflow")
        progress(f"sweep: posting the leaderboard on pull request #{number} of {repo}")
        return client.upsert(Target("pr", number=number),
                             marked_body(text, sha, MARKER_LABEL, ci.run_url or "the workflow run"), MARKER_LABEL)
    finally:
        client.close()


# --- applying ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApplyResult:
    name: str
    setting: Setting
    commit: str | None  # the commit made (None: params.yaml written only)
    pushed: str | None  # the branch pushed to


def apply(root: Path = Path("."), name: str = "", *, board_text: str | None = None, commit: bool = False,
          push_branch: str | None = None, remote: str = "origin") -> ApplyResult:
    """Write experiment NAME's params into ROOT's params.yaml (its swept keys only, in place), from the
    leaderboard (BOARD_TEXT: the comment's markdown; else ROOT/reports/sweep.json). COMMIT: commit params.yaml
    alone; PUSH_BRANCH: push that commit to REMOTE's branch (a fast-forward: refused when the branch moved)."""
    root = root.resolve()
    settings = _board_settings(root, board_text)
    if name not in settings:
        known = ", ".join(sorted(settings)) or "none"
        raise SweepError(f"experiment '{name}' is not on the leaderboard (successful ones: {known})",
                         hint="pick a NAME from the leaderboard's first column")
    setting = settings[name]
    path = root / PARAMS_FILE
    text = _params_text(root)
    plan_check = _load(text)
    for key, _ in setting:
        from mlops.sweep import lookup

        lookup(plan_check, key)  # the key must still exist on this branch
    new = set_params_text(text, setting)
    if new == text:
        raise SweepError(f"params.yaml already holds {describe(setting)}: nothing to apply")
    path.write_text(new, encoding="utf-8")
    made = pushed = None
    if commit or push_branch:
        made = git.commit_paths([PARAMS_FILE], f"mlops sweep: apply {name}\n\n{describe(setting)}\n", root)
        if push_branch:
            ok, refused, first = git.push_atomic(remote, [f"{made}:refs/heads/{push_branch}"], root)
            if not ok or refused:
                why = refused[0][1] if refused else first
                raise SweepError(f"push of {name}'s params to {push_branch} refused: {why or 'refused'}",
                                 hint="the branch moved since the sweep: pull, then comment `/mlops apply` again")
            pushed = push_branch
    return ApplyResult(name, setting, made, pushed)


def _board_settings(root: Path, board_text: str | None) -> dict[str, Setting]:
    if board_text is not None:
        return settings_from_markdown(board_text)[1]
    path = root / "reports" / BOARD_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(e["name"]): tuple(sorted((str(k), v) for k, v in e["params"].items()))
                for e in data["experiments"] if e.get("state") == "success"}
    except FileNotFoundError:
        raise SweepError(f"{path}: no leaderboard", hint="run `mlops sweep` first") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SweepError(f"{path}: not a leaderboard that `mlops sweep` wrote") from None


# --- GitHub: who may ask, and what ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """What a `/mlops` comment (or the mlops-sweep label) asks for, after the checks: ACTION is `sweep` or
    `apply` when it may run, `none` when it was refused (REASON, and REPLY: the reply comment's URL) or was no
    command at all."""

    action: str
    pr: int | None = None
    sha: str | None = None  # the pull request's head commit, to check out
    ref: str | None = None  # its branch (apply pushes there)
    reason: str | None = None
    reply: str | None = None
    command: Command | None = None


def command_of(event: CommandEvent) -> Command:
    """The command EVENT carries: the comment's first line, or for the label the first `/mlops sweep` line of the
    pull request's description."""
    if event.kind == "label":
        line = next((ln.strip() for ln in event.body.splitlines() if ln.strip().startswith("/mlops sweep")), None)
        if line is None:
            raise SweepError(f"the {SWEEP_LABEL} label needs a `/mlops sweep --set KEY=V1,V2` line in the pull "
                             "request's description (or comment that command)")
        return parse_command(line)
    return parse_command(event.body)


def request(root: Path = Path("."), *, ci: CIContext = LOCAL, progress: Progress = silent) -> Request:
    """Check the event of CI (an issue_comment on a pull request, or the mlops-sweep label on one): the author
    needs write access (author association, then the permission endpoint), the pull request must be open and
    from this repository, and the command must parse. A refusal is answered with a reply comment saying why and
    nothing else happens."""
    event = command_event(ci.event_path)
    if event is None or event.number is None:
        return Request("none", reason="not a comment or label on a pull request")
    if event.kind == "comment" and not is_command(event.body):
        return Request("none", event.number, reason="not an /mlops command")
    if event.kind == "label" and event.label != SWEEP_LABEL:
        return Request("none", event.number, reason=f"label {event.label!r} is not {SWEEP_LABEL}")
    client, repo = open_client(root, ci)
    try:
        why = _refusal(client, repo, event)
        pull = client.pull(event.number) if why is None else None
        if pull is not None:
            if pull.head_repo != repo:  # the pull request was read from this repository: its base is here
                why = (f"pull request #{event.number} comes from another repository "
                       f"({pull.head_repo or 'a deleted fork'}): sweeps run only on pull requests from branches of "
                       f"{repo}, because they run the pull request's code")
            elif pull.state != "open":
                why = f"pull request #{event.number} is {pull.state}"
        command = None
        if why is None:
            try:
                command = command_of(event)
            except SweepError as exc:
                why = exc.message
        if why is not None or pull is None or command is None:
            reason = why or "refused"
            progress(f"sweep: refused: {reason}")
            url = client.comment_issue(event.number, _reply(event, reason))
            return Request("none", event.number, reason=reason, reply=url)
        return Request(command.action, event.number, pull.head_sha, pull.head_ref, command=command)
    finally:
        client.close()


def _refusal(client: Any, repo: str, event: CommandEvent) -> str | None:
    """Why EVENT's author may not run commands here (None: they may)."""
    if event.kind == "comment" and event.association not in TRUSTED_ASSOCIATIONS:
        return (f"{event.author} is {event.association.lower() or 'not a member'} of {repo}: `/mlops` commands "
                "need write access to the repository")
    level = client.permission(event.author)
    if level not in WRITE:
        return f"{event.author} has {level} access to {repo}: `/mlops` commands need write access"
    return None


def _reply(event: CommandEvent, reason: str) -> str:
    from mlops.report import escape_md

    what = "the mlops-sweep label" if event.kind == "label" else "this `/mlops` command"
    return (f"mlops did not run {what}: {escape_md(reason, 600)}.\n\n"
            "Nothing was run or changed. Usage: `/mlops sweep --set train.max_depth=3,4,5 --set "
            "train.learning_rate=0.03,0.1` (or `--random N --seed S` over `KEY=LOW..HIGH`), and "
            "`/mlops apply NAME` with a name from the leaderboard.")


def event_command(ci: CIContext) -> tuple[Command, int]:
    """The command (and pull request) of CI's event, parsed again where it runs (the same strict parser)."""
    event = command_event(ci.event_path)
    if event is None or event.number is None:
        raise SweepError("GITHUB_EVENT_PATH holds no comment or label on a pull request")
    return command_of(event), event.number


def apply_from_event(root: Path, *, ci: CIContext, push: bool, progress: Progress = silent) -> ApplyResult:
    """`/mlops apply NAME` in Actions: NAME's params from our own leaderboard comment (marker and author), committed
    to the pull request's branch in ROOT (a checkout of it) and pushed there when PUSH. Never merged."""
    command, number = event_command(ci)
    if command.action != "apply" or command.name is None:
        raise SweepError("the event's command is not `/mlops apply NAME`")
    client, _ = open_client(root, ci)
    try:
        pull = client.pull(number)
        body = client.marked_comment(number, MARKER_LABEL)
        try:
            if body is None:
                raise SweepError(f"pull request #{number} has no leaderboard of ours",
                                 hint="run `/mlops sweep` first")
            result = apply(root, command.name, board_text=body, commit=True,
                           push_branch=pull.head_ref if push else None)
        except SweepError as exc:
            client.comment_issue(number, f"mlops did not apply `{command.name}`: {_md(exc.message)}. Nothing was "
                                         "changed.")
            raise
        progress(f"sweep: applied {command.name} ({describe(result.setting)}) as {str(result.commit)[:12]}"
                 + (f", pushed to {pull.head_ref}" if result.pushed else ""))
        note = "pushed to this branch" if result.pushed else "committed (not pushed)"
        client.comment_issue(number, f"mlops applied `{command.name}` ({_md_setting(result.setting)}): "
                                     f"params.yaml only, {note} as {str(result.commit)[:12]}. Nothing was merged. "
                                     "A push made with the workflow's token starts no new workflow run: push "
                                     "again or re-run the pull request's checks to get its report.")
        return result
    finally:
        client.close()


def _md_setting(setting: Setting) -> str:
    return _md(describe(setting))


def _md(text: str) -> str:
    from mlops.report import escape_md

    return escape_md(text, 600)


def sweep_from_event(root: Path = Path("."), *, jobs: int | None = None, comment: bool = True,
                     progress: Progress = silent, ci: CIContext = LOCAL) -> SweepResult:
    """`/mlops sweep ...` (or the label) in Actions: the command parsed again from the event file, run, and the
    leaderboard posted; a command that cannot run (a key params.yaml lacks, a bad value) is answered with a reply
    comment saying why."""
    command, number = event_command(ci)
    if command.action != "sweep":
        raise SweepError("the event's command is not `/mlops sweep`")
    try:
        return sweep(root, command.spec(), jobs=jobs, comment=comment, pr=number, progress=progress, ci=ci)
    except SweepError as exc:
        if comment:
            client, _ = open_client(root, ci)
            try:
                client.comment_issue(number, f"mlops did not run this sweep: {_md(exc.message)}. Nothing was run.")
            finally:
                client.close()
        raise

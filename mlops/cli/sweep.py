"""`mlops sweep`, `mlops sweep-apply`, `mlops sweep-request`: registered on `app` on import (mlops.cli registers
this module)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from mlops.cli import app, ci_context, echo, handled, progress

_SETS = typer.Option(None, "--set", "-S", help="KEY=V1,V2,... (grid values or random choices) or KEY=LOW..HIGH (a "
                     "random range) over a key of params.yaml; repeat per key.")


@app.command("sweep")
@handled
def sweep_cmd(
    sets: list[str] = _SETS,
    random_n: int = typer.Option(None, "--random", help="Draw N settings at random instead of the full grid."),
    seed: int = typer.Option(0, "--seed", help="Seed of --random."),
    max_settings: int = typer.Option(12, "--max", help="Refuse sweeps of more settings than this (at most 64)."),
    jobs: int = typer.Option(None, "--jobs", "-j", help="Experiments at a time (default: the cores available)."),
    as_json: bool = typer.Option(False, "--json", help="Print the leaderboard as JSON."),
    out: str = typer.Option(None, "--out", help="Folder for sweep.json and sweep.md (default: reports)."),
    comment: bool = typer.Option(False, "--comment", help="Post the leaderboard as the pull request's one sticky "
                                 "leaderboard comment."),
    pr: int = typer.Option(None, "--pr", help="The pull request to comment on (default: the event's, else the "
                           "commit's)."),
    event: bool = typer.Option(False, "--event", help="In Actions: take the command from the event's `/mlops "
                               "sweep` comment (or the PR description for the mlops-sweep label); implies "
                               "--comment."),
    engine: str = typer.Option("temp", "--engine", help="temp: `dvc exp run --temp` processes side by side; "
                               "queue: DVC's experiment queue (`--queue`, then `--run-all -j`)."),
    root: str = typer.Option(".", "--root", help="The project (default: the current directory)."),
) -> None:
    """Try settings of params.yaml as DVC experiments and rank them: the headline metric's delta against this
    branch with its 95% interval, and every gate."""
    from mlops.jobs.sweep import sweep, sweep_from_event
    from mlops.sweep import make_spec

    if event:
        result = sweep_from_event(Path(root), jobs=jobs, progress=progress, ci=ci_context())
    else:
        spec = make_spec(sets or [], random_n=random_n, seed=seed, max_settings=max_settings)
        result = sweep(Path(root), spec, jobs=jobs, out=Path(out) if out else None, comment=comment, pr=pr,
                       engine=engine, progress=progress, ci=ci_context())
    if as_json:
        from mlops.sweep import board_dict

        echo(json.dumps(board_dict(result.board), indent=2))
    else:
        echo(result.markdown.split("\n<!-- mlops-sweep-settings", 1)[0].rstrip())
    if result.posted is not None:
        echo(f"leaderboard {result.posted.action} on {result.posted.target}: {result.posted.url}")


@app.command("sweep-apply")
@handled
def sweep_apply_cmd(
    name: str = typer.Argument(None, help="The experiment (sw-...) from the leaderboard."),
    commit: bool = typer.Option(False, "--commit", help="Commit params.yaml (alone)."),
    event: bool = typer.Option(False, "--event", help="In Actions: NAME from the event's `/mlops apply NAME` "
                               "comment, the settings from our leaderboard comment; commits to the pull request's "
                               "branch."),
    push: bool = typer.Option(False, "--push", help="With --event: push the commit to the pull request's branch."),
    root: str = typer.Option(".", "--root", help="The checkout of the branch to change."),
) -> None:
    """Write one experiment's params into params.yaml (its swept keys only; nothing else changes)."""
    from mlops.jobs.sweep import apply, apply_from_event
    from mlops.sweep import describe

    if event:
        result = apply_from_event(Path(root), ci=ci_context(), push=push, progress=progress)
    else:
        if not name:
            raise typer.BadParameter("give the experiment's NAME (or --event in Actions)")
        result = apply(Path(root), name, commit=commit)
    echo(f"applied {result.name}: {describe(result.setting)}"
         + (f" (commit {result.commit[:12]})" if result.commit else "")
         + (f", pushed to {result.pushed}" if result.pushed else ""))


_OUTPUT_VALUE = re.compile(r"[A-Za-z0-9_./-]*")


@app.command("sweep-request")
@handled
def sweep_request_cmd(
    output: str = typer.Option(None, "--output", help="Append action=, pr=, sha=, ref= lines here (in Actions: "
                               "\"$GITHUB_OUTPUT\")."),
    root: str = typer.Option(".", "--root", help="The repository checkout (for origin's URL)."),
) -> None:
    """In Actions: check the event's `/mlops` comment or mlops-sweep label (write access, same-repository pull
    request, strict syntax); a refusal is answered with a reply comment. Prints what may run."""
    from mlops.jobs.sweep import request

    r = request(Path(root), ci=ci_context(), progress=progress)
    values = {"action": r.action, "pr": str(r.pr or ""), "sha": r.sha or "", "ref": r.ref or ""}
    # Only checked values reach the workflow: a branch name with anything odd is refused, not passed on.
    if not all(_OUTPUT_VALUE.fullmatch(v) for v in values.values()):
        values = {"action": "none", "pr": values["pr"] if values["pr"].isdigit() else "", "sha": "", "ref": ""}
    if output:
        with open(output, "a", encoding="utf-8") as fh:
            fh.writelines(f"{k}={v}\n" for k, v in values.items())
    echo(json.dumps({**values, "reason": r.reason, "reply": r.reply}))

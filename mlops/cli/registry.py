"""Registry commands (`mlops promote`, `mlops rollback`, `mlops registry`): registered on `app` on import."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli import app, ci_context, echo, handled, progress, state

if TYPE_CHECKING:  # promote/rollback load params (pydantic): imported when they run, so `registry show` is fast
    from mlops.jobs.promote import PromoteResult
from mlops.registry import read_events
from mlops.registry.tags import build_state, history
from mlops.registry.views import history_data, show_data

registry_app = typer.Typer(help="Read the model registry (versions and stages from GTO-format git tags).",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")


class Bump(StrEnum):
    auto = "auto"
    patch = "patch"
    minor = "minor"
    major = "major"


def result_json(r: PromoteResult) -> dict[str, Any]:
    """`mlops promote --json` / `mlops rollback --json`: one object, keys stable."""
    return {"action": r.action, "artifact": r.artifact, "version": r.version, "tag": f"{r.artifact}@{r.version}",
            "commit": r.commit, "bump": r.bump, "bump_reason": r.bump_reason, "stage": r.stage,
            "stage_tag": r.stage_tag, "previous": r.previous, "created": list(r.created),
            "published": list(r.published), "pushed": r.pushed,
            "attempts": r.attempts, "gates_passed": r.gates.passed if r.gates else None}


def _say(r: PromoteResult) -> None:
    tag = f"{r.artifact}@{r.version}"
    where = "pushed" if r.pushed else "created locally (not pushed)"
    if r.action == "registered":
        how = f"{r.bump}: {r.bump_reason}" if r.bump else r.bump_reason or "first version"
        echo(f"registered {tag} at {r.commit[:12]} ({how}); {where}")
    elif r.action == "already_registered":
        echo(f"nothing to promote: HEAD {r.commit[:12]} is already registered as {tag}")
    elif r.action == "unchanged":
        echo(f"nothing to promote: {r.artifact} is unchanged since {r.version} (same DVC hash)")
    elif r.action == "already_assigned":
        echo(f"nothing to do: {r.stage} is already {tag}")
    elif r.action == "rolled_back":
        echo(f"rolled back {r.stage}: {r.artifact} {r.previous} -> {r.version} ({r.stage_tag}); {where}")
    if r.stage_tag and r.action != "rolled_back":
        echo(f"assigned {r.stage} -> {tag} ({r.stage_tag}); {where}")
    if r.published:
        echo(f"published {', '.join(r.published)} (made earlier without pushing)")
    if r.gates is not None and state.verbose:
        from mlops.gates import render_table

        echo(render_table(r.gates))
    if state.verbose:
        for note in r.notes:
            echo(f"note: {note}", err=True)


@app.command("promote")
@handled
def promote_cmd(
    bump: Annotated[Bump, typer.Option("--bump", case_sensitive=False, help="Version bump: auto (from the model's "
                                       "interface, or a 'Model-Version: major|minor|patch' commit trailer), patch, "
                                       "minor or major.")] = Bump.auto,
    stage: str | None = typer.Option(None, "--stage", help="Also assign this stage (e.g. production) to the "
                                     "version, registering it first if needed."),
    ref: str | None = typer.Option(None, "--ref", help="Assign --stage to this existing version (NAME@vX.Y.Z) "
                                   "instead of registering HEAD."),
    push: bool = typer.Option(True, "--push/--no-push", help="Push the new tags atomically to the remote "
                              "(default), or only create them locally."),
    remote: str | None = typer.Option(None, "--remote", help="Git remote to push to (default: registry.remote in "
                                      "params.yaml, origin)."),
    allow_branch: bool = typer.Option(False, "--allow-branch", help="Promote from a branch other than main."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Register the model at HEAD as NAME@vX.Y.Z after its gates pass, and/or assign a stage (GTO tags)."""
    from mlops.jobs.promote import PromoteOptions, promote

    options = PromoteOptions(bump=bump.value, stage=stage, ref=ref, push=push, allow_branch=allow_branch,
                             remote=remote)
    result = promote(Path("."), options, progress, ci_context())
    if as_json:
        echo(json.dumps(result_json(result), indent=2))
    else:
        _say(result)


@app.command("rollback")
@handled
def rollback_cmd(
    name: str = typer.Argument(..., help="The artifact to roll back, e.g. churn-model."),
    to: str | None = typer.Option(None, "--to", help="The version to go back to (vX.Y.Z); default: the version "
                                  "the stage had before the current one."),
    stage: str | None = typer.Option(None, "--stage", help="The stage to roll back (default: "
                                     "registry.production_stage, production)."),
    push: bool = typer.Option(True, "--push/--no-push", help="Push the new stage tag (default), or only create it "
                              "locally."),
    remote: str | None = typer.Option(None, "--remote", help="Git remote to push to (default: origin)."),
    deploy: bool = typer.Option(False, "--deploy", help="Also put that version back on the local model server "
                                "(fetched, checksummed, smoke-tested) before the stage tag moves."),
    environment: str | None = typer.Option(None, "--environment", help="The environment under "
                                           "deploy.environments whose stage (and, with --deploy, server) rolls "
                                           "back; default: production."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Assign production back to the previous (or a given) version with a new stage tag; history keeps both."""
    from mlops.jobs.rollback import rollback

    result = rollback(name, Path("."), to=to, stage=stage, push=push, remote=remote, progress=progress,
                      ci=ci_context(), deploy=deploy, environment=environment)
    if as_json:
        echo(json.dumps(result_json(result), indent=2))
    else:
        _say(result)


def _notes(notes: list[str]) -> None:
    if state.verbose:
        for note in notes:
            echo(f"note: {note}", err=True)


@registry_app.command("show")
@handled
def show_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {artifacts: {NAME: {latest, latest_commit, "
                                 "stages: {STAGE: VERSION}, versions: [...]}}}."),
) -> None:
    """Every artifact: its latest version and the version in each stage (one `git for-each-ref` call)."""
    events, notes = read_events(Path("."), messages=False)
    data = show_data(build_state(events))
    _notes(notes)
    if as_json:
        echo(json.dumps(data, indent=2))
        return
    arts = data["artifacts"]
    if not arts:
        echo("no registry tags (NAME@vX.Y.Z) yet")
        return
    stages = sorted({s for a in arts.values() for s in a["stages"]})
    rows = [["name", "latest", *[f"#{s}" for s in stages]]]
    for name, a in arts.items():
        rows.append([name, a["latest"] or "-", *[a["stages"].get(s, "-") for s in stages]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@registry_app.command("history")
@handled
def history_cmd(
    name: str = typer.Argument(..., help="The artifact, e.g. churn-model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {artifact, events: [{time, event, tag, "
                                 "version, stage, number, commit, by, message}]}."),
) -> None:
    """Registrations and stage assignments of NAME in time order, with who made them and at which commit."""
    events, notes = read_events(Path("."), messages=False)
    data = history_data(name, history(events, name))
    _notes(notes)
    if as_json:
        echo(json.dumps(data, indent=2))
        return
    if not data["events"]:
        echo(f"no registry tags for '{name}'")
        return
    for e in data["events"]:
        what = e["version"] or "?"
        if e["event"] in ("assign", "unassign"):
            what = f"{e['stage']} -> {what}" if e["event"] == "assign" else f"{e['stage']} unassigned"
        echo(f"{e['time']}  {e['event']:<10} {what:<28} {e['commit'][:12]}  {e['by']}")


@registry_app.command("stats")
@handled
def stats_cmd(
    name: str | None = typer.Argument(None, help="The artifact (default: the project's model)."),
    since: str | None = typer.Option(None, "--since", help="Only events from this date on (YYYY-MM-DD or an ISO "
                                     "8601 time; default: since the first production deployment)."),
    offline: bool = typer.Option(False, "--offline", help="Tags only, even with a GitHub token: lead time and the "
                                 "alarm issues are then marked unavailable."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {format, artifact, stage, since, until, sources, "
                                 "figures: {NAME: {value, unit, samples, why}}, deployments, incidents}."),
) -> None:
    """Delivery metrics: deployment frequency, lead time for changes, change failure rate and time to restore,
    from the registry's tags (and GitHub's pull requests and alarm issues when GITHUB_TOKEN is set)."""
    from mlops.jobs.stats import delivery_stats
    from mlops.registry.stats import parse_time

    start = parse_time(since, "--since") if since else None
    stats = delivery_stats(Path("."), name, since=start, ci=ci_context(), use_github=not offline,
                           progress=progress)
    if as_json:
        echo(json.dumps(stats.as_json(), indent=2))
        return
    window = f"since {stats.since:%Y-%m-%d}" if stats.since else "since the first deployment"
    echo(f"{stats.artifact} in {stats.stage}, {window}: {len(stats.forward)} deployments, "
         f"{sum(d.rollback for d in stats.deployments)} rollbacks, {len(stats.incidents)} incidents")
    for label, value in stats.lines():
        echo(f"  {label}: {value}")

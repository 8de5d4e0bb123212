"""`mlops deploy`: registered on `app` on import (mlops.cli registers this module)."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli import app, ci_context, echo, handled, progress, state

if TYPE_CHECKING:
    from mlops.deploy import Check
    from mlops.jobs.deploy import DeployResult


class Target(StrEnum):
    local = "local"
    kserve = "kserve"


def _figure(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def checks_json(checks: tuple[Check, ...]) -> list[dict[str, Any]]:
    return [{"name": c.name, "passed": c.passed, "detail": c.detail,
             "figures": {k: _figure(v) for k, v in c.figures.items()}} for c in checks]


def result_json(r: DeployResult) -> dict[str, Any]:
    """`mlops deploy --json`: one object, keys stable."""
    return {"action": r.action, "target": r.target, "artifact": r.artifact, "version": r.version, "tag": r.ref,
            "commit": r.commit, "previous": r.previous, "where": r.where, "source": r.source, "stage": r.stage,
            "stage_tag": r.stage_tag, "pushed": r.pushed, "checks": checks_json(r.checks), "plan": list(r.steps),
            "notes": list(r.notes), "environment": r.environment, "admitted_by": r.admitted_by}


def checks_table(checks: tuple[Check, ...]) -> str:
    lines = ["| check | result | detail |", "| --- | --- | --- |"]
    lines += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail} |" for c in checks]
    return "\n".join(lines)


def _say(r: DeployResult) -> None:
    if r.action == "already_serving":
        echo(f"nothing to deploy: {r.where} already serves {r.ref} to all traffic")
    elif r.action == "deployed":
        before = f" (was {r.previous})" if r.previous else " (first version on this server)"
        echo(f"deployed {r.ref} to {r.where}: all traffic{before}")
    elif r.action == "applied":
        echo(f"applied InferenceService {r.artifact} {r.version} to kubectl context {r.where}")
    else:
        echo(f"wrote InferenceService {r.artifact} {r.version} to {r.where}")
    if r.checks:
        echo(checks_table(r.checks))
    if r.stage_tag:
        echo(f"assigned {r.stage} -> {r.ref} ({r.stage_tag}); {'pushed' if r.pushed else 'created locally'}")
    elif r.stage:
        echo(f"{r.stage} already points at {r.ref}")
    for note in r.notes:
        echo(f"note: {note}", err=True)


@app.command("deploy")
@handled
def deploy_cmd(
    target: Annotated[Target | None, typer.Option("--target", case_sensitive=False, help="Where to deliver: local "
                                                  "(the running `mlops serve`, with smoke test and canary) or kserve "
                                                  "(an InferenceService, applied with kubectl or written for "
                                                  "GitOps); default: the environment's, else local.")
                      ] = None,
    environment: str | None = typer.Option(None, "--environment", help="The environment under deploy.environments "
                                           "(staging, production...): its server, token and stage. Default: "
                                           "production. Production without --ref delivers what staging holds."),
    ref: str | None = typer.Option(None, "--ref", help="The version to deploy, NAME@vX.Y.Z."),
    stage: str | None = typer.Option(None, "--stage", help="Deploy the version this stage points at (instead of "
                                     "--ref)."),
    push: bool = typer.Option(True, "--push/--no-push", help="Push the stage tag written after a passed deploy "
                              "(default), or only create it locally."),
    storage_uri: str | None = typer.Option(None, "--storage-uri", help="kserve: the storageUri to render instead of "
                                           "the model's object in the DVC remote; {artifact}, {version} and "
                                           "{sha256} are filled in."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object (also on a failed "
                                 "smoke test)."),
) -> None:
    """Deliver a registered model version: verify it against its tag, canary and smoke-test it, then promote it
    to all traffic and assign the environment's stage (production by default); or roll back and exit 1."""
    from mlops.deploy import CanaryFailed
    from mlops.jobs.deploy import DeployOptions, deploy

    if ref is not None and stage is not None:
        raise typer.BadParameter("name exactly one of --ref NAME@vX.Y.Z and --stage STAGE")
    if ref is None and stage is None and environment is None:
        raise typer.BadParameter("name exactly one of --ref NAME@vX.Y.Z and --stage STAGE (or an --environment "
                                 "that delivers from another stage)")
    options = DeployOptions(target=None if target is None else "kserve" if target is Target.kserve else "local",
                            ref=ref, stage=stage, push=push, storage_uri=storage_uri, environment=environment)
    try:
        result = deploy(Path("."), options, progress, ci_context())
    except CanaryFailed as exc:
        if as_json:
            echo(json.dumps({"action": "rolled_back", "target": target.value if target else "local",
                             "tag": exc.ref, "serving": exc.serving,
                             "error": exc.message, "checks": checks_json(exc.checks)}, indent=2))
        else:
            echo(checks_table(exc.checks))
        raise
    if as_json:
        echo(json.dumps(result_json(result), indent=2))
    else:
        _say(result)
        if state.verbose:
            for step in result.steps:
                echo(f"plan: {step}", err=True)

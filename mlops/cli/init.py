"""`mlops init`: registered on `app` on import (mlops.cli registers this module)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops.cli import app, echo, handled, progress, state
from mlops.progress import silent

_MARK = {"created": "+", "updated": "~", "overwritten": "!", "unchanged": "=", "kept": "-"}


@app.command("init")
@handled
def init_cmd(
    path: str = typer.Argument(".", help="The DVC project's repository (its top folder)."),
    force: bool = typer.Option(False, "--force", help="Overwrite workflow files you changed since mlops init "
                               "wrote them (or wrote yourself)."),
    artifact: str | None = typer.Option(None, "--artifact", help="The model artifact (a name under artifacts: in "
                                        "dvc.yaml), when there are several."),
    actions_sha: str | None = typer.Option(None, "--actions-sha", help="Pin the toolkit's actions to this commit "
                                           "(default: this release's commit)."),
    actions_repo: str | None = typer.Option(None, "--actions-repo", help="The toolkit's repository, OWNER/NAME "
                                            "(default: mlops-toolkit/mlops, or your fork of it)."),
    actions_version: str | None = typer.Option(None, "--actions-version", help="The release the SHA is, for the "
                                               "comment beside it (default: this version)."),
    batch: bool = typer.Option(False, "--batch", help="Also write the scheduled batch-scoring workflow "
                               "(.github/workflows/mlops-batch.yml: `mlops predict --stage` on a schedule)."),
) -> None:
    """Install the pull-request, promote and deploy workflows and their config into an existing DVC project."""
    from mlops.jobs import init as job

    sha = actions_sha or job.RELEASE_SHA
    if sha is None:
        raise typer.BadParameter("this build of mlops knows no release commit: pass --actions-sha SHA",
                                 param_hint="--actions-sha")
    defaults = job.Actions()
    actions = job.Actions(repo=actions_repo or defaults.repo, sha=sha, version=actions_version or defaults.version)
    result = job.init(Path(path), actions, force=force, artifact=artifact, batch=batch,
                      progress=progress if state.verbose else silent)
    echo(f"mlops init in {result.root}: actions {result.actions.repo}@{result.actions.sha[:12]} "
         f"({result.actions.version})")
    echo(f"model artifact: {result.artifact or 'none'} · metrics: {', '.join(result.metrics_files) or 'none'} "
         f"· production stage: {result.production_stage}")
    for f in result.files:
        echo(f"  {_MARK[f.action]} {f.path}: {f.action}" + (f" ({f.reason})" if f.reason else ""))
    if result.params_added:
        echo(f"  + params.yaml: appended {', '.join(result.params_added)}")
    for note in result.notes:
        echo(f"note: {note}", err=True)
    echo("next steps:")
    for i, step in enumerate(result.next_steps, 1):
        echo(f"  {i}. {step}")
    if result.package_stage is not None:
        echo("the package stage to add to dvc.yaml:")
        for line in result.package_stage.splitlines():
            echo(f"    {line}")

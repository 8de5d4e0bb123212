"""`mlops rollback`: assign a stage (production) back to an earlier version with a new stage tag.

History keeps both assignments; nothing is moved or deleted. Shares promote's plan-then-push loop.
"""

from __future__ import annotations

from pathlib import Path

from mlops import git
from mlops.errors import NothingToRollBack, RefNotFound, RegistryError
from mlops.github import LOCAL, CIContext
from mlops.jobs.promote import (
    PromoteOptions,
    PromoteResult,
    assign_tag,
    finish,
    load_registry_config,
    push_remote,
    tag_date,
)
from mlops.progress import Progress, silent
from mlops.registry.apply import Plan, apply_with_retries
from mlops.registry.tags import TagEvent, build_state, history, read_events


def plan_rollback(events: list[TagEvent], artifact: str, stage: str, to: str | None,
                  ci: CIContext = LOCAL) -> Plan[PromoteResult]:
    art = build_state(events).get(artifact)
    if art is None:
        raise RefNotFound(f"artifact '{artifact}' has no registry tags", hint="see `mlops registry show`")
    current = art.stages.get(stage)
    if current is None:
        raise NothingToRollBack(f"{artifact} has no version in {stage}: nothing to roll back",
                                hint=f"assign one with `mlops promote --ref {artifact}@vX.Y.Z --stage {stage}`")
    if to is not None:
        target = art.versions.get(to)
        if target is None:
            raise RefNotFound(f"version '{artifact}@{to}' is not registered",
                              hint=f"see `mlops registry history {artifact}`")
        if target.version == current.version:
            return Plan(PromoteResult(action="already_assigned", artifact=artifact, version=current.version,
                                      commit=current.commit, stage=stage, previous=current.version), [],
                        (current.tag, art.stage_tags.get(stage, "")))
    else:
        target = None
        for h in reversed(history(events, artifact)):
            if h.event.kind == "assign" and h.event.stage == stage and h.version and \
                    h.version != current.version and h.version in art.versions:
                target = art.versions[h.version]
                break
        if target is None:
            raise NothingToRollBack(f"{stage} has had no other version of {artifact} than {current.version}",
                                    hint=f"name one with --to vX.Y.Z (see `mlops registry history {artifact}`)")
    number = art.last_number + 1
    tag = assign_tag(art, target, stage, number, f"rollback from {current.version}", tag_date(events, artifact),
                     current.version, ci)
    return Plan(PromoteResult(action="rolled_back", artifact=artifact, version=target.version, commit=target.commit,
                              created=(tag.name,), stage=stage, stage_tag=tag.name, previous=current.version),
                [tag], (target.tag,))


def rollback(artifact: str, root: Path = Path("."), *, to: str | None = None, stage: str | None = None,
             push: bool = True, remote: str | None = None, progress: Progress = silent,
             ci: CIContext = LOCAL, deploy: bool = False) -> PromoteResult:
    """Assign STAGE (default registry.production_stage) to the version it had before (or TO).

    DEPLOY: first put that version back on the local model server (through `mlops deploy`'s checks: fetched,
    checksummed, golden and canary); only once it serves all traffic is the stage tag written. A failed deploy
    leaves both the server and the registry as they were."""
    root = git.toplevel(root)
    reg = load_registry_config(root).registry
    chosen = stage or reg.production_stage
    target = None if to is None else (to if to.startswith("v") else f"v{to}")
    push_to = push_remote(reg, PromoteOptions(push=push, remote=remote), root)
    if deploy:
        if chosen != reg.production_stage:
            raise RegistryError(f"--deploy rolls back the serving stage '{reg.production_stage}', not '{chosen}'",
                                hint="drop --stage, or roll back the registry only (without --deploy)")
        from mlops.jobs.deploy import DeployOptions
        from mlops.jobs.deploy import deploy as deliver

        planned = plan_rollback(read_events(root)[0], artifact, chosen, target, ci).outcome
        progress(f"rollback: putting {artifact} {planned.version} back on the server")
        deliver(root, DeployOptions(target="local", ref=f"{artifact}@{planned.version}", push=push,
                                    assign_stage=False), progress, ci)
        target = planned.version
    applied = apply_with_retries(lambda events: plan_rollback(events, artifact, chosen, target, ci), root=root,
                                 remote=push_to,
                                 artifact=artifact, attempts=reg.push_retries + 1, progress=progress,
                                 what="stage tag")
    return finish(applied)

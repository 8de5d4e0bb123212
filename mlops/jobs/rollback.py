"""`mlops rollback`: assign a stage (production) back to an earlier version with a new stage tag.

History keeps both assignments; nothing is moved or deleted. Shares promote's plan-then-push loop. With an
environment (`deploy.environments`), its stage and (with --deploy) its server move, and no other environment's.
"""

from __future__ import annotations

from pathlib import Path

from mlops import git, versions
from mlops.config import PARAMS_FILE, read_params
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


def _version(to: str) -> str:
    """--to as a registry version: `1.2.0` is read as `v1.2.0`; anything else that is not SemVer is refused."""
    text = to if to.startswith("v") else f"v{to}"
    if not versions.is_valid(text):
        raise RegistryError(f"--to '{to}' is not a version (vX.Y.Z[-pre][+build])", hint="e.g. --to v1.2.0")
    return text


def rollback(artifact: str, root: Path = Path("."), *, to: str | None = None, stage: str | None = None,
             push: bool = True, remote: str | None = None, progress: Progress = silent,
             ci: CIContext = LOCAL, deploy: bool = False, environment: str | None = None) -> PromoteResult:
    """Assign STAGE (default: ENVIRONMENT's stage, else registry.production_stage) to the version it had before
    (or TO).

    DEPLOY: first put that version back on ENVIRONMENT's model server (production by default; through `mlops
    deploy`'s checks: fetched, checksummed, golden and canary); only once it serves all traffic is the stage tag
    written. A failed deploy leaves both the server and the registry as they were."""
    root = git.toplevel(root)
    cfg = load_registry_config(root)
    reg = cfg.registry
    env_stage = reg.production_stage
    if environment is not None or deploy:
        sections = (cfg.params or read_params(root / PARAMS_FILE)).sections
        env_stage = sections.deploy.environment(environment, reg.production_stage).stage
    if environment is not None and stage is not None and stage != env_stage:
        raise RegistryError(f"--stage '{stage}' is not environment {environment}'s stage '{env_stage}'",
                            hint="give one of --environment and --stage")
    chosen = stage or env_stage
    target = None if to is None else _version(to)
    push_to = push_remote(reg, PromoteOptions(push=push, remote=remote), root)
    if deploy:
        if chosen != env_stage:
            raise RegistryError(f"--deploy rolls back the serving stage '{env_stage}', not '{chosen}'",
                                hint="drop --stage (or pick the environment with --environment), or roll back "
                                     "the registry only (without --deploy)")
        from mlops.jobs.deploy import DeployOptions
        from mlops.jobs.deploy import deploy as deliver

        planned = plan_rollback(read_events(root)[0], artifact, chosen, target, ci).outcome
        progress(f"rollback: putting {artifact} {planned.version} back on the server")
        deliver(root, DeployOptions(ref=f"{artifact}@{planned.version}", push=push, assign_stage=False,
                                    environment=environment), progress, ci, cfg.params)
        target = planned.version
    applied = apply_with_retries(lambda events: plan_rollback(events, artifact, chosen, target, ci), root=root,
                                 remote=push_to,
                                 artifact=artifact, attempts=reg.push_retries + 1, progress=progress,
                                 what="stage tag")
    return finish(applied)

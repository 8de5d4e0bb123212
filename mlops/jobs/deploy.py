"""`mlops deploy`: continuous delivery of a registered model version, composed of the registry and deploy.

The registry says which version (NAME@vX.Y.Z, or the version a stage points at), its commit and what its tag
vouches for (the model file's sha256, the artifact's DVC hash). The deploy capability fetches and verifies it,
then delivers it:

- local: install into the model store, canary on the running `mlops serve`, golden check, canary window; on pass
  the server promotes it and this job assigns the environment's stage tag through the registry, as
  `mlops promote --ref NAME@vX.Y.Z --stage STAGE` would. On fail the server is rolled back, no tag is written, and
  the CanaryFailed error (exit 1) carries the checks.
- kserve: an InferenceService, applied with kubectl or written for GitOps. A cluster runs its own rollout and
  nothing here observes it, so no stage tag is written: assign it once the cluster's canary is verified, then
  `mlops deploy --target kserve --stage production` renders the full rollout.

Environments (`deploy.environments`, config.DeployParams.environment): each has its own server or namespace,
token variable and stage (staging assigns `staging`, production `registry.production_stage`). Before anything is
fetched, the registry's admission rule (registry.environments) refuses a version that the stage the environment
requires (production: staging) never held; production without --ref takes the version that stage holds now.
Without `environments` there is one environment, production, with no such rule, as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from mlops import git, project
from mlops.config import PARAMS_FILE, DeployEnvironment, ParamsFile, RegistryParams, read_params
from mlops.deploy import (
    Check,
    Release,
    Server,
    apply_kserve,
    apply_local,
    plan_kserve,
    plan_local,
    release_from_block,
)
from mlops.errors import DeployError, GitError, MlopsError, RefNotFound
from mlops.formats import tagmeta
from mlops.github import LOCAL, CIContext
from mlops.jobs.promote import PromoteOptions, promote
from mlops.progress import Progress, silent
from mlops.registry import environments, provenance
from mlops.registry.tags import ArtifactState, VersionInfo, build_state, parse_tag_name, read_events

Target = Literal["local", "kserve"]
Action = Literal["deployed", "already_serving", "applied", "written"]


@dataclass(frozen=True)
class DeployOptions:
    target: Target | None = None  # None: the environment's (local without environments)
    ref: str | None = None  # NAME@vX.Y.Z
    stage: str | None = None  # or the version this stage points at
    environment: str | None = None  # a name under deploy.environments (None: production)
    push: bool = True  # push the stage tag (local target)
    storage_uri: str | None = None  # kserve: where the cluster loads the model ({artifact}, {version}, {sha256})
    kubectl: str | None = None  # kserve: the kubectl to use (default: the one on PATH)
    assign_stage: bool = True  # local: write the stage tag after the switch (rollback writes its own instead)


@dataclass(frozen=True)
class DeployResult:
    action: Action
    target: Target
    artifact: str
    version: str
    commit: str
    previous: str | None  # what served all traffic before (local), or the stable version beside a canary (kserve)
    checks: tuple[Check, ...] = ()
    where: str = ""  # the server's URL, the kubectl context, or the manifest written
    source: str = ""  # where the artifact came from: local DVC cache or DVC remote
    stage: str | None = None
    stage_tag: str | None = None  # the tag this run created, None when the stage already pointed here
    pushed: bool = False
    steps: tuple[str, ...] = ()  # the plan that was carried out
    notes: tuple[str, ...] = field(default_factory=tuple)
    environment: str = "production"
    admitted_by: str | None = None  # the assignment tag of the required stage that let the version in

    @property
    def ref(self) -> str:
        return f"{self.artifact}@{self.version}"


@dataclass(frozen=True)
class _Config:
    registry: RegistryParams
    env: DeployEnvironment  # the environment this run delivers to, its settings resolved
    params: ParamsFile  # the file as this command read it (the stage tag's promote reads its sections too)


def _config(root: Path, environment: str | None, config: ParamsFile | None) -> _Config:
    config = config or read_params(root / PARAMS_FILE)
    sections = config.sections
    return _Config(sections.registry, sections.deploy.environment(environment, sections.registry.production_stage),
                   config)


def _fetch_tags(root: Path, reg: RegistryParams, artifact: str, options: DeployOptions, progress: Progress) -> None:
    """Fetch the artifact's registry tags when publishing (a CI checkout may lack the newest ones)."""
    if not options.push or not git.remote_exists(reg.remote, root):
        return
    progress(f"deploy: fetching {artifact}'s tags from {reg.remote}")
    try:
        git.fetch_tags(reg.remote, root, [artifact])
    except GitError as exc:
        raise DeployError(f"cannot fetch the registry tags from {reg.remote}: {exc.message}",
                          hint="check the remote, or pass --no-push to use the local tags") from None


def _artifact_path(root: Path, reg: RegistryParams, name: str) -> str:
    try:
        return project.resolve_artifact(root, reg.model_copy(update={"artifact": name})).path
    except MlopsError:
        return "models"


def _release(root: Path, reg: RegistryParams, art: ArtifactState, info: VersionInfo) -> Release:
    """The release INFO describes, once the registry's provenance rule vouches for it (on main, tagged by the
    promote identity or signed): a tag anyone pushed never reaches a server or a cluster."""
    provenance.check(root, info, reg)
    return release_from_block(art.name, info.version, info.tag, info.commit,
                              tagmeta.read(info.message, f"tag {info.tag}"), _artifact_path(root, reg, art.name),
                              reg.model_file)


def resolve(root: Path, reg: RegistryParams, options: DeployOptions,
            progress: Progress = silent) -> tuple[Release, ArtifactState]:
    """The release that --ref or --stage names, and its artifact's registry state."""
    if (options.ref is None) == (options.stage is None):
        raise DeployError("name exactly one of --ref NAME@vX.Y.Z and --stage STAGE",
                          hint="e.g. mlops deploy --target local --ref churn-model@v1.2.0")
    release, art, _ = _resolve(root, reg, options, progress)
    return release, art


def _resolve(root: Path, reg: RegistryParams, options: DeployOptions, progress: Progress,
             env: DeployEnvironment | None = None) -> tuple[Release, ArtifactState, str | None]:
    """resolve(), admitted into ENV: also the assignment tag that vouched for the version (None: no rule)."""
    if options.ref is not None:
        parsed = parse_tag_name(options.ref)
        if parsed is None or parsed.kind != "register" or not parsed.version:
            raise DeployError(f"--ref '{options.ref}' is not NAME@vX.Y.Z", hint="e.g. --ref churn-model@v1.2.0")
        name = parsed.artifact
    else:
        name = project.resolve_artifact(root, reg).name
    _fetch_tags(root, reg, name, options, progress)
    events, _ = read_events(root)
    art = build_state(events).get(name)
    if art is None:
        raise RefNotFound(f"artifact '{name}' has no registry tags", hint="register it with `mlops promote`")
    if options.ref is not None:
        info = art.versions.get(options.ref.split("@", 1)[1])
        if info is None:
            raise RefNotFound(f"version '{options.ref}' is not registered", hint="see `mlops registry show`")
    else:
        stage = options.stage or ""
        found = art.stages.get(stage)
        if found is None:
            raise RefNotFound(f"{name} has no version in stage '{stage}'",
                              hint=f"assign one (`mlops promote --ref {name}@vX.Y.Z --stage {stage}`) or use --ref")
        info = found
    admitted = None
    if env is not None:
        # before provenance and fetch: a version this environment may not take is refused with nothing touched
        admitted = environments.admit(events, name, info.version, stage=env.stage, requires=env.requires,
                                      environment=env.name).tag
    return _release(root, reg, art, info), art, admitted


def _assign(root: Path, release: Release, stage: str, options: DeployOptions, progress: Progress,
            ci: CIContext, config: ParamsFile) -> tuple[str | None, bool]:
    """The stage tag through the registry, as `mlops promote --ref --stage` writes it."""
    try:
        result = promote(root, PromoteOptions(ref=release.ref, stage=stage, push=options.push), progress, ci,
                         config)
    except MlopsError as exc:
        raise DeployError(f"{release.ref} serves all traffic, but its {stage} tag could not be written: "
                          f"{exc.message}", hint=f"assign it with `mlops promote --ref {release.ref} --stage {stage}`"
                          ) from None
    return result.stage_tag, result.pushed


def _local(root: Path, cfg: _Config, release: Release, art: ArtifactState, options: DeployOptions,
           progress: Progress, ci: CIContext, admitted: str | None) -> DeployResult:
    params = cfg.env.params
    server = Server(params.server_url, os.environ.get(params.token_env))
    store = Path(params.store)
    store = store if store.is_absolute() else root / store
    plan = plan_local(server, release, store, params)
    for step in plan.steps:
        progress(f"deploy plan: {step}")
    outcome = apply_local(root, plan, server, params, progress)
    stage = cfg.env.stage
    current = art.stages.get(stage)
    if outcome.action == "already_serving" and options.assign_stage and \
            (current is None or current.version != release.version):
        # Serving, but not through a run whose checks passed (a first deploy that failed them stays loaded when
        # the server had nothing else): no stage tag without its smoke test.
        raise DeployError(f"{release.ref} already serves all traffic on {server.url}, but {stage} does not point at "
                          "it and this run checked nothing: the stage tag is not written",
                          hint=f"deploy a verified version, or assign it by hand once checked: `mlops promote --ref "
                               f"{release.ref} --stage {stage}`")
    stage_tag, pushed = (_assign(root, release, stage, options, progress, ci, cfg.params) if options.assign_stage
                         else (None, False))
    return DeployResult(outcome.action, "local", release.artifact, release.version, release.commit, outcome.previous,
                        outcome.checks, server.url, outcome.source, stage, stage_tag, pushed, plan.steps,
                        outcome.notes, cfg.env.name, admitted)


def _kserve(root: Path, cfg: _Config, release: Release, art: ArtifactState, options: DeployOptions,
            progress: Progress, admitted: str | None) -> DeployResult:
    stage = cfg.env.stage
    current = art.stages.get(stage)
    stable = _release(root, cfg.registry, art, current) if current and current.version != release.version else None
    plan = plan_kserve(root, release, stable, cfg.env.params, storage_uri=options.storage_uri, kubectl=options.kubectl,
                       progress=progress)
    for step in plan.steps:
        progress(f"deploy plan: {step}")
    delivered = apply_kserve(plan)
    notes = list(plan.manifest.notes)
    if delivered.how == "written":
        notes.append(f"no kubectl context: wrote {delivered.where} for Argo CD or Flux to sync (commit it)")
    if plan.manifest.stable:
        notes.append(f"the cluster runs {release.version} as a canary beside {plan.manifest.stable}; once it is "
                     f"verified there: `mlops promote --ref {release.ref} --stage {stage}`, "
                     f"then `mlops deploy --target kserve --stage {stage}` for all traffic")
    return DeployResult(delivered.how, "kserve", release.artifact, release.version, release.commit,
                        plan.manifest.stable, (), delivered.where, "", None, None, False, plan.steps, tuple(notes),
                        cfg.env.name, admitted)


def deploy(root: Path = Path("."), options: DeployOptions = DeployOptions(), progress: Progress = silent,
           ci: CIContext = LOCAL, config: ParamsFile | None = None) -> DeployResult:
    """Deliver the version that OPTIONS name to OPTIONS.target; see the module docstring. CONFIG: params.yaml as
    the command read it (read here, once, when not given)."""
    root = git.toplevel(root)
    cfg = _config(root, options.environment, config)
    env = cfg.env
    if options.ref is None and options.stage is None and env.requires is not None:
        options = replace(options, stage=env.requires)  # production: the version staging holds now
    if (options.ref is None) == (options.stage is None):
        hint = f" (or give {env.name} a `requires` stage to deliver from)" if env.configured else ""
        raise DeployError("name exactly one of --ref NAME@vX.Y.Z and --stage STAGE",
                          hint=f"e.g. mlops deploy --ref churn-model@v1.2.0{hint}")
    release, art, admitted = _resolve(root, cfg.registry, options, progress, env)
    if admitted is not None:
        progress(f"deploy: {release.ref} may enter {env.name}: {admitted}")
    if (options.target or env.target) == "kserve":
        return _kserve(root, cfg, release, art, options, progress, admitted)
    if options.storage_uri is not None:
        raise DeployError("--storage-uri is for --target kserve", hint="the local server loads from its store")
    return _local(root, cfg, release, art, options, progress, ci, admitted)


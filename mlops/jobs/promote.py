"""`mlops promote` and `mlops rollback`: the registry's write side composed with the gates and the model's facts.

Promotion on main after a merge: has the model changed since the latest version (dvc.lock's hash against the
one in that version's tag)? Do the gates pass against production (its metrics come from its tag)? Which bump
does the model's interface call for? Then one annotated tag, pushed with `git push --atomic`; when a concurrent
promotion took the name first, fetch, recompute and retry (bounded). Published tags are never moved or deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mlops import __version__, dvc, git, project, versions
from mlops.config import PARAMS_FILE, GateSpec, ParamsFile, RegistryParams, read_params
from mlops.errors import DvcError, RefNotFound, RegistryError
from mlops.files import parse_structured
from mlops.formats import tagmeta
from mlops.formats.tagmeta import TagMeta
from mlops.gates import GateReport, blocked, evaluate_gates, flatten_metrics, metrics_of
from mlops.github import LOCAL, CIContext
from mlops.progress import Progress, silent
from mlops.registry import model
from mlops.registry.apply import Applied, Plan, apply_with_retries, check_remote
from mlops.registry.interface import diff_interfaces, parse_versioned_interface
from mlops.registry.model import ModelFacts, collect_facts
from mlops.registry.publish import NewTag
from mlops.registry.tags import (
    ArtifactState,
    TagEvent,
    VersionInfo,
    build_state,
    epoch,
    parse_tag_name,
)
from mlops.versions import BUMPS

TRAILER = "model-version"  # `Model-Version: major|minor|patch` in the merge commit's message

Bump = Literal["auto", "patch", "minor", "major"]
Action = Literal["registered", "already_registered", "unchanged", "assigned", "already_assigned", "rolled_back"]


@dataclass(frozen=True)
class PromoteOptions:
    bump: Bump = "auto"
    stage: str | None = None
    ref: str | None = None  # NAME@vX.Y.Z: assign STAGE to this existing version
    push: bool = True
    allow_branch: bool = False
    remote: str | None = None  # default: params' registry.remote


@dataclass(frozen=True)
class PromoteResult:
    action: Action
    artifact: str
    version: str
    commit: str
    created: tuple[str, ...] = ()  # tags this run created (and pushed unless --no-push)
    bump: str | None = None
    bump_reason: str | None = None
    stage: str | None = None
    stage_tag: str | None = None
    previous: str | None = None  # the version STAGE pointed at before
    gates: GateReport | None = None
    pushed: bool = False
    attempts: int = 1
    published: tuple[str, ...] = ()  # tags made earlier (e.g. with --no-push) that this run pushed
    notes: tuple[str, ...] = field(default_factory=tuple)


def finish(applied: Applied[PromoteResult]) -> PromoteResult:
    """The result of a carried-out plan: what was pushed, in how many attempts."""
    return replace(applied.outcome, pushed=applied.pushed, attempts=applied.attempts, published=applied.published)


# --- config -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryConfig:
    """The sections of params.yaml that promote and rollback read: any DVC project's params.yaml works."""

    registry: RegistryParams
    gates: dict[str, GateSpec]
    params: ParamsFile | None = None  # the file as this command read it, for the other sections it needs


def load_registry_config(root: Path, config: ParamsFile | None = None) -> RegistryConfig:
    """`registry:` and `gates:` of ROOT/params.yaml (both optional; other sections are not read). CONFIG: the file
    as the command read it (read here when not given)."""
    config = config or read_params(root / PARAMS_FILE)
    sections = config.sections
    return RegistryConfig(sections.registry, sections.gates, config)


# --- helpers ------------------------------------------------------------------------------------------------


def _block(info: VersionInfo | None) -> TagMeta | None:
    """INFO's tag metadata (None: no tag, or a tag without a block); TagMetaInvalid when its block is malformed:
    a forged or garbled block is refused, never read as production's metrics or the previous interface."""
    return tagmeta.read(info.message, f"tag {info.tag}") if info else None


def _commit_metrics(root: Path, info: VersionInfo, config: ParamsFile | None = None,
                    ) -> tuple[dict[str, float] | None, str | None]:
    """The metrics of a production version whose tag records none (made by GTO or by hand), read at its commit as
    the report reads them (git, the DVC cache, the remote, else recomputed); (None, why) when they cannot be had:
    the relative gates are then not evaluated, and promotion refuses rather than passing them unchecked."""
    from mlops.jobs.report import load_report_config, read_commit, read_side

    cfg = load_report_config(root, config)
    state, missing = read_side(lambda: read_commit(root, cfg, [], info.commit, "production", "production",
                                                   info.tag), silent)
    return (dict(state.metrics) if state is not None else None), missing


def recorded_hash(info: VersionInfo, root: Path, path: str) -> str | None:
    """The artifact hash a version recorded: its tag's block, else dvc.lock at its commit (tags by other tools)."""
    block = _block(info)
    if block and block.dvc_md5:
        return block.dvc_md5
    raw = git.show_file(info.commit, dvc.DVC_LOCK, root)
    if raw is None:
        return None
    try:
        return dvc.output_hash(dvc.parse_lock(raw), path)
    except (DvcError, RegistryError):  # a malformed old dvc.lock just means "unknown"
        return None


def _check_tree(root: Path, reg: RegistryParams, allow_branch: bool) -> None:
    main = reg.main_branch
    branch = git.current_branch(root)
    if branch != main and not allow_branch:
        on_main = branch is None and git.ref_exists(f"refs/heads/{main}", root) and \
            git.rev_parse(main, root) == git.head(root)
        if not on_main:
            raise RegistryError(f"not on the main branch '{main}' (HEAD is {branch or 'detached'}): "
                                "promotion happens after a merge to main",
                                hint=f"checkout {main}, or pass --allow-branch to promote from this branch")
    dirty = git.is_dirty(root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise RegistryError(f"the working tree has uncommitted changes ({shown}): the tag would not describe them",
                            hint="commit or discard them first (dvc.lock must be committed with the model)")


def _head_metrics(root: Path, lock: dict[str, Any], notes: list[str]) -> dict[str, float]:
    """The metrics the gates check and the tag records: every metrics file dvc.yaml declares, each checked
    against its md5 in dvc.lock (a DVC output: `git status` cannot see an edit to it)."""
    try:
        paths = dvc.metrics_paths(dvc.read_dvc_yaml(root))
    except (DvcError, AttributeError, TypeError) as exc:
        raise RegistryError(f"cannot read the metrics declared in {dvc.DVC_YAML}: "
                            f"{getattr(exc, 'message', None) or 'malformed'}") from None
    if not paths:
        notes.append(f"{dvc.DVC_YAML} declares no metrics: the gates have nothing to check")
    parsed: dict[str, Any] = {}
    for rel in paths:
        if not model.check_output_file(root, lock, rel) and git.show_file("HEAD", rel, root) is None:
            raise RegistryError(f"{rel}: neither an output in dvc.lock nor committed: cannot tell that these "
                                "metrics belong to this model", hint="run `dvc repro` and commit dvc.lock")
        try:
            raw = (root / rel).read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"{rel}: not found: the gates need the model's metrics",
                                hint="run the pipeline (`mlops run` or `dvc repro`) first") from None
        value = parse_structured(rel, raw)  # the one metrics reader (the report's and the gates' too)
        if value is None:
            kind = "YAML" if rel.lower().endswith((".yaml", ".yml")) else "JSON"
            raise RegistryError(f"{rel}: not valid {kind}")
        parsed[rel] = value
    return metrics_of(parsed, paths)


def _pr_number(root: Path, ci: CIContext) -> int | None:
    if ci.pr_number is not None:
        return ci.pr_number
    import re

    subject = git.commit_message("HEAD", root).strip().splitlines()
    first = subject[0] if subject else ""
    m = re.match(r"Merge pull request #(\d+)", first) or re.search(r"\(#(\d+)\)\s*$", first)
    return int(m.group(1)) if m else None


def tag_date(events: list[TagEvent], artifact: str, offset: int = 0) -> str:
    """A tagger date after every event of ARTIFACT: tools that order tags by their (1 s) dates, GTO among them,
    then see a registration before its assignment and a rollback after the assignment it undoes."""
    last = max((epoch(e.created) for e in events if e.artifact == artifact), default=0.0)
    when = max(int(time.time()), int(last) + 1) + offset
    return f"@{when} +0000"


def push_remote(reg: RegistryParams, options: PromoteOptions, root: Path) -> str | None:
    return check_remote(options.remote or reg.remote, root) if options.push else None


def assign_tag(art: ArtifactState, version: VersionInfo, stage: str, number: int, why: str, date: str,
               previous: str | None, ci: CIContext = LOCAL) -> NewTag:
    name = f"{art.name}#{stage}#{number}"
    head = f"{art.name}: {stage} -> {version.version} ({why})"
    block = TagMeta(action="assign", artifact=art.name, stage=stage, version=version.version, number=number,
                    previous=previous, reason=why, commit=version.commit, run_url=ci.run_url, mlops=__version__)
    return NewTag(name, version.commit, tagmeta.write(head, block), date)


# --- promote ------------------------------------------------------------------------------------------------


def _decide_bump(options: PromoteOptions, trailer: str | None, latest: VersionInfo, facts: ModelFacts,
                 notes: list[str]) -> tuple[str, str]:
    if options.bump != "auto":
        return options.bump, f"--bump {options.bump}"
    if trailer:
        return trailer, f"commit trailer Model-Version: {trailer}"
    if facts.interface is None:
        return "patch", (f"no model interface ({facts.path} has no feature schema): patch by default; set a "
                         "Model-Version trailer or --bump for another")
    block = _block(latest)
    raw = block.interface if block else None
    if not isinstance(raw, dict):
        notes.append(f"{latest.tag} records no interface: bump patch assumed (override with --bump or a "
                     "Model-Version trailer)")
        return "patch", f"no interface recorded in {latest.version}"
    try:
        previous = parse_versioned_interface(raw)
    except ValueError:
        return "patch", f"unreadable interface in {latest.version}"
    diff = diff_interfaces(previous, facts.interface)
    return diff.bump, diff.reason


@dataclass(frozen=True)
class _Head:
    """What promote reads off HEAD once, before its attempts: the model, its metrics, the commit, the trailer."""

    facts: ModelFacts
    metrics: dict[str, float]
    commit: str
    trailer: str | None
    notes: tuple[str, ...]


def _plan_register(root: Path, cfg: RegistryConfig, name: str, options: PromoteOptions, events: list[TagEvent],
                   head: _Head, ci: CIContext) -> Plan[PromoteResult]:
    reg = cfg.registry
    facts = head.facts
    art = build_state(events).get(name) or ArtifactState(name)
    notes: list[str] = list(head.notes)
    stage = options.stage
    version = art.version_at(head.commit)
    action: Action = "already_registered"
    tags: list[NewTag] = []
    bump = reason = None
    report = None
    if version is None:
        latest = art.latest()
        if latest is not None and recorded_hash(latest, root, facts.path) == facts.dvc_md5:
            version, action = latest, "unchanged"
        else:
            production = art.stages.get(reg.production_stage)
            prod_block = _block(production)
            prod_metrics = prod_block.metrics if prod_block else None
            reference = flatten_metrics(prod_metrics) if isinstance(prod_metrics, dict) else None
            missing = None
            if production is not None and reference is None:
                reference, missing = _commit_metrics(root, production, cfg.params)
                notes.append(f"{production.tag} records no metrics: " + (
                    f"its commit's could not be read either ({missing})" if missing
                    else "production's metrics were read at its commit, as the report reads them"))
            evidence = None
            if production is not None and missing is None:
                from mlops.jobs.report import evidence_against

                evidence = evidence_against(root, production.commit, reg.production_stage, production.tag,
                                            config=cfg.params)
            report = evaluate_gates(cfg.gates, head.metrics, reference, reg.production_stage, unavailable=missing,
                                    evidence=evidence)
            if not report.passed:
                raise blocked(report, "nothing tagged",
                              "fix the model or the thresholds under gates: in params.yaml")
            # every registration tag ever made counts: a deregistered number is never reused
            made = [e.version for e in events if e.artifact == name and e.kind == "register" and e.version]
            if latest is None and not made:
                new, bump, reason = reg.first_version, None, "first version"
            else:
                base = latest or VersionInfo(name, max(made, key=versions.key), "", "", "", "", "")
                bump, reason = _decide_bump(options, head.trailer, base, facts, notes)
                new = versions.bump(max([base.version, *made], key=versions.key), bump)
            tag = f"{name}@{new}"
            pr = _pr_number(root, ci)
            head_line = f"{name} {new}" + (f" ({bump}: {reason})" if bump else " (first version)")
            body = f"Registered by mlops {__version__} from commit {head.commit[:12]}" + \
                (f" (PR #{pr})" if pr else "") + "."
            block = TagMeta(action="register", version=new, bump=bump, bump_reason=reason, **facts.block(),
                            metrics=head.metrics, commit=head.commit, pr=pr, run_url=ci.run_url, actor=ci.actor,
                            mlops=__version__)
            date = tag_date(events, name)
            # the headline carries the bump reason, built from feature and category names (data): the writer
            # makes it one plain line, so no value can start a line of its own (a second metadata block)
            tags.append(NewTag(tag, head.commit, tagmeta.write(head_line, block, body), date))
            version = VersionInfo(name, new, tag, head.commit, "", "", "")
            action = "registered"
    stage_tag = previous = None
    relies = [version.tag]
    if stage:
        current = art.stages.get(stage)
        previous = current.version if current else None
        if current is not None and current.version == version.version:
            relies.append(art.stage_tags.get(stage, ""))
        if current is None or current.version != version.version:
            number = art.last_number + 1
            stage_tag = f"{name}#{stage}#{number}"
            tags.append(assign_tag(art, version, stage, number, "promote", tag_date(events, name, len(tags)),
                                   previous, ci))
            if action != "registered":
                action = "assigned"
        elif action != "registered":
            action = "already_assigned"
    result = PromoteResult(action=action, artifact=name, version=version.version, commit=version.commit,
                           created=tuple(t.name for t in tags), bump=bump, bump_reason=reason, stage=stage,
                           stage_tag=stage_tag, previous=previous, gates=report, notes=tuple(notes))
    return Plan(result, tags, tuple(relies))


def plan_assign(events: list[TagEvent], ref: str, stage: str, why: str = "promote",
                ci: CIContext = LOCAL) -> Plan[PromoteResult]:
    """Assign STAGE to the registered version REF (NAME@vX.Y.Z): one new stage tag, or nothing when it has it."""
    parsed = parse_tag_name(ref)
    if parsed is None or parsed.kind != "register" or not parsed.version:
        raise RegistryError(f"--ref '{ref}' is not NAME@vX.Y.Z", hint="e.g. --ref churn-model@v1.2.0")
    art = build_state(events).get(parsed.artifact)
    version = art.versions.get(parsed.version) if art else None
    if art is None or version is None:
        raise RefNotFound(f"version '{ref}' is not registered", hint="see `mlops registry show`")
    current = art.stages.get(stage)
    if current is not None and current.version == version.version:
        return Plan(PromoteResult(action="already_assigned", artifact=art.name, version=version.version,
                                  commit=version.commit, stage=stage, previous=current.version), [],
                    (version.tag, art.stage_tags.get(stage, "")))
    number = art.last_number + 1
    tag = assign_tag(art, version, stage, number, why, tag_date(events, art.name),
                     current.version if current else None, ci)
    return Plan(PromoteResult(action="assigned", artifact=art.name, version=version.version, commit=version.commit,
                              created=(tag.name,), stage=stage, stage_tag=tag.name,
                              previous=current.version if current else None), [tag], (version.tag,))


def _read_head(root: Path, cfg: RegistryConfig, options: PromoteOptions) -> _Head:
    _check_tree(root, cfg.registry, options.allow_branch)
    artifact = project.resolve_artifact(root, cfg.registry)
    facts = collect_facts(root, artifact, cfg.registry)
    notes: list[str] = []
    metrics = _head_metrics(root, model.require_lock(root), notes)
    trailer = git.trailers("HEAD", root).get(TRAILER, "").lower() or None
    if trailer is not None and trailer not in BUMPS:
        raise RegistryError(f"commit trailer 'Model-Version: {trailer}' is not one of {', '.join(BUMPS)}",
                            hint="fix the trailer or pass --bump")
    return _Head(facts, metrics, git.head(root), trailer, tuple(notes))


def promote(root: Path = Path("."), options: PromoteOptions = PromoteOptions(), progress: Progress = silent,
            ci: CIContext = LOCAL, config: ParamsFile | None = None) -> PromoteResult:
    """Register the model at HEAD (and/or assign a stage), push atomically, retry when a concurrent run won."""
    if options.bump not in ("auto", *BUMPS):
        raise RegistryError(f"--bump '{options.bump}' is not one of auto, {', '.join(BUMPS)}",
                            hint="omit --bump to derive it from the model's interface")
    root = git.toplevel(root)
    cfg = load_registry_config(root, config)
    remote = push_remote(cfg.registry, options, root)
    if options.ref is not None:
        ref, stage = options.ref, options.stage
        if not stage:
            raise RegistryError("--ref needs --stage STAGE: it assigns a stage to an existing version",
                                hint=f"e.g. mlops promote --ref {ref} --stage {cfg.registry.production_stage}")
        parsed = parse_tag_name(ref)
        applied = apply_with_retries(lambda events: plan_assign(events, ref, stage, ci=ci), root=root,
                                     remote=remote, artifact=parsed.artifact if parsed else ref,
                                     attempts=cfg.registry.push_retries + 1, progress=progress, what="stage tag")
        return finish(applied)
    head = _read_head(root, cfg, options)
    name = head.facts.artifact
    applied = apply_with_retries(lambda events: _plan_register(root, cfg, name, options, events, head, ci),
                                 root=root, remote=remote, artifact=name, attempts=cfg.registry.push_retries + 1,
                                 progress=progress, what="registry tag")
    return finish(applied)

"""`mlops promote` and `mlops rollback`: the registry's write side composed with the gates and the model's facts.

Promotion on main after a merge: has the model changed since the latest version (dvc.lock's hash against the
one in that version's tag)? Do the gates pass against production (its metrics come from its tag)? Which bump
does the model's interface call for? Then one annotated tag, pushed with `git push --atomic`; when a concurrent
promotion took the name first, fetch, recompute and retry (bounded). Published tags are never moved or deleted.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops import __version__, dvc, git
from mlops.config import PARAMS_FILE, GateSpec, RegistryParams, load_sections
from mlops.errors import (
    DvcError,
    GateFailed,
    GitError,
    NothingToRollBack,
    RefNotFound,
    RegistryError,
    TagConflict,
)
from mlops.gates import GateReport, evaluate_gates, flatten_metrics, metrics_of
from mlops.progress import Progress, silent
from mlops.registry import metadata, model, publish
from mlops.registry.interface import BUMPS, bump_version, diff_interfaces, parse_interface
from mlops.registry.model import ModelFacts, collect_facts
from mlops.registry.publish import NewTag
from mlops.registry.tags import (
    ArtifactState,
    TagEvent,
    VersionInfo,
    build_state,
    epoch,
    history,
    parse_tag_name,
    read_events,
    semver_key,
)

TRAILER = "model-version"  # `Model-Version: major|minor|patch` in the merge commit's message


@dataclass(frozen=True)
class PromoteOptions:
    bump: str = "auto"  # auto | patch | minor | major
    stage: str | None = None
    ref: str | None = None  # NAME@vX.Y.Z: assign STAGE to this existing version
    push: bool = True
    allow_branch: bool = False
    remote: str | None = None  # default: params' registry.remote


@dataclass(frozen=True)
class PromoteResult:
    # registered | already_registered | unchanged | assigned | already_assigned | rolled_back
    action: str
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


class GatesBlocked(GateFailed):
    """The gates failed: nothing was tagged. Carries the report so that the CLI can print the table."""

    def __init__(self, report: GateReport) -> None:
        failed = report.failed()
        names = ", ".join(sorted({f"{r.metric} ({r.rule})" for r in failed}))
        super().__init__(f"{len(failed)} promotion gate(s) failed against {report.against}: {names}; nothing tagged",
                         hint="see the table above; fix the model or the thresholds under gates: in params.yaml")
        self.report = report


# --- config -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryConfig:
    """The sections of params.yaml that promote and rollback read: any DVC project's params.yaml works."""

    registry: RegistryParams
    gates: dict[str, GateSpec]


def load_registry_config(root: Path) -> RegistryConfig:
    """`registry:` and `gates:` of ROOT/params.yaml (both optional; other sections are not read)."""
    sections = load_sections(root / PARAMS_FILE)
    return RegistryConfig(sections.registry, sections.gates)


# --- helpers ------------------------------------------------------------------------------------------------


def _block(info: VersionInfo | None) -> dict[str, object] | None:
    return metadata.parse_block(info.message) if info else None


def recorded_hash(info: VersionInfo, root: Path, path: str) -> str | None:
    """The artifact hash a version recorded: its tag's block, else dvc.lock at its commit (tags by other tools)."""
    block = _block(info)
    if block and block.get("dvc_md5"):
        return str(block["dvc_md5"])
    raw = git.show_file(info.commit, dvc.DVC_LOCK, root)
    if raw is None:
        return None
    try:
        return model.output_hash(dvc.parse_lock(raw), path)
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
        path = root / rel
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RegistryError(f"{rel}: not found: the gates need the model's metrics",
                                hint="run the pipeline (`mlops run` or `dvc repro`) first") from None
        except UnicodeDecodeError:
            raise RegistryError(f"{rel}: not valid UTF-8 text") from None
        try:
            raw = json.loads(text) if rel.endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            raise RegistryError(f"{rel}: not valid {'JSON' if rel.endswith('.json') else 'YAML'}") from None
        parsed[rel] = raw
    return metrics_of(parsed, paths)


def _pr_number(root: Path) -> int | None:
    env = os.environ.get("MLOPS_PR_NUMBER", "")
    if env.isdigit():
        return int(env)
    subject = git.commit_message("HEAD", root).strip().splitlines()
    first = subject[0] if subject else ""
    m = re.match(r"Merge pull request #(\d+)", first) or re.search(r"\(#(\d+)\)\s*$", first)
    return int(m.group(1)) if m else None


def _run_url() -> str | None:
    server, repo, run = (os.environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def _tag_date(events: list[TagEvent], artifact: str, offset: int = 0) -> str:
    """A tagger date after every event of ARTIFACT: tools that order tags by their (1 s) dates, GTO among them,
    then see a registration before its assignment and a rollback after the assignment it undoes."""
    last = max((epoch(e.created) for e in events if e.artifact == artifact), default=0.0)
    when = max(int(time.time()), int(last) + 1) + offset
    return f"@{when} +0000"


def _remote(reg: RegistryParams, options: PromoteOptions, root: Path) -> str | None:
    if not options.push:
        return None
    remote = options.remote or reg.remote
    if not git.remote_exists(remote, root):
        raise RegistryError(f"no git remote '{remote}' to push the registry tags to",
                            hint="add the remote, pass --remote NAME, or --no-push to tag locally only")
    return remote


def _fetch(remote: str | None, root: Path, progress: Progress, artifact: str) -> None:
    if remote is None:
        return
    progress(f"registry: fetching {artifact}'s tags from {remote}")
    try:
        git.fetch_tags(remote, root, [artifact])
    except GitError as exc:
        raise TagConflict(f"cannot fetch the registry tags from {remote}: {exc.message}",
                          hint="a local tag differs from the remote's one of the same name (tags are never moved: "
                               "delete the local one if it was never published), or the remote is unreachable"
                          ) from None


def _assign_tag(art: ArtifactState, version: VersionInfo, stage: str, number: int, why: str, date: str,
                previous: str | None) -> NewTag:
    name = f"{art.name}#{stage}#{number}"
    head = f"{art.name}: {stage} -> {version.version} ({why})"
    block = {"action": "assign", "artifact": art.name, "stage": stage, "version": version.version,
             "number": number, "previous": previous, "reason": why, "commit": version.commit,
             "run_url": _run_url(), "mlops": __version__}
    return NewTag(name, version.commit, metadata.render_message(head, block), date)


def _publish(tags: list[NewTag], root: Path, remote: str | None, pending: tuple[str, ...] = ()) -> bool | None:
    """Create TAGS locally, then push them (and PENDING: existing local tags that the remote lacks) atomically.
    None: not pushed (--no-push); False: lost a race."""
    made = publish.create_local(tags, root)
    if remote is None:
        return None
    return publish.push([t.name for t in tags] + [p for p in pending if p not in {t.name for t in tags}], made,
                        remote, root)


def _unpublished(plan: _Plan, remote: str | None, root: Path) -> tuple[str, ...]:
    """The existing tags PLAN's outcome stands on (its version's, its stage's) that REMOTE does not have: made
    with --no-push, say. They are pushed with the plan's new tags, so that the remote never gets an assignment
    of a version it does not know, and a later promote publishes what an earlier one only tagged."""
    new = {t.name for t in plan.tags}
    wanted = [n for n in dict.fromkeys(plan.relies) if n and n not in new]
    if remote is None or not wanted:
        return ()
    try:
        have = git.remote_tags(remote, wanted, root)
    except GitError as exc:
        raise RegistryError(f"cannot list the registry tags of {remote}: {exc.message}",
                            hint="check that the remote is reachable") from None
    return tuple(n for n in wanted if n not in have)


# --- promote ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    result: PromoteResult
    tags: list[NewTag]
    relies: tuple[str, ...] = ()  # existing tags the outcome stands on: published with the new ones if needed


def _decide_bump(options: PromoteOptions, trailer: str | None, latest: VersionInfo, facts: ModelFacts,
                 notes: list[str]) -> tuple[str, str]:
    if options.bump != "auto":
        return options.bump, f"--bump {options.bump}"
    if trailer:
        return trailer, f"commit trailer Model-Version: {trailer}"
    block = _block(latest)
    raw = block.get("interface") if block else None
    if not isinstance(raw, dict):
        notes.append(f"{latest.tag} records no interface: bump patch assumed (override with --bump or a "
                     "Model-Version trailer)")
        return "patch", f"no interface recorded in {latest.version}"
    try:
        previous = parse_interface(raw)
    except ValueError:
        return "patch", f"unreadable interface in {latest.version}"
    diff = diff_interfaces(previous, facts.interface)
    return diff.bump, diff.reason


def _plan_register(root: Path, cfg: RegistryConfig, options: PromoteOptions, events: list[TagEvent],
                   facts: ModelFacts, metrics: dict[str, float], head: str, trailer: str | None,
                   metric_notes: tuple[str, ...] = ()) -> _Plan:
    reg = cfg.registry
    name = reg.artifact
    art = build_state(events).get(name) or ArtifactState(name)
    notes: list[str] = list(metric_notes)
    stage = options.stage
    version = art.version_at(head)
    action = "already_registered"
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
            prod_metrics = prod_block.get("metrics") if prod_block else None
            if production is not None and not isinstance(prod_metrics, dict):
                notes.append(f"{production.tag} records no metrics: relative gates have nothing to compare with")
            reference = flatten_metrics(prod_metrics) if isinstance(prod_metrics, dict) else None
            report = evaluate_gates(cfg.gates, metrics, reference, reg.production_stage)
            if not report.passed:
                raise GatesBlocked(report)
            # every registration tag ever made counts: a deregistered number is never reused
            made = [e.version for e in events if e.artifact == name and e.kind == "register" and e.version]
            if latest is None and not made:
                new, bump, reason = reg.first_version, None, "first version"
            else:
                base = latest or VersionInfo(name, max(made, key=semver_key), "", "", "", "", "")
                bump, reason = _decide_bump(options, trailer, base, facts, notes)
                new = bump_version(max([base.version, *made], key=semver_key), bump)
            tag = f"{name}@{new}"
            pr = _pr_number(root)
            head_line = f"{name} {new}" + (f" ({bump}: {reason})" if bump else " (first version)")
            body = f"Registered by mlops {__version__} from commit {head[:12]}" + (f" (PR #{pr})" if pr else "") + "."
            block = {"action": "register", "version": new, "bump": bump, "bump_reason": reason, **facts.block(),
                     "metrics": metrics, "commit": head, "pr": pr, "run_url": _run_url(),
                     "actor": os.environ.get("GITHUB_ACTOR") or None, "mlops": __version__}
            date = _tag_date(events, name)
            tags.append(NewTag(tag, head, metadata.render_message(head_line, block, body), date))
            version = VersionInfo(name, new, tag, head, "", "", "")
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
            tags.append(_assign_tag(art, version, stage, number, "promote", _tag_date(events, name, len(tags)),
                                    previous))
            if action != "registered":
                action = "assigned"
        elif action != "registered":
            action = "already_assigned"
    result = PromoteResult(action=action, artifact=name, version=version.version, commit=version.commit,
                           created=tuple(t.name for t in tags), bump=bump, bump_reason=reason, stage=stage,
                           stage_tag=stage_tag, previous=previous, gates=report, notes=tuple(notes))
    return _Plan(result, tags, tuple(relies))


def _plan_assign_ref(options: PromoteOptions, events: list[TagEvent]) -> _Plan:
    ref, stage = options.ref or "", options.stage
    parsed = parse_tag_name(ref)
    if parsed is None or parsed.kind != "register" or not parsed.version:
        raise RegistryError(f"--ref '{ref}' is not NAME@vX.Y.Z", hint="e.g. --ref churn-model@v1.2.0")
    if not stage:
        raise RegistryError("--ref needs --stage STAGE: it assigns a stage to an existing version",
                            hint=f"e.g. mlops promote --ref {ref} --stage production")
    art = build_state(events).get(parsed.artifact)
    version = art.versions.get(parsed.version) if art else None
    if art is None or version is None:
        raise RefNotFound(f"version '{ref}' is not registered", hint="see `mlops registry show`")
    current = art.stages.get(stage)
    if current is not None and current.version == version.version:
        return _Plan(PromoteResult(action="already_assigned", artifact=art.name, version=version.version,
                                   commit=version.commit, stage=stage, previous=current.version), [],
                     (version.tag, art.stage_tags.get(stage, "")))
    number = art.last_number + 1
    tag = _assign_tag(art, version, stage, number, "promote", _tag_date(events, art.name),
                      current.version if current else None)
    return _Plan(PromoteResult(action="assigned", artifact=art.name, version=version.version, commit=version.commit,
                               created=(tag.name,), stage=stage, stage_tag=tag.name,
                               previous=current.version if current else None), [tag], (version.tag,))


def promote(root: Path = Path("."), options: PromoteOptions = PromoteOptions(),
            progress: Progress = silent) -> PromoteResult:
    """Register the model at HEAD (and/or assign a stage), push atomically, retry when a concurrent run won."""
    if options.bump not in ("auto", *BUMPS):
        raise RegistryError(f"--bump '{options.bump}' is not one of auto, {', '.join(BUMPS)}",
                            hint="omit --bump to derive it from the model's interface")
    root = git.toplevel(root)
    cfg = load_registry_config(root)
    remote = _remote(cfg.registry, options, root)
    inputs: tuple[ModelFacts, dict[str, float], str] | None = None
    trailer = None
    metric_notes: list[str] = []
    if options.ref is None:
        _check_tree(root, cfg.registry, options.allow_branch)
        facts = collect_facts(root, cfg.registry)
        inputs = (facts, _head_metrics(root, model.read_lock(root), metric_notes), git.head(root))
        trailer = git.trailers("HEAD", root).get(TRAILER, "").lower() or None
        if trailer is not None and trailer not in BUMPS:
            raise RegistryError(f"commit trailer 'Model-Version: {trailer}' is not one of {', '.join(BUMPS)}",
                                hint="fix the trailer or pass --bump")
        artifact = cfg.registry.artifact
    else:
        parsed = parse_tag_name(options.ref)
        artifact = parsed.artifact if parsed is not None else cfg.registry.artifact
    attempts = cfg.registry.push_retries + 1
    for attempt in range(1, attempts + 1):
        _fetch(remote, root, progress, artifact)
        events, _ = read_events(root)
        if inputs is None:
            plan = _plan_assign_ref(options, events)
        else:
            plan = _plan_register(root, cfg, options, events, *inputs, trailer, tuple(metric_notes))
        pending = _unpublished(plan, remote, root)
        if not plan.tags and not pending:
            return _with(plan.result, attempts=attempt)
        if plan.tags:
            progress(f"registry: creating {', '.join(t.name for t in plan.tags)}")
        if pending:
            progress(f"registry: publishing {', '.join(pending)} (made earlier, never pushed)")
        pushed = _publish(plan.tags, root, remote, pending)
        if pushed is None:
            return _with(plan.result, attempts=attempt)
        if pushed:
            return _with(plan.result, pushed=True, attempts=attempt, published=pending)
        progress(f"registry: {remote} already has {' or '.join([*(t.name for t in plan.tags), *pending])} (a "
                 f"concurrent promotion won); fetching and recomputing ({attempt}/{attempts})")
    raise RegistryError(f"lost {attempts} races for the next registry tag in a row; nothing was tagged",
                        hint="rerun the promotion (it is idempotent), or serialise promotions with a concurrency "
                             "group")


def _with(result: PromoteResult, **changes: object) -> PromoteResult:
    from dataclasses import replace

    return replace(result, **changes)  # type: ignore[arg-type]


# --- rollback -----------------------------------------------------------------------------------------------


def _plan_rollback(events: list[TagEvent], artifact: str, stage: str, to: str | None) -> _Plan:
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
            return _Plan(PromoteResult(action="already_assigned", artifact=artifact, version=current.version,
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
    tag = _assign_tag(art, target, stage, number, f"rollback from {current.version}", _tag_date(events, artifact),
                      current.version)
    return _Plan(PromoteResult(action="rolled_back", artifact=artifact, version=target.version, commit=target.commit,
                               created=(tag.name,), stage=stage, stage_tag=tag.name, previous=current.version),
                 [tag], (target.tag,))


def rollback(artifact: str, root: Path = Path("."), *, to: str | None = None, stage: str | None = None,
             push: bool = True, remote: str | None = None, progress: Progress = silent) -> PromoteResult:
    """Assign STAGE (production) to the version it had before (or TO) with a new stage tag; history keeps both."""
    root = git.toplevel(root)
    reg = load_registry_config(root).registry
    stage = stage or reg.production_stage
    if to is not None and not to.startswith("v"):
        to = f"v{to}"
    target_remote = _remote(reg, PromoteOptions(push=push, remote=remote), root)
    attempts = reg.push_retries + 1
    for attempt in range(1, attempts + 1):
        _fetch(target_remote, root, progress, artifact)
        events, _ = read_events(root)
        plan = _plan_rollback(events, artifact, stage, to)
        pending = _unpublished(plan, target_remote, root)
        if not plan.tags and not pending:
            return _with(plan.result, attempts=attempt)
        if plan.tags:
            progress(f"registry: creating {plan.tags[0].name}")
        pushed = _publish(plan.tags, root, target_remote, pending)
        if pushed is None or pushed:
            return _with(plan.result, pushed=bool(pushed), attempts=attempt, published=pending if pushed else ())
        progress(f"registry: {target_remote} already has {plan.tags[0].name if plan.tags else pending[0]}; "
                 "fetching and recomputing")
    raise RegistryError(f"lost {attempts} races for the next stage tag in a row; nothing was tagged",
                        hint="rerun the rollback")

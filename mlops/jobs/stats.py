"""`mlops registry stats`: delivery metrics (mlops.registry.stats) from the registry's tags, and from GitHub when a
token is there (the pull requests' first commits, the alarm issues of `mlops monitor`). Offline, the figures that
need GitHub are marked unavailable; the others are computed from the tags alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mlops import project
from mlops.config import PARAMS_FILE, ParamsFile, RegistryParams, read_params
from mlops.errors import MlopsError, RegistryError
from mlops.github.alarm import ALARM_LABEL, marker_label
from mlops.github.context import LOCAL, CIContext
from mlops.progress import Progress, silent
from mlops.registry.stats import AlarmRecord, DeliveryStats, compute, production_timeline
from mlops.registry.tags import read_events


def _registry(root: Path, config: ParamsFile | None) -> RegistryParams:
    try:
        return (config or read_params(root / PARAMS_FILE)).sections.registry
    except MlopsError:
        return RegistryParams()  # no params.yaml (a GTO-only repository): the defaults, production_stage included


def _artifact(root: Path, reg: RegistryParams, names: set[str]) -> str:
    try:
        name = project.artifact_name(root, reg)
    except MlopsError:
        name = None
    if name is not None:
        return name
    if len(names) == 1:
        return next(iter(names))
    raise RegistryError("which artifact? " + (f"the registry has {', '.join(sorted(names))}" if names
                                              else "the registry has no tags"),
                        hint="name it: `mlops registry stats NAME`")


def delivery_stats(root: Path = Path("."), artifact: str | None = None, *, since: datetime | None = None,
                   now: datetime | None = None, ci: CIContext = LOCAL, use_github: bool = True,
                   progress: Progress = silent, config: ParamsFile | None = None) -> DeliveryStats:
    """The delivery figures of ARTIFACT (default: the project's model) in its production stage since SINCE.

    With USE_GITHUB and a token in CI, the pull requests' first commits and the alarm issues are read from GitHub;
    a GitHub failure is an error (GitHubError), never silently a smaller figure. CONFIG: the command's params.yaml
    (read here when not given)."""
    root = root.resolve()
    until = now or datetime.now(UTC)
    reg = _registry(root, config)
    events, _ = read_events(root)
    name = artifact or _artifact(root, reg, {e.artifact for e in events})
    stage = reg.production_stage
    if not use_github:
        return compute(events, name, stage, until=until, since=since, why_offline="--offline")
    if not ci.token:
        return compute(events, name, stage, until=until, since=since)
    from mlops.jobs.comment import open_client

    client, repo = open_client(root, ci)
    try:
        progress(f"registry stats: reading pull requests and alarm issues of {repo}")
        wanted = {d.pr for d in production_timeline(events, name, stage)
                  if d.pr is not None and not d.rollback and (since is None or d.at >= since)}
        first = {pr: client.first_commit_time(pr) for pr in sorted(wanted)}
        issues = client.issues_marked(marker_label(name), (ALARM_LABEL,), since)
    finally:
        client.close()
    alarms = [AlarmRecord(i.url, i.created_at, i.closed_at) for i in issues]
    return compute(events, name, stage, until=until, since=since, first_commits=first, alarms=alarms)

"""Delivery metrics from the registry: DORA's four figures adapted to a model, computed from tags.

Every event is already in the registry's tags (their tagger dates), plus two facts that only the forge knows and
that the caller passes in as plain data (this capability never calls GitHub):

- deployment frequency: deployments to production per week over the window. A *deployment* is an assignment of
  the production stage to a version other than the one it holds that is not a rollback;
- lead time for changes: from the first commit of the version's pull request (the PR number is in the
  registration tag's metadata; its first commit's time comes from GitHub) to the production stage tag. Offline,
  "registration to production" (the `NAME@vX.Y.Z` tag to the stage tag) is given instead and lead time is
  marked unavailable;
- change failure rate: failed deployments over deployments. A *rollback* is an assignment of production to an
  older version (SemVer) than the one it replaces, or one whose metadata says it is a rollback (`mlops rollback`
  and deploy's automatic rollback write "rollback from vX"); the deployment it undoes is *failed*;
- time to restore: from a failed deployment to its rollback, and from an alarm issue's opening to the next
  production deployment that was not itself rolled back (else to the issue's close: healthy again with the same
  version). Incidents still open are counted apart. Offline (no alarm issues), failed deployments only.

Medians, in hours. A figure that cannot be computed says why (`why`), rather than showing zero.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mlops import versions as semver
from mlops.errors import RegistryError
from mlops.formats import tagmeta
from mlops.registry.tags import TagEvent, history

STATS_FORMAT = "mlops.delivery/1"


@dataclass(frozen=True)
class Deployment:
    version: str
    tag: str                      # the stage tag, NAME#STAGE#N
    at: datetime
    previous: str | None          # the version production held before
    registered: datetime | None   # the registration tag's date
    pr: int | None                # the pull request it came from (registration metadata)
    rollback: bool = False        # this assignment undid the one before
    failed: bool = False          # a later rollback undid this one


@dataclass(frozen=True)
class Incident:
    kind: Literal["failed_deploy", "alarm"]
    ref: str                      # the stage tag of the failed deployment, or the alarm issue's URL
    started: datetime
    restored: datetime | None     # None: still open


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm issue, as the caller read it from the forge."""

    url: str
    opened: datetime
    closed: datetime | None


@dataclass(frozen=True)
class Figure:
    value: float | None
    unit: str
    samples: int = 0
    why: str | None = None        # why VALUE is None (unavailable), or what it leaves out

    def as_json(self) -> dict[str, Any]:
        return {"value": None if self.value is None else round(self.value, 4), "unit": self.unit,
                "samples": self.samples, "why": self.why}


@dataclass(frozen=True)
class DeliveryStats:
    artifact: str
    stage: str
    since: datetime | None
    until: datetime
    deployments: tuple[Deployment, ...]       # in the window, rollbacks included (flagged)
    incidents: tuple[Incident, ...]
    deployment_frequency: Figure              # per week
    lead_time: Figure                         # hours, median
    registration_to_production: Figure        # hours, median (tags only)
    change_failure_rate: Figure               # ratio 0..1
    time_to_restore: Figure                   # hours, median
    sources: Mapping[str, bool] = field(default_factory=dict)  # tags, pull_requests, alarm_issues: available?

    @property
    def forward(self) -> tuple[Deployment, ...]:
        return tuple(d for d in self.deployments if not d.rollback)

    def figures(self) -> dict[str, Figure]:
        return {"deployment_frequency": self.deployment_frequency, "lead_time": self.lead_time,
                "registration_to_production": self.registration_to_production,
                "change_failure_rate": self.change_failure_rate, "time_to_restore": self.time_to_restore}

    def as_json(self) -> dict[str, Any]:
        return {
            "format": STATS_FORMAT, "artifact": self.artifact, "stage": self.stage,
            "since": _iso(self.since) if self.since else None, "until": _iso(self.until),
            "sources": dict(self.sources),
            "figures": {k: f.as_json() for k, f in self.figures().items()},
            "deployments": [{"version": d.version, "tag": d.tag, "time": _iso(d.at), "previous": d.previous,
                             "pr": d.pr, "rollback": d.rollback, "failed": d.failed} for d in self.deployments],
            "incidents": [{"kind": i.kind, "ref": i.ref, "started": _iso(i.started),
                           "restored": _iso(i.restored) if i.restored else None} for i in self.incidents],
        }

    def gauges(self) -> list[tuple[str, dict[str, str], float]]:
        """(name, labels, value) for the monitor's published gauges: only the figures that are available."""
        names = {"deployment_frequency": "mlops_delivery_deployments_per_week",
                 "lead_time": "mlops_delivery_lead_time_hours",
                 "registration_to_production": "mlops_delivery_registration_to_production_hours",
                 "change_failure_rate": "mlops_delivery_change_failure_rate",
                 "time_to_restore": "mlops_delivery_time_to_restore_hours"}
        out: list[tuple[str, dict[str, str], float]] = [
            (names[k], {}, float(f.value)) for k, f in self.figures().items() if f.value is not None]
        out.append(("mlops_delivery_deployments", {}, float(len(self.forward))))
        out.append(("mlops_delivery_rollbacks", {}, float(sum(d.rollback for d in self.deployments))))
        out.append(("mlops_delivery_open_incidents", {}, float(sum(i.restored is None for i in self.incidents))))
        return out

    def lines(self) -> list[tuple[str, str]]:
        """(figure, value as text) rows for a report: an unavailable figure says why."""
        def show(f: Figure, fmt: str) -> str:
            if f.value is None:
                return f"unavailable ({f.why})" if f.why else "unavailable"
            text = fmt.format(f.value)
            return text + (f" over {f.samples}" if f.samples else "") + (f" ({f.why})" if f.why else "")

        return [("deployment frequency", show(self.deployment_frequency, "{:.2f} per week")),
                ("lead time for changes (median)", show(self.lead_time, "{:.1f} h")),
                ("registration to production (median)", show(self.registration_to_production, "{:.1f} h")),
                ("change failure rate", show(self.change_failure_rate, "{:.0%}")),
                ("time to restore (median)", show(self.time_to_restore, "{:.1f} h"))]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str, where: str = "time") -> datetime:
    """An ISO 8601 date or date-time (naive means UTC); RegistryError naming WHERE otherwise."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RegistryError(f"{where} '{text}': not an ISO 8601 date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)",
                            hint="e.g. --since 2026-01-01") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 3600.0


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _meta(event: TagEvent) -> tagmeta.TagMeta | None:
    try:
        return tagmeta.read(event.message, event.tag)
    except tagmeta.TagMetaInvalid:
        return None  # a tag someone else wrote: its dates still count, its claims are not read


def production_timeline(events: list[TagEvent], artifact: str, stage: str) -> list[Deployment]:
    """Every change of STAGE's version, in time order: forward deployments and rollbacks, failures marked."""
    registered: dict[str, tuple[datetime, int | None]] = {}
    changes: list[Deployment] = []
    current: str | None = None
    for h in history(events, artifact):
        e = h.event
        if e.kind == "register" and e.version:
            meta = _meta(e)
            registered[e.version] = (parse_time(e.created, e.tag), meta.pr if meta else None)
        elif e.kind == "unassign" and e.stage == stage:
            current = None
        elif e.kind == "assign" and e.stage == stage and h.version and h.version != current:
            meta = _meta(e)
            said = bool(meta and meta.reason and meta.reason.lower().startswith("rollback"))
            older = current is not None and semver.compare(h.version, current) < 0
            reg, pr = registered.get(h.version, (None, None))
            changes.append(Deployment(h.version, e.tag, parse_time(e.created, e.tag), current, reg, pr,
                                      rollback=said or older))
            current = h.version
    # A rollback fails the deployment it undid: the latest forward deployment of the version it replaced.
    failed: set[int] = set()
    for i, d in enumerate(changes):
        if d.rollback and d.previous is not None:
            undone = next((j for j in range(i - 1, -1, -1)
                           if changes[j].version == d.previous and not changes[j].rollback), None)
            if undone is not None:
                failed.add(undone)
    return [Deployment(d.version, d.tag, d.at, d.previous, d.registered, d.pr, d.rollback, i in failed)
            for i, d in enumerate(changes)]


def compute(events: list[TagEvent], artifact: str, stage: str, *, until: datetime, since: datetime | None = None,
            first_commits: Mapping[int, datetime | None] | None = None,
            alarms: Sequence[AlarmRecord] | None = None, why_offline: str = "no GitHub token") -> DeliveryStats:
    """The four figures of ARTIFACT's STAGE over [SINCE, UNTIL] (SINCE None: since its first deployment).

    FIRST_COMMITS: pull request number -> its first commit's time (None: GitHub unavailable, lead time is marked
    so). ALARMS: the alarm issues (None: unavailable; time to restore then counts failed deployments only)."""
    timeline = production_timeline(events, artifact, stage)
    inside = [d for d in timeline if (since is None or d.at >= since) and d.at <= until]
    forward = [d for d in inside if not d.rollback]
    start = since or (timeline[0].at if timeline else None)

    if start is None or not forward:
        freq = Figure(0.0 if start is not None else None, "per week", 0,
                      None if start is not None else f"{artifact} has never been assigned {stage}")
    else:
        days = max(_hours(start, until) / 24.0, 1.0)  # a window shorter than a day counts as one day
        freq = Figure(len(forward) / days * 7.0, "per week", len(forward))

    reg_hours = [_hours(d.registered, d.at) for d in forward if d.registered is not None]
    to_prod = Figure(_median(reg_hours), "hours", len(reg_hours),
                     None if reg_hours else "no deployment in the window")

    if first_commits is None:
        lead = Figure(None, "hours", 0, f"needs the pull requests' first commits from GitHub ({why_offline})")
    else:
        waits = [_hours(t, d.at) for d in forward if d.pr is not None and (t := first_commits.get(d.pr)) is not None]
        unknown = sum(1 for d in forward if d.pr is None or first_commits.get(d.pr) is None)
        lead = Figure(_median(waits), "hours", len(waits),
                      (f"{unknown} deployment{'s' if unknown != 1 else ''} without a known pull request left out"
                       if unknown and waits else None if waits else "no deployment with a known pull request"))

    failed = [d for d in forward if d.failed]
    cfr = Figure(len(failed) / len(forward) if forward else None, "ratio", len(forward),
                 None if forward else "no deployment in the window")

    incidents: list[Incident] = []
    for i, d in enumerate(timeline):
        if d.failed and (since is None or d.at >= since) and d.at <= until:
            back = next((r for r in timeline[i + 1:] if r.rollback and r.previous == d.version), None)
            incidents.append(Incident("failed_deploy", d.tag, d.at, back.at if back else None))
    for a in alarms or ():
        if (since is not None and a.opened < since) or a.opened > until:
            continue
        fix = next((d for d in timeline if d.at > a.opened and not d.rollback and not d.failed), None)
        restored = fix.at if fix is not None and fix.at <= until else a.closed
        incidents.append(Incident("alarm", a.url, a.opened, restored))
    incidents.sort(key=lambda x: x.started)
    restores = [_hours(x.started, x.restored) for x in incidents if x.restored is not None]
    still_open = sum(1 for x in incidents if x.restored is None)
    notes = []
    if alarms is None:
        notes.append(f"failed deployments only: alarm issues need GitHub ({why_offline})")
    if still_open:
        notes.append(f"{still_open} incident{'s' if still_open != 1 else ''} still open")
    ttr = Figure(_median(restores), "hours", len(restores),
                 "; ".join(notes) if restores or notes else "no incident in the window")
    return DeliveryStats(artifact, stage, since, until, tuple(inside), tuple(incidents), freq, lead, to_prod, cfr,
                         ttr, {"tags": True, "pull_requests": first_commits is not None,
                               "alarm_issues": alarms is not None})

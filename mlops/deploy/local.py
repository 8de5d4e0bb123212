"""The `local` target: deliver a release to the running `mlops serve`, as a canary that must earn its traffic.

Plan (reads only): what the server serves now, and what deploying RELEASE would do there. Apply: fetch and verify
the artifact (fetch.py), install it into the model store, load it as a canary with no traffic, check its golden
predictions on the exact version, give it `canary_percent` of traffic for a window of replayed requests, then
promote it to all traffic; or roll the server back and raise CanaryFailed with the checks. The first version on
an empty server is loaded as stable (there is nothing to split traffic with) and checked the same way.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlops import modelstore
from mlops.config import DeployParams
from mlops.deploy.client import Refused, Role, Server, ServerState
from mlops.deploy.fetch import FetchedArtifact, Release, fetch_release
from mlops.deploy.smoke import (
    Check,
    Series,
    Thresholds,
    counter,
    golden_check,
    parse_metrics,
    read_golden,
    replay,
    window_checks,
)
from mlops.errors import DeployError, ModelStoreError, SmokeTestFailed
from mlops.formats.manifest import MANIFEST_FILE, ManifestInvalid, read_feature_schema, read_manifest
from mlops.progress import Progress, silent

GOLDEN_FILE = "golden.json"
SCHEMA_FILE = "feature_schema.json"
CONCURRENCY = 8  # connections of the replayed traffic

LocalAction = Literal["deploy", "first_deploy", "already_serving"]


class CanaryFailed(SmokeTestFailed):
    """The candidate failed its smoke test; the server was rolled back. Carries the checks for the CLI's table."""

    def __init__(self, message: str, ref: str, checks: tuple[Check, ...], serving: str | None, *,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.ref = ref  # the candidate, NAME@vX.Y.Z
        self.checks = checks
        self.serving = serving  # the version serving all traffic after the rollback (None: none)


@dataclass(frozen=True)
class LocalPlan:
    release: Release
    server_url: str
    store: Path
    action: LocalAction
    stable: str | None  # the version serving all traffic now (previous, once deployed)
    steps: tuple[str, ...]


@dataclass(frozen=True)
class LocalOutcome:
    action: Literal["deployed", "already_serving"]
    previous: str | None
    checks: tuple[Check, ...]
    source: str  # where the artifact came from (local DVC cache, DVC remote), "" when nothing was fetched
    notes: tuple[str, ...] = field(default_factory=tuple)


def plan_local(server: Server, release: Release, store: Path, params: DeployParams) -> LocalPlan:
    """What deploying RELEASE to SERVER would do; DeployError when a canary is already in flight there."""
    state = server.state(release.artifact)
    if state is not None and state.canary is not None:
        raise DeployError(f"the model server at {server.url} already runs {release.artifact} {state.canary} as a "
                          f"canary ({state.canary_percent:g}% of traffic): another deploy is in flight or was cut "
                          "short", hint=f"wait for it, or drop it: POST {server.url}/admin/models/"
                                        f"{release.artifact}/rollback with the admin token")
    stable = state.stable if state is not None else None
    where = f"{store}/{release.artifact}/{release.version}"
    verify = f"fetch {release.path} at {release.commit[:12]} through DVC; check {release.model_file} against " \
             f"sha256 {release.model_sha256[:12]}…"
    if stable == release.version:
        return LocalPlan(release, server.url, store, "already_serving", stable,
                         (f"nothing to do on the server: {release.ref} already serves all traffic",))
    steps: tuple[str, ...]
    if stable is None:
        steps = (verify, f"install into {where}", f"load {release.version} as stable (the server serves no "
                 f"{release.artifact} yet)", "golden check on the exact version",
                 f"canary window: {params.canary_requests} replayed requests over {params.canary_seconds:g} s")
        return LocalPlan(release, server.url, store, "first_deploy", None, steps)
    steps = (verify, f"install into {where}", f"load {release.version} as canary beside {stable} (no traffic yet)",
             "golden check on the exact version",
             f"canary window: {params.canary_percent}% of {params.canary_requests} replayed requests over "
             f"{params.canary_seconds:g} s; error rate <= {params.max_error_rate:g}, p99 <= {params.max_p99_ms:g} ms",
             f"pass: promote {release.version} to all traffic; fail: roll back to {stable}")
    return LocalPlan(release, server.url, store, "deploy", stable, steps)


def _install(plan: LocalPlan, art: FetchedArtifact) -> None:
    r = plan.release
    meta = {"tag": r.tag, "commit": r.commit,
            "registry": {"path": r.path, "model_file": r.model_file, "model_sha256": r.model_sha256,
                         "dvc_md5": r.dvc_md5}}
    try:
        # the tag's sha256 may cover the whole directory (verified by fetch); the store checks the served file
        modelstore.install(plan.store, r.artifact, r.version, art.directory, model_file=art.serve_file,
                           model_sha256=art.serve_sha256, meta=meta)
    except ModelStoreError as exc:
        raise DeployError(f"cannot install {r.ref} into the model store {plan.store}: {exc.message}",
                          hint=exc.hint) from None


def _output_name(art: FetchedArtifact) -> str | None:
    """The output the golden predictions are of, when golden.json does not say: the manifest's task gives it (a
    package), else feature_schema.json's output name (the churn stages' artifact)."""
    if (art.directory / MANIFEST_FILE).is_file():
        try:
            return read_manifest(art.directory).outputs[0].name
        except ManifestInvalid:
            return None
    try:
        name = read_feature_schema(art.directory / SCHEMA_FILE).output.get("name")
    except ManifestInvalid:
        return None
    return str(name) if name else None


def _scrape(server: Server) -> Series | None:
    text = server.metrics()
    return parse_metrics(text) if text is not None else None


def _settled(server: Server, before: Series | None, name: str, version: str, seen: int) -> Series | None:
    """The /metrics after the window, once the server's counters show the requests the replay saw answered (a
    worker may publish its counts a moment after answering); at most about a second of waiting."""
    after = _scrape(server)
    deadline = time.monotonic() + 1.0
    while after is not None and before is not None and time.monotonic() < deadline:
        got = sum(counter(after, m, model=name, version=version) - counter(before, m, model=name, version=version)
                  for m in ("model_infer_request_success", "model_infer_request_failure"))
        if got >= seen:
            break
        time.sleep(0.1)
        after = _scrape(server)
    return after


def _window(server: Server, plan: LocalPlan, params: DeployParams, golden_records: tuple[dict[str, object], ...],
            percent: float, progress: Progress) -> list[Check]:
    r = plan.release
    if params.canary_requests == 0:
        return [Check("canary_window", True, "deploy.canary_requests is 0: no canary window, golden check only")]
    progress(f"deploy: canary window: {params.canary_requests} requests over {params.canary_seconds:g} s, "
             f"{percent:g}% to {r.version}")
    before = _scrape(server)
    samples = replay(server.endpoint, r.artifact, golden_records, params.canary_requests, params.canary_seconds,
                     CONCURRENCY)
    seen = sum(s.version == r.version for s in samples)
    after = _settled(server, before, r.artifact, r.version, seen)
    return window_checks(samples, r.version, Thresholds(params.max_error_rate, params.max_p99_ms, percent),
                         before, after, r.artifact)


def _failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]


def _roll_back(server: Server, plan: LocalPlan, progress: Progress) -> tuple[ServerState | None, str]:
    """Take the candidate out of traffic, if it is in it; returns the state after and where traffic is.

    Only when the server shows the candidate: the server's rollback with no canary brings back the *previous
    stable*, which must never happen because a load was refused before it changed anything."""
    r = plan.release
    state = server.state(r.artifact)
    present = state is not None and r.version in (state.canary, state.shadow, state.stable)
    if present and state is not None and (state.canary == r.version or state.shadow == r.version
                                          or plan.stable is not None):
        progress(f"deploy: rolling {r.artifact} back on the server")
        try:
            server.rollback(r.artifact)
        except DeployError as exc:
            raise DeployError(f"{exc.message}; the candidate {r.version} may still take traffic",
                              hint=f"drop it by hand: POST {server.url}/admin/models/{r.artifact}/rollback with the "
                                   "admin token") from None
        state = server.state(r.artifact)
    serving = state.stable if state is not None else None
    if plan.stable is not None:
        if serving == plan.stable and (state is None or state.canary is None):
            return state, f"traffic stays on {plan.stable}"
        return state, f"the server now serves {serving} (expected {plan.stable}); check it"
    if serving is None:
        return state, "the server serves no version of it"
    return state, f"the server had no earlier version to go back to and serves {serving}"


def _fail(server: Server, plan: LocalPlan, checks: list[Check], progress: Progress) -> CanaryFailed:
    r = plan.release
    after, where = _roll_back(server, plan, progress)
    reasons = "; ".join(f"{c.name}: {c.detail}" for c in _failed(checks))
    return CanaryFailed(f"{r.ref} failed its smoke test ({reasons}); {where}", r.ref, tuple(checks),
                        after.stable if after else None,
                        hint="see the checks above; fix the model (or the thresholds under deploy: in params.yaml) "
                             "and deploy again")


def apply_local(root: Path, plan: LocalPlan, server: Server, params: DeployParams,
                progress: Progress = silent) -> LocalOutcome:
    """Carry PLAN out; CanaryFailed (the server rolled back) when the candidate fails its smoke test."""
    r = plan.release
    if plan.action == "already_serving":
        return LocalOutcome("already_serving", plan.stable, (), "")
    tmp = Path(tempfile.mkdtemp(prefix="mlops-deploy-"))
    try:
        art = fetch_release(root, r, tmp / "artifact", progress)
        golden = read_golden(art.directory / GOLDEN_FILE)  # before anything changes on the server
        output = golden.output or _output_name(art)
        if golden.model_sha256 is not None and golden.model_sha256 != art.serve_sha256:
            check = Check("golden_file", False, f"{GOLDEN_FILE} was computed with model sha256 "
                          f"{golden.model_sha256[:12]}…, not with {art.serve_file} ({art.serve_sha256[:12]}…)")
            raise CanaryFailed(f"{r.ref} failed its smoke test ({check.detail}); nothing was installed or loaded",
                               r.ref, (check,), plan.stable, hint="the artifact's model and golden records are "
                                                                  "from different trainings: retrain")
        progress(f"deploy: {r.ref} verified ({art.source}); installing into {plan.store}")
        _install(plan, art)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    checks: list[Check] = []
    first = plan.action == "first_deploy"
    role: Role = "stable" if first else "canary"
    progress(f"deploy: loading {r.version} as {role} on {server.url}")
    try:
        try:
            server.load(r.artifact, r.version, role, None if first else 0)
        except Refused as exc:
            if exc.status == 404:  # the server reads another store: a setup error, not the candidate's
                raise DeployError(f"the model server at {server.url} does not find {r.ref} in its store: "
                                  f"{exc.reason}", hint=f"deploy.store ({plan.store}) must be the store the "
                                                        "server reads (`mlops serve --store`)") from None
            # warm-up or checksum refused on the server: the candidate never took traffic
            raise _fail(server, plan, [Check("load", False, f"the server refused {r.version}: {exc.reason}",
                                             {"status": exc.status})], progress) from None
        checks.append(Check("load", True, f"loaded and warmed up as {role}"))
        progress(f"deploy: golden check of {r.version} ({len(golden.records)} records)")
        checks.append(golden_check(server, r.artifact, r.version, golden, params.golden_tolerance, output))
        if not _failed(checks):
            percent = 100.0 if first else float(params.canary_percent)
            if not first:
                server.set_canary(r.artifact, percent)
            checks += _window(server, plan, params, golden.records, percent, progress)
        if _failed(checks):
            raise _fail(server, plan, checks, progress)
        if not first:
            progress(f"deploy: promoting {r.version} to all traffic")
            server.promote(r.artifact)
    except CanaryFailed:
        raise
    except BaseException:
        # a network error or an interrupt mid-window: never leave a half-checked candidate taking traffic
        with contextlib.suppress(DeployError):
            _roll_back(server, plan, progress)
        raise
    state = server.state(r.artifact)
    if state is None or state.stable != r.version:
        raise DeployError(f"the model server reports {state.stable if state else 'nothing'} as stable after "
                          f"promoting {r.version}", hint="check the server's log; no stage tag was written")
    return LocalOutcome("deployed", plan.stable, tuple(checks), art.source)

"""The admin API: change what a model name serves, on every worker, or say why not.

All endpoints need `Authorization: Bearer TOKEN` (the token of $MLOPS_ADMIN_TOKEN or --admin-token-file, at least
32 characters, compared in constant time); with no token configured the admin API is off and answers 401. After
`admin_max_failures` wrong tokens from one client address within `admin_failure_window` seconds, that address
gets 429 (with Retry-After) on every admin call, the right token included, until the window has passed: a guess
costs a window, per worker process. Names and versions are checked strictly (no trailing newline), and nothing is
created in the store for a name it does not hold.

    GET  /admin/models/{name}            the serving state, and what each worker serves
    POST /admin/models/{name}/load       {"version": "v1.1.0", "role": "stable"|"canary"|"shadow", "percent": 10}
    POST /admin/models/{name}/promote    the canary becomes stable (the old stable is remembered as previous)
    POST /admin/models/{name}/rollback   drop canary and shadow; when there are none, the previous stable is back
    POST /admin/models/{name}/canary     {"percent": 25}

A change answers 200 with the new state once EVERY worker process serves it: it is checked and written under a lock
(a version to load is first verified against the store's sha256 and warmed up in this worker: 409 and nothing
changes when that fails, 404 when the store lacks it), then each worker applies it between two requests and
reports. 503 when a worker has not applied it within the admin timeout (it still will), 409 when a worker refused it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops.errors import MlopsError, ModelStoreError
from mlops.modelstore import NotInStore
from mlops.serve.app import HttpError, Receive, read_body
from mlops.serve.models import LoadedModel, load_model
from mlops.serve.runtime import Runtime
from mlops.serve.settings import strict_name, strict_version
from mlops.serve.state import (
    ServingState,
    StateConflict,
    locked,
    read_reports,
    read_serving_state,
    with_canary,
    with_load,
    with_promote,
    with_rollback,
    write_state,
)

log = logging.getLogger("mlops.serve")

OPS = ("load", "promote", "rollback", "canary")
_ADMIN_BODY_LIMIT = 64 * 1024


class LoadBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: str = Field(min_length=1, max_length=200)
    role: Literal["stable", "canary", "shadow"] = "stable"
    percent: float | None = Field(default=None, ge=0, le=100)


class CanaryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    percent: float = Field(ge=0, le=100)


class EmptyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AuthThrottle:
    """Refused admin tokens per client address in a sliding window; at the limit the address waits the window out.
    Bounded memory: at most MAX_CLIENTS addresses are tracked (beyond, the oldest entries are forgotten)."""

    MAX_CLIENTS = 4096

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def wait(self, who: str, now: float) -> float:
        """Seconds WHO must wait before its next try (0: it may try now)."""
        times = self._failures.get(who)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[who]
            return 0.0
        return times[0] + self.window - now if len(times) >= self.max_failures else 0.0

    def failed(self, who: str, now: float) -> bool:
        """Count a refused token of WHO; True when that starts a lockout."""
        times = self._failures.get(who)
        if times is None:
            if len(self._failures) >= self.MAX_CLIENTS:
                for key in list(self._failures)[: self.MAX_CLIENTS // 4]:
                    del self._failures[key]
            times = self._failures[who] = deque(maxlen=self.max_failures)
        times.append(now)
        return len(times) >= self.max_failures


def authorized(runtime: Runtime, header: bytes | None, throttle: AuthThrottle | None = None,
               who: str = "") -> None:
    token = runtime.settings.admin_token
    challenge = [(b"www-authenticate", b'Bearer realm="mlops-admin"')]
    if token is None:
        raise HttpError(401, "the admin API is off: the server was started without an admin token "
                             "(set MLOPS_ADMIN_TOKEN or --admin-token-file)", challenge)
    now = time.monotonic()
    if throttle is not None:
        wait = throttle.wait(who, now)
        if wait > 0:
            raise HttpError(429, f"too many refused admin tokens from this address: retry in {wait:.0f} s "
                                 f"(at most {throttle.max_failures} per {throttle.window:g} s)",
                            [(b"retry-after", str(max(1, round(wait))).encode())])
    expected = b"Bearer " + token.encode()
    if header is None or not hmac.compare_digest(header, expected):
        # A wrong token is a guess, counted; no header guesses nothing. Said once per lockout: no log flood.
        if throttle is not None and header is not None and throttle.failed(who, now):
            log.warning("admin calls refused for a while: too many wrong tokens from one address",
                        extra={"client": who, "failures": throttle.max_failures, "window_s": throttle.window})
        raise HttpError(401, "admin endpoints need 'Authorization: Bearer <admin token>'", challenge)


def _body(model: type[BaseModel], raw: bytes) -> Any:
    if not raw.strip():
        raw = b"{}"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise HttpError(400, f"field '{where}': {err['msg']}") from None


def _change(runtime: Runtime, name: str, transition: Callable[[ServingState], ServingState],
            load: str | None) -> tuple[ServingState, bool, dict[str, LoadedModel]]:
    """In a thread: under the lock, compute and write the next state. A version to LOAD (and any version the new
    state serves that this worker has not loaded) is verified and warmed up first: if that fails, nothing is
    written. Returns (state, changed, the versions loaded here)."""
    store = runtime.settings.store
    with locked(store, name):
        old = read_serving_state(store, name)
        if old is None:
            # No state file (never served, or deleted): generations must still grow past what workers applied.
            seen = [(r.get("generations") or {}).get(name, 0) for r in read_reports(runtime.runtime_dir,
                                                                                     runtime.workers) if r]
            old = ServingState(name, generation=max([0, *seen]))
        new = transition(old)
        preloaded: dict[str, LoadedModel] = {}
        if load is not None:  # an explicit load verifies the store's copy again, even when it is loaded here
            preloaded[load] = load_model(store, name, load)
        if new is old:
            return old, False, preloaded
        for version in new.versions():
            if version not in preloaded and (name, version) not in runtime.cache:
                preloaded[version] = load_model(store, name, version)
        write_state(store, new)
        return new, True, preloaded


def workers_view(runtime: Runtime, name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, rep in enumerate(read_reports(runtime.runtime_dir, runtime.workers)):
        if rep is None:
            out.append({"index": i, "pid": None, "generation": None, "versions": [], "ready": False})
            continue
        err = (rep.get("errors") or {}).get(name)
        out.append({"index": i, "pid": rep.get("pid"), "generation": (rep.get("generations") or {}).get(name),
                    "versions": (rep.get("versions") or {}).get(name, []), "ready": bool(rep.get("ready")),
                    **({"error": err.get("error")} if isinstance(err, dict) else {})})
    return out


async def _wait_all(runtime: Runtime, name: str, generation: int) -> None:
    deadline = time.monotonic() + runtime.settings.admin_timeout
    while True:
        views = workers_view(runtime, name)
        if all(isinstance(v["generation"], int) and v["generation"] >= generation for v in views):
            return
        refused = [v for v in views if v.get("error")]
        if refused:
            raise HttpError(409, f"worker {refused[0]['index']} refused generation {generation}: "
                                 f"{refused[0]['error']}")
        if time.monotonic() > deadline:
            behind = [str(v["index"]) for v in views if not (isinstance(v["generation"], int)
                                                             and v["generation"] >= generation)]
            raise HttpError(503, f"generation {generation} of {name} is written but worker(s) {', '.join(behind)} "
                                 f"did not apply it within {runtime.settings.admin_timeout:g} s (they still will)")
        await asyncio.sleep(0.02)


def _state_payload(runtime: Runtime, state: ServingState) -> dict[str, Any]:
    return {**state.public(), "workers": workers_view(runtime, state.name)}


async def handle_admin(runtime: Runtime, method: str, parts: list[str], auth: bytes | None, receive: Receive,
                       length: bytes | None, throttle: AuthThrottle | None = None,
                       who: str = "") -> tuple[str, int, dict[str, Any]]:
    """(route template, status, payload) of an admin request; HttpError for the refusals."""
    n = len(parts)
    if n < 3 or parts[1] != "models" or n > 4 or (n == 4 and parts[3] not in OPS):
        raise HttpError(404, "no such admin path (see /openapi.json)")
    template = "/admin/models/{name}" + (f"/{parts[3]}" if n == 4 else "")
    authorized(runtime, auth, throttle, who)
    name = parts[2]
    try:
        strict_name(name)
    except MlopsError as exc:
        raise HttpError(404, exc.message) from None
    if not runtime.serves(name):
        raise HttpError(404, f"this server serves only '{runtime.settings.model}' (--model)")
    if n == 3:
        if method != "GET":
            raise HttpError(405, f"method {method} is not allowed here (use GET)", [(b"allow", b"GET")])
        current = await asyncio.to_thread(read_serving_state, runtime.settings.store, name)
        if current is None:
            raise HttpError(404, f"model '{name}' has never been served here: load a version first")
        return template, 200, _state_payload(runtime, current)
    if method != "POST":
        raise HttpError(405, f"method {method} is not allowed here (use POST)", [(b"allow", b"POST")])
    op = parts[3]
    declared = int(length) if length is not None and length.isdigit() else None
    raw = await read_body(receive, _ADMIN_BODY_LIMIT, declared)
    load: str | None = None
    transition: Callable[[ServingState], ServingState]
    if op == "load":
        body = _body(LoadBody, raw)
        try:
            strict_version(body.version)
        except MlopsError as exc:
            raise HttpError(400, f"field 'version': {exc.message}") from None
        if not await asyncio.to_thread((runtime.settings.store / name / body.version).is_dir):
            # before any lock file is made: the store holds nothing under a name or version it never installed
            raise HttpError(404, f"{name} {body.version} is not in the model store (install it with `mlops "
                                 "deploy`)")
        load = body.version

        def transition(s: ServingState) -> ServingState:
            return with_load(s, body.version, body.role, body.percent)
    elif op == "canary":
        cbody = _body(CanaryBody, raw)

        def transition(s: ServingState) -> ServingState:
            return with_canary(s, cbody.percent)
    else:
        _body(EmptyBody, raw)
        transition = with_promote if op == "promote" else with_rollback
    if op != "load" and await asyncio.to_thread(read_serving_state, runtime.settings.store, name) is None:
        raise HttpError(404, f"model '{name}' has never been served here: load a version first")
    try:
        state, changed, preloaded = await asyncio.to_thread(_change, runtime, name, transition, load)
    except NotInStore as exc:
        log.warning("admin change refused", extra={"model": name, "op": op, "error": exc.message})
        raise HttpError(404, exc.message) from None
    except (ModelStoreError, StateConflict) as exc:
        log.warning("admin change refused: the current versions keep serving",
                    extra={"model": name, "op": op, "error": exc.message})
        raise HttpError(409, exc.message) from None
    if changed:
        log.info("admin change written", extra={"model": name, "op": op, "generation": state.generation,
                                                "reason": state.reason})
    if changed or runtime.applied.get(name) != state.generation:
        await runtime.apply(state, preloaded)
    await _wait_all(runtime, name, state.generation)
    return template, 200, _state_payload(runtime, state)

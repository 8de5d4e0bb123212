"""One worker process's serving runtime: the routes it serves (swapped whole, between requests), the versions it
has loaded, and the loop that follows the serving state that admin calls write.

A Route is immutable: a request takes the route once and finishes on it, so a hot swap never fails or drops a
request in flight; the next request sees the new route.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError
from mlops.serve.metrics import Metrics
from mlops.serve.models import LoadedModel, load_model
from mlops.serve.requestlog import RequestLog
from mlops.serve.settings import ServeSettings
from mlops.serve.state import Role, ServingState, read_serving_state, state_path, write_report

log = logging.getLogger("mlops.serve")

RETRY_FAILED_S = 5.0


def bucket(request_id: str | None) -> int:
    """0..9999: where a request falls in the traffic split. The same request id always falls in the same place
    (in every worker: crc32, not Python's salted hash); no id: at random."""
    if request_id is None:
        return random.randrange(10000)  # noqa: S311 (traffic split, not security)
    return zlib.crc32(request_id.encode()) % 10000


@dataclass(frozen=True, eq=False)
class Route:
    name: str
    state: ServingState
    stable: LoadedModel | None
    canary: LoadedModel | None
    canary_bp: int  # canary share in basis points (0..10000)
    shadow: LoadedModel | None
    by_version: dict[str, tuple[LoadedModel, Role]] = field(default_factory=dict)

    def pick(self, request_id: str | None) -> tuple[LoadedModel | None, Role]:
        if self.canary is not None and self.canary_bp > 0 and bucket(request_id) < self.canary_bp:
            return self.canary, "canary"
        return self.stable, "stable"


def empty_store_reason(store: Path, model: str | None = None) -> str:
    """What an empty store (or one without MODEL) needs: a deploy fills it, or a first try serves a package."""
    what = f"no version of model '{model}'" if model else "no model"
    return (f"the model store {store} holds {what}: `mlops deploy --target local --ref NAME@vX.Y.Z` installs a "
            "registered version (after `mlops promote`), or try the workspace's package without the registry: "
            "`mlops serve --model-dir models` (the directory `mlops package` wrote)")


class Runtime:
    def __init__(self, settings: ServeSettings, index: int, runtime_dir: Path, workers: int,
                 parent: int | None = None) -> None:
        self.settings = settings
        self.parent = parent
        self.index = index
        self.runtime_dir = Path(runtime_dir)
        self.workers = workers
        self.metrics = Metrics()
        self.routes: dict[str, Route] = {}
        self.applied: dict[str, int] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.cache: dict[tuple[str, str], LoadedModel] = {}
        self.reqlog: RequestLog | None = None
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._failed_at: dict[str, float] = {}
        self._lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._lock = asyncio.Lock()
        if self.settings.log_dir is not None:
            self.reqlog = RequestLog(self.settings.log_dir, self.index, max_bytes=self.settings.log_max_bytes,
                                     keep=self.settings.log_keep, on_drop=self.metrics.dropped.inc,
                                     rows_per_request=self.settings.log_rows_per_request,
                                     bytes_per_request=self.settings.log_bytes_per_request)
        # Serve the current state before taking connections (the lifespan startup runs before uvicorn accepts): a
        # worker that answers is one whose models are loaded, so the workers of one server agree on readiness.
        try:
            await self.poll()
        except MlopsError as exc:
            log.error("serving state not loaded at start", extra={"worker": self.index, "error": exc.message})
        # xgboost, numpy and the models are loaded now and live until the end: out of the collector's sight, so
        # that a full collection does not walk them in the middle of a request.
        gc.collect()
        gc.freeze()
        self.report()
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.reqlog is not None:
            await asyncio.to_thread(self.reqlog.close)

    @property
    def ready(self) -> bool:
        return bool(self.routes) and all(r.stable is not None for r in self.routes.values())

    def not_ready_reason(self) -> str:
        """Why the server is not ready, with what fills it: what the not-ready answer and the log say."""
        store = self.settings.store
        if self.errors:
            name, err = sorted(self.errors.items())[0]
            return f"model '{name}' could not be loaded: {err.get('error')}"
        waiting = [n for n, r in self.routes.items() if r.stable is None]
        if waiting:
            return f"model '{waiting[0]}' has no stable version loaded yet"
        return empty_store_reason(store, self.settings.model)

    def serves(self, name: str) -> bool:
        """Whether NAME may be served here (--model restricts the server to one name)."""
        return self.settings.model is None or self.settings.model == name

    # --- the serving state ---------------------------------------------------------------------------------------

    def metrics_body(self) -> bytes:
        """/metrics: the serving metrics of every worker, then the monitoring gauges `mlops monitor --store`
        published into the store (so the dashboards that graph the server also graph drift and decay)."""
        from mlops.modelstore import gauges_text

        return self.metrics.render() + gauges_text(Path(self.settings.store), self.names()).encode()

    def names(self) -> list[str]:
        if self.settings.model is not None:
            return [self.settings.model]
        try:
            return sorted(e.name for e in os.scandir(self.settings.store) if e.is_dir())
        except FileNotFoundError:
            return []

    async def _poll_forever(self) -> None:
        while True:
            if self.parent is not None and os.getppid() != self.parent:
                log.warning("the supervisor is gone: stopping", extra={"worker": self.index})
                os.kill(os.getpid(), signal.SIGTERM)
                self.parent = None
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop that follows admin changes must outlive any one bad look
                log.exception("serving state poll failed", extra={"worker": self.index})
            await asyncio.sleep(self.settings.poll_interval)

    async def poll(self) -> None:
        for name in self.names():
            try:
                st = os.stat(state_path(self.settings.store, name))
            except (FileNotFoundError, NotADirectoryError):
                continue
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            retry = name in self.errors and time.monotonic() - self._failed_at.get(name, 0.0) > RETRY_FAILED_S
            if key == self._seen.get(name) and not retry:
                continue
            self._seen[name] = key
            try:
                state = read_serving_state(self.settings.store, name)
            except MlopsError as exc:
                log.error("serving state unreadable", extra={"model": name, "error": exc.message})
                continue
            if state is not None and (state.generation != self.applied.get(name) or retry):
                await self.apply(state)

    async def apply(self, state: ServingState, preloaded: dict[str, LoadedModel] | None = None) -> bool:
        """Serve STATE: load (verify, warm up) what is not loaded yet, off the event loop, then swap the route.
        On failure the old route keeps serving and the error is reported. True when applied."""
        assert self._lock is not None  # start() ran
        async with self._lock:
            name = state.name
            for version, model in (preloaded or {}).items():
                self.cache[(name, version)] = model
            roles = state.versions()
            loaded: dict[str, LoadedModel] = {}
            try:
                for version in roles:
                    cached = self.cache.get((name, version))
                    if cached is None:
                        cached = await asyncio.to_thread(load_model, self.settings.store, name, version)
                        self.cache[(name, version)] = cached
                    loaded[version] = cached
            except MlopsError as exc:
                self.errors[name] = {"generation": state.generation, "error": exc.message}
                self._failed_at[name] = time.monotonic()
                log.error("serving state not applied: the old versions keep serving",
                          extra={"model": name, "generation": state.generation, "error": exc.message,
                                 "worker": self.index})
                self.report()
                return False
            self.routes[name] = Route(
                name, state,
                stable=loaded.get(state.stable) if state.stable else None,
                canary=loaded.get(state.canary) if state.canary else None,
                canary_bp=round(state.canary_percent * 100) if state.canary else 0,
                shadow=loaded.get(state.shadow) if state.shadow else None,
                by_version={v: (loaded[v], role) for v, role in roles.items()},
            )
            for key in [k for k in self.cache if k[0] == name and k[1] not in roles]:
                del self.cache[key]
            self.applied[name] = state.generation
            self.errors.pop(name, None)
            self.metrics.set_roles(name, dict(roles))
            log.info("serving state applied", extra={"model": name, "generation": state.generation,
                                                     "stable": state.stable, "canary": state.canary,
                                                     "canary_percent": state.canary_percent,
                                                     "shadow": state.shadow, "worker": self.index})
            self.report()
            return True

    def report(self) -> None:
        """Tell the other workers (and admin calls) what this worker serves now."""
        write_report(self.runtime_dir, self.index, {
            "index": self.index, "pid": os.getpid(), "ready": self.ready, "generations": dict(self.applied),
            "errors": dict(self.errors),
            "versions": {n: sorted(r.by_version) for n, r in self.routes.items()},
            "time": time.time(),
        })

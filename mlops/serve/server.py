"""The server process: a supervisor that binds the port and starts N worker processes, each a uvicorn server
(uvloop, httptools) accepting connections on that one socket.

The supervisor prepares what the workers share (the first serving state when the store has none, a private
directory for multi-process Prometheus metrics and worker reports), restarts a worker that dies, and stops them
all on SIGTERM or SIGINT. Workers are started with `spawn`: a fresh interpreter each, nothing forked from a process
that already runs xgboost's threads.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops import modelstore
from mlops.errors import ModelStoreError, ServeError
from mlops.serve.settings import ServeSettings, is_loopback, strict_name
from mlops.serve.state import ServingState, locked, now_iso, read_serving_state, write_state

log = logging.getLogger("mlops.serve")

CRASH_WINDOW_S = 5.0  # a worker that exits this soon after its start, CRASH_LIMIT times in a row, stops the server
CRASH_LIMIT = 3
STOP_TIMEOUT_S = 15.0


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket every worker accepts on (port 0: a free port); ServeError when it is taken."""
    try:
        sock = socket.socket(_family(host), socket.SOCK_STREAM)
    except OSError as exc:
        raise ServeError(f"--host {host}: {exc.strerror}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except socket.gaierror:
        sock.close()
        raise ServeError(f"--host {host}: not an address of this machine") from None
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         hint="another server runs there? choose another --port") from None
    return sock


def initial_states(settings: ServeSettings) -> list[str]:
    """Write the first serving state of each model that has none: --version, else the newest installed version.
    An existing serving.json wins (it is what the admin API last decided). Returns the model names prepared."""
    store = settings.store
    names = [settings.model] if settings.model else modelstore.names(store)
    if settings.version is not None and settings.model is None and len(names) > 1:
        raise ServeError(f"--version {settings.version}: the store holds several models ({', '.join(names)})",
                         hint="name the model with --model")
    for name in names:
        state = read_serving_state(store, name)
        if state is not None:
            if settings.version is not None and state.stable != settings.version:
                log.warning("serving state kept: --version ignored (use the admin API to change versions)",
                            extra={"model": name, "stable": state.stable, "requested": settings.version})
            continue
        version = settings.version or modelstore.latest(store, name)
        if version is None:
            log.warning("no version installed: live, not ready until one is loaded", extra={"model": name})
            continue
        try:
            modelstore.get(store, name, version)
        except ModelStoreError as exc:
            if settings.version is not None:
                raise ServeError(f"--version {version}: {exc.message}", hint=exc.hint) from None
            log.error("newest version refused: live, not ready until one is loaded",
                      extra={"model": name, "version": version, "error": exc.message})
            continue
        with locked(store, name):
            if read_serving_state(store, name) is None:
                write_state(store, ServingState(name, 1, stable=version, updated_at=now_iso(), reason="first start"))
    return names


WORKSPACE_PRE = "workspace"


def workspace_name(directory: Path) -> str:
    """The model name of a served directory: its folder's name, made a valid store name."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(directory).resolve().name).strip("-._") or "model"
    return strict_name(name[:128])


def install_workspace(settings: ServeSettings) -> ServeSettings:
    """--model-dir: install the package in the directory into the store as NAME v0.0.0-workspace+SHA (SHA: the
    first 12 hex digits of the package's sha256, files.sha256_tree), every file's sha256 recorded by the store and
    checked again when a worker loads it, and make it the stable version. The settings to serve it with.

    This is the newcomer's path, with no registry tag to check against: the files are trusted because the person
    who runs the server points at them, and the sha256 in the log says which bytes were served."""
    from mlops.files import sha256_file, sha256_tree
    from mlops.formats.manifest import MANIFEST_FILE, ManifestInvalid, read_manifest

    assert settings.model_dir is not None  # the caller checks
    src = Path(settings.model_dir)
    name = settings.model or workspace_name(src)
    if (src / MANIFEST_FILE).is_file():
        try:
            manifest = read_manifest(src)
        except ManifestInvalid as exc:
            raise ServeError(f"--model-dir: {exc.message}", hint=exc.hint) from None
        model_file = manifest.files[0].path
    elif (src / "model.ubj").is_file() and (src / "feature_schema.json").is_file():
        model_file = "model.ubj"  # the churn stages' artifact before packages
    else:
        raise ServeError(f"--model-dir {src}: no {MANIFEST_FILE} in it",
                         hint="write the package first: mlops package --model FILE --data HELD_OUT.csv --target COL "
                              "--task TASK --out DIR")
    tree = sha256_tree(src)
    version = f"v0.0.0-{WORKSPACE_PRE}+{tree[:12]}"
    try:
        modelstore.install(settings.store, name, version, src, model_file=model_file,
                           model_sha256=sha256_file(src / model_file),
                           meta={"tag": None, "commit": None, "source": str(src.resolve()), "sha256_tree": tree})
    except ModelStoreError as exc:
        raise ServeError(f"--model-dir {src}: {exc.message}", hint=exc.hint) from None
    with locked(settings.store, name):
        current = read_serving_state(settings.store, name)
        if current is None or current.stable != version or current.canary or current.shadow:
            write_state(settings.store, ServingState(name, (current.generation + 1) if current else 1,
                                                     stable=version, updated_at=now_iso(),
                                                     reason=f"mlops serve --model-dir {src}"))
    log.info("serving the workspace's package", extra={"model": name, "version": version, "directory": str(src),
                                                       "sha256_tree": tree, "store": str(settings.store)})
    return dataclasses.replace(settings, model=name, model_dir=None)


def _exit_with_parent(parent: int) -> None:
    """A worker must not outlive its supervisor (killed with SIGKILL, it cannot stop them): on Linux the kernel
    sends SIGTERM when the parent dies; elsewhere the serving-state loop notices the new parent."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the call above
        os._exit(0)


def worker_main(settings: ServeSettings, index: int, runtime_dir: str, workers: int, sock: socket.socket,
                parent: int) -> None:
    """One worker process: the ASGI app on uvicorn (uvloop, httptools), accepting on the shared socket."""
    import gc

    _exit_with_parent(parent)
    from mlops.serve import logs

    logs.configure(settings.log_level)
    import uvicorn

    from mlops.serve.app import ServeApp
    from mlops.serve.protocol import GuardedProtocol
    from mlops.serve.runtime import Runtime

    runtime = Runtime(settings, index, Path(runtime_dir), workers, parent=parent)
    app: Any = ServeApp(runtime)
    if settings.grpc_port is not None:  # V2 over gRPC, on the port the supervisor reserved (mlops.serve.grpc_server)
        from mlops.serve.grpc_server import WithGrpc

        app = WithGrpc(app, settings.host, settings.grpc_port)
    loop = "uvloop" if _has("uvloop") else "auto"
    # httptools is a dependency of the serve extra: the receive deadlines are built on its protocol.
    http = GuardedProtocol.configured(settings.header_timeout, settings.body_timeout)
    config = uvicorn.Config(app, loop=loop, http=http, ws="none", lifespan="on", interface="asgi3",
                            access_log=False, log_config=None, server_header=False, date_header=False,
                            timeout_keep_alive=15, timeout_graceful_shutdown=10, backlog=2048,
                            limit_concurrency=settings.max_connections)
    # What lives until the end (modules, the app) leaves the collector's generations: fewer, shorter pauses.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)
    uvicorn.Server(config).run(sockets=[sock])


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class Supervisor:
    def __init__(self, settings: ServeSettings, sock: socket.socket, runtime_dir: Path) -> None:
        self.settings = settings
        self.sock = sock
        self.runtime_dir = runtime_dir
        self.stop = threading.Event()
        self._ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self._started: list[float] = []
        self._crashes: list[int] = []

    def _start(self, index: int) -> Any:
        proc = self._ctx.Process(target=worker_main, name=f"mlops-serve-w{index}", daemon=False,
                                 args=(self.settings, index, str(self.runtime_dir), self.settings.workers,
                                       self.sock, os.getpid()))
        proc.start()
        return proc

    def run(self) -> None:
        from prometheus_client import multiprocess

        n = self.settings.workers
        self.procs = [self._start(i) for i in range(n)]
        self._started = [time.monotonic()] * n
        self._crashes = [0] * n
        while not self.stop.wait(0.25):
            for i, proc in enumerate(self.procs):
                if proc.is_alive() or self.stop.is_set():
                    continue
                code = proc.exitcode
                multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]
                quick = time.monotonic() - self._started[i] < CRASH_WINDOW_S
                self._crashes[i] = self._crashes[i] + 1 if quick else 0
                if self._crashes[i] >= CRASH_LIMIT:
                    raise ServeError(f"worker {i} keeps exiting right after its start (exit code {code})",
                                     hint="see its log lines above")
                log.error("worker exited; restarting it", extra={"worker": i, "exit_code": code})
                self.procs[i] = self._start(i)
                self._started[i] = time.monotonic()

    def shutdown(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes requests in flight, the request log is flushed
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker did not stop in time; killing it", extra={"pid": proc.pid})
                proc.kill()
                proc.join(5)


def serve(settings: ServeSettings, *, on_started: Callable[[str], None] | None = None) -> None:
    """Run the model server until SIGTERM or SIGINT (then return). ServeError when it cannot start."""
    from mlops.extras import require

    settings.check()
    require("serve", "mlops serve")
    if not _has("httptools"):  # the receive deadlines are built on its protocol (mlops.serve.protocol)
        raise ServeError("mlops serve needs httptools, which is not installed", hint='pip install "mlops[serve]"')
    for flag, folder in (("--store", settings.store), ("--log-dir", settings.log_dir)):
        if folder is None:
            continue
        try:  # here, before any worker starts: a worker would crash on it and be restarted in a loop
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServeError(f"{flag} {folder}: cannot create it ({exc.strerror or type(exc).__name__})",
                             hint="pass a writable folder") from None
    if settings.model_dir is not None:
        settings = install_workspace(settings)
    names = initial_states(settings)
    if not any(modelstore.versions(settings.store, n) for n in names):
        from mlops.serve.runtime import empty_store_reason

        log.warning("not ready: nothing to serve", extra={"reason": empty_store_reason(settings.store,
                                                                                          settings.model)})
    # One listening socket, inherited by every worker: an idle worker takes the next connection (with one socket
    # per worker under SO_REUSEPORT, the kernel hashes connections and a few long-lived ones can pile on one).
    sock = listen(settings.host, settings.port)
    port = int(sock.getsockname()[1])
    grpc_sock = None
    if settings.grpc_port is not None:
        from mlops.serve.grpc_server import reserve

        try:
            grpc_sock = reserve(settings.host, settings.grpc_port)
        except ServeError:
            sock.close()
            raise
        settings = dataclasses.replace(settings, grpc_port=int(grpc_sock.getsockname()[1]))
    if not is_loopback(settings.host):
        log.warning("listening beyond loopback: put TLS and authentication in front of the model server",
                    extra={"host": settings.host, "allowed_hosts": sorted(settings.hosts() or ["*"])})
    if settings.admin_token is None:
        log.warning("no admin token: the admin API is off (set MLOPS_ADMIN_TOKEN or --admin-token-file)")
    runtime_dir = Path(tempfile.mkdtemp(prefix="mlops-serve-"))
    (runtime_dir / "metrics").mkdir()
    saved_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    # Read by prometheus_client when a worker imports it: every worker writes its samples there.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(runtime_dir / "metrics")
    sup = Supervisor(settings, sock, runtime_dir)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: sup.stop.set())
    try:
        url = f"http://{settings.host if ':' not in settings.host else f'[{settings.host}]'}:{port}"
        grpc_at = f"{settings.host if ':' not in settings.host else f'[{settings.host}]'}:{settings.grpc_port}" \
            if settings.grpc_port is not None else None
        log.info("serving", extra={"url": url, "grpc": grpc_at, "workers": settings.workers,
                                   "store": str(settings.store),
                                   "model": settings.model, "request_log": str(settings.log_dir)
                                   if settings.log_dir else None})
        if on_started is not None:
            on_started(url)
        sup.run()
    finally:
        sup.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if saved_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_env
        sock.close()
        if grpc_sock is not None:
            grpc_sock.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)
        log.info("stopped")

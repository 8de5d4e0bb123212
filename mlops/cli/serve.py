"""`mlops serve`: registered on `app` on import. The server stack is imported when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops.cli import app, handled, state


@app.command("serve")
@handled
def serve_cmd(
    store: Annotated[Path, typer.Option("--store", help="The model store that `mlops deploy` installs into.")]
    = Path(".mlops/store"),
    model: Annotated[str | None, typer.Option("--model", help="Serve only this model name (default: every model "
                                              "in the store).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="The first stable version when the store has no "
                                                "serving state yet (default: the newest installed).")] = None,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", help="Serve the model package in this directory "
                                                   "(what `mlops package` wrote), without promote or deploy: a "
                                                   "first try. Its sha256 is recorded in the store and the log.")]
    = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: a free one).")] = 8080,
    grpc_port: Annotated[int | None, typer.Option("--grpc-port", help="Also serve the Open Inference Protocol over "
                                                  "gRPC on this port (KServe's grpc_predict_v2.proto; needs the "
                                                  "'grpc' extra).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (one per CPU core is typical).")] = 1,
    log_dir: Annotated[Path | None, typer.Option("--log-dir", help="Write the request log (JSON lines) here.")]
    = None,
    log_sample: Annotated[float, typer.Option("--log-sample", help="Fraction of requests written to the request "
                                              "log.")] = 1.0,
    log_max_bytes: Annotated[int, typer.Option("--log-max-bytes", help="Rotate a request-log file at this size.")]
    = 64 * 1024 * 1024,
    log_keep: Annotated[int, typer.Option("--log-keep", help="Rotated request-log files kept per worker.")] = 10,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Larger request bodies get 413.")]
    = 8 * 1024 * 1024,
    admin_token_file: Annotated[Path | None, typer.Option("--admin-token-file", help="File holding the admin "
                                                          "bearer token (default: $MLOPS_ADMIN_TOKEN; none: "
                                                          "admin API off).")] = None,
    admin_timeout: Annotated[float, typer.Option("--admin-timeout", help="Seconds an admin call waits for every "
                                                 "worker to apply it.")] = 20.0,
    allowed_host: Annotated[list[str] | None, typer.Option("--allowed-host", help="A Host header name accepted "
                                                           "(repeat it; '*': any). Default: the loopback names when "
                                                           "bound to loopback, else any.")] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Rows per inference request; more get 413.")] = 4096,
    max_connections: Annotated[int, typer.Option("--max-connections", help="Connections per worker; requests "
                                                 "beyond get 503.")] = 1024,
    header_timeout: Annotated[float, typer.Option("--header-timeout", help="Seconds a client has to send a "
                                                  "request's head.")] = 10.0,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds a client has to send a request's "
                                                "body.")] = 30.0,
    admin_max_failures: Annotated[int, typer.Option("--admin-max-failures", help="Wrong admin tokens per client "
                                                    "address and minute before its admin calls get 429.")] = 10,
) -> None:
    """Serve models from the store: Open Inference Protocol V2 REST (gRPC too with --grpc-port), records, admin,
    /metrics, /openapi.json."""
    from mlops.serve import ServeSettings, resolve_token, serve
    from mlops.serve.logs import configure

    configure("debug" if state.verbose else "info")
    settings = ServeSettings(
        store=store if model_dir is None or store != Path(".mlops/store") else Path(".mlops/workspace-store"),
        model=model, version=version, model_dir=model_dir, host=host, port=port, workers=workers, log_dir=log_dir,
        grpc_port=grpc_port,
        log_sample=log_sample, log_max_bytes=log_max_bytes, log_keep=log_keep, max_body_bytes=max_body_bytes,
        admin_token=resolve_token(admin_token_file), admin_timeout=admin_timeout,
        allowed_hosts=tuple(allowed_host) if allowed_host else None, max_rows=max_rows,
        max_connections=max_connections, header_timeout=header_timeout, body_timeout=body_timeout,
        admin_max_failures=admin_max_failures,
        log_level="debug" if state.verbose else "info",
    )
    serve(settings)

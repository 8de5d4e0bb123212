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
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: a free one).")] = 8080,
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
) -> None:
    """Serve models from the store: Open Inference Protocol V2 REST, records, admin, /metrics, /openapi.json."""
    from mlops.serve import ServeSettings, resolve_token, serve
    from mlops.serve.logs import configure

    configure("debug" if state.verbose else "info")
    settings = ServeSettings(
        store=store, model=model, version=version, host=host, port=port, workers=workers, log_dir=log_dir,
        log_sample=log_sample, log_max_bytes=log_max_bytes, log_keep=log_keep, max_body_bytes=max_body_bytes,
        admin_token=resolve_token(admin_token_file), admin_timeout=admin_timeout,
        log_level="debug" if state.verbose else "info",
    )
    serve(settings)

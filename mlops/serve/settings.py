"""The server's settings (frozen; the CLI builds them), the admin token's sources, and the strict checks of the
names and versions that clients send.

The limits that keep one client from taking the server or its data (defaults in brackets): receive deadlines for
the request head [header_timeout 10 s] and body [body_timeout 30 s], concurrent connections per worker
[max_connections 1024, then 503], rows per request [max_rows 4096, then 413], requests over [offload_rows 256] rows
encoded and predicted in a thread, request-log lines and bytes per request [log_rows_per_request 100,
log_bytes_per_request 128 KiB], the Host header [allowed_hosts: the loopback names when bound to loopback, else any],
the admin token's length [at least 32 characters] and failed admin logins [admin_max_failures 10 per
admin_failure_window 60 s and client address, then 429]."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlops.errors import ServeError
from mlops.modelstore import DEFAULT_STORE, check_name, check_version

TOKEN_ENV = "MLOPS_ADMIN_TOKEN"  # noqa: S105 (the variable's name, not a secret)
MiB = 1024 * 1024
MIN_TOKEN_CHARS = 32
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_TOKEN_HINT = "use a long random string, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"  # noqa: S105 (advice, not a secret)


def _plain(value: object) -> bool:
    """Printable ASCII without spaces: no trailing newline, no control character slips past a check."""
    return isinstance(value, str) and value.isascii() and value.isprintable() and " " not in value


def strict_name(name: str) -> str:
    """check_name, refusing what its pattern lets through at the end of the string (a trailing newline)."""
    if not _plain(name):
        raise ServeError(f"model name {name!r} is not a valid store name",
                         hint="letters, digits, '.', '_' and '-', starting with a letter or digit")
    return check_name(name)


def strict_version(version: str) -> str:
    """check_version, refusing a trailing newline or any other character outside the SemVer grammar."""
    if not _plain(version):
        raise ServeError(f"model version {version!r} is not a SemVer version (vX.Y.Z)")
    return check_version(version)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@dataclass(frozen=True)
class ServeSettings:
    store: Path = DEFAULT_STORE
    model: str | None = None  # None: every model of the store that has a serving state (and any loaded later)
    version: str | None = None  # the first stable version when the store has no serving state yet
    # A first try without the registry (as `mlflow models serve -m DIR`): the package in this directory is
    # installed into the store as NAME v0.0.0-workspace+SHA (its files' sha256 recorded) and served as stable.
    model_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int | None = None  # Open Inference Protocol over gRPC on this port too (0: a free one); None: off
    workers: int = 1
    log_dir: Path | None = None  # request log (JSON lines); None: no request log
    log_sample: float = 1.0
    log_max_bytes: int = 64 * MiB
    log_keep: int = 10
    max_body_bytes: int = 8 * MiB
    admin_token: str | None = field(default=None, repr=False)
    admin_timeout: float = 20.0  # seconds an admin call waits for every worker to apply it
    poll_interval: float = 0.05  # seconds between two looks of a worker at the serving state
    log_level: str = "info"
    # What one client can take (see the module's docstring).
    allowed_hosts: tuple[str, ...] | None = None  # None: the loopback names when bound to loopback, else any; "*": any
    header_timeout: float = 10.0  # seconds from connection (or the request's first byte) to the end of its head
    body_timeout: float = 30.0  # seconds from the end of the head to the end of the body
    max_connections: int = 1024  # per worker process; a request on a connection beyond it gets 503
    max_rows: int = 4096  # rows per inference request; more: 413
    offload_rows: int = 256  # requests with more rows are encoded and predicted in a thread, off the event loop
    log_rows_per_request: int = 100  # request-log lines one request may write (its first rows)
    log_bytes_per_request: int = 128 * 1024  # and bytes
    admin_max_failures: int = 10  # failed admin authentications per client address and window; then 429
    admin_failure_window: float = 60.0  # seconds

    def hosts(self) -> frozenset[str] | None:
        """The Host header values (lower case, no port) accepted; None: any."""
        if self.allowed_hosts is None:
            if not is_loopback(self.host):
                return None
            return frozenset({*LOOPBACK_HOSTS, self.host.lower()})
        names = {h.strip().lower().strip("[]") for h in self.allowed_hosts}
        return None if "*" in names else frozenset(names)

    def check(self) -> ServeSettings:
        """ServeError naming the setting that is out of range."""
        if self.model is not None:
            strict_name(self.model)
        if self.version is not None:
            strict_version(self.version)
        if self.model_dir is not None:
            if self.version is not None:
                raise ServeError("--model-dir serves the directory's package: --version does not apply")
            if not Path(self.model_dir).is_dir():
                raise ServeError(f"--model-dir {self.model_dir}: not a directory",
                                 hint="the directory `mlops package` wrote (mlops-model.yaml beside the model)")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port {self.port}: not a TCP port (0-65535)")
        if self.grpc_port is not None and (not 0 <= self.grpc_port <= 65535 or self.grpc_port == self.port != 0):
            raise ServeError(f"--grpc-port {self.grpc_port}: not a TCP port (0-65535) other than --port")
        if not 1 <= self.workers <= 64:
            raise ServeError(f"--workers {self.workers}: expected 1 to 64 worker processes",
                             hint="one per CPU core is the usual choice")
        if not 0.0 <= self.log_sample <= 1.0:
            raise ServeError(f"--log-sample {self.log_sample}: expected a fraction from 0 to 1")
        if self.log_max_bytes < 1024:
            raise ServeError(f"--log-max-bytes {self.log_max_bytes}: too small (at least 1024)")
        if self.log_keep < 0:
            raise ServeError(f"--log-keep {self.log_keep}: expected 0 or more rotated files")
        if self.max_body_bytes < 1024:
            raise ServeError(f"--max-body-bytes {self.max_body_bytes}: too small (at least 1024)")
        if self.admin_timeout <= 0 or self.poll_interval <= 0:
            raise ServeError("admin timeout and poll interval must be positive")
        if self.admin_token is not None:
            check_token(self.admin_token, "the admin token")
        for flag, seconds in (("--header-timeout", self.header_timeout), ("--body-timeout", self.body_timeout),
                              ("admin_failure_window", self.admin_failure_window)):
            if not 0 < seconds <= 3600:
                raise ServeError(f"{flag} {seconds:g}: expected more than 0 and at most 3600 seconds")
        for flag, count in (("--max-connections", self.max_connections), ("--max-rows", self.max_rows),
                            ("offload_rows", self.offload_rows), ("log_rows_per_request", self.log_rows_per_request),
                            ("--admin-max-failures", self.admin_max_failures)):
            if count < 1:
                raise ServeError(f"{flag} {count}: expected 1 or more")
        if self.log_bytes_per_request < 1024:
            raise ServeError(f"log_bytes_per_request {self.log_bytes_per_request}: too small (at least 1024)")
        for h in self.allowed_hosts or ():
            if not _plain(h) or "/" in h:
                raise ServeError(f"--allowed-host {h!r}: expected a host name or address (no port, no scheme)")
        return self


def check_token(token: str, source: str) -> str:
    """ServeError when TOKEN is too weak to guard the admin API (empty, short, spaces, not printable ASCII)."""
    if not token:
        raise ServeError(f"{source}: the admin token is empty", hint=_TOKEN_HINT)
    if any(c.isspace() for c in token) or not token.isprintable() or not token.isascii():
        raise ServeError(f"{source}: the admin token must be printable ASCII without spaces")
    if len(token) < MIN_TOKEN_CHARS:
        raise ServeError(f"{source}: the admin token has {len(token)} characters, at least {MIN_TOKEN_CHARS} are "
                         "required", hint=_TOKEN_HINT)
    return token


def resolve_token(token_file: Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The admin token: TOKEN_FILE's content when given, else $MLOPS_ADMIN_TOKEN, else None (admin API disabled)."""
    env = os.environ if environ is None else environ
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServeError(f"--admin-token-file {token_file}: cannot read it ({exc})") from None
        source = f"--admin-token-file {token_file}"
    else:
        raw = env.get(TOKEN_ENV)
        if raw is None:
            return None
        token = raw.strip()
        source = f"${TOKEN_ENV}"
    return check_token(token, source)

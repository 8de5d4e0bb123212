"""The server's settings (frozen; the CLI builds them) and the admin token's sources."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlops.errors import ServeError
from mlops.modelstore import DEFAULT_STORE, check_name, check_version

TOKEN_ENV = "MLOPS_ADMIN_TOKEN"  # noqa: S105 (the variable's name, not a secret)
MiB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    store: Path = DEFAULT_STORE
    model: str | None = None  # None: every model of the store that has a serving state (and any loaded later)
    version: str | None = None  # the first stable version when the store has no serving state yet
    host: str = "127.0.0.1"
    port: int = 8080
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

    def check(self) -> ServeSettings:
        """ServeError naming the setting that is out of range."""
        if self.model is not None:
            check_name(self.model)
        if self.version is not None:
            check_version(self.version)
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port {self.port}: not a TCP port (0-65535)")
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
        return self


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
    if not token:
        raise ServeError(f"{source}: the admin token is empty", hint="use a long random string, e.g. "
                         "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if any(c.isspace() for c in token) or not token.isprintable() or not token.isascii():
        raise ServeError(f"{source}: the admin token must be printable ASCII without spaces")
    return token

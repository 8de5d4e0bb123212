"""The serving state of one model name: which versions take traffic, persisted in STORE/NAME/serving.json.

    {"format": "mlops.serving/1", "name": "churn-model", "generation": 7,
     "stable": "v1.1.0", "canary": null, "canary_percent": 0, "shadow": null,
     "history": ["v1.0.0"], "updated_at": "2026-...Z", "reason": "promote v1.1.0"}

`history` holds earlier stable versions, newest last (`previous` is its last entry); rollback pops it. The file is
written atomically under an exclusive lock, and `generation` grows by one on every change: each worker process
polls the file, applies a new generation (loads and warms the versions, then swaps them in between requests) and
reports the generation it applied, which is how an admin call knows that every worker serves the change.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlops.errors import ServeError

SERVING_FILE = "serving.json"
SERVING_FORMAT = "mlops.serving/1"
LOCK_FILE = ".serving.lock"
HISTORY = 10
Role = Literal["stable", "canary", "shadow"]
ROLES: tuple[Role, ...] = ("stable", "canary", "shadow")


class StateConflict(ServeError):
    """An admin change that the current serving state does not allow (nothing to promote or roll back...)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ServingState:
    name: str
    generation: int = 0
    stable: str | None = None
    canary: str | None = None
    canary_percent: float = 0.0
    shadow: str | None = None
    history: tuple[str, ...] = ()
    updated_at: str | None = None
    reason: str | None = None

    @property
    def previous(self) -> str | None:
        return self.history[-1] if self.history else None

    def versions(self) -> dict[str, Role]:
        """The versions this state serves and their roles (a version has one role)."""
        out: dict[str, Role] = {}
        for role in ROLES:
            v = getattr(self, role)
            if v is not None and v not in out:
                out[v] = role
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": SERVING_FORMAT, "name": self.name, "generation": self.generation, "stable": self.stable,
                "canary": self.canary, "canary_percent": self.canary_percent, "shadow": self.shadow,
                "history": list(self.history), "updated_at": self.updated_at, "reason": self.reason}

    def public(self) -> dict[str, Any]:
        """What GET /admin/models/{name} answers (plus `workers`, added by the caller)."""
        return {"name": self.name, "stable": self.stable, "canary": self.canary,
                "canary_percent": self.canary_percent, "shadow": self.shadow, "previous": self.previous,
                "history": list(self.history), "generation": self.generation, "updated_at": self.updated_at}


def _opt_str(raw: dict[str, Any], key: str, source: str) -> str | None:
    v = raw.get(key)
    if v is not None and not isinstance(v, str):
        raise ServeError(f"{source}: key '{key}' must be a version string or null")
    return v


def parse_state(raw: Any, source: str) -> ServingState:
    if not isinstance(raw, dict) or raw.get("format") != SERVING_FORMAT:
        raise ServeError(f"{source}: not a {SERVING_FORMAT} document",
                         hint="delete it to start from the store's newest version, or restore it")
    gen, pct, hist = raw.get("generation"), raw.get("canary_percent", 0), raw.get("history") or []
    if type(gen) is not int or gen < 0:
        raise ServeError(f"{source}: key 'generation' must be a non-negative integer")
    if type(pct) not in (int, float) or not 0 <= pct <= 100:
        raise ServeError(f"{source}: key 'canary_percent' must be a number from 0 to 100")
    if not isinstance(hist, list) or not all(isinstance(h, str) for h in hist):
        raise ServeError(f"{source}: key 'history' must be a list of versions")
    name = raw.get("name")
    if not isinstance(name, str):
        raise ServeError(f"{source}: key 'name' must be a string")
    return ServingState(name, gen, _opt_str(raw, "stable", source), _opt_str(raw, "canary", source), float(pct),
                        _opt_str(raw, "shadow", source), tuple(hist), _opt_str(raw, "updated_at", source),
                        _opt_str(raw, "reason", source))


def state_path(store: Path, name: str) -> Path:
    return Path(store) / name / SERVING_FILE


def read_serving_state(store: Path, name: str) -> ServingState | None:
    """NAME's serving state, None when the server never served it; ServeError when the file is damaged."""
    path = state_path(store, name)
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        raise ServeError(f"{path}: not valid JSON", hint="delete it to start from the store's newest version"
                         ) from None
    return parse_state(raw, str(path))


def write_state(store: Path, state: ServingState) -> None:
    """Write STATE atomically (temp file, fsync, rename): a worker never reads half a file."""
    path = state_path(store, state.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SERVING_FILE}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(json.dumps(state.to_json(), indent=2).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def locked(store: Path, name: str) -> Iterator[None]:
    """An exclusive lock on NAME's serving state across processes (admin changes are read-modify-write)."""
    lock = Path(store) / name / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# --- transitions (pure: the admin API computes the next state, then writes it) -----------------------------------


def _next(state: ServingState, reason: str, **changes: Any) -> ServingState:
    return replace(state, generation=state.generation + 1, updated_at=now_iso(), reason=reason, **changes)


def _pushed(history: tuple[str, ...], version: str | None) -> tuple[str, ...]:
    if version is None:
        return history
    return (*[h for h in history if h != version], version)[-HISTORY:]


def with_load(state: ServingState, version: str, role: Role, percent: float | None) -> ServingState:
    """VERSION in ROLE. Stable: the old stable goes to history (and the version leaves canary/shadow). Canary: takes
    PERCENT of traffic (default: the current share, else 10). Shadow: scores copies of traffic."""
    if role == "stable":
        if state.stable == version:
            return state
        return _next(state, f"load {version} as stable", stable=version, history=_pushed(state.history, state.stable),
                     canary=None if state.canary == version else state.canary,
                     canary_percent=0.0 if state.canary == version else state.canary_percent,
                     shadow=None if state.shadow == version else state.shadow)
    if state.stable is None:
        raise StateConflict(f"{state.name} has no stable version: load one as stable before a {role}")
    if state.stable == version:
        raise StateConflict(f"{version} is the stable version of {state.name}; it cannot also be the {role}")
    if role == "canary":
        pct = percent if percent is not None else (state.canary_percent if state.canary else 10.0)
        if state.canary == version and state.canary_percent == pct:
            return state
        return _next(state, f"load {version} as canary ({pct:g}%)", canary=version, canary_percent=float(pct),
                     shadow=None if state.shadow == version else state.shadow)
    if state.shadow == version:
        return state
    return _next(state, f"load {version} as shadow", shadow=version,
                 canary=None if state.canary == version else state.canary,
                 canary_percent=0.0 if state.canary == version else state.canary_percent)


def with_promote(state: ServingState) -> ServingState:
    if state.canary is None:
        raise StateConflict(f"{state.name} has no canary to promote")
    return _next(state, f"promote {state.canary}", stable=state.canary, canary=None, canary_percent=0.0,
                 history=_pushed(state.history, state.stable))


def with_rollback(state: ServingState) -> ServingState:
    """Drop the canary and the shadow; when there are none, the previous stable version comes back."""
    if state.canary is not None or state.shadow is not None:
        dropped = ", ".join(v for v in (state.canary, state.shadow) if v)
        return _next(state, f"roll back {dropped}", canary=None, canary_percent=0.0, shadow=None)
    if not state.history:
        raise StateConflict(f"{state.name} has no canary, no shadow and no previous version to roll back to")
    return _next(state, f"roll back {state.stable} to {state.history[-1]}", stable=state.history[-1],
                 history=state.history[:-1])


def with_canary(state: ServingState, percent: float) -> ServingState:
    if state.canary is None:
        raise StateConflict(f"{state.name} has no canary; load one with role 'canary' first")
    if state.canary_percent == percent:
        return state
    return _next(state, f"canary {state.canary} at {percent:g}%", canary_percent=float(percent))


# --- worker reports (in the server's runtime directory) ----------------------------------------------------------


def write_report(runtime: Path, index: int, report: dict[str, Any]) -> None:
    d = Path(runtime) / "workers"
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".w{index}.{os.getpid()}.tmp"
    tmp.write_bytes(json.dumps(report).encode())
    os.replace(tmp, d / f"w{index}.json")


def read_reports(runtime: Path, workers: int) -> list[dict[str, Any] | None]:
    """Each worker's last report (None for a worker that has not reported yet)."""
    out: list[dict[str, Any] | None] = []
    for i in range(workers):
        try:
            data = json.loads((Path(runtime) / "workers" / f"w{i}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            data = None
        out.append(data if isinstance(data, dict) else None)
    return out

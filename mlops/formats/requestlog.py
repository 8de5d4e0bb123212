"""The request log: what `mlops serve` writes and `mlops monitor` (and `--retrain`) reads, one JSON object per line.

Files: LOG_DIR/requests-w{N}.jsonl, one per server worker N, rotated to requests-w{N}-{UTC time}-{seq}.jsonl; a
reader takes every `requests-*.jsonl` of the directory (LOG_GLOB).

One line per logged row of a successful request (keys always present, in this order):

    {"ts": "2026-11-23T20:00:00.123456Z",  request received, UTC
     "request_id": "...",                  issued by the server (the response's x-request-id): the label-join key
     "model": "churn-model", "version": "v1.1.0",
     "role": "stable" | "canary" | "shadow",   shadow lines are the candidate's answers, never sent to the client
     "endpoint": "v2" | "v1",              Open Inference Protocol or records
     "row": 0, "rows": 1,                  the row's index in its request, and the request's row count
     "latency_ms": 0.41,                   the request's server time (for shadow: its own scoring time)
     "status": 200,
     "inputs": {"tenure": 12, ...},        the model's raw features of the row (keys it does not read are dropped)
     "outputs": {"probability": 0.1234},
     "client_request_id": "order-17",      the client's x-request-id, kept for correlation only (null when none)
     "truncated": false,                   true when rows of this request are not in the log (per-request cap)
     "format": 2}

A request answered with an error gives one line with its 4xx `status`, `error` (the message), and `row`, `rows`,
`inputs`, `outputs` null. One request writes at most `max_rows` lines and about `max_bytes` bytes: the first rows
in order, every line of a cut request saying `truncated: true`, so a client cannot rotate the history away.

Format 1 (no `format` key, servers before this one) had no `client_request_id` nor `truncated`, and its
`request_id` was the client's own header when it sent one: readers take its rows, but never join labels to them
(`join_id` is None), since one client-chosen id could carry a label onto any number of rows.

Labels join on (request_id, row): a server-issued id names one request and the row index one row of it, so a
label attaches to exactly one row (per role).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops.errors import MlopsError

FORMAT = 2
LOG_GLOB = "requests-*.jsonl"
ERROR_CHARS = 500  # an error message longer than this is cut: the line stays small whatever the client sent
ROLES = ("stable", "canary", "shadow")
ENDPOINTS = ("v2", "v1")

Dumps = Callable[[Any], bytes]


class RequestLogError(MlopsError):
    """A request-log line that is not what the server writes."""


@dataclass(frozen=True)
class RequestLine:
    ts: str
    request_id: str
    model: str
    version: str
    role: str
    endpoint: str
    row: int | None
    rows: int | None
    latency_ms: float
    status: int
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    error: str | None = None
    client_request_id: str | None = None
    truncated: bool = False
    format: int = FORMAT

    @property
    def join_key(self) -> tuple[str, int] | None:
        """(request_id, row) for the label join; None for an error line or a format-1 line."""
        if self.format < 2 or self.row is None:
            return None
        return self.request_id, self.row


def _loads() -> tuple[Callable[[Any], Any], tuple[type[Exception], ...]]:
    try:
        import orjson

        return orjson.loads, (orjson.JSONDecodeError,)
    except ImportError:  # the serve extra is not installed: the standard library reads the same lines
        import json

        return json.loads, (ValueError,)


_LOADS, _DECODE_ERRORS = _loads()


def decode(raw: bytes | str) -> dict[str, Any] | None:
    """The object of one line, or None when it is not one (a write cut short, a blank line): the readers' fast path,
    checking only what every line has (`ts`, a string); field access is the caller's, guarded by its own checks."""
    try:
        d = _LOADS(raw)
    except _DECODE_ERRORS:
        return None
    if type(d) is not dict or type(d.get("ts")) is not str:
        return None
    return d


def join_id(d: Mapping[str, Any]) -> str | None:
    """The label-join id of a decoded line: its server-issued request_id (format 2 and later), else None."""
    rid = d.get("request_id")
    fmt = d.get("format")
    return rid if type(rid) is str and type(fmt) is int and fmt >= 2 else None


def _opt(d: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    v = d.get(key)
    if v is not None and type(v) is not kind:
        raise RequestLogError(f"{where}: key '{key}' must be {kind.__name__} or null, got {type(v).__name__}")
    return v


def read_line(raw: bytes | str, where: str = "request log") -> RequestLine:
    """One line, validated (RequestLogError naming WHERE and the key otherwise); format-1 lines are read too."""
    d = decode(raw)
    if d is None:
        raise RequestLogError(f"{where}: not a JSON object with a 'ts' string")
    fmt = d.get("format", 1)
    if type(fmt) is not int or not 1 <= fmt <= FORMAT:
        raise RequestLogError(f"{where}: key 'format': {fmt!r} is not a request-log format this mlops reads "
                              f"(1 to {FORMAT})", hint="upgrade mlops")
    for key in ("request_id", "model", "version", "role", "endpoint"):
        if type(d.get(key)) is not str:
            raise RequestLogError(f"{where}: key '{key}' must be a string")
    if d["role"] not in ROLES or d["endpoint"] not in ENDPOINTS:
        raise RequestLogError(f"{where}: role {d['role']!r} or endpoint {d['endpoint']!r} unknown")
    status = d.get("status")
    latency: Any = d.get("latency_ms")
    if type(status) is not int or type(latency) not in (int, float):
        raise RequestLogError(f"{where}: keys 'status' (int) and 'latency_ms' (number) are required")
    truncated = d.get("truncated", False)
    if type(truncated) is not bool:
        raise RequestLogError(f"{where}: key 'truncated' must be true or false")
    return RequestLine(
        ts=d["ts"], request_id=d["request_id"], model=d["model"], version=d["version"], role=d["role"],
        endpoint=d["endpoint"], row=_opt(d, "row", int, where), rows=_opt(d, "rows", int, where),
        latency_ms=float(latency), status=status, inputs=_opt(d, "inputs", dict, where),
        outputs=_opt(d, "outputs", dict, where), error=_opt(d, "error", str, where),
        client_request_id=_opt(d, "client_request_id", str, where), truncated=truncated, format=fmt)


# --- the writer ---------------------------------------------------------------------------------------------------


def iso(ts: float) -> str:
    """The lines' timestamp format (UTC, microseconds, Z): such strings order as their times do."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _stdlib_dumps(obj: Any) -> bytes:
    import json

    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def write_line(line: RequestLine, dumps: Dumps | None = None) -> bytes:
    """One line, newline included."""
    return (dumps or _stdlib_dumps)({
        "ts": line.ts, "request_id": line.request_id, "model": line.model, "version": line.version,
        "role": line.role, "endpoint": line.endpoint, "row": line.row, "rows": line.rows,
        "latency_ms": line.latency_ms, "status": line.status,
        **({"error": line.error} if line.row is None else {}),
        "inputs": line.inputs, "outputs": line.outputs, "client_request_id": line.client_request_id,
        "truncated": line.truncated, "format": FORMAT}) + b"\n"


def encode_request(ts: float, request_id: str, client_request_id: str | None, model: str, version: str, role: str,
                   endpoint: str, latency_ms: float, status: int, records: Sequence[Any] | None,
                   columns: Mapping[str, Sequence[Any]] | None, predictions: Sequence[float] | None, output: str,
                   error: str | None, *, features: Sequence[str] | None = None, max_rows: int = 100,
                   max_bytes: int = 128 * 1024, dumps: Dumps | None = None) -> bytes:
    """The lines of one request (the server's one writer): the first rows, at most MAX_ROWS of them and no more
    than MAX_BYTES (at least one row is written), each record reduced to FEATURES when given."""
    dumps = dumps or _stdlib_dumps
    head = {"ts": iso(ts), "request_id": request_id, "model": model, "version": version, "role": role,
            "endpoint": endpoint}
    lat = round(latency_ms, 3)
    if error is not None or predictions is None:
        msg = error if error is None or len(error) <= ERROR_CHARS else error[:ERROR_CHARS] + "..."
        return dumps({**head, "row": None, "rows": None, "latency_ms": lat, "status": status, "error": msg,
                      "inputs": None, "outputs": None, "client_request_id": client_request_id,
                      "truncated": False, "format": FORMAT}) + b"\n"
    n = len(predictions)
    k = min(n, max(1, max_rows))
    if records is None and columns is not None:
        names = list(columns)
        records = [dict(zip(names, row, strict=True))
                   for row in zip(*(columns[c][:k] for c in names), strict=True)]
    keep = frozenset(features) if features is not None else None
    lines: list[bytes] = []

    def make(truncated: bool) -> None:
        lines.clear()
        size = 0
        for i in range(k):
            rec = records[i] if records is not None and i < len(records) else None
            if keep is not None and type(rec) is dict and not keep.issuperset(rec):
                rec = {f: rec[f] for f in features or () if f in rec}
            line = dumps({**head, "row": i, "rows": n, "latency_ms": lat, "status": status, "inputs": rec,
                          "outputs": {output: predictions[i]}, "client_request_id": client_request_id,
                          "truncated": truncated, "format": FORMAT}) + b"\n"
            if lines and size + len(line) > max_bytes:
                return
            lines.append(line)
            size += len(line)

    make(k < n)
    if len(lines) < n and k == n:  # cut by bytes, not by rows: say so on every line written
        k = len(lines)
        make(True)
    return b"".join(lines)

"""The request log that monitoring reads: JSON lines, one line per predicted row, written off the response path.

Files: LOG_DIR/requests-w{N}.jsonl, one per worker process N (a single writer each, so lines never interleave);
when one reaches --log-max-bytes it is renamed to requests-w{N}-{UTC time}-{seq}.jsonl and a new one is started;
the newest --log-keep rotated files per worker are kept. Read every `requests-*.jsonl` of the directory.

One line per row of a successful request (keys always present, in this order):

    {"ts": "2026-11-23T20:00:00.123456Z",  request received, UTC
     "request_id": "...",                  the x-request-id header (generated when the client sent none)
     "model": "churn-model", "version": "v1.1.0",
     "role": "stable" | "canary" | "shadow",   shadow lines are the candidate's answers, never sent to the client
     "endpoint": "v2" | "v1",              Open Inference Protocol or records
     "row": 0, "rows": 1,                  the row's index in its request, and the request's row count
     "latency_ms": 0.41,                   the request's server time (for shadow: its own scoring time)
     "status": 200,
     "inputs": {"tenure": 12, "contract": "One year", ...},   the raw record as sent (V2 columns turned into records)
     "outputs": {"probability": 0.1234}}

A request answered with an error gives one line with `"status"` (4xx), `"error"` (the message), `"row": null`,
`"inputs": null` and `"outputs": null`. Sampling (--log-sample) picks whole requests at random. The handler only
puts a tuple on a bounded queue; a writer thread serialises and writes; when the queue is full the line is dropped
and counted (`mlops_request_log_dropped_total`), never the request delayed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("mlops.serve")

# (ts, request_id, model, version, role, endpoint, latency_ms, status, records, columns, predictions, output, error)
Entry = tuple[float, str, str, str, str, str, float, int, Any, Any, Any, str, str | None]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class RequestLog:
    def __init__(self, directory: Path, worker: int, *, max_bytes: int, keep: int, queue_size: int = 20000,
                 on_drop: Callable[[], None] | None = None) -> None:
        import orjson

        self._dumps = orjson.dumps
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        self.max_bytes = max_bytes
        self.keep = keep
        self.path = self.directory / f"requests-w{worker}.jsonl"
        self._q: queue.Queue[Entry | None] = queue.Queue(maxsize=queue_size)
        self._on_drop = on_drop
        self._seq = 0
        self._file = open(self.path, "ab")  # noqa: SIM115 (the writer thread owns it until close())
        self._size = self._file.tell()
        self._thread = threading.Thread(target=self._run, name=f"request-log-w{worker}", daemon=True)
        self._thread.start()

    def submit(self, entry: Entry) -> None:
        try:
            self._q.put_nowait(entry)
        except queue.Full:
            if self._on_drop is not None:
                self._on_drop()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer."""
        with contextlib.suppress(queue.Full):
            self._q.put(None, timeout=timeout)
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._file.close()

    # --- the writer thread ---------------------------------------------------------------------------------------

    def _lines(self, e: Entry) -> list[bytes]:
        ts, rid, model, version, role, endpoint, latency, status, records, columns, preds, output, error = e
        head = {"ts": _iso(ts), "request_id": rid, "model": model, "version": version, "role": role,
                "endpoint": endpoint}
        dumps = self._dumps
        if error is not None or preds is None:
            return [dumps({**head, "row": None, "rows": None, "latency_ms": round(latency, 3), "status": status,
                           "error": error, "inputs": None, "outputs": None}) + b"\n"]
        values: Sequence[float] = preds.tolist()
        if records is None and columns is not None:
            names = list(columns)
            records = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        n = len(values)
        lat = round(latency, 3)
        out = []
        for i, p in enumerate(values):
            rec = records[i] if records is not None and i < len(records) else None
            out.append(dumps({**head, "row": i, "rows": n, "latency_ms": lat, "status": status, "inputs": rec,
                              "outputs": {output: p}}) + b"\n")
        return out

    def _run(self) -> None:
        while True:
            item = self._q.get()
            batch = [item]
            while item is not None and len(batch) < 512:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            for entry in batch:
                if entry is None:
                    continue
                try:
                    self._write(b"".join(self._lines(entry)))
                except (TypeError, ValueError) as exc:  # a value orjson cannot write: skip the entry, say why
                    log.warning("request log: entry skipped", extra={"error": str(exc)})
            try:
                self._file.flush()
            except OSError as exc:
                log.error("request log: write failed", extra={"path": str(self.path), "error": str(exc)})
            if None in batch:
                return

    def _write(self, data: bytes) -> None:
        """One request's lines (buffered; flushed once per batch), rotating when the file reaches max_bytes."""
        try:
            self._file.write(data)
            self._size += len(data)
            if self._size >= self.max_bytes:
                self._rotate()
        except OSError as exc:
            log.error("request log: write failed", extra={"path": str(self.path), "error": str(exc)})

    def _rotate(self) -> None:
        self._file.close()
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        os.replace(self.path, self.directory / f"requests-w{self.worker}-{stamp}-{self._seq:04d}.jsonl")
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0
        rotated = sorted(self.directory.glob(f"requests-w{self.worker}-*.jsonl"),
                         key=lambda p: (p.stat().st_mtime_ns, p.name))
        for old in rotated[:max(0, len(rotated) - self.keep)]:
            with contextlib.suppress(OSError):
                old.unlink()

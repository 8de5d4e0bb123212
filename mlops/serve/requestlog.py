"""The server's request-log writer: the lines of mlops.formats.requestlog (their one writer), written off the
response path.

The handler only puts a tuple on a bounded queue; a writer thread serialises and writes; when the queue is full the
request is dropped and counted (`mlops_request_log_dropped_total`), never the request delayed. One file per worker
process (a single writer each, so lines never interleave), rotated at --log-max-bytes, the newest --log-keep
rotated files kept. What one request may write is bounded (`rows_per_request`, `bytes_per_request`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlops.formats.requestlog import encode_request

log = logging.getLogger("mlops.serve")

# (ts, request_id, model, version, role, endpoint, latency_ms, status, records, columns, predictions, output, error
#  [, client_request_id [, feature names]]): the optional tail is what the server adds; tools may leave it out.
Entry = tuple[Any, ...]


class RequestLog:
    def __init__(self, directory: Path, worker: int, *, max_bytes: int, keep: int, queue_size: int = 20000,
                 on_drop: Callable[[], None] | None = None, rows_per_request: int = 100,
                 bytes_per_request: int = 128 * 1024) -> None:
        import orjson

        self._dumps = orjson.dumps
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        self.max_bytes = max_bytes
        self.keep = keep
        self.rows_per_request = rows_per_request
        self.bytes_per_request = bytes_per_request
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

    def _lines(self, e: Entry) -> bytes:
        ts, rid, model, version, role, endpoint, latency, status, records, columns, preds, output, error = e[:13]
        client = e[13] if len(e) > 13 else None
        features = e[14] if len(e) > 14 else None
        values: Sequence[float] | None = preds.tolist() if preds is not None else None
        return encode_request(ts, rid, client, model, version, role, endpoint, latency, status, records, columns,
                              values, output, error, features=features, max_rows=self.rows_per_request,
                              max_bytes=self.bytes_per_request, dumps=self._dumps)

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
                    self._write(self._lines(entry))
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

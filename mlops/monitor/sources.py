"""Where the checked rows come from, in chunks of raw columns: the server's request logs, or a CSV/Parquet file.

Request logs (mlops.formats.requestlog, the one reader of that line): every `requests-*.jsonl` of the directory,
one JSON line per logged row, `inputs` the raw record and `outputs` {output name: probability}; error lines
(`status` 4xx, `inputs` null) are counted as rejected requests. Lines are filtered by `ts` (--since) and `role`. A
line that is not JSON (a write cut short) is counted and skipped. Labels join a row by its server-issued request id
and row index (`requestlog.join_id`): lines of format 1, whose ids a client could choose, join none.

A file of raw records: the interface's feature columns, the output
column (the model's probability) when present, the label column when present, `request_id` and `ts` when present.

Memory is bounded by the chunk size whatever the input size: lines are read in blocks, parsed, and turned into
columns of one chunk at a time; nothing of a chunk is kept once the accumulator has counted it.
"""

from __future__ import annotations

import csv
import gc
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import MlopsError
from mlops.formats import requestlog

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

LOG_GLOB = requestlog.LOG_GLOB
READ_BYTES = 16 * 1024 * 1024


class MonitorInputError(MlopsError):
    """The monitored input (request logs, a data file, a labels file) is missing or unreadable."""


@dataclass(frozen=True)
class Chunk:
    """Raw columns of some rows: lists of JSON values (logs) or pandas Series (files)."""

    rows: int
    columns: Mapping[str, Any]
    scores: Any = None          # output values per row, or None when the input has none
    labels: Any = None          # label values per row (file's label column), or None
    request_ids: Any = None     # per row, or None
    row_index: Any = None       # the row's index in its request (logs), or None
    ts: Any = None              # ISO 8601 text per row, or None
    coded: frozenset[str] = frozenset()   # columns given as category codes already (see read_logs)
    unseen: Any = None          # (feature, value) of each category value not in the interface, for coded columns


@dataclass
class ReadStats:
    """What a reader saw besides the rows it yields (filled in as it reads)."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    rejected: int = 0           # error lines: requests the server refused
    unreadable: int = 0         # lines that are not JSON objects
    skipped_old: int = 0        # before --since
    roles: Counter[str] = field(default_factory=Counter)      # rows per role, checked or not
    versions: Counter[str] = field(default_factory=Counter)   # checked rows per model version
    ts_min: str | None = None
    ts_max: str | None = None

    def merge(self, other: ReadStats) -> None:
        self.files.extend(f for f in other.files if f not in self.files)
        self.lines += other.lines
        self.rejected += other.rejected
        self.unreadable += other.unreadable
        self.skipped_old += other.skipped_old
        self.roles.update(other.roles)
        self.versions.update(other.versions)
        for ts in (other.ts_min, other.ts_max):
            if ts is not None:
                self.ts_min = ts if self.ts_min is None else min(self.ts_min, ts)
                self.ts_max = ts if self.ts_max is None else max(self.ts_max, ts)


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d`, `2w` as a timedelta; MonitorInputError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    t = text.strip().lower()
    try:
        value = float(t[:-1])
        unit = units[t[-1]]
    except (KeyError, ValueError, IndexError):
        raise MonitorInputError(f"--since {text!r}: not a duration", hint="use a number and a unit: 30m, 24h, 7d, "
                                "2w") from None
    if not math.isfinite(value) or value <= 0:
        raise MonitorInputError(f"--since {text!r}: must be positive")
    try:
        return timedelta(seconds=value * unit)
    except OverflowError:
        raise MonitorInputError(f"--since {text!r}: too large", hint="e.g. 3650d for ten years") from None


def iso_z(moment: datetime) -> str:
    """The request log's timestamp format (UTC, microseconds, Z): such strings order as their times do."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def log_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise MonitorInputError(f"{directory}: request log directory not found",
                                hint="pass the directory `mlops serve --log-dir` writes to")
    files = sorted(directory.glob(LOG_GLOB))
    if not files:
        raise MonitorInputError(f"{directory}: no request logs ({LOG_GLOB}) in it",
                                hint="start the server with --log-dir, or pass --current FILE")
    return files


@dataclass(frozen=True)
class LogRange:
    """Lines of one log file that start at a byte offset in [start, end): a share of the work of one process."""

    path: str
    start: int
    end: int


def log_ranges(files: Sequence[Path], parts: int) -> list[list[LogRange]]:
    """FILES cut into PARTS shares of about equal bytes (a share may span files; a cut falls inside a line, whose
    reader of the share where it starts reads it whole)."""
    sizes = [(str(p), p.stat().st_size) for p in files]
    total = sum(size for _, size in sizes)
    share = max(1, -(-total // max(1, parts)))
    out: list[list[LogRange]] = [[]]
    room = share
    for path, size in sizes:
        pos = 0
        while pos < size:
            take = min(size - pos, room)
            out[-1].append(LogRange(path, pos, pos + take))
            pos += take
            room -= take
            if room == 0 and len(out) < parts:
                out.append([])
                room = share
    return [part for part in out if part]


def _lines(r: LogRange) -> Iterator[list[bytes]]:
    """Blocks of the lines that start inside R."""
    with open(r.path, "rb") as f:
        pos = r.start
        if pos > 0:
            f.seek(pos - 1)
            pos += len(f.readline()) - 1  # the rest of a line that started before R belongs to the previous share
        while pos < r.end:
            block = f.readlines(READ_BYTES)
            if not block:
                return
            size = sum(map(len, block))
            if pos + size <= r.end:  # the whole block is ours (the common case: no loop over its lines)
                pos += size
                yield block
                continue
            keep = []
            for line in block:
                if pos >= r.end:
                    break
                keep.append(line)
                pos += len(line)
            yield keep
            return


def read_logs(directory: Path | None, names: Sequence[str], output: str, *, since: str | None = None,
              roles: Sequence[str] = ("stable",), chunk_rows: int = 50_000, keep_ids: bool = False,
              stats: ReadStats | None = None, ranges: Sequence[LogRange] | None = None,
              categories: Mapping[str, Sequence[str]] | None = None) -> Iterator[Chunk]:
    """Chunks of the checked rows of every request log in DIRECTORY (oldest file names first), or of RANGES.

    CATEGORIES (feature -> its categories): those columns come as codes (position, -1 unseen, -2 missing, -3 not
    a string), looked up as each line is parsed, while its strings are still in the CPU's cache: done later, over
    a chunk's scattered strings, the same lookups cost several times more."""
    decode = requestlog.decode
    join_id = requestlog.join_id
    st = stats if stats is not None else ReadStats()
    if ranges is None:
        assert directory is not None  # one of the two is given
        files = log_files(directory)
        ranges = [LogRange(str(p), 0, p.stat().st_size) for p in files]
    wanted = frozenset(roles)
    cats = dict(categories or {})
    coded = [n for n in names if n in cats]
    plain = [n for n in names if n not in cats]
    # itemgetter of one name gives the value, of several a tuple: always a tuple here.
    get_plain: Any = itemgetter(*plain) if len(plain) > 1 else (lambda r: (r[plain[0]],)) if plain else \
        (lambda r: ())
    get_coded: Any = itemgetter(*coded) if len(coded) > 1 else (lambda r: (r[coded[0]],)) if coded else \
        (lambda r: ())
    tables = [{**{c: k for k, c in enumerate(cats[n])}, None: -2} for n in coded]
    lookup = dict.get
    unseen_code = (-1,) * len(coded)
    head = itemgetter("role", "inputs", "outputs")
    fast = not keep_ids  # request ids are kept by add_line's path
    # Row after row, flat: a chunk's values become one matrix per group in one numpy call, with no tuple per row
    # kept alive and no transposition in Python.
    plain_rows: list[Any] = []
    coded_rows: list[int] = []
    scores: list[Any] = []
    ids: list[Any] = []
    idx: list[Any] = []
    stamps: list[str] = []
    seen_roles: list[Any] = []    # the role of every accepted row, counted once per chunk (Counter is C)
    versions: list[Any] = []
    unseen: list[tuple[str, str]] = []

    def flush() -> Chunk:
        nonlocal plain_rows, coded_rows, scores, ids, idx, stamps, seen_roles, versions, unseen
        import numpy as np

        n = len(stamps)
        columns: dict[str, Any] = {}
        if plain:
            try:
                matrix = np.array(plain_rows, dtype=np.float64).reshape(n, len(plain))  # None -> NaN
            except (TypeError, ValueError):  # a string or an object where a number belongs: per column
                matrix = np.array(plain_rows, dtype=object).reshape(n, len(plain))
                columns.update((name, matrix[:, j].tolist()) for j, name in enumerate(plain))
            else:
                columns.update((name, np.ascontiguousarray(matrix[:, j])) for j, name in enumerate(plain))
        if coded:
            codes = np.array(coded_rows, dtype=np.int64).reshape(n, len(coded))
            columns.update((name, np.ascontiguousarray(codes[:, j])) for j, name in enumerate(coded))
        chunk = Chunk(rows=n, columns=columns, scores=scores, request_ids=ids if keep_ids else None,
                      row_index=idx if keep_ids else None, ts=stamps, coded=frozenset(coded), unseen=unseen)
        if stamps:
            lo, hi = min(stamps), max(stamps)
            st.ts_min = lo if st.ts_min is None else min(st.ts_min, lo)
            st.ts_max = hi if st.ts_max is None else max(st.ts_max, hi)
        st.roles.update(seen_roles)
        st.versions.update(versions)
        plain_rows, coded_rows, scores, ids, idx, stamps, seen_roles, versions, unseen = \
            [], [], [], [], [], [], [], [], []
        return chunk

    def codes_of(values: tuple[Any, ...]) -> tuple[int, ...]:
        """Category codes one at a time: an unseen category is noted, a value that is not a string is -3."""
        out = []
        for j, v in enumerate(values):
            try:
                code = tables[j].get(v, -1)
            except TypeError:  # unhashable: a list, an object
                code = -3
            if code == -1:
                if type(v) is str:
                    unseen.append((coded[j], v))
                else:
                    code = -3
            out.append(code)
        return tuple(out)

    def add(rec: Any) -> None:
        """One record of the uncommon lines (several records, a missing field, a value not a category)."""
        if type(rec) is not dict:
            rec = {}
        try:
            plain_rows.extend(get_plain(rec))
        except KeyError:
            plain_rows.extend(map(rec.get, plain))
        try:
            values = get_coded(rec)
        except KeyError:
            values = tuple(map(rec.get, coded))
        coded_rows.extend(codes_of(values))

    def add_line(d: Any, inputs: Any, ts: str) -> None:
        outputs = d.get("outputs")
        records = inputs if type(inputs) is list else (inputs,)
        probs = outputs if type(outputs) is list else \
            (outputs.get(output) if type(outputs) is dict else None,)
        row0 = d.get("row") or 0
        for k, rec in enumerate(records):
            add(rec)
            scores.append(probs[k] if k < len(probs) else None)
            stamps.append(ts)
            versions.append(d.get("version"))
            if keep_ids:
                ids.append(join_id(d))
                idx.append(row0 + k)

    # Millions of small tuples and no reference cycles: the cyclic collector would only rescan them, again and
    # again. It is switched back on when the reader ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for r in ranges:
            if r.path not in st.files:
                st.files.append(r.path)
            for block in _lines(r):
                st.lines += len(block)
                for line in block:
                    d = decode(line)
                    if d is None:
                        if line.strip():
                            st.unreadable += 1
                        else:
                            st.lines -= 1
                        continue
                    ts = d["ts"]
                    if since is not None and ts < since:
                        st.skipped_old += 1
                        continue
                    try:
                        role, inputs, outputs = head(d)
                    except KeyError:
                        role, inputs, outputs = d.get("role"), d.get("inputs"), d.get("outputs")
                    if inputs is None:  # a refused request: its line has an error, no inputs and no outputs
                        st.rejected += 1
                        continue
                    seen_roles.append(role)
                    if role not in wanted:
                        continue
                    if not fast:
                        add_line(d, inputs, ts)
                        continue
                    try:  # the server's lines, inlined: one record, every field, known categories, a score
                        pv = get_plain(inputs)
                        codes = tuple(map(lookup, tables, get_coded(inputs), unseen_code))
                        p = outputs[output]
                    except (KeyError, TypeError, IndexError):  # anything else: the general path says what
                        add_line(d, inputs, ts)
                        continue
                    if -1 in codes:
                        add_line(d, inputs, ts)
                        continue
                    plain_rows.extend(pv)
                    coded_rows.extend(codes)
                    scores.append(p)
                    stamps.append(ts)
                    versions.append(d.get("version"))
                if len(stamps) >= chunk_rows:
                    yield flush()
        if stamps or seen_roles:
            yield flush()
    finally:
        if collecting:
            gc.enable()


def read_record_chunks(path: Path, names: Sequence[str], output: str, label: str | None, *,
               categorical: Sequence[str] = (), chunk_rows: int = 50_000,
               stats: ReadStats | None = None) -> Iterator[Chunk]:
    """Chunks of a CSV (or TSV) or Parquet file of raw records."""
    import pandas as pd

    st = stats if stats is not None else ReadStats()
    if not path.is_file():
        raise MonitorInputError(f"{path}: file not found", hint="pass a CSV or Parquet file of raw records")
    st.files.append(str(path))
    low = path.name.lower()
    extra = [c for c in (output, label, "request_id", "ts") if c]
    frames: Iterator[Any]
    if low.endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise MonitorInputError(f"{path}: reading Parquet needs pyarrow, which is not installed",
                                    hint="pip install pyarrow, or pass the data as CSV") from None
        pf = pq.ParquetFile(path)
        present = set(pf.schema_arrow.names)
        cols = [c for c in (*names, *extra) if c in present]
        frames = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_rows, columns=cols))
    else:
        sep = "\t" if low.endswith((".tsv", ".tsv.gz")) else ","
        try:
            header = pd.read_csv(path, sep=sep, nrows=0).columns
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise MonitorInputError(f"{path}: not a readable CSV: {str(exc).splitlines()[0]}") from None
        wanted = {*names, *extra}
        cols = [c for c in header if c in wanted]
        dtypes: dict[Any, Any] = {c: object for c in cols if c in set(categorical) or c in ("request_id", "ts")}
        frames = pd.read_csv(path, sep=sep, usecols=cols, dtype=dtypes, chunksize=chunk_rows)
    try:
        for frame in frames:
            n = len(frame)
            st.lines += n
            columns = {name: (frame[name] if name in frame.columns else None) for name in names}
            ts = frame["ts"].astype(str).tolist() if "ts" in frame.columns else None
            if ts:
                lo, hi = min(ts), max(ts)
                st.ts_min = lo if st.ts_min is None else min(st.ts_min, lo)
                st.ts_max = hi if st.ts_max is None else max(st.ts_max, hi)
            yield Chunk(rows=n, columns={k: v for k, v in columns.items() if v is not None},
                        scores=frame[output] if output in frame.columns else None,
                        labels=frame[label] if label and label in frame.columns else None,
                        request_ids=frame["request_id"].tolist() if "request_id" in frame.columns else None,
                        row_index=[0] * n if "request_id" in frame.columns else None,  # a record is a row 0
                        ts=ts)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise MonitorInputError(f"{path}: not a readable CSV: {str(exc).splitlines()[0]}") from None


# --- labels ------------------------------------------------------------------------------------------------------


def label_value(v: Any, positive: str | None) -> int:
    """1 positive, 0 negative, -1 unknown: 1/0, true/false, the positive class's name or another class's name."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return -1
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return 1 if v == 1 else (0 if v == 0 else -1)
    text = str(v).strip()
    if text == "":
        return -1
    if positive is not None and text == positive:
        return 1
    low = text.lower()
    if low in ("1", "1.0", "true"):
        return 1
    if low in ("0", "0.0", "false"):
        return 0
    if positive is None:
        return {"yes": 1, "no": 0}.get(low, -1)
    return 0  # another class's name


def label_codes(values: Any, positive: str | None) -> NDArray[np.int8]:
    """label_value of every element of VALUES (a Series or a list), as an int8 array."""
    import numpy as np

    items = values.tolist() if hasattr(values, "tolist") else list(values)
    cache: dict[Any, int] = {}
    out = np.empty(len(items), dtype=np.int8)
    for i, v in enumerate(items):
        try:
            code = cache[v]
        except KeyError:
            code = cache[v] = label_value(v, positive)
        except TypeError:
            code = label_value(v, positive)
        out[i] = code
    return out


def read_labels(path: Path, label: str | None, positive: str | None, *,
                value: Callable[[Any], Any] | None = None,
                expected: str = "neither 1/0 nor a class name") -> dict[tuple[str, int | None], Any]:
    """(request_id, row) -> 1/0 from a CSV with `request_id` (the server's: its responses' x-request-id), the
    label (a column named `label` or LABEL) and optionally `row`; MonitorInputError naming the file and the line
    otherwise. A label with no row is row 0's: one label joins one row, never every row of a request. VALUE: the
    task's reading of a label (mlops.monitor.tasks: a class index, a number; None when unreadable) instead of 1/0."""
    if not path.is_file():
        raise MonitorInputError(f"{path}: labels file not found",
                                hint="a CSV with request_id and label columns (label: 1/0 or the class name)")
    try:
        return _read_labels(path, label, positive, value, expected)
    except UnicodeDecodeError as exc:
        raise MonitorInputError(f"{path}: not UTF-8 text (byte {exc.start})",
                                hint="a CSV with request_id and label columns, UTF-8") from None


def _read_labels(path: Path, label: str | None, positive: str | None, value: Callable[[Any], Any] | None,
                 expected: str) -> dict[tuple[str, int | None], Any]:
    out: dict[tuple[str, int | None], Any] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        col = "label" if "label" in fields else (label if label in fields else None)
        if "request_id" not in fields or col is None:
            raise MonitorInputError(f"{path}: needs a 'request_id' column and a 'label'"
                                    f"{' or ' + repr(label) if label else ''} column (found {', '.join(fields)})")
        has_row = "row" in fields
        for line, rec in enumerate(reader, start=2):
            rid = rec.get("request_id") or ""
            if not rid:
                continue
            v = label_value(rec.get(col), positive) if value is None else value(rec.get(col))
            if v is None or (value is None and v < 0):
                raise MonitorInputError(f"{path}: line {line}: label {rec.get(col)!r} is {expected}")
            row: int | None = 0
            if has_row and (rec.get("row") or "").strip():
                try:
                    row = int(str(rec["row"]))
                except ValueError:
                    raise MonitorInputError(f"{path}: line {line}: row {rec['row']!r} is not an integer") from None
            out[(rid, row)] = v
    return out

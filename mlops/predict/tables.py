"""Where the rows come from and where the predictions go: Parquet or CSV, one file or a directory of part files,
on a local path or an fsspec URL (s3://, gs://, file://...).

Input is cut into partitions (a Parquet file's row groups up to `partition_rows`, or a whole CSV file) that are
read in record batches: memory is bounded by the batch size, whatever the input's size. Every row has its number
in the whole input (`row`, from 0, files in name order), computed from Parquet footers or by counting CSV rows.

Output files are written under a temporary name and renamed when complete, so that a reader never sees half a
file and a retried partition replaces its own file instead of adding rows.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from mlops.predict.model import PredictError

if TYPE_CHECKING:
    import pyarrow as pa

Format = Literal["parquet", "csv"]
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
BATCH_ROWS = 65_536
PARTITION_ROWS = 1_000_000
CSV_BLOCK_BYTES = 8 * 2**20


def normalise(url: str) -> str:
    """URL as every process reads it: a local path made absolute (a Dask worker has another working directory)."""
    if "://" in url:
        return url
    return str(Path(url).expanduser().resolve())


def fs_of(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except (ImportError, ValueError) as exc:
        raise PredictError(f"{url}: cannot open this location: {exc}",
                           hint="install the fsspec driver of its protocol (s3fs, gcsfs...)") from None


def format_of(path: str) -> Format | None:
    low = path.lower()
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if low.endswith(CSV_SUFFIXES):
        return "csv"
    return None


@dataclass(frozen=True)
class Partition:
    """A share of the input that one task reads: a file, or some of a Parquet file's row groups."""

    index: int
    url: str  # the file, as fsspec reads it (protocol included)
    format: Format
    row_groups: tuple[int, ...] | None = None  # Parquet: which ones (None: all)
    offset: int | None = None  # the `row` of its first row (None: not counted yet, a CSV file)
    rows: int | None = None


def _join(fs: Any, path: str) -> str:
    proto = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    return path if proto in ("file", "local") else f"{proto}://{path}"


def input_files(url: str) -> tuple[Any, list[str]]:
    """The data files of URL: the file itself, or the Parquet/CSV files under the directory (name order; names
    starting with `_` or `.` are metadata, skipped)."""
    fs, path = fs_of(url)
    if not fs.exists(path):
        raise PredictError(f"--input {url}: not found", hint="a Parquet or CSV file, or a directory of them")
    if fs.isdir(path):
        found = sorted(p for p in fs.find(path) if format_of(p) is not None and
                       not any(part.startswith(("_", ".")) for part in PurePosixPath(p).relative_to(
                           PurePosixPath(path)).parts))
        if not found:
            raise PredictError(f"--input {url}: no .parquet or .csv files in this directory")
        kinds = {format_of(p) for p in found}
        if len(kinds) > 1:
            raise PredictError(f"--input {url}: mixes Parquet and CSV files", hint="give one format per directory")
        return fs, found
    if format_of(path) is None:
        raise PredictError(f"--input {url}: not a .parquet or .csv file", hint="name the file by its format")
    return fs, [path]


def plan_partitions(url: str, partition_rows: int = PARTITION_ROWS) -> list[Partition]:
    """URL's partitions with the row number of each one's first row (None for CSV files: count_csv counts)."""
    import pyarrow.parquet as pq

    fs, files = input_files(url)
    parts: list[Partition] = []
    offset: int | None = 0
    for path in files:
        fmt = format_of(path)
        assert fmt is not None  # input_files keeps only these
        full = _join(fs, path)
        if fmt == "csv":
            parts.append(Partition(len(parts), full, "csv", None, None, None))
            offset = None
            continue
        try:
            with fs.open(path, "rb") as f:
                meta = pq.ParquetFile(f).metadata
        except Exception as exc:  # pyarrow's errors have no common base beyond Exception
            raise PredictError(f"{full}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None
        groups: list[int] = []
        rows = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if groups and rows + n > partition_rows:
                parts.append(Partition(len(parts), full, "parquet", tuple(groups), offset, rows))
                offset = None if offset is None else offset + rows
                groups, rows = [], 0
            groups.append(g)
            rows += n
        parts.append(Partition(len(parts), full, "parquet", tuple(groups), offset, rows))
        offset = None if offset is None else offset + rows
    return parts


def with_offsets(parts: Sequence[Partition], counts: Sequence[int | None]) -> list[Partition]:
    """PARTS with every offset and row count set (COUNTS: the rows of each, None where already known)."""
    out = []
    offset = 0
    for part, n in zip(parts, counts, strict=True):
        rows = part.rows if part.rows is not None else n
        assert rows is not None  # counted by the caller
        out.append(Partition(part.index, part.url, part.format, part.row_groups, offset, rows))
        offset += rows
    return out


# --- reading -----------------------------------------------------------------------------------------------------


def _csv_header(fs: Any, path: str) -> list[str]:
    with fs.open(path, "rb") as f:
        first = f.readline().decode("utf-8-sig", errors="replace")
    return next(csv.reader(io.StringIO(first)), [])


def read_batches(part: Partition, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """PART's rows in tables of at most BATCH_ROWS (CSV: about one block), every column; CSV values as text."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    fs, path = fs_of(part.url)
    try:
        with fs.open(path, "rb") as f:
            if part.format == "parquet":
                pf = pq.ParquetFile(f)
                for batch in pf.iter_batches(batch_size=batch_rows, row_groups=list(part.row_groups or
                                                                                     range(pf.num_row_groups))):
                    yield pa.Table.from_batches([batch])
                return
            names = _csv_header(fs, path)
            reader = pcsv.open_csv(f, read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                                   convert_options=pcsv.ConvertOptions(
                                       column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                                       null_values=[""], quoted_strings_can_be_null=False))
            for batch in reader:
                yield pa.Table.from_batches([batch])
    except PredictError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise PredictError(f"{part.url}: not a readable {part.format} file: {str(exc).splitlines()[0]}") from None


def count_rows(part: Partition) -> int:
    """The rows of PART (reads a CSV file through; a Parquet partition knows them from its footer)."""
    if part.rows is not None:
        return part.rows
    return sum(t.num_rows for t in read_batches(part))


# --- writing -----------------------------------------------------------------------------------------------------


class Writer:
    """One output file, streamed batch by batch under a temporary name; `commit` renames it into place."""

    def __init__(self, url: str, fmt: Format) -> None:
        self.fs, self.path = fs_of(url)
        self.url = url
        self.format = fmt
        self.tmp = f"{self.path}.tmp-{uuid.uuid4().hex[:12]}"
        self._file: Any = None
        self._writer: Any = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        if self._writer is None:
            parent = self.path.rsplit("/", 1)[0]
            if parent:
                self.fs.makedirs(parent, exist_ok=True)
            self._file = self.fs.open(self.tmp, "wb")
            self.schema = table.schema
            self._writer = pq.ParquetWriter(self._file, table.schema) if self.format == "parquet" else \
                pcsv.CSVWriter(self._file, table.schema)
        elif table.schema != self.schema:
            assert self.schema is not None  # set with the writer
            try:
                table = table.select(self.schema.names).cast(self.schema)
            except (KeyError, ValueError, pa.ArrowException):
                raise PredictError(f"{self.url}: the input's columns change type between files ({table.schema} "
                                   f"after {self.schema})", hint="write one output file per input file: give a "
                                   "directory as --output") from None
        self._writer.write_table(table)
        self.rows += table.num_rows

    def commit(self, empty_schema: pa.Schema | None = None) -> str:
        """Close and rename into place; a file with no rows gets EMPTY_SCHEMA's header (None: no file)."""
        if self._writer is None:
            if empty_schema is None:
                return ""
            self.write(empty_schema.empty_table())
        self._writer.close()
        self._file.close()
        self.fs.mv(self.tmp, self.path)
        self._writer = None
        return self.url

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._file is not None:
                self._file.close()
        except Exception:  # noqa: S110 - cleaning up after a failure: the first error is the one to report
            pass
        if self.fs.exists(self.tmp):
            self.fs.rm(self.tmp)
        self._writer = None


def part_name(index: int, fmt: Format) -> str:
    return f"part-{index:05d}.{'parquet' if fmt == 'parquet' else 'csv'}"


def csv_cell(v: Any) -> str:
    return "" if v is None else str(v)

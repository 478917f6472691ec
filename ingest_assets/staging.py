"""Staging: a window's validated and rejected rows written to local Parquet files.

The engine stages every window before anything is written, so the destination receives files
it can copy in one short transaction. Batches are written on a thread of their own while the
next one is validated, and the checksum is summed batch by batch as they are written. The
queries that need the whole window (uniqueness, dedup) run over the staged files in a scratch
DuckDB of the engine's, never in the destination.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy
import pyarrow as pa
import pyarrow.parquet as pq

from ingest_assets.destinations.base import WINDOW_COLUMN
from ingest_assets.quality.checks import CheckOutcome, key_outcome
from ingest_assets.quality.schema import Failure, Validated, ValidationSummary
from ingest_assets.sources.base import Origins

#: The column every loaded row carries: the object (or table, or page) it was read from.
OBJECT_COLUMN = "_ingest_object"
#: Staged Parquet files in DuckDB SQL, bound as a list parameter, combined by column name.
STAGED = "read_parquet(?, union_by_name = true)"


def quote(identifier: str) -> str:
    """Quote a SQL identifier for DuckDB."""
    return '"' + identifier.replace('"', '""') + '"'


def staged_rows(files: list[Path]) -> int:
    """Rows in staged Parquet files, from their footers."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


#: The columns a destination adds to each loaded row, after the staged ones.
RUN_COLUMNS = [("_ingest_run_id", pa.string()), ("_ingest_loaded_at", pa.timestamp("us", tz="UTC"))]


def staged_shape(files: list[Path]) -> pa.Schema:
    """The staged files' columns combined by name, then the run id and load time."""
    schema = pa.unify_schemas([pq.read_schema(path) for path in files]) if files else pa.schema([])
    for name, kind in RUN_COLUMNS:
        schema = schema.append(pa.field(name, kind))
    return schema


def staged_stream(files: list[Path], run_id: str) -> pa.RecordBatchReader:
    """The staged files' rows as one stream of their combined columns, stamped with the run.

    For destinations that take Arrow (PostgreSQL's COPY, Iceberg): a file without a column gives
    nulls for it.
    """
    shape = staged_shape(files)
    loaded_at = pa.scalar(datetime.now(UTC), RUN_COLUMNS[1][1])
    staged = list(shape)[: -len(RUN_COLUMNS)]

    def batches() -> Iterator[pa.RecordBatch]:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches():
                rows = batch.num_rows
                columns = [
                    batch.column(field.name).cast(field.type)
                    if field.name in batch.schema.names
                    else pa.nulls(rows, field.type)
                    for field in staged
                ]
                columns += [pa.repeat(pa.scalar(run_id), rows), pa.repeat(loaded_at, rows)]
                yield pa.RecordBatch.from_arrays(columns, schema=shape)

    return pa.RecordBatchReader.from_batches(shape, batches())


class Stage:
    """The window's validated rows and rejected rows, staged to local Parquet files.

    A new file starts whenever the batches' columns change (new source columns under the
    ``evolve`` drift policy); the destination combines the files by column name.

    Args:
        folder: Where the files go.
        schema: The declared output columns (the first file always has them, even when empty).
        rejected_schema: The quarantine rows' columns.
        scratch: An in-memory DuckDB connection for the queries over the staged files.
        unique: Columns declared unique: their values' hashes are kept while staging, so a
            window whose hashes never repeat needs no query over the staged files.
    """

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        rejected_schema: pa.Schema,
        scratch: duckdb.DuckDBPyConnection,
        unique: list[str] | None = None,
    ) -> None:
        self.folder = folder
        self.scratch = scratch
        self.schema = schema.append(pa.field(WINDOW_COLUMN, _WINDOW_TYPE)).append(
            pa.field(OBJECT_COLUMN, pa.string())
        )
        self.rejected_schema = rejected_schema.append(pa.field(WINDOW_COLUMN, _WINDOW_TYPE))
        self.files: list[Path] = []
        self.rejected_files: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._rejected_writer: pq.ParquetWriter | None = None
        #: The checksum's running sum while every staged batch has the first file's columns
        #: (None once they changed or rows were dropped: then it is read from the files).
        self._hashes: int | None = 0
        #: Per unique column, the hashes of its non-null staged values (None: a type whose
        #: equality a hash may not follow, such as floats; its check queries the files).
        self._unique: dict[str, list[numpy.ndarray] | None] = {name: [] for name in unique or []}
        # Batches are written on a thread of their own while the next one is read and
        # validated; one batch at a time is in flight, so memory stays that of two batches.
        self._pool: ThreadPoolExecutor | None = None
        self._flight: Future[None] | None = None

    def __enter__(self) -> Stage:
        self._open(self.schema)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-stage")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
            for writer in (self._writer, self._rejected_writer):
                if writer is not None:
                    writer.close()

    def _wait(self) -> None:
        """Wait for the batch in flight; its failure (a full disk) is raised here."""
        flight, self._flight = self._flight, None
        if flight is not None:
            flight.result()

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        if self._writer is not None:
            self._writer.close()
            self._hashes = None  # rows of files with other columns hash as their union does
        path = self.folder / f"part-{len(self.files):05d}.parquet"
        self.files.append(path)
        self._writer = pq.ParquetWriter(path, schema, **_STAGED_FORMAT)
        return self._writer

    def write(self, validated: Validated, origins: Origins, period_start: datetime) -> None:
        """Stage one validated batch: good rows, and rejected rows for the quarantine."""
        period = pa.scalar(period_start, _WINDOW_TYPE)
        good, rejected = validated.good, validated.rejected
        batch = None
        if good is not None and good.num_rows:
            rows = good.num_rows
            objects = origins.column(validated.kept)
            batch = good.append_column(WINDOW_COLUMN, pa.repeat(period, rows)).append_column(
                OBJECT_COLUMN, objects
            )
        if rejected is not None and rejected.num_rows:
            rejected = rejected.append_column(WINDOW_COLUMN, pa.repeat(period, rejected.num_rows))
        else:
            rejected = None
        self._wait()
        assert self._pool is not None, "a Stage is written inside its with block"
        self._flight = self._pool.submit(self._put, batch, rejected)

    def _put(self, batch: pa.RecordBatch | None, rejected: pa.RecordBatch | None) -> None:
        """On the staging thread: write a batch's good and rejected rows to their files."""
        if batch is not None:
            writer = self._writer
            if writer is None or not writer.schema.equals(batch.schema):
                writer = self._open(batch.schema)
            writer.write_batch(batch)
            if self._hashes is not None or self._unique:
                self._hash(batch)
        if rejected is not None:
            if self._rejected_writer is None:
                path = self.folder / "rejected.parquet"
                self.rejected_files.append(path)
                self._rejected_writer = pq.ParquetWriter(
                    path, self.rejected_schema, **_STAGED_FORMAT
                )
            self._rejected_writer.write_batch(rejected)

    @property
    def _files(self) -> list[str]:
        return [str(file) for file in self.files]

    def dedup(self, key: list[str], order_by: str | None) -> int:
        """Keep one row per key: the highest ``order_by``, then the row read last.

        Returns:
            The number of rows dropped.
        """
        order = f"{quote(order_by)} DESC NULLS LAST, " if order_by else ""
        path = self.folder / "deduplicated.parquet"
        before = self.count()
        # The scratch connection scans on one thread, in file and row order, so the number a
        # row gets is the order it was read in. (The reserved prefix cannot clash with a
        # column: the source's own columns never carry it.)
        self.scratch.execute(
            f"COPY (WITH numbered AS (SELECT *, row_number() OVER () AS {_SEQUENCE} FROM "
            f"{STAGED}) SELECT * EXCLUDE ({_SEQUENCE}) FROM numbered QUALIFY row_number() OVER "
            f"(PARTITION BY {', '.join(quote(c) for c in key)} ORDER BY {order}{_SEQUENCE} DESC)"
            f" = 1) TO '{path}' (FORMAT parquet)",
            [self._files],
        )
        self.files = [path]
        self._hashes = None
        return before - self.count()

    def count(self) -> int:
        """Rows staged."""
        return staged_rows(self.files)

    def _hash(self, batch: pa.RecordBatch) -> None:
        """Add a staged batch's row hashes to the checksum, its unique values' to theirs."""
        self.scratch.register(_BATCH, batch)
        try:
            if self._hashes is not None:
                row = self.scratch.execute(f"SELECT sum(hash(t)) FROM {_BATCH} t").fetchone()
                self._hashes += int(row[0]) if row and row[0] is not None else 0
            for column, hashes in self._unique.items():
                if hashes is None:
                    continue
                if column not in batch.schema.names or not _hash_is_equality(
                    batch.schema.field(column).type
                ):
                    self._unique[column] = None
                    continue
                col = quote(column)
                values = self.scratch.execute(
                    f"SELECT hash({col}) FROM {_BATCH} WHERE {col} IS NOT NULL"
                ).to_arrow_table()
                hashes.append(values.column(0).to_numpy())
        finally:
            self.scratch.unregister(_BATCH)

    def checksum(self) -> str | None:
        """An order-independent checksum of the staged rows (None when there are none).

        The sum of each row's hash, modulo 2^64: summed batch by batch while staging when the
        batches kept their columns, else read back from the staged files (the same figure).
        """
        if not self.count():
            return None
        total = self._hashes
        if total is None:
            row = self.scratch.execute(
                f"SELECT sum(hash(t)) FROM (SELECT * FROM {STAGED}) t", [self._files]
            ).fetchone()
            total = int(row[0]) if row and row[0] is not None else 0
        return f"{total % 2**64:016x}"

    def key_check(self, key: list[str], deduplicated: int) -> CheckOutcome:
        """Judge whether ``key`` is unique across the staged rows."""
        columns = ", ".join(quote(column) for column in key)
        groups = self.scratch.execute(
            f"SELECT {columns}, count(*) AS n FROM {STAGED} GROUP BY ALL HAVING n > 1 "
            "ORDER BY n DESC",
            [self._files],
        ).fetchall()
        sample = [
            {
                **{name: None if v is None else str(v) for name, v in zip(key, row, strict=False)},
                "rows": int(row[-1]),
            }
            for row in groups[:5]
        ]
        return key_outcome(
            key, len(groups), sum(int(row[-1]) - 1 for row in groups), deduplicated, sample
        )

    def check_unique(self, columns: list[str], summary: ValidationSummary) -> None:
        """Record values repeated within the window for columns declared unique.

        A column whose staged values' hashes are all different has no repeated value; the
        others (a repeated hash, or a type without kept hashes) are grouped over the files.
        """
        self._wait()
        for column in columns:
            hashes = self._unique.get(column)
            if hashes is not None and not _repeats(hashes):
                continue
            col = quote(column)
            rows = self.scratch.execute(
                f"SELECT {col}, count(*) AS n, min({quote(OBJECT_COLUMN)}) FROM {STAGED} "
                f"WHERE {col} IS NOT NULL GROUP BY {col} HAVING n > 1 ORDER BY n DESC, {col}",
                [self._files],
            ).fetchall()
            for value, count, object_uri in rows:
                summary.add(Failure(column, "unique: true", value, object_uri, None), count)
                summary.rows_failed += count


def _hash_is_equality(kind: pa.DataType) -> bool:
    """Whether DuckDB's equal values of this type always hash alike (floats are left out)."""
    types = pa.types
    return (
        types.is_integer(kind)
        or types.is_string(kind)
        or types.is_large_string(kind)
        or types.is_boolean(kind)
        or types.is_date(kind)
        or types.is_timestamp(kind)
    )


def _repeats(hashes: list[numpy.ndarray]) -> bool:
    """Whether any hash occurs twice."""
    if not hashes:
        return False
    ordered = numpy.sort(numpy.concatenate(hashes))
    return bool((ordered[1:] == ordered[:-1]).any())


_WINDOW_TYPE = pa.timestamp("us", tz="UTC")
#: How staged files are written: they are read once or twice, soon, on this machine, so speed
#: counts, not size (LZ4 without dictionaries or statistics: half the CPU of the defaults, and
#: about the same size).
_STAGED_FORMAT: dict[str, Any] = {
    "compression": "lz4",
    "use_dictionary": False,
    "write_statistics": False,
}
#: The name a batch being staged is known by in the scratch connection.
_BATCH = "_ingest_staged_batch"
#: The order a staged row was read in, while duplicates are dropped.
_SEQUENCE = '"_ingest_sequence"'

"""Run one load: a dataset's spec and a time window in, a :class:`LoadReport` out.

``spec -> source reads the window as Arrow batches -> validate -> stage -> destination writes the
window atomically -> report``. Nothing here imports Dagster: the same function backs the assets,
the tests and the benchmarks.
"""

from __future__ import annotations

import logging
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest_assets.destinations.duckdb import WINDOW_COLUMN, DuckDBWarehouse, quote
from ingest_assets.errors import ValidationFailed
from ingest_assets.quality.schema import BatchValidator, Failure, ValidationSummary, build_schema
from ingest_assets.sources.base import SourceReader
from ingest_assets.spec import DatasetSpec
from ingest_assets.windows import Window

OBJECT_COLUMN = "_ingest_object"
_log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What one load of one window did.

    Attributes:
        dataset: The dataset's name.
        window: The window loaded.
        table: The destination table as 'schema.table'.
        objects: URIs of the objects read, in order.
        bytes_read: Total size of those objects.
        rows_read: Rows parsed from the objects.
        rows_written: Rows inserted into the destination (0 when validation failed).
        validation: Failures found, per column and rule.
        schema: Arrow schema of the loaded columns.
        timings: Seconds spent per phase ('list', 'read_validate', 'unique', 'write').
        cpu_seconds: CPU time of the load (user + system).
        peak_rss_bytes: Peak resident memory of the process so far.
    """

    dataset: str
    window: Window
    table: str
    objects: list[str] = field(default_factory=list)
    bytes_read: int = 0
    rows_read: int = 0
    rows_written: int = 0
    validation: ValidationSummary = field(default_factory=ValidationSummary)
    schema: pa.Schema = field(default_factory=lambda: pa.schema([]))
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0

    @property
    def duration_seconds(self) -> float:
        """Wall time of all phases."""
        return sum(self.timings.values())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase of the load."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started


def load_window(
    spec: DatasetSpec,
    window: Window,
    reader: SourceReader,
    warehouse: DuckDBWarehouse | None,
    *,
    run_id: str,
    log: logging.Logger | None = None,
) -> LoadReport:
    """Load one window of a dataset from its source into the warehouse.

    Args:
        spec: The dataset.
        window: The time window to load; its rows in the destination are replaced (or appended,
            or merged, per the dataset's load mode).
        reader: The dataset's source, opened (:class:`ObjectStoreReader`, :class:`SqlReader`).
        warehouse: The destination; None validates the window without writing it (a dry run).
        run_id: Identifies the run in the loaded rows.
        log: Where progress goes (the Dagster run log in assets).

    Returns:
        What was read, validated and written.

    Raises:
        SourceError: the source is unreachable, or its data missing or unreadable; nothing was
            written.
        ValidationFailed: rows broke the schema; nothing was written. Carries the report.
        DestinationError: the write failed; the previous rows are intact.
    """
    log = log or _log
    cpu_started = time.process_time()
    validator = BatchValidator(build_schema(spec.table_schema))
    report = LoadReport(spec.name, window, spec.destination.table, schema=validator.arrow_schema)
    with report.phase("list"):
        plan = reader.plan(window)
    report.objects, report.bytes_read = plan.origins, plan.bytes
    log.info("%s %s: reading %s (%d bytes)", spec.name, window, ", ".join(plan.origins[:3])
             + (f" and {len(plan.origins) - 3} more" if len(plan.origins) > 3 else ""),
             report.bytes_read)  # fmt: skip
    arrow_types = dict(zip(validator.arrow_schema.names, validator.arrow_schema.types, strict=True))
    with tempfile.TemporaryDirectory(prefix="ingest_assets-") as tmp:
        staged = Path(tmp) / "window.parquet"
        staged_schema = validator.arrow_schema.append(
            pa.field(WINDOW_COLUMN, pa.timestamp("us", tz="UTC"))
        ).append(pa.field(OBJECT_COLUMN, pa.string()))
        with (
            report.phase("read_validate"),
            pq.ParquetWriter(staged, staged_schema) as writer,
        ):
            for chunk in reader.read(window, arrow_types):
                report.rows_read += chunk.batch.num_rows
                good = validator.validate(
                    chunk.batch,
                    object_uri=chunk.origin,
                    first_row=chunk.first_row,
                    summary=report.validation,
                )
                if good is not None:
                    rows = good.num_rows
                    period = pa.scalar(chunk.period_start.astimezone(UTC), staged_schema.field(
                        WINDOW_COLUMN).type)  # fmt: skip
                    writer.write_batch(
                        good.append_column(WINDOW_COLUMN, pa.repeat(period, rows)).append_column(
                            OBJECT_COLUMN, pa.repeat(pa.scalar(chunk.origin), rows)
                        )
                    )
        if validator.unique_columns and report.validation.passed:
            with report.phase("unique"):
                _check_unique(staged, validator.unique_columns, report.validation)
        report.cpu_seconds = time.process_time() - cpu_started
        report.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if not report.validation.passed:
            raise ValidationFailed(
                f"Dataset '{spec.name}', window {window}: {report.validation.rows_failed} of "
                f"{report.rows_read} rows failed validation ({report.validation.describe()}). "
                "Nothing was written; the table keeps its previous rows.",
                fix="Correct the offending rows at the source (see the check's sample for "
                "object and row), or change the schema in the dataset's defs.yaml if the data "
                "is right, then rerun the partition.",
                report=report,
            )
        if warehouse is None:
            return report
        with report.phase("write"):
            report.rows_written = warehouse.write_window(
                spec.destination,
                staged,
                window,
                load=spec.load,
                run_id=run_id,
                dataset=spec.name,
            )
    report.cpu_seconds = time.process_time() - cpu_started
    log.info(
        "%s %s: %d rows written to %s in %.2fs",
        spec.name,
        window,
        report.rows_written,
        spec.destination.table,
        report.duration_seconds,
    )
    return report


def _check_unique(staged: Path, columns: list[str], summary: ValidationSummary) -> None:
    """Find values repeated within the window for columns declared unique."""
    # A memory limit makes DuckDB spill the grouping to disk rather than grow with the window.
    with duckdb.connect(config={"memory_limit": "256MB"}) as conn:
        for column in columns:
            col = quote(column)
            rows = conn.execute(
                f"SELECT {col}, count(*) AS n, min({quote(OBJECT_COLUMN)}) FROM read_parquet(?) "
                f"WHERE {col} IS NOT NULL GROUP BY {col} HAVING n > 1 ORDER BY n DESC, {col}",
                [str(staged)],
            ).fetchall()
            for value, count, object_uri in rows:
                summary.add(Failure(column, "field_uniqueness", value, object_uri, None), count)
                summary.rows_failed += count

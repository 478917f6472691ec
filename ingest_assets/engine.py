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
from ingest_assets.errors import SourceError, ValidationFailed
from ingest_assets.quality.schema import BatchValidator, Failure, ValidationSummary, build_schema
from ingest_assets.sources.object_store import (
    ObjectStore,
    objects_for_window,
    read_window,
    render_key_pattern,
    store_errors,
)
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
    store: ObjectStore,
    warehouse: DuckDBWarehouse,
    *,
    run_id: str,
    log: logging.Logger | None = None,
) -> LoadReport:
    """Load one window of a dataset from its object store into the warehouse.

    Args:
        spec: The dataset.
        window: The time window to load; its rows in the destination are replaced (or appended).
        store: The object store holding the dataset's files.
        warehouse: The destination.
        run_id: Identifies the run in the loaded rows.
        log: Where progress goes (the Dagster run log in assets).

    Returns:
        What was read, validated and written.

    Raises:
        SourceError: objects are missing or unreadable; nothing was written.
        ValidationFailed: rows broke the schema; nothing was written. Carries the report.
        DestinationError: the write failed; the previous rows are intact.
    """
    log = log or _log
    cpu_started = time.process_time()
    validator = BatchValidator(build_schema(spec.table_schema))
    report = LoadReport(spec.name, window, spec.destination.table, schema=validator.arrow_schema)
    with report.phase("list"), store_errors(spec.name, spec.source.location):
        objects = objects_for_window(store, spec.source, window)
    report.objects = [store.uri(obj.info.key) for obj in objects]
    report.bytes_read = sum(obj.info.size for obj in objects)
    if not objects and spec.source.on_missing == "fail":
        pattern = render_key_pattern(spec.source.key_template, window.start)
        raise SourceError(
            f"Dataset '{spec.name}', window {window}: no object matches "
            f"{store.uri(pattern)!r} (key_template {spec.source.key_template!r}).",
            fix="Check that the files have landed and that source.location and "
            "source.key_template point at them; set source.on_missing: empty to load an empty "
            "window instead.",
        )
    log.info("%s %s: %d objects, %d bytes", spec.name, window, len(objects), report.bytes_read)
    with tempfile.TemporaryDirectory(prefix="ingest_assets-") as tmp:
        staged = Path(tmp) / "window.parquet"
        staged_schema = validator.arrow_schema.append(
            pa.field(WINDOW_COLUMN, pa.timestamp("us", tz="UTC"))
        ).append(pa.field(OBJECT_COLUMN, pa.string()))
        with (
            report.phase("read_validate"),
            store_errors(spec.name, spec.source.location),
            pq.ParquetWriter(staged, staged_schema) as writer,
        ):
            for obj, first_row, batch in read_window(
                store,
                spec.source,
                objects,
                dict(zip(validator.arrow_schema.names, validator.arrow_schema.types, strict=True)),
                dataset=spec.name,
            ):
                report.rows_read += batch.num_rows
                good = validator.validate(
                    batch,
                    object_uri=store.uri(obj.info.key),
                    first_row=first_row,
                    summary=report.validation,
                )
                if good is not None:
                    period = obj.period_start.astimezone(UTC)
                    writer.write_batch(
                        good.append_column(
                            WINDOW_COLUMN,
                            pa.repeat(
                                pa.scalar(period, staged_schema.field(WINDOW_COLUMN).type),
                                good.num_rows,
                            ),
                        ).append_column(
                            OBJECT_COLUMN,
                            pa.repeat(pa.scalar(store.uri(obj.info.key)), good.num_rows),
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
        with report.phase("write"):
            report.rows_written = warehouse.write_window(
                spec.destination,
                staged,
                window,
                mode=spec.load.mode,
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
    with duckdb.connect() as conn:
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

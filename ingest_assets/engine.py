"""Run one load: a dataset's spec and a time window in, a :class:`LoadReport` out.

``spec -> source reads the window as Arrow batches -> validate -> stage -> destination writes the
window atomically -> report``. Nothing here imports Dagster: the same function backs the assets,
the tests and the benchmarks.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest_assets.destinations.base import Destination, WindowWrite, quarantine_table
from ingest_assets.errors import (
    ConfigError,
    IngestError,
    PartitionsBusy,
    PartitionsFailed,
    ReadInterrupted,
    ValidationFailed,
)
from ingest_assets.memory import PeakMemory, release_unused
from ingest_assets.quality.checks import (
    DRIFT,
    KEY_UNIQUE,
    MASKING,
    SCHEMA,
    VOLUME,
    CheckOutcome,
    drift_outcome,
    masking_outcome,
    schema_outcome,
    volume_outcome,
)
from ingest_assets.quality.schema import (
    ARROW_TYPES,
    BatchValidator,
    ValidationSummary,
)
from ingest_assets.read_ahead import Pump, PumpedCpu, ReadAhead
from ingest_assets.report import LoadReport
from ingest_assets.sources.base import (
    Chunk,
    Origins,
    RangeReads,
    ReadPlan,
    Sessions,
    SourceReader,
)
from ingest_assets.spec import DatasetSpec
from ingest_assets.staging import Stage
from ingest_assets.windows import Window

_log = logging.getLogger(__name__)


def load_window(
    spec: DatasetSpec,
    window: Window,
    reader: SourceReader,
    warehouse: Destination | None,
    *,
    run_id: str,
    partition: str | None = None,
    salt: str | None = None,
    log: logging.Logger | None = None,
) -> LoadReport:
    """Load one window of a dataset from its source into the warehouse.

    Every load with a warehouse leaves exactly one row in the audit table, whether it succeeds
    or fails.

    Args:
        spec: The dataset.
        window: The time window to load; its rows in the destination are replaced (or appended,
            or merged, per the dataset's load mode).
        reader: The dataset's source, opened (:class:`ObjectStoreReader`, :class:`SqlReader`).
        warehouse: The destination; None validates the window without writing it (a dry run).
        run_id: Identifies the run in the loaded rows.
        partition: The partition key, for the audit row (default: the window as text).
        salt: The salt of hash masking (required when a column is masked with ``hash``).
        log: Where progress goes (the Dagster run log in assets).

    Returns:
        What was read, validated and written, and the partition's checks.

    Raises:
        SourceError: the source is unreachable, or its data missing or unreadable; nothing was
            written.
        ValidationFailed: rows broke error rules, too many broke warn rules, or another check
            blocks the load; nothing was written. Carries the report.
        DestinationError: the write failed; the previous rows are intact.
    """
    (report,) = load_windows(
        spec,
        [window],
        reader,
        warehouse,
        run_id=run_id,
        partitions=None if partition is None else [partition],
        salt=salt,
        log=log,
    )
    return report


def load_windows(
    spec: DatasetSpec,
    windows: list[Window],
    reader: SourceReader,
    warehouse: Destination | None,
    *,
    run_id: str,
    partitions: list[str] | None = None,
    salt: str | None = None,
    log: logging.Logger | None = None,
) -> list[LoadReport]:
    """Load several windows of a dataset in one pass.

    Each window is read, validated and judged on its own (its own checks and audit row), then
    the windows that passed are written in one warehouse transaction, each replacing exactly its
    own rows. A window that fails (its source, its checks) writes nothing and gets a ``failed``
    audit row with its own reason; the others are still written, unless the dataset's
    ``load.range_atomic`` asks for all or none (then the first failure stops the run and nothing
    is written).

    Args:
        spec: The dataset.
        windows: The windows, oldest first.
        reader: The dataset's source, opened.
        warehouse: The destination; None validates without writing (a dry run).
        run_id: Identifies the run in the loaded rows.
        partitions: The partition key of each window, for the audit rows (default: the windows
            as text).
        salt: The salt of hash masking.
        log: Where progress goes.

    Returns:
        One report per window, in order.

    Raises:
        PartitionsFailed: some windows of several failed; the others were written. Carries
            every window's report (a failed one has its ``error``). ``PartitionsBusy`` when
            each failure was transient.
        SourceError, ValidationFailed, DestinationError: as :func:`load_window`, for a single
            window, an atomic range (a ``ValidationFailed`` carries the report of the first
            window that failed), or a write that failed (nothing was written).
    """
    run = _Run(
        spec,
        [LoadReport(spec.name, window, spec.destination.table) for window in windows],
        partitions or [str(window) for window in windows],
        run_id,
        salt,
        log or _log,
        atomic=spec.load.range_atomic or len(windows) == 1,
    )
    # A source that can keep one connection for the whole run (SQL) does so.
    session = reader.session() if isinstance(reader, Sessions) else nullcontext()
    # A source that can read a whole range in one pass (SQL, REST) does so, split into windows.
    # Any other reads the next window on a thread while the current one is validated.
    if len(windows) > 1 and isinstance(reader, RangeReads):
        reader = RangeReader(reader, windows)
    elif len(windows) > 1:
        reader = ReadAhead(reader, windows)
    try:
        with session:
            try:
                _load(run, reader, warehouse)
            finally:  # its thread stops before the session's connection closes
                if isinstance(reader, ReadAhead | RangeReader):
                    reader.close()
    except Exception as exc:
        for report in run.reports:
            report.peak_rss_bytes = run.peak.read()
        if warehouse is not None:
            _audit_failures(run, run.reports, warehouse, exc)
        raise
    failed = [report for report in run.reports if report.error is not None]
    if failed:
        raise _partly_failed(run, failed)
    return run.reports


def _partly_failed(run: _Run, failed: list[LoadReport]) -> PartitionsFailed:
    """The error of a range whose failed windows are ``failed`` (the others were written)."""
    reasons = "; ".join(f"{run.key(r)}: {r.error.message if r.error else ''}" for r in failed)
    written = len(run.reports) - len(failed)
    busy = all(r.error is not None and r.error.transient for r in failed)
    return (PartitionsBusy if busy else PartitionsFailed)(
        f"Dataset '{run.spec.name}': {len(failed)} of {len(run.reports)} partitions failed "
        f"({reasons}). The other {written} were written.",
        fix="Fix each failed partition's cause (its message says how), then rerun just those "
        "partitions; the written ones keep their rows.",
        reports=run.reports,
    )


@dataclass
class _Run:
    """One call of :func:`load_windows`: what its phases share."""

    spec: DatasetSpec
    reports: list[LoadReport]
    keys: list[str]
    run_id: str
    salt: str | None
    log: logging.Logger
    #: All windows or none: the first failure stops the run.
    atomic: bool = True
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    peak: PeakMemory = field(default_factory=PeakMemory)

    def key(self, report: LoadReport) -> str:
        """The partition key of one of the run's windows."""
        return self.keys[next(i for i, r in enumerate(self.reports) if r is report)]


class RangeReader:
    """Serves the windows of a range, one after another, from one pass over the whole range.

    The source's ``read_range`` yields chunks tagged with their window, window after window,
    on a thread of its own (a :class:`Pump`: the next chunks are fetched while the current
    ones are validated); each ``read(window)`` takes that window's chunks and stops at the
    first chunk of a later window, which waits for the next ``read``.

    Args:
        reader: A source with ``read_range(windows, arrow_types)``.
        windows: The range's windows, oldest first, each read once in that order.
    """

    def __init__(self, reader: RangeReads, windows: list[Window]) -> None:
        self._reader = reader
        self._windows = windows
        self._pump: Pump | None = None
        self._stream: Iterator[tuple[Chunk, float]] | None = None
        self._held: tuple[Chunk, float] | None = None
        self.cpu = PumpedCpu()

    def plan(self, window: Window) -> ReadPlan:
        """What the window reads, as the source plans it."""
        return self._reader.plan(window)

    def restart(self, window: Window) -> None:
        """Start the pass again at ``window`` (its stream broke off): the next read opens it."""
        position = next(i for i, w in enumerate(self._windows) if w.start == window.start)
        self._windows = self._windows[position:]
        self.close()

    def close(self) -> None:
        """Call off the pass (its thread ends, its connection closes)."""
        if self._pump is not None:
            self._pump.cancel()
        self._pump, self._stream, self._held = None, None, None

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        """The window's chunks of the range's one pass."""
        if self._stream is None:
            windows, reader = self._windows, self._reader
            self._pump = Pump(lambda: reader.read_range(windows, arrow_types), "ingest-range")
            self.cpu.pumps.append(self._pump)
            self._stream = self._pump.items()
        while True:
            held, self._held = self._held or next(self._stream, None), None
            if held is None:
                return
            chunk, cpu_seconds = held
            if chunk.period_start >= window.end:
                self._held = held
                return
            self.cpu.count(window, cpu_seconds)
            yield chunk


def record_failure(
    warehouse: Destination,
    spec: DatasetSpec,
    window: Window,
    *,
    run_id: str,
    partition: str,
    error: Exception,
) -> None:
    """Append the audit row of a load that failed before it could start reading.

    (A load that :func:`load_window` began records its own row.)
    """
    report = LoadReport(spec.name, window, spec.destination.table)
    run = _Run(spec, [report], [partition], run_id, None, _log)
    _audit_failures(run, run.reports, warehouse, error)


def _audit_failures(
    run: _Run, reports: list[LoadReport], warehouse: Destination, exc: Exception | None
) -> None:
    """A ``failed`` audit row for each of ``reports``; never raises.

    Args:
        run: The run.
        reports: The windows that failed.
        warehouse: Where the audit rows go.
        exc: What failed the run as a whole (a write, an atomic range), or None when each
            window failed on its own (its report's ``error``).
    """
    failed = exc.report if isinstance(exc, ValidationFailed) else None
    error = str(exc) if isinstance(exc, IngestError) else f"unexpected {type(exc).__name__}: {exc}"
    for report in reports:
        key = run.key(report)
        record = report.audit(run_id=run.run_id, partition=key, started_at=run.started_at)
        record.status, record.rows_written, record.checksum = "failed", 0, None
        if report.error is not None:  # the window's own failure
            record.error = str(report.error)
        elif failed is None or failed is report or len(run.reports) == 1:
            record.error = error
        else:
            record.error = (
                f"not written: partition {run.key(failed)} of the same run failed ({error})"
            )
        try:
            warehouse.record_load(record)
        except Exception as audit_error:  # never hide the load's own error
            run.log.warning(
                "%s: the audit row could not be written: %s", report.dataset, audit_error
            )


def validator_for(spec: DatasetSpec, salt: str | None) -> BatchValidator:
    """The dataset's validator; a hash-masked column without its salt is a ConfigError."""
    declared = spec.table_schema.columns or {}
    if any(column.mask == "hash" for column in declared.values()) and not salt:
        raise ConfigError(
            f"Dataset '{spec.name}': columns are masked with hash, but the salt variable "
            f"{spec.quality.salt_env} is not set.",
            fix=f"Set {spec.quality.salt_env} for the code location (a long random secret; keep "
            "it stable, or hashed values stop matching earlier loads).",
        )
    return BatchValidator(spec.table_schema, spec.quality, salt=salt)


def _load(run: _Run, reader: SourceReader, warehouse: Destination | None) -> None:
    """Read, validate and judge every window; write those that passed.

    In an atomic run the first window that fails raises (nothing is written); otherwise it
    keeps its error in its report and the run goes on with the next window.
    """
    spec, reports = run.spec, run.reports
    validator = validator_for(spec, run.salt)
    volume = spec.quality.volume
    history = (
        warehouse.load_history(spec.name, reports[0].window.start, volume.trailing)
        if warehouse is not None and volume is not None
        else []
    )
    # One in-memory DuckDB for the queries over staged files (uniqueness, dedup, checksum). Its
    # memory limit and single thread make a large window's aggregates spill to the run's temp
    # folder rather than grow memory with the window.
    with (
        tempfile.TemporaryDirectory(prefix="ingest_assets-") as tmp,
        duckdb.connect(
            config={"memory_limit": SCRATCH_MEMORY, "threads": 1, "temp_directory": tmp}
        ) as scratch,
    ):
        passed: list[tuple[LoadReport, Stage]] = []
        # What reading threads spend is counted for the window that consumes what they read.
        pumped = reader.cpu if isinstance(reader, ReadAhead | RangeReader) else PumpedCpu()
        for index, report in enumerate(reports):
            cpu_started = time.process_time() - pumped.spent()
            report.schema = validator.arrow_schema
            try:
                folder = Path(tmp) / f"window-{index:05d}"
                stage = _read_whole(spec, report, reader, validator, folder, scratch, run.log)
                _judge(run, report, history if warehouse is not None else None)
                passed.append((report, stage))
            except IngestError as exc:
                if run.atomic:
                    raise
                _set_aside(run, report, exc, reader, [r.window for r in reports[index + 1 :]])
            finally:
                report.cpu_seconds = (
                    time.process_time() - pumped.spent() - cpu_started
                ) + pumped.consumed.get(report.window, 0.0)
        if warehouse is not None:
            if passed:
                _write(run, passed, warehouse)
            _audit_failures(run, [r for r in reports if r.error is not None], warehouse, None)


def _set_aside(
    run: _Run, report: LoadReport, exc: IngestError, reader: SourceReader, after: list[Window]
) -> None:
    """Keep a failed window's error in its report; a range's pass restarts after it."""
    report.error = exc
    report.rows_written = 0
    run.log.warning("%s %s: not loaded: %s", run.spec.name, report.window, exc.message)
    if after and isinstance(reader, RangeReader):  # its stream may have broken off mid-window
        reader.restart(after[0])


def _judge(run: _Run, report: LoadReport, history: list[int] | None) -> None:
    """Add the window's masking and volume checks; raise ValidationFailed if a check blocks.

    Args:
        run: The run.
        report: The window's report, read and validated.
        history: Rows read by earlier windows, newest first (None on a dry run: no volume).
    """
    spec = run.spec
    report.checks[MASKING] = masking_outcome(spec.table_schema.columns or {}, spec.quality)
    if history is not None:
        report.checks[VOLUME] = volume_outcome(
            report.rows_read, history, spec.quality.volume, spec.quality.row_count
        )
        history.insert(0, report.rows_read)  # the next window of the range compares too
    report.peak_rss_bytes = run.peak.read()
    blocking = [outcome for outcome in report.checks.values() if outcome.blocks]
    if blocking:
        raise ValidationFailed(
            f"Dataset '{spec.name}', window {report.window}: "
            + "; ".join(f"check '{o.name}' failed: {o.description}" for o in blocking)
            + ". Nothing was written; the table keeps its previous rows.",
            fix=_fix(blocking),
            report=report,
        )


def _write(run: _Run, passed: list[tuple[LoadReport, Stage]], warehouse: Destination) -> None:
    """Write the windows that passed in one transaction, with audit rows that count it."""
    spec, peak, log = run.spec, run.peak, run.log
    reports = [report for report, _ in passed]
    release_unused()  # what reading held goes back before DuckDB allocates for the write
    write_started = time.perf_counter()
    write_cpu_started = time.process_time()
    audits = [
        report.audit(run_id=run.run_id, partition=run.key(report), started_at=run.started_at)
        for report in reports
    ]

    def measure() -> None:
        """The write's CPU time (shared out) and the peak so far, once the rows are in."""
        share = (time.process_time() - write_cpu_started) / len(reports)
        peak_now = peak.read()
        for report, audit in zip(reports, audits, strict=True):
            audit.cpu_seconds = round(report.cpu_seconds + share, 3)
            audit.peak_rss_bytes = peak_now

    written = warehouse.write_windows(
        spec.destination,
        [
            WindowWrite(report.window, stage.files, stage.rejected_files, audit)
            for (report, stage), audit in zip(passed, audits, strict=True)
        ],
        load=spec.load,
        run_id=run.run_id,
        dataset=spec.name,
        before_audit=measure,
    )
    write_seconds = time.perf_counter() - write_started
    for report, audit, rows in zip(reports, audits, written, strict=True):
        report.rows_written = rows
        report.timings["write"] = write_seconds / len(reports)
        # The same figures as the audit row committed with the data (the write included).
        report.cpu_seconds, report.peak_rss_bytes = audit.cpu_seconds, audit.peak_rss_bytes
        log.info(
            "%s %s: %d rows written to %s (%d rejected, %d duplicates dropped)",
            spec.name,
            report.window,
            report.rows_written,
            spec.destination.table,
            report.rows_rejected,
            report.rows_deduplicated,
        )


def _read_whole(
    spec: DatasetSpec,
    report: LoadReport,
    reader: SourceReader,
    validator: BatchValidator,
    folder: Path,
    scratch: duckdb.DuckDBPyConnection,
    log: logging.Logger,
) -> Stage:
    """Read one window; when the source's stream breaks off mid-read, read it again whole.

    What was read of the broken attempt is discarded (its staged files, counts and failures),
    so the window's rows are exact however often its source drops the connection.
    """
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return _read(spec, report, reader, validator, folder / f"try-{attempt}", scratch, log)
        except ReadInterrupted as exc:
            if attempt == READ_ATTEMPTS:
                raise
            log.warning(
                "%s %s: %s; reading the window again from its start (try %d of %d)",
                spec.name, report.window, exc.message, attempt + 1, READ_ATTEMPTS,
            )  # fmt: skip
            report.rows_read, report.validation = 0, ValidationSummary()
            report.checks.clear()
            if isinstance(reader, RangeReader):
                reader.restart(report.window)
            time.sleep(READ_RETRY_SECONDS * attempt)
    raise AssertionError("unreachable")


def _read(
    spec: DatasetSpec,
    report: LoadReport,
    reader: SourceReader,
    validator: BatchValidator,
    folder: Path,
    scratch: duckdb.DuckDBPyConnection,
    log: logging.Logger,
) -> Stage:
    """Read, validate and stage one window; judge its checks (all but volume and masking)."""
    window = report.window
    with report.phase("list"):
        plan = reader.plan(window)
    report.objects, report.bytes_read = plan.origins, plan.bytes
    log.info(
        "%s %s: reading %s (%d bytes)",
        spec.name,
        window,
        ", ".join(plan.origins[:3])
        + (f" and {len(plan.origins) - 3} more" if len(plan.origins) > 3 else ""),
        report.bytes_read,
    )
    arrow_types = {
        name: ARROW_TYPES[logical] for name, logical in validator.logical.items() if logical
    }
    folder.mkdir(parents=True)
    stage = Stage(
        folder,
        validator.arrow_schema,
        validator.rejected_schema,
        scratch,
        unique=validator.unique_columns,
    )
    since_release = 0
    with report.phase("read_validate"), stage:
        for batch, origins, period_start in gather(reader.read(window, arrow_types), GATHER_ROWS):
            report.rows_read += batch.num_rows
            validated = validator.validate(batch, origins=origins, summary=report.validation)
            stage.write(validated, origins, period_start.astimezone(UTC))
            since_release += batch.num_rows
            if since_release >= RELEASE_ROWS:  # a large window: keep its footprint flat
                release_unused()
                since_release = 0
    summary = report.validation
    # Judged over the rows that passed, even when others failed: every broken rule is reported.
    if validator.unique_columns:
        with report.phase("unique"):
            stage.check_unique(validator.unique_columns, summary)
    key = spec.quality.unique_key or (spec.dedup.key if spec.dedup else None)
    with report.phase("dedup_checksum"):
        if spec.dedup is not None:
            report.rows_deduplicated = stage.dedup(spec.dedup.key, spec.dedup.order_by)
        if key:
            report.checks[KEY_UNIQUE] = stage.key_check(key, report.rows_deduplicated)
        report.checksum = stage.checksum()
    report.checks[SCHEMA] = schema_outcome(
        summary, report.rows_read, spec.quality, quarantine_table(spec.destination).table
    )
    report.checks[DRIFT] = drift_outcome(summary.drift, spec.quality.drift)
    return stage


#: Reads of a window in all when its source's stream keeps breaking off mid-read.
READ_ATTEMPTS = 3
#: Wait before reading a window again, times the attempt number.
READ_RETRY_SECONDS = 0.5

#: Rows read between two returns of freed memory to the system. Returning it costs page faults
#: when the next batches allocate again, so it pays only for large windows.
RELEASE_ROWS = 131_072

#: Memory for the queries over a window's staged files; beyond it they spill to disk.
SCRATCH_MEMORY = "64MB"

#: Rows gathered into one batch before validation: validating and staging have a fixed cost
#: per batch, which small pages and files would otherwise pay many times over.
GATHER_ROWS = 65_536


def gather(
    chunks: Iterable[Chunk], rows: int = GATHER_ROWS
) -> Iterator[tuple[pa.RecordBatch, Origins, datetime]]:
    """Gather consecutive chunks of the same period and columns into batches of ``rows`` or more.

    Yields:
        Each batch, where its rows came from, and the period they were read for.
    """
    pending: list[Chunk] = []
    size = 0
    for chunk in chunks:
        if pending and (
            chunk.period_start != pending[0].period_start
            or not chunk.batch.schema.equals(pending[0].batch.schema)
        ):
            yield _gathered(pending)
            pending, size = [], 0
        pending.append(chunk)
        size += chunk.batch.num_rows
        if size >= rows:
            yield _gathered(pending)
            pending, size = [], 0
    if pending:
        yield _gathered(pending)


def _gathered(chunks: list[Chunk]) -> tuple[pa.RecordBatch, Origins, datetime]:
    if len(chunks) == 1:
        (chunk,) = chunks
        origins = Origins.single(chunk.origin, chunk.batch.num_rows, chunk.first_row)
        return chunk.batch, origins, chunk.period_start
    offsets = [0]
    for chunk in chunks[:-1]:
        offsets.append(offsets[-1] + chunk.batch.num_rows)
    batch = pa.concat_batches([chunk.batch for chunk in chunks])
    origins = Origins(
        offsets, [c.origin for c in chunks], [c.first_row for c in chunks], batch.num_rows
    )
    return batch, origins, chunks[0].period_start


def _fix(blocking: list[CheckOutcome]) -> str:
    names = {outcome.name for outcome in blocking}
    if SCHEMA in names:
        return (
            "Correct the offending rows at the source (see the schema check's sample for object "
            "and row), or change the rules in the dataset's defs.yaml if the data is right (a "
            "rule of severity warn quarantines rows instead), then rerun the partition."
        )
    return (
        "See the failed check's description, change the source or the dataset's defs.yaml, "
        "then rerun the partition."
    )

"""What one load of one window did: the figures the audit, the metadata and the checks show."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from ingest_assets.audit import AuditRecord
from ingest_assets.errors import IngestError
from ingest_assets.quality.checks import CheckOutcome
from ingest_assets.quality.schema import ValidationSummary
from ingest_assets.windows import Window


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
        rows_written: Rows inserted into the destination (0 when the load failed).
        rows_deduplicated: Duplicate rows dropped by the dataset's dedup rule.
        validation: Failures found, per column and rule, and the source's drift.
        checks: The partition's quality checks, by name.
        checksum: Order-independent checksum of the rows loaded (None when nothing loaded).
        schema: Arrow schema of the loaded columns.
        timings: Seconds spent per phase ('list', 'read_validate', 'unique', 'write').
        cpu_seconds: CPU time of the load (user + system).
        peak_rss_bytes: Peak resident memory of the process during the load.
        load_id: The load's id in the audit table.
        error: Why the window failed, when it did (it wrote nothing); None when it loaded.
    """

    dataset: str
    window: Window
    table: str
    objects: list[str] = field(default_factory=list)
    bytes_read: int = 0
    rows_read: int = 0
    rows_written: int = 0
    rows_deduplicated: int = 0
    validation: ValidationSummary = field(default_factory=ValidationSummary)
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    checksum: str | None = None
    schema: pa.Schema = field(default_factory=lambda: pa.schema([]))
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    load_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    error: IngestError | None = None

    @property
    def rows_rejected(self) -> int:
        """Rows quarantined by warn rules."""
        return self.validation.rows_rejected

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

    def audit(self, *, run_id: str, partition: str, started_at: datetime) -> AuditRecord:
        """The load's audit row as it stands (status success, not ended)."""
        return AuditRecord(
            load_id=self.load_id,
            run_id=run_id,
            dataset=self.dataset,
            partition=partition,
            window_start=self.window.start,
            window_end=self.window.end,
            table_name=self.table,
            started_at=started_at,
            rows_read=self.rows_read,
            rows_written=self.rows_written,
            rows_rejected=self.rows_rejected,
            rows_deduplicated=self.rows_deduplicated,
            objects_read=len(self.objects),
            bytes_read=self.bytes_read,
            checksum=self.checksum,
            cpu_seconds=round(self.cpu_seconds, 3),
            peak_rss_bytes=self.peak_rss_bytes,
        )

"""The audit trail: one row per load, failed ones included, appended to the warehouse.

The table ``ingest_audit.loads`` is only ever inserted into. A successful load's row is inserted
in the same transaction as its data, so a committed window always has its audit row and a
rolled-back one never does; a failed load's row is inserted after the failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

#: Schema and table of the audit trail.
AUDIT_SCHEMA = "ingest_audit"
AUDIT_TABLE = "loads"

#: The audit table's columns and DuckDB types, in order.
AUDIT_COLUMNS: dict[str, str] = {
    "load_id": "VARCHAR",
    "run_id": "VARCHAR",
    "dataset": "VARCHAR",
    "partition": "VARCHAR",
    "window_start": "TIMESTAMPTZ",
    "window_end": "TIMESTAMPTZ",
    "table_name": "VARCHAR",
    "started_at": "TIMESTAMPTZ",
    "ended_at": "TIMESTAMPTZ",
    "status": "VARCHAR",
    "rows_read": "BIGINT",
    "rows_written": "BIGINT",
    "rows_rejected": "BIGINT",
    "rows_deduplicated": "BIGINT",
    "objects_read": "BIGINT",
    "bytes_read": "BIGINT",
    "checksum": "VARCHAR",
    "cpu_seconds": "DOUBLE",
    "peak_rss_bytes": "BIGINT",
    "error": "VARCHAR",
}


@dataclass
class AuditRecord:
    """One load, as the audit table stores it.

    Attributes:
        load_id: Unique id of this load.
        run_id: The run that loaded (the Dagster run id in assets).
        dataset: The dataset's name.
        partition: The partition key (or the window as text outside Dagster).
        window_start: Start of the window loaded.
        window_end: End of the window loaded.
        table_name: The destination table.
        started_at: When the load began (UTC).
        ended_at: When it ended (UTC).
        status: ``success`` or ``failed``.
        rows_read: Rows read from the source.
        rows_written: Rows inserted into the table.
        rows_rejected: Rows quarantined by warn rules.
        rows_deduplicated: Duplicate rows dropped before loading.
        objects_read: Objects (files, queries, pages) read.
        bytes_read: Bytes read, where known.
        checksum: Order-independent checksum of the rows loaded (None when nothing loaded).
        cpu_seconds: CPU time of the load.
        peak_rss_bytes: Peak resident memory of the process during the load.
        error: The error of a failed load (never holds secrets: messages name variables only).
    """

    load_id: str
    run_id: str
    dataset: str
    partition: str
    window_start: datetime
    window_end: datetime
    table_name: str
    started_at: datetime
    ended_at: datetime | None = None
    status: Literal["success", "failed"] = "success"
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    rows_deduplicated: int = 0
    objects_read: int = 0
    bytes_read: int = 0
    checksum: str | None = None
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    error: str | None = field(default=None)

    def row(self) -> list[Any]:
        """The values in :data:`AUDIT_COLUMNS` order, ended now if not ended yet."""
        values = asdict(self)
        if values["ended_at"] is None:
            values["ended_at"] = datetime.now(UTC)
        return [values[name] for name in AUDIT_COLUMNS]


#: The Arrow type of each of the audit table's column types.
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
}
#: The audit table's columns as Arrow types, for stores that take Arrow.
AUDIT_ARROW = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in AUDIT_COLUMNS.items()])


def audit_table(audits: list[AuditRecord]) -> pa.Table:
    """Audit rows as an Arrow table of :data:`AUDIT_ARROW`."""
    rows = [audit.row() for audit in audits]
    return pa.table(
        {name: [row[i] for row in rows] for i, name in enumerate(AUDIT_COLUMNS)},
        schema=AUDIT_ARROW,
    )

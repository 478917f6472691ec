"""What the engine needs from a destination, whatever stores the rows.

A destination receives each window's rows staged as Parquet files (staging is the engine's
business) and writes them atomically with the window's quarantined rows and audit row. The
engine never learns which store it writes to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from ingest_assets.audit import AUDIT_SCHEMA, AUDIT_TABLE, AuditRecord
from ingest_assets.spec.load import DestinationSpec, LoadSpec
from ingest_assets.windows import Window

#: The column every loaded row carries: the start of the key-template period it was read for.
WINDOW_COLUMN = "_ingest_window_start"
#: The audit table, one row per load of a window.
AUDIT = DestinationSpec(table=f"{AUDIT_SCHEMA}.{AUDIT_TABLE}")


@dataclass
class WindowWrite:
    """What one window writes: its staged rows, its rejected rows and its audit row."""

    window: Window
    staged: list[Path]
    rejected: list[Path]
    audit: AuditRecord | None = None


def writing(dataset: str, table: DestinationSpec, writes: list[WindowWrite]) -> str:
    """What a write is, for messages: the dataset, the windows' span and the table."""
    span = Window(writes[0].window.start, writes[-1].window.end)
    return f"Dataset '{dataset}', window {span}: writing {table.table}"


def counted_audits(writes: list[WindowWrite], written: list[int]) -> list[AuditRecord]:
    """The writes' audit rows, each given the rows its window wrote."""
    audits = []
    for write, rows in zip(writes, written, strict=True):
        if write.audit is not None:
            write.audit.rows_written = rows
            audits.append(write.audit)
    return audits


def quarantine_table(table: DestinationSpec) -> DestinationSpec:
    """The quarantine table of a destination: ``<table>__rejected`` in the same schema."""
    return DestinationSpec(table=f"{table.schema_name}.{table.table_name}__rejected")


class Destination(Protocol):
    """A warehouse or lake the engine writes windows into.

    Every method raises ``DestinationError`` when the store fails; an error that may pass on
    its own (a lock held by another writer, a dropped connection) is a transient one, so the
    load is retried.
    """

    def describe(self, table: DestinationSpec) -> str:
        """The table's full name as the store's users know it (shown as its table name)."""
        ...

    def write_windows(
        self,
        table: DestinationSpec,
        writes: list[WindowWrite],
        *,
        load: LoadSpec,
        run_id: str,
        dataset: str,
        before_audit: Callable[[], None] | None = None,
    ) -> list[int]:
        """Write the staged rows of the windows in one transaction, as the load mode says.

        ``replace_window`` and ``snapshot`` replace each window's rows, ``append`` adds them,
        ``merge`` upserts them by primary key (a stored row is replaced only by a row whose
        ``order_by`` value is not older). Each window's rejected rows replace its previous ones
        in the quarantine table, and its audit row is appended, in the same transaction where
        the store allows it. New columns of the staged files are added to the table.

        Args:
            table: The table.
            writes: One entry per window.
            load: The load mode and its keys.
            run_id: Stored with every row.
            dataset: For messages.
            before_audit: Called once the rows are in, before the audit rows are written.

        Returns:
            The rows written per window, in order.
        """
        ...

    def record_load(self, audit: AuditRecord) -> None:
        """Append a load's audit row on its own (a load that failed before writing)."""
        ...

    def load_history(self, dataset: str, before: datetime, limit: int) -> list[int]:
        """The volume check's trend: rows read per window before ``before``, newest first.

        Each window counts its latest successful load; at most ``limit`` windows.
        """
        ...

    def rows_set_aside(self, dataset: str, windows: list[Window]) -> dict[datetime, int]:
        """Rows set aside by each window's latest successful load, by window start.

        Those are the rows it quarantined and the duplicates it dropped.
        """
        ...

    def loaded_windows(self, table: DestinationSpec) -> list[datetime]:
        """The distinct window starts the table holds rows for, oldest first."""
        ...

    def count_window(
        self, table: DestinationSpec, window: Window, *, column: str | None = None
    ) -> int:
        """Rows the table holds for the window; 0 when the table does not exist.

        Rows are placed by ``column`` (default: the window each row was loaded for).
        """
        ...


@runtime_checkable
class ProbesTables(Protocol):
    """A destination that can tell, without writing, whether a table can be loaded."""

    def probe(self, table: DestinationSpec) -> str:
        """Connect, check the right to create and alter the table; its current row count.

        Raises:
            DestinationError: the store does not answer, or refuses what a load needs.
        """
        ...

    def uri(self, table: DestinationSpec) -> str:
        """Where the table lives, as a URI (``dagster/uri``), without secrets."""
        ...

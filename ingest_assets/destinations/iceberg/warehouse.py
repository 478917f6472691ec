"""The Iceberg lake destination: tables in a local folder or on S3, a SQL catalog, pyiceberg.

Each write of a table is one Iceberg snapshot: the windows' rows replace exactly the rows whose
window column falls in their span (an overwrite with a filter), so readers see the old window or
the new one, never half of it. The table is partitioned by the window column (hour, day or month,
as the windows are long), so a replace rewrites only that partition's files.

The audit trail: Iceberg commits one table at a time, so no audit table can share the data's
transaction. The data snapshot itself names its run and loads in its summary (``ingest.run_id``,
``ingest.load_ids``: atomic with the rows); the audit rows are then appended to the
``ingest_audit.loads`` Iceberg table, which the volume check and the reconciliation read. A crash
between the two leaves a snapshot whose loads the audit table does not list.

Concurrent writers: the catalog accepts a commit only on top of the snapshot it was built on; a
writer that lost the race reloads the table and commits again.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThan,
)
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform, HourTransform, MonthTransform, Transform
from sqlalchemy.exc import IntegrityError, OperationalError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from ingest_assets.audit import AUDIT_ARROW, AuditRecord, audit_table
from ingest_assets.destinations.base import (
    AUDIT,
    WINDOW_COLUMN,
    WindowWrite,
    counted_audits,
    quarantine_table,
    writing,
)
from ingest_assets.errors import DestinationBusy, DestinationError
from ingest_assets.redaction import register_secret
from ingest_assets.spec.load import DestinationSpec, LoadSpec
from ingest_assets.staging import staged_rows, staged_shape, staged_stream
from ingest_assets.windows import Window

#: Tries of a commit that lost a race with another writer.
COMMIT_ATTEMPTS = 20
T = TypeVar("T")
#: What a writer meets when another commits first, or creates the same namespace or table at
#: the same moment (the catalog's check-then-insert loses to the other's insert).
_RACES = (
    CommitFailedException,
    ValidationException,
    OperationalError,
    IntegrityError,
    NamespaceAlreadyExistsError,
    TableAlreadyExistsError,
)


def s3_properties() -> dict[str, str]:
    """Pyiceberg's S3 settings from the variables S3 sources use (unset ones left out)."""
    names = {
        "s3.endpoint": "INGEST_S3_ENDPOINT_URL",
        "s3.region": "AWS_REGION",
        "s3.access-key-id": "AWS_ACCESS_KEY_ID",
        "s3.secret-access-key": "AWS_SECRET_ACCESS_KEY",
        "s3.session-token": "AWS_SESSION_TOKEN",
    }
    found = {key: os.environ[name] for key, name in names.items() if os.environ.get(name)}
    for key in ("s3.secret-access-key", "s3.session-token"):
        register_secret(found.get(key))
    return found


class IcebergLake:
    """Writes windows of datasets into Iceberg tables through a SQL catalog.

    Args:
        catalog_uri: The catalog database's SQLAlchemy URL (a SQLite file, or PostgreSQL).
        warehouse: Where table files go: a folder, or ``s3://bucket/prefix``.
    """

    def __init__(self, catalog_uri: str, warehouse: str) -> None:
        self.catalog_uri = catalog_uri
        self.warehouse = warehouse
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """The SQL catalog, opened on first use."""
        if self._catalog is None:
            properties = {"uri": self.catalog_uri, "warehouse": self.warehouse}
            if self.warehouse.startswith("s3://"):
                properties |= s3_properties()
            self._catalog = SqlCatalog("ingest_assets", **properties)
        return self._catalog

    def describe(self, table: DestinationSpec) -> str:
        """'iceberg.<namespace>.<table>'."""
        return f"iceberg.{table.schema_name}.{table.table_name}"

    def uri(self, table: DestinationSpec) -> str:
        """The table's location in the warehouse."""
        return f"{self.warehouse.rstrip('/')}/{table.schema_name}.db/{table.table_name}"

    def probe(self, table: DestinationSpec) -> str:
        """The catalog answers; the table's row count, if it exists."""
        identifier = (table.schema_name, table.table_name)

        def read() -> str:
            where = f"Iceberg {self.warehouse}: {table.table}"
            if not self.catalog.table_exists(identifier):
                self.catalog.list_namespaces()
                return f"{where} is created by the first load"
            return f"{where} holds {self.catalog.load_table(identifier).scan().count()} rows"

        return self._guarded(f"Probing {table.table}", read)

    def _guarded(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action``, committing again when another writer won the race; errors named."""
        retrying = Retrying(
            stop=stop_after_attempt(COMMIT_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.05, max=2),
            # Another writer committed first (or its snapshot added files in our window's
            # range): reload the table and write again on top of it.
            retry=retry_if_exception_type(_RACES),
            reraise=True,
        )
        try:
            with warnings.catch_warnings():
                # Replacing a window that held no rows yet is a replace like any other.
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                return retrying(action)
        except _RACES as exc:
            raise DestinationBusy(
                f"{what} in the Iceberg catalog {self.warehouse} failed: other writers kept "
                f"committing first ({type(exc).__name__}).",
                fix="The table keeps its previous snapshot; the load is retried.",
            ) from None
        except (OSError, ValueError) as exc:
            raise DestinationError(
                f"{what} in the Iceberg lake {self.warehouse} failed: {exc}",
                fix="The table keeps its previous snapshot. Check the warehouse location, its "
                "credentials, and that the table's columns did not change type.",
            ) from None

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
        """Write the windows as one snapshot of the table (see the Destination protocol)."""
        span = Window(writes[0].window.start, writes[-1].window.end)
        what = writing(dataset, table, writes)
        files = [path for write in writes for path in write.staged]
        written = [staged_rows(write.staged) for write in writes]

        summary = {
            "ingest.run_id": run_id,
            "ingest.load_ids": ",".join(w.audit.load_id for w in writes if w.audit is not None),
        }

        def commit() -> None:
            lake = self._table(table, files, span)
            data = staged_stream(files, run_id).read_all()
            if load.mode == "merge":
                _merge(lake, data, load, summary)
            elif load.mode == "append":
                lake.append(data, snapshot_properties=summary)
            else:
                lake.overwrite(data, overwrite_filter=_within(span), snapshot_properties=summary)

        self._guarded(what, commit)
        for write in writes:
            if write.rejected or load.mode != "append":
                self._quarantine(table, write, load, run_id, what)
        if before_audit is not None:
            before_audit()
        audits = counted_audits(writes, written)
        if audits:
            self._guarded(what, lambda: self._audit_table().append(audit_table(audits)))
        return written

    def _table(self, table: DestinationSpec, files: list[Path], span: Window) -> Table:
        """The table, created partitioned by the window column, with any new columns added."""
        identifier = (table.schema_name, table.table_name)
        shape = staged_shape(files)
        try:
            lake = self.catalog.load_table(identifier)
        except NoSuchTableError:
            self.catalog.create_namespace_if_not_exists(table.schema_name)
            lake = self.catalog.create_table_if_not_exists(identifier, schema=shape)
            if not lake.spec().fields and WINDOW_COLUMN in shape.names:
                with lake.update_spec() as spec:
                    spec.add_field(WINDOW_COLUMN, _transform(span), "window")
            lake = self.catalog.load_table(identifier)
        if set(shape.names) - {field.name for field in lake.schema().fields}:
            with lake.update_schema() as update:
                update.union_by_name(shape)
            lake = self.catalog.load_table(identifier)
        return lake

    def _quarantine(
        self, table: DestinationSpec, write: WindowWrite, load: LoadSpec, run_id: str, what: str
    ) -> None:
        """Replace the window's rows in ``<table>__rejected`` by this load's rejected rows."""
        target = quarantine_table(table)
        exists = self.catalog.table_exists((target.schema_name, target.table_name))
        if not write.rejected and not exists:
            return

        def commit() -> None:
            if not write.rejected:
                lake = self.catalog.load_table((target.schema_name, target.table_name))
                lake.delete(_within(write.window))
                return
            lake = self._table(target, write.rejected, write.window)
            data = staged_stream(write.rejected, run_id).read_all()
            if load.mode == "append":
                lake.append(data)
            else:
                lake.overwrite(data, overwrite_filter=_within(write.window))

        self._guarded(what, commit)

    def _audit_table(self) -> Table:
        identifier = (AUDIT.schema_name, AUDIT.table_name)
        try:
            return self.catalog.load_table(identifier)
        except NoSuchTableError:
            self.catalog.create_namespace_if_not_exists(AUDIT.schema_name)
            return self.catalog.create_table_if_not_exists(identifier, schema=AUDIT_ARROW)

    def record_load(self, audit: AuditRecord) -> None:
        """Append a load's audit row on its own (for loads that failed before writing)."""
        what = f"Dataset '{audit.dataset}': recording a load"
        self._guarded(what, lambda: self._audit_table().append(audit_table([audit])))

    def _audits(self, dataset: str, what: str) -> pa.Table:
        """The dataset's successful loads, from the audit table."""

        def read() -> pa.Table:
            if not self.catalog.table_exists((AUDIT.schema_name, AUDIT.table_name)):
                return AUDIT_ARROW.empty_table()
            scan = self._audit_table().scan(
                row_filter=And(
                    EqualTo("dataset", dataset),  # pyright: ignore[reportCallIssue]
                    EqualTo("status", "success"),  # pyright: ignore[reportCallIssue]
                )
            )
            return scan.to_arrow()

        return self._guarded(what, read)

    def _latest(self, dataset: str, what: str) -> dict[datetime, dict[str, Any]]:
        """Per window start, the latest successful load's audit row."""
        latest: dict[datetime, dict[str, Any]] = {}
        for row in self._audits(dataset, what).to_pylist():
            start = row["window_start"]
            if start not in latest or row["ended_at"] > latest[start]["ended_at"]:
                latest[start] = row
        return latest

    def load_history(self, dataset: str, before: datetime, limit: int) -> list[int]:
        """The volume check's trend: rows read per window before ``before``, newest first."""
        latest = self._latest(dataset, f"Dataset '{dataset}': reading the load history")
        starts = sorted((s for s in latest if s < before), reverse=True)[:limit]
        return [int(latest[start]["rows_read"]) for start in starts]

    def rows_set_aside(self, dataset: str, windows: list[Window]) -> dict[datetime, int]:
        """Rows the latest successful load of each window quarantined or dropped as duplicates."""
        if not windows:
            return {}
        latest = self._latest(dataset, f"Dataset '{dataset}': reading the load history")
        low, high = min(w.start for w in windows), max(w.end for w in windows)
        return {
            start: int(row["rows_rejected"]) + int(row["rows_deduplicated"])
            for start, row in latest.items()
            if low <= start < high
        }

    def loaded_windows(self, table: DestinationSpec) -> list[datetime]:
        """The distinct window starts the table holds rows for, oldest first."""

        def read() -> list[datetime]:
            if not self.catalog.table_exists((table.schema_name, table.table_name)):
                return []
            lake = self.catalog.load_table((table.schema_name, table.table_name))
            column = lake.scan(selected_fields=(WINDOW_COLUMN,)).to_arrow().column(WINDOW_COLUMN)
            return sorted(set(column.to_pylist()))

        return self._guarded(f"Listing the windows of {table.table}", read)

    def count_window(
        self, table: DestinationSpec, window: Window, *, column: str | None = None
    ) -> int:
        """Rows the table holds for the window (0 when the table does not exist yet)."""

        def read() -> int:
            if not self.catalog.table_exists((table.schema_name, table.table_name)):
                return 0
            lake = self.catalog.load_table((table.schema_name, table.table_name))
            return lake.scan(row_filter=_within(window, column or WINDOW_COLUMN)).count()

        return self._guarded(f"Counting window {window} of {table.table}", read)


def _within(window: Window, column: str = WINDOW_COLUMN) -> BooleanExpression:
    """Rows whose ``column`` lies in the window."""
    return And(
        GreaterThanOrEqual(column, window.start.astimezone(UTC).isoformat()),  # pyright: ignore[reportCallIssue]
        LessThan(column, window.end.astimezone(UTC).isoformat()),  # pyright: ignore[reportCallIssue]
    )


def _transform(window: Window) -> Transform[Any, Any]:
    """The partition transform that fits the windows' length (hour, day or month)."""
    length = window.end - window.start
    if length <= timedelta(hours=1):
        return HourTransform()
    if length <= timedelta(days=7, hours=1):
        return DayTransform()
    return MonthTransform()


def _merge(lake: Table, incoming: pa.Table, load: LoadSpec, summary: dict[str, str]) -> None:
    """Upsert by key in one snapshot; a stored row is replaced only by a not-older one.

    The rule is the DuckDB and PostgreSQL destinations': the latest incoming row per key wins
    over a stored row whose ``order_by`` value is null or not newer. With a one-column key only
    the stored rows of the incoming keys are read and rewritten.
    """
    keys, order = load.primary_key or [], load.order_by
    newest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in incoming.to_pylist():
        key = tuple(row[k] for k in keys)
        if key not in newest or _not_older(row, newest[key], order):
            newest[key] = row
    scope: BooleanExpression = AlwaysTrue()
    if len(keys) == 1:
        scope = In(keys[0], {k[0] for k in newest if k[0] is not None})  # pyright: ignore[reportCallIssue]
    stored = lake.scan(row_filter=scope).to_arrow()
    old = {tuple(row[k] for k in keys): row for row in stored.to_pylist()}
    winners = {
        key: row
        for key, row in newest.items()
        if key not in old or order is None or _not_older(row, old[key], order)
    }
    kept = [row for key, row in old.items() if key not in winners]
    merged = pa.Table.from_pylist([*kept, *winners.values()], schema=stored.schema)
    lake.overwrite(merged, overwrite_filter=scope, snapshot_properties=summary)


def _not_older(row: dict[str, Any], other: dict[str, Any], order: str | None) -> bool:
    """Whether ``row`` may replace ``other``: no order, ``other``'s is null, or not newer."""
    if order is None or other[order] is None:
        return True
    return row[order] is not None and other[order] <= row[order]


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'

"""The DuckDB warehouse destination.

A window's validated rows are first staged to a Parquet file; the write itself is one short
transaction (delete the window's rows, insert the staged ones), so readers never see a half-written
window, a failure leaves the previous rows, and the database's single-writer lock is held only for
the copy, not for the download and validation before it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from ingest_assets.audit import AUDIT_COLUMNS, AuditRecord
from ingest_assets.destinations.base import (
    AUDIT,
    WINDOW_COLUMN,
    WindowWrite,
    counted_audits,
    quarantine_table,
    writing,
)
from ingest_assets.errors import DestinationBusy, DestinationError
from ingest_assets.spec.load import DestinationSpec, LoadSpec
from ingest_assets.staging import STAGED, quote, staged_rows
from ingest_assets.windows import Window

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
#: How long an operation waits for another process's lock on the database file before failing
#: (transient: the step is retried). DuckDB lets one process write a file at a time; each load
#: holds it only for its short write transaction.
LOCK_WAIT_SECONDS = 60.0
#: DuckDB's memory while it writes (its default is 80% of the machine's). Beyond it DuckDB
#: writes the new rows' blocks to the database file before the commit, so a window of any size
#: is written in bounded memory. Lower caps cost time: 256 MB made a 600k-row range's write
#: half as slow again.
WRITE_MEMORY = 512 * 10**6


def qualified(table: DestinationSpec) -> str:
    """The quoted 'schema.table' name."""
    return f"{quote(table.schema_name)}.{quote(table.table_name)}"


class DuckDBWarehouse:
    """Writes windows of a dataset into a DuckDB table.

    Args:
        connect: Returns a context manager yielding a connection (``DuckDBResource.get_connection``
            in Dagster, or :func:`duckdb_connector` outside it).
        database: The database path, for messages and metadata.
    """

    def __init__(self, connect: Connect, database: str) -> None:
        self.connect = connect
        self.database = database

    def describe(self, table: DestinationSpec) -> str:
        """'<database file stem>.<schema>.<table>'."""
        return f"{Path(self.database).stem}.{table.schema_name}.{table.table_name}"

    def uri(self, table: DestinationSpec) -> str:
        """'duckdb:///<file>?table=<schema.table>'."""
        return f"duckdb:///{Path(self.database).resolve()}?table={table.schema_name}.{table.table_name}"

    def probe(self, table: DestinationSpec) -> str:
        """The file opens for writing; the table's row count, if it exists."""
        with self.session(f"Probing {table.table}") as conn:
            if not _table_exists(conn, table):
                return f"DuckDB {self.database}: {table.table} is created by the first load"
            row = conn.execute(f"SELECT count(*) FROM {qualified(table)}").fetchone()
        return f"DuckDB {self.database}: {table.table} holds {row[0] if row else 0} rows"

    @contextmanager
    def session(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, waiting out another process's lock; DuckDB errors as DestinationError.

        Args:
            what: What the connection is for, naming the dataset and window, for messages.
        """
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        pause = 0.05
        with ExitStack() as stack:
            while True:
                try:
                    conn = stack.enter_context(self.connect())
                    break
                except duckdb.Error as exc:
                    if not _locked(exc) or time.monotonic() >= deadline:
                        raise self._error(what, exc) from None
                time.sleep(pause * (1 + random.random()))
                pause = min(pause * 2, 1.0)
            try:
                yield conn
            except duckdb.Error as exc:
                raise self._error(what, exc) from None

    def _error(self, what: str, exc: duckdb.Error) -> DestinationError:
        locked = _locked(exc)
        return (DestinationBusy if locked else DestinationError)(
            f"{what} in DuckDB {self.database} failed: {exc}",
            fix="The table keeps its previous rows. "
            + (
                f"Another process held the database for over {LOCK_WAIT_SECONDS:.0f} s; the "
                "load is retried."
                if locked
                else "If the table's columns changed type, migrate or drop the table."
            ),
        )

    def write_window(
        self,
        table: DestinationSpec,
        staged: list[Path],
        window: Window,
        *,
        load: LoadSpec,
        run_id: str,
        dataset: str,
        rejected: list[Path] | None = None,
        audit: AuditRecord | None = None,
    ) -> int:
        """Write one window's staged rows atomically (see :meth:`write_windows`).

        Returns:
            The number of rows inserted.
        """
        (written,) = self.write_windows(
            table,
            [WindowWrite(window, staged, rejected or [], audit)],
            load=load,
            run_id=run_id,
            dataset=dataset,
        )
        return written

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
        """Write the staged rows of one or more windows in one transaction, as the load mode says.

        ``replace_window`` and ``snapshot`` delete each window's rows and insert its staged ones;
        ``append`` inserts; ``merge`` upserts by primary key, where a row replaces a stored row of
        the same key only if its ``order_by`` value is not older. That rule makes merges of
        different windows commute, so concurrent backfills end in the same state in any order.
        In the same transaction each window's quarantined rows replace the previous ones in
        ``<table>__rejected`` (appended for ``append`` loads) and each window's audit row is
        appended.

        Args:
            table: The destination table.
            writes: Per window: the staged Parquet files of its rows (their columns may differ:
                they are combined by name), of its rejected rows, and its audit row
                (``rows_written`` is filled in before it is appended).
            load: The load mode.
            run_id: Identifies the run in the loaded rows.
            dataset: The dataset's name, for messages.
            before_audit: Called once the rows are in, before the audit rows are appended (to
                measure the load's CPU time and memory, the write included).

        Returns:
            The number of rows inserted per window.

        Raises:
            DestinationError: the write failed; the table is as it was before.
        """
        with self.session(writing(dataset, table, writes)) as conn:
            _cap_memory(conn)
            conn.execute("BEGIN TRANSACTION")
            try:
                written = self._insert(conn, table, writes, load, run_id)
                self._quarantine(conn, table, writes, load, run_id)
                if before_audit is not None:
                    before_audit()
                audits = counted_audits(writes, written)
                if audits:
                    _ensure_audit(conn)
                for audit in audits:
                    _append_audit(conn, audit)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return written

    def _insert(
        self,
        conn: duckdb.DuckDBPyConnection,
        table: DestinationSpec,
        writes: list[WindowWrite],
        load: LoadSpec,
        run_id: str,
    ) -> list[int]:
        """The windows' rows, written as the load mode says (inside the caller's transaction)."""
        name = qualified(table)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema_name)}")
        self._ensure_table(conn, name, table, [str(p) for write in writes for p in write.staged])
        if load.mode == "merge":  # window by window: later versions win
            written = []
            for write in writes:
                row = self._merge(conn, name, [str(path) for path in write.staged], load, run_id)
                written.append(int(row[0]) if row else 0)
            return written
        # Every window's rows replaced, then all inserted in one statement.
        if load.mode in ("replace_window", "snapshot"):
            for write in writes:
                self._delete_window(conn, name, write.window)
        conn.execute(
            f"INSERT INTO {name} BY NAME SELECT *, ? AS _ingest_run_id, "
            f"now() AS _ingest_loaded_at FROM {STAGED}",
            [run_id, [str(p) for write in writes for p in write.staged]],
        )
        return [staged_rows(write.staged) for write in writes]

    @staticmethod
    def _delete_window(conn: duckdb.DuckDBPyConnection, name: str, window: Window) -> None:
        conn.execute(
            f"DELETE FROM {name} WHERE {quote(WINDOW_COLUMN)} >= ? AND {quote(WINDOW_COLUMN)} < ?",
            [window.start, window.end],
        )

    def _quarantine(
        self,
        conn: duckdb.DuckDBPyConnection,
        table: DestinationSpec,
        writes: list[WindowWrite],
        load: LoadSpec,
        run_id: str,
    ) -> None:
        """Replace the windows' rows in ``<table>__rejected`` by this load's rejected rows."""
        target = quarantine_table(table)
        name = qualified(target)
        files = [str(path) for write in writes for path in write.rejected]
        if not files and not _table_exists(conn, target):
            return
        if files:
            self._ensure_table(conn, name, target, files)
        if load.mode != "append":
            for write in writes:
                self._delete_window(conn, name, write.window)
        if files:  # every window's rejected rows in one statement
            conn.execute(
                f"INSERT INTO {name} BY NAME SELECT *, ? AS _ingest_run_id, now() AS "
                f"_ingest_loaded_at FROM {STAGED}",
                [run_id, files],
            )

    def record_load(self, audit: AuditRecord) -> None:
        """Append a load's audit row on its own (for loads that failed before writing)."""
        with self.session(f"Dataset '{audit.dataset}': recording a load") as conn:
            _ensure_audit(conn)
            _append_audit(conn, audit)

    def load_history(self, dataset: str, before: datetime, limit: int) -> list[int]:
        """Rows read by the latest successful load of each window before ``before``, newest first.

        Args:
            dataset: The dataset.
            before: Only windows starting earlier count.
            limit: How many windows at most.
        """
        with self.session(f"Dataset '{dataset}': reading the load history") as conn:
            if not _table_exists(conn, AUDIT):
                return []
            rows = conn.execute(
                f"SELECT window_start, arg_max(rows_read, ended_at) FROM {qualified(AUDIT)} "
                "WHERE dataset = ? AND status = 'success' AND window_start < ? "
                "GROUP BY window_start ORDER BY window_start DESC LIMIT ?",
                [dataset, before, limit],
            ).fetchall()
        return [int(row[1]) for row in rows]

    def rows_set_aside(self, dataset: str, windows: list[Window]) -> dict[datetime, int]:
        """Rows the latest successful load of each window read but did not write.

        Those are the rows it quarantined and the duplicates it dropped, by window start: a
        reconciliation of source rows against loaded rows counts them as accounted for.
        """
        if not windows:
            return {}
        with self.session(f"Dataset '{dataset}': reading the load history") as conn:
            if not _table_exists(conn, AUDIT):
                return {}
            rows = conn.execute(
                f"SELECT window_start, arg_max(rows_rejected + rows_deduplicated, ended_at) "
                f"FROM {qualified(AUDIT)} WHERE dataset = ? AND status = 'success' AND "
                "window_start >= ? AND window_start < ? GROUP BY window_start",
                [dataset, min(w.start for w in windows), max(w.end for w in windows)],
            ).fetchall()
        return {row[0]: int(row[1]) for row in rows}

    @staticmethod
    def _merge(
        conn: duckdb.DuckDBPyConnection, name: str, staged: list[str], load: LoadSpec, run_id: str
    ) -> tuple[int] | None:
        keys = [quote(column) for column in load.primary_key or []]
        same_key = " AND ".join(f"t.{key} = i.{key}" for key in keys)
        order = quote(load.order_by) if load.order_by else None
        latest = f"ORDER BY {order} DESC NULLS LAST" if order else ""
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _ingest_incoming AS SELECT * FROM {STAGED} "
            f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} {latest}) = 1",
            [staged],
        )
        not_older = f" AND (t.{order} IS NULL OR t.{order} <= i.{order})" if order else ""
        conn.execute(f"DELETE FROM {name} t USING _ingest_incoming i WHERE {same_key}{not_older}")
        row = conn.execute(
            f"INSERT INTO {name} BY NAME SELECT i.*, ? AS _ingest_run_id, now() AS "
            f"_ingest_loaded_at FROM _ingest_incoming i WHERE NOT EXISTS "
            f"(SELECT 1 FROM {name} t WHERE {same_key})",
            [run_id],
        ).fetchone()
        conn.execute("DROP TABLE _ingest_incoming")
        return row

    @staticmethod
    def _ensure_table(
        conn: duckdb.DuckDBPyConnection, name: str, table: DestinationSpec, staged: list[str]
    ) -> None:
        """Create the table from the staged files' columns; add columns it lacks."""
        described = conn.execute(f"DESCRIBE SELECT * FROM {STAGED}", [staged]).fetchall()
        existing = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = "
                "current_database() AND schema_name = ? AND table_name = ?",
                [table.schema_name, table.table_name],
            ).fetchall()
        }
        if not existing:
            columns = [f"{quote(column)} {duck_type}" for column, duck_type, *_ in described]
            columns += ["_ingest_run_id VARCHAR", "_ingest_loaded_at TIMESTAMPTZ"]
            conn.execute(f"CREATE TABLE {name} ({', '.join(columns)})")
            return
        for column, duck_type, *_ in described:
            if column not in existing:
                conn.execute(f"ALTER TABLE {name} ADD COLUMN {quote(column)} {duck_type}")

    def loaded_windows(self, table: DestinationSpec) -> list[datetime]:
        """The distinct window starts the table holds rows for, oldest first."""
        with self.session(f"Listing the windows of {table.table}") as conn:
            if not _table_exists(conn, table):
                return []
            rows = conn.execute(
                f"SELECT DISTINCT {quote(WINDOW_COLUMN)} FROM {qualified(table)} ORDER BY 1"
            ).fetchall()
        return [row[0] for row in rows]

    def count_window(
        self, table: DestinationSpec, window: Window, *, column: str | None = None
    ) -> int:
        """Rows the table holds for the window (0 when the table does not exist yet).

        Args:
            table: The table.
            window: The window.
            column: The timestamp column that places rows in windows (default: the window each
                row was loaded for).
        """
        column = column or WINDOW_COLUMN
        with self.session(f"Counting window {window} of {table.table}") as conn:
            if not _table_exists(conn, table):
                return 0
            row = conn.execute(
                f"SELECT count(*) FROM {qualified(table)} WHERE {quote(column)} >= ? "
                f"AND {quote(column)} < ?",
                [window.start, window.end],
            ).fetchone()
        return int(row[0]) if row else 0


def _cap_memory(conn: duckdb.DuckDBPyConnection) -> None:
    """Lower DuckDB's memory limit to :data:`WRITE_MEMORY` (a lower one configured stays)."""
    row = conn.execute("SELECT current_setting('memory_limit')").fetchone()
    number, _, unit = str(row[0] if row else "").partition(" ")
    try:
        current = float(number) * _UNITS.get(unit, 1)
    except ValueError:
        return
    if current > WRITE_MEMORY:
        conn.execute(f"SET memory_limit = '{WRITE_MEMORY}B'")


#: The units DuckDB shows its memory limit in.
_UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "bytes": 1}


def _locked(exc: BaseException) -> bool:
    """Whether DuckDB failed because another process holds the database file."""
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


def _ensure_audit(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(AUDIT.schema_name)}")
    columns = ", ".join(f"{quote(name)} {kind}" for name, kind in AUDIT_COLUMNS.items())
    conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified(AUDIT)} ({columns})")


def _append_audit(conn: duckdb.DuckDBPyConnection, audit: AuditRecord) -> None:
    conn.execute(
        f"INSERT INTO {qualified(AUDIT)} ({', '.join(quote(n) for n in AUDIT_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in AUDIT_COLUMNS)})",
        audit.row(),
    )


def _table_exists(conn: duckdb.DuckDBPyConnection, table: DestinationSpec) -> bool:
    row = conn.execute(
        # duckdb_tables() answers in well under a millisecond; information_schema takes ~0.2 s.
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [table.schema_name, table.table_name],
    ).fetchone()
    return bool(row and row[0])


def duckdb_connector(database: str | Path) -> Connect:
    """A :data:`Connect` for a DuckDB file, for use without Dagster (tests, benchmarks)."""

    def connect() -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return duckdb.connect(str(database))

    return connect

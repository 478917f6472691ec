"""The PostgreSQL warehouse destination: many writers, each window replaced in one transaction.

Rows go in by binary COPY (ADBC's bulk ingest: Arrow in, no row-by-row inserts), straight from
the staged Parquet files. Writers of one table serialise on a transaction-scoped advisory lock
held for the short write, so two runs loading the same partition leave one copy of its rows and
runs loading different partitions both succeed. Tables take their column types from the staged
Arrow schema (timestamptz, bigint, double precision, text, boolean, date); new columns of the
staged files are added (``drift: evolve``). The audit row is appended in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import adbc_driver_manager.dbapi as adbc
import adbc_driver_postgresql.dbapi as pg
import sqlalchemy as sa

from ingest_assets.audit import AUDIT_COLUMNS, AuditRecord, audit_table
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
from ingest_assets.staging import quote, staged_rows, staged_shape, staged_stream
from ingest_assets.windows import Window

#: How long a write waits for another writer of the same table before failing (transient).
LOCK_TIMEOUT = "60s"
#: The audit table's columns in PostgreSQL types.
_AUDIT_TYPES = {"VARCHAR": "text", "TIMESTAMPTZ": "timestamptz", "BIGINT": "bigint",
                "DOUBLE": "double precision"}  # fmt: skip
_TRANSIENT_HINTS = ("could not connect", "connection refused", "lock timeout", "terminating",
                    "server closed", "connection reset", "deadlock detected")  # fmt: skip
_Cursor = Any


def qualified(table: DestinationSpec) -> str:
    """The quoted 'schema.table' name ('public' when the declaration names no schema)."""
    return f"{quote(_schema(table))}.{quote(table.table_name)}"


def _schema(table: DestinationSpec) -> str:
    return "public" if table.schema_name == "main" else table.schema_name


class PostgresWarehouse:
    """Writes windows of datasets into PostgreSQL tables.

    Args:
        url: The server's URL (a secret: only its redacted form is ever shown).
    """

    def __init__(self, url: str) -> None:
        parsed = sa.engine.make_url(url)
        register_secret(parsed.password and str(parsed.password))
        self._url = url.replace("postgresql+psycopg://", "postgresql://")
        self._shown = parsed.render_as_string(hide_password=True)
        self._database = parsed.database or "postgres"
        self._password = str(parsed.password or "")

    def describe(self, table: DestinationSpec) -> str:
        """'<database>.<schema>.<table>'."""
        return f"{self._database}.{_schema(table)}.{table.table_name}"

    def uri(self, table: DestinationSpec) -> str:
        """The server's URL without the password, and the table."""
        return f"{self._shown}?table={_schema(table)}.{table.table_name}"

    def probe(self, table: DestinationSpec) -> str:
        """Create and alter a scratch table where the table lives (rolled back); its rows."""
        what = f"Probing {table.table}"
        scratch = DestinationSpec(table=f"{_schema(table)}._ingest_probe")
        with self.session(what) as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(_schema(table))}")
            cursor.execute(f"CREATE TABLE {qualified(scratch)} (id bigint)")
            cursor.execute(f"ALTER TABLE {qualified(scratch)} ADD COLUMN note text")
            exists = _exists(cursor, table)
            rows = 0
            if exists:
                cursor.execute(f"SELECT count(*) FROM {qualified(table)}")
                row = cursor.fetchone()
                rows = int(row[0]) if row else 0
            cursor.connection.rollback()  # the probe leaves nothing behind
        where = f"PostgreSQL {self._shown}: {table.table}"
        return f"{where} holds {rows} rows" if exists else f"{where} is created by the first load"

    @contextmanager
    def session(self, what: str) -> Iterator[_Cursor]:
        """A cursor in one transaction, committed when the block ends (rolled back on error).

        Args:
            what: What the transaction is for, naming the dataset and window, for messages.
        """
        try:
            conn = pg.connect(self._url)
        except adbc.Error as exc:
            raise self._error(what, exc) from None
        try:
            cursor = conn.cursor()
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            yield cursor
            conn.commit()
        except adbc.Error as exc:
            conn.rollback()
            raise self._error(what, exc) from None
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def _error(self, what: str, exc: Exception) -> DestinationError:
        detail = " ".join(str(exc).replace(self._url, self._shown).split())
        if self._password:
            detail = detail.replace(self._password, "***")
        transient = any(hint in detail.lower() for hint in _TRANSIENT_HINTS)
        return (DestinationBusy if transient else DestinationError)(
            f"{what} in PostgreSQL {self._shown} failed: {detail[:500]}",
            fix="The table keeps its previous rows. "
            + (
                "The server was unreachable or busy; the load is retried."
                if transient
                else "If the table's columns changed type, migrate or drop the table."
            ),
        )

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
        """Write the windows in one transaction, as the DuckDB destination does.

        See :meth:`ingest_assets.destinations.base.Destination.write_windows`.
        """
        what = writing(dataset, table, writes)
        self._prepare([_schema(table)], audit=any(w.audit is not None for w in writes), what=what)
        with self.session(what) as cursor:
            _lock(cursor, table)
            written = self._insert(cursor, table, writes, load, run_id)
            for write in writes:
                self._quarantine(cursor, table, write, load, run_id)
            if before_audit is not None:
                before_audit()
            _append_audits(cursor, counted_audits(writes, written))
        return written

    def _prepare(self, schemas: list[str], *, audit: bool, what: str) -> None:
        """Create the schemas (and the audit table) once, in a short transaction of their own.

        Concurrent ``CREATE ... IF NOT EXISTS`` of one name can collide in PostgreSQL's
        catalog; a global advisory lock held for this moment orders them.
        """
        with self.session(what) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('ingest_assets:ddl'))")
            for schema in schemas:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            if audit:
                columns = ", ".join(
                    f"{quote(name)} {_AUDIT_TYPES[kind]}" for name, kind in AUDIT_COLUMNS.items()
                )
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(_schema(AUDIT))}")
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {qualified(AUDIT)} ({columns})")

    def _insert(
        self,
        cursor: _Cursor,
        table: DestinationSpec,
        writes: list[WindowWrite],
        load: LoadSpec,
        run_id: str,
    ) -> list[int]:
        """The windows' rows, as the load mode says (inside the caller's transaction)."""
        files = [path for write in writes for path in write.staged]
        _ensure_table(cursor, table, files)
        if load.mode == "merge":  # window by window: later versions win
            return [self._merge(cursor, table, write.staged, load, run_id) for write in writes]
        if load.mode in ("replace_window", "snapshot"):
            for write in writes:
                _delete_window(cursor, table, write.window)
        if files:
            cursor.adbc_ingest(
                table.table_name,
                staged_stream(files, run_id),
                mode="append",
                db_schema_name=_schema(table),
            )
        return [staged_rows(write.staged) for write in writes]

    @staticmethod
    def _merge(
        cursor: _Cursor, table: DestinationSpec, staged: list[Path], load: LoadSpec, run_id: str
    ) -> int:
        """Upsert one window's rows by key; a stored row is replaced only by a not-older one."""
        if not staged:
            return 0
        cursor.adbc_ingest("_ingest_incoming", staged_stream(staged, run_id), mode="replace",
                           temporary=True)  # fmt: skip
        keys = [quote(column) for column in load.primary_key or []]
        same_key = " AND ".join(f"t.{key} = i.{key}" for key in keys)
        order = quote(load.order_by) if load.order_by else None
        latest = f", {order} DESC NULLS LAST" if order else ""
        cursor.execute(
            "CREATE TEMP TABLE _ingest_latest AS SELECT DISTINCT ON "
            f"({', '.join(keys)}) * FROM _ingest_incoming ORDER BY {', '.join(keys)}{latest}"
        )
        not_older = f" AND (t.{order} IS NULL OR t.{order} <= i.{order})" if order else ""
        name = qualified(table)
        cursor.execute(f"DELETE FROM {name} t USING _ingest_latest i WHERE {same_key}{not_older}")
        columns = ", ".join(quote(c) for c in _columns(cursor, "_ingest_latest"))
        cursor.execute(
            f"WITH added AS (INSERT INTO {name} ({columns}) SELECT {columns} FROM _ingest_latest "
            f"i WHERE NOT EXISTS (SELECT 1 FROM {name} t WHERE {same_key}) RETURNING 1) "
            "SELECT count(*) FROM added"
        )
        row = cursor.fetchone()
        cursor.execute("DROP TABLE _ingest_latest")
        cursor.execute("DROP TABLE _ingest_incoming")
        return int(row[0]) if row else 0

    @staticmethod
    def _quarantine(
        cursor: _Cursor, table: DestinationSpec, write: WindowWrite, load: LoadSpec, run_id: str
    ) -> None:
        """Replace the window's rows in ``<table>__rejected`` by this load's rejected rows."""
        target = quarantine_table(table)
        if not write.rejected and not _exists(cursor, target):
            return
        _lock(cursor, target)
        if write.rejected:
            _ensure_table(cursor, target, write.rejected)
        if load.mode != "append":
            _delete_window(cursor, target, write.window)
        if write.rejected:
            cursor.adbc_ingest(target.table_name, staged_stream(write.rejected, run_id),
                               mode="append", db_schema_name=_schema(target))  # fmt: skip

    def record_load(self, audit: AuditRecord) -> None:
        """Append a load's audit row on its own (for loads that failed before writing)."""
        what = f"Dataset '{audit.dataset}': recording a load"
        self._prepare([], audit=True, what=what)
        with self.session(what) as cursor:
            _append_audits(cursor, [audit])

    def load_history(self, dataset: str, before: datetime, limit: int) -> list[int]:
        """The volume check's trend: rows read per window before ``before``, newest first."""
        rows = self._audit_query(
            "SELECT DISTINCT ON (window_start) window_start, rows_read FROM {audit} WHERE "
            "dataset = $1 AND status = 'success' AND window_start < $2 "
            "ORDER BY window_start DESC, ended_at DESC LIMIT $3",
            (dataset, before, limit),
            f"Dataset '{dataset}': reading the load history",
        )
        return [int(row[1]) for row in rows]

    def rows_set_aside(self, dataset: str, windows: list[Window]) -> dict[datetime, int]:
        """Rows the latest successful load of each window quarantined or dropped as duplicates."""
        if not windows:
            return {}
        rows = self._audit_query(
            "SELECT DISTINCT ON (window_start) window_start, rows_rejected + rows_deduplicated "
            "FROM {audit} WHERE dataset = $1 AND status = 'success' AND window_start >= $2 AND "
            "window_start < $3 ORDER BY window_start, ended_at DESC",
            (dataset, min(w.start for w in windows), max(w.end for w in windows)),
            f"Dataset '{dataset}': reading the load history",
        )
        return {row[0]: int(row[1]) for row in rows}

    def _audit_query(self, sql: str, params: tuple[Any, ...], what: str) -> list[Any]:
        with self.session(what) as cursor:
            if not _exists(cursor, AUDIT):
                return []
            cursor.execute(sql.format(audit=qualified(AUDIT)), params)
            return list(cursor.fetchall())

    def loaded_windows(self, table: DestinationSpec) -> list[datetime]:
        """The distinct window starts the table holds rows for, oldest first."""
        with self.session(f"Listing the windows of {table.table}") as cursor:
            if not _exists(cursor, table):
                return []
            cursor.execute(
                f"SELECT DISTINCT {quote(WINDOW_COLUMN)} FROM {qualified(table)} ORDER BY 1"
            )
            return [row[0] for row in cursor.fetchall()]

    def count_window(
        self, table: DestinationSpec, window: Window, *, column: str | None = None
    ) -> int:
        """Rows the table holds for the window (0 when the table does not exist yet)."""
        column = quote(column or WINDOW_COLUMN)
        with self.session(f"Counting window {window} of {table.table}") as cursor:
            if not _exists(cursor, table):
                return 0
            cursor.execute(
                f"SELECT count(*) FROM {qualified(table)} WHERE {column} >= $1 AND {column} < $2",
                (window.start, window.end),
            )
            row = cursor.fetchone()
        return int(row[0]) if row else 0


def _lock(cursor: _Cursor, table: DestinationSpec) -> None:
    """Hold the table's write lock until the transaction ends (writers of it take turns)."""
    cursor.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))", (f"ingest_assets:{qualified(table)}",)
    )
    cursor.fetchall()


def _exists(cursor: _Cursor, table: DestinationSpec) -> bool:
    cursor.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
        (_schema(table), table.table_name),
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def _columns(cursor: _Cursor, relation: str) -> list[str]:
    """The columns of a table or temporary table, in order."""
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (relation,),
    )
    return [row[0] for row in cursor.fetchall()]


def _ensure_table(cursor: _Cursor, table: DestinationSpec, files: list[Path]) -> None:
    """Create the table with the staged files' columns; add the columns it lacks.

    Column types are those ADBC gives the Arrow types (timestamptz, bigint, text, ...).
    """
    shape = staged_shape(files)
    cursor.adbc_ingest("_ingest_shape", shape.empty_table(), mode="replace", temporary=True)
    name = qualified(table)
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} (LIKE _ingest_shape)")
    existing = set(_columns(cursor, name))
    cursor.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'_ingest_shape'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    for column, kind in cursor.fetchall():
        if column not in existing:
            cursor.execute(f"ALTER TABLE {name} ADD COLUMN {quote(column)} {kind}")
    cursor.execute("DROP TABLE _ingest_shape")


def _delete_window(cursor: _Cursor, table: DestinationSpec, window: Window) -> None:
    if not _exists(cursor, table):
        return
    column = quote(WINDOW_COLUMN)
    cursor.execute(
        f"DELETE FROM {qualified(table)} WHERE {column} >= $1 AND {column} < $2",
        (window.start, window.end),
    )


def _append_audits(cursor: _Cursor, audits: list[AuditRecord]) -> None:
    if not audits:
        return
    cursor.adbc_ingest(
        AUDIT.table_name, audit_table(audits), mode="append", db_schema_name=_schema(AUDIT)
    )

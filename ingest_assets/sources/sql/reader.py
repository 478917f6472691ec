"""SQL database sources: a table or query, cut into windows by a timestamp column.

Reads stream as Arrow record batches through the fastest path a database has: ADBC's libpq
driver for PostgreSQL (Arrow end to end), DuckDB's own Arrow reader, and SQLAlchemy for every
other database (SQLite, MySQL, ...), batched with server-side cursors where the driver has them.
Identifiers come from the validated spec and are quoted; the window bounds are bound parameters.
Connection failures are retried with backoff (tenacity); refused logins and missing tables fail at
once. The URL's password never appears in a message.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from itertools import chain, pairwise
from typing import Any, TypeVar

import numpy
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ingest_assets.errors import IngestError, ReadInterrupted, SourceError, SourceUnavailable
from ingest_assets.redaction import register_secret
from ingest_assets.sources.base import Chunk, ReadPlan
from ingest_assets.sources.sql.spec import SqlSource
from ingest_assets.windows import Window

T = TypeVar("T")
#: Runs a query (SQL and its parameters) on a connection and streams its rows as Arrow batches.
Run = Callable[[str, list[Any]], Generator[pa.RecordBatch, None, None]]
#: Size of the Arrow batches PostgreSQL windows are streamed in.
POSTGRES_BATCH_BYTES = 8 * 2**20

_AUTH_HINTS = (
    "password authentication failed",
    "authentication failed",
    "access denied",
    "no password supplied",
    'role "',
    "28p01",
    "28000",
)
_MISSING_HINTS = ("does not exist", "no such table", "no such column", "unknown column", "42p01")
_TRANSIENT_HINTS = (
    "terminating connection",
    "connection to server",
    "connection already closed",
    "connection is closed",
    "no connection to the server",
    "ssl syscall",
    "eof detected",
    "broken pipe",
    "lost connection",
    "server has gone away",
    "57p01",
    "08006",
    "08003",
    "connection refused",
    "could not connect",
    "timeout",
    "timed out",
    "server closed the connection",
    "connection reset",
    "too many connections",
    "the database system is starting up",
    "database is locked",
    "could not set lock",
)


class _Transient(Exception):
    """A failure worth retrying (wrapped so tenacity can tell it apart)."""


#: The column a range query adds: each row's time as epoch microseconds (dropped after the split).
_EPOCH = "_ingest_epoch_us"
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


_DAY_US = 86_400_000_000


def _epoch_us(moment: datetime) -> int:
    return (moment - _UNIX) // _MICROSECOND


def _arrow_epochs(batch: pa.RecordBatch, column: str) -> numpy.ndarray | None:
    """The column's values as UTC epoch microseconds, or None if its type does not give them.

    Timestamps in seconds, milliseconds or microseconds (zoned ones are UTC inside, naive ones
    read as UTC, the session's zone) and dates (midnight UTC) convert exactly.
    """
    if column not in batch.schema.names:
        return None
    values = batch.column(column)
    kind = values.type
    if pa.types.is_date32(kind):
        return values.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(numpy.int64) * _DAY_US
    if pa.types.is_timestamp(kind) and kind.unit in ("s", "ms", "us"):
        micros = values.cast(pa.timestamp("us", kind.tz)).cast(pa.int64())
        return micros.to_numpy(zero_copy_only=False)
    return None


class SqlReader:
    """Reads a dataset's windows from a SQL database.

    Args:
        source: The dataset's source declaration.
        url: The database URL (a secret: only its redacted form is ever shown).
        dataset: The dataset's name, for messages.
        snapshot: Read the whole table, ignoring the window (load mode ``snapshot``).
    """

    def __init__(
        self, source: SqlSource, url: str, *, dataset: str, snapshot: bool = False
    ) -> None:
        self.source = source
        self.dataset = dataset
        self.snapshot = snapshot
        self._url = url
        try:
            self._parsed = sa.engine.make_url(url)
        except ArgumentError:
            raise SourceError(
                f"Dataset '{dataset}': the URL in {source.connection} is not a database URL.",
                fix="Use a URL such as postgresql://user:password@host:5432/database.",
            ) from None
        register_secret(self._parsed.password and str(self._parsed.password))
        backend = self._parsed.get_backend_name()
        self.backend = backend if backend in ("postgresql", "duckdb") else "sqlalchemy"
        if self.backend == "sqlalchemy":
            try:  # loads the dialect and its driver; connects to nothing
                _sqlalchemy_engine(url)
            except Exception as exc:
                raise self._error(exc, connecting=True) from None
        self._in_session = False
        self._shared: Run | None = None
        self._shared_stack: ExitStack | None = None

    # -- what the user sees ------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The server (or file) the URL points at, without credentials."""
        if self._parsed.host:
            port = f":{self._parsed.port}" if self._parsed.port else ""
            return f"{self._parsed.host}{port}"
        return self._parsed.database or self._parsed.get_backend_name()

    @property
    def origin(self) -> str:
        """What rows are read from, for messages, metadata and the ``_ingest_object`` column."""
        what = self.source.table or "query"
        return f"{self._parsed.get_backend_name()}://{self.host}/{what}"

    def _redact(self, text: str) -> str:
        password = self._parsed.password
        if password:
            text = text.replace(str(password), "***")
        return text.replace(self._url, self._parsed.render_as_string(hide_password=True))

    # -- the SourceReader protocol -----------------------------------------------------------

    def plan(self, window: Window) -> ReadPlan:
        """A SQL window reads one origin; its size is not known before reading."""
        return ReadPlan([self.origin], 0)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one connection open for every read and count inside (one run, many windows).

        The connection opens at the first read. Re-entrant: an inner session uses the outer
        one's connection. A connection that breaks is dropped, and the next read opens another.
        """
        if self._in_session:
            yield
            return
        self._in_session = True
        try:
            yield
        finally:
            self._in_session = False
            self._drop_shared(quietly=False)

    def _drop_shared(self, *, quietly: bool) -> None:
        stack, self._shared, self._shared_stack = self._shared_stack, None, None
        if stack is None:
            return
        try:
            stack.close()
        except Exception:
            if not quietly:
                raise

    @contextmanager
    def _reading(self) -> Iterator[Run]:
        """The session's connection if one is open, else a connection of its own."""
        if not self._in_session:
            with self._connection() as run:
                yield run
            return
        if self._shared is None:
            stack = ExitStack()
            self._shared = stack.enter_context(self._connection())
            self._shared_stack = stack
        try:
            yield self._shared
        except Exception as exc:
            error = exc if isinstance(exc, IngestError) else self._error(exc, connecting=False)
            if error.transient:  # a broken connection: the next read opens another
                self._drop_shared(quietly=True)
            if error is exc:
                raise
            raise error from None

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        """Stream the window's rows as Arrow batches."""
        sql, params = self._select(window, count=False)
        first_row = 1
        with self._reading() as run:
            for batch in run(sql, params):
                if batch.num_rows:
                    yield Chunk(batch, self.origin, first_row, window.start)
                    first_row += batch.num_rows

    def read_range(
        self, windows: list[Window], arrow_types: dict[str, pa.DataType]
    ) -> Iterator[Chunk]:
        """Stream the rows of consecutive windows with one query, each chunk tagged with its window.

        The query covers the whole range, ordered by the time column, and the database gives
        each row's time as epoch microseconds (with the same time-zone rules as a window's own
        query), so the rows split into windows exactly as one query per window would. Backends
        read through SQLAlchemy, snapshots and sources without a time column read window by
        window.
        """
        source = self.source
        contiguous = all(a.end == b.start for a, b in pairwise(windows))
        if (
            self.snapshot
            or source.time_column is None
            or self.backend == "sqlalchemy"
            or len(windows) < 2
            or not contiguous
        ):
            for window in windows:
                yield from self.read(window, arrow_types)
            return
        whole = Window(windows[0].start, windows[-1].end)
        ends = numpy.array([_epoch_us(window.end) for window in windows], dtype=numpy.int64)
        first_rows = [1] * len(windows)
        with self._reading() as run:
            for batch, epochs in self._ordered_epochs(run, whole):
                which = numpy.searchsorted(ends, epochs, side="right")
                cuts = [0, *(numpy.flatnonzero(numpy.diff(which)) + 1).tolist(), len(which)]
                for start, stop in pairwise(cuts):
                    index = int(which[start])
                    part = batch.slice(start, stop - start)
                    yield Chunk(part, self.origin, first_rows[index], windows[index].start)
                    first_rows[index] += part.num_rows

    def _ordered_epochs(
        self, run: Run, whole: Window
    ) -> Iterator[tuple[pa.RecordBatch, numpy.ndarray]]:
        """The range's rows in time order, each batch with its rows' epoch microseconds.

        A time column that arrives as an Arrow timestamp or date gives the epochs itself (the
        session's time zone is UTC, as the windows' comparisons assume); any other type (text
        a database casts) has the database add them as a column, with the same casting rules
        the window's own query uses.
        """
        sql, params = self._select(whole, count=False, ranged=True)
        batches = run(sql, params)
        first = next((batch for batch in batches if batch.num_rows), None)
        if first is None:
            return
        time_column = self.source.time_column
        assert time_column is not None
        if _arrow_epochs(first, time_column) is None:
            batches.close()
            sql, params = self._select(whole, count=False, ranged=True, epoch=True)
            for batch in run(sql, params):
                if batch.num_rows:
                    epochs = batch.column(_EPOCH).to_numpy(zero_copy_only=False)
                    yield batch.drop_columns([_EPOCH]), epochs
            return
        for batch in chain([first], batches):
            epochs = _arrow_epochs(batch, time_column)
            if batch.num_rows and epochs is not None:
                yield batch, epochs

    def probe(self, columns: list[str]) -> str:
        """Check that the database answers and the relation has ``columns``; reads no rows.

        Returns:
            What was checked, for people.

        Raises:
            SourceError: the server, the credentials, the table or a column is wrong.
        """
        source = self.source
        wanted = list(columns)
        if source.time_column and source.time_column not in wanted:
            wanted.append(source.time_column)
        relation = self._relation()
        listed = ", ".join(self._quote(c) for c in wanted) if wanted else "*"
        with self._reading() as run:
            for _ in run(f"SELECT {listed} FROM {relation} WHERE 1 = 0", []):
                pass
        what = source.table or "the query"
        return f"{what} answers with {len(wanted)} declared columns on {self.host}"

    def placing_column(self) -> str | None:
        """The declared time column."""
        return self.source.time_column

    def count(self, window: Window) -> int:
        """Rows the source holds for the window (for reconciliation)."""
        sql, params = self._select(window, count=True)
        with self._reading() as run:
            batches = list(run(sql, params))
        table = pa.Table.from_batches(batches) if batches else None
        return int(table.column(0)[0].as_py()) if table is not None and table.num_rows else 0

    # -- SQL ---------------------------------------------------------------------------------

    def _quote(self, identifier: str) -> str:
        if self.backend == "sqlalchemy":
            return _sqlalchemy_engine(self._url).dialect.identifier_preparer.quote(identifier)
        return '"' + identifier.replace('"', '""') + '"'

    def _relation(self) -> str:
        """The table (quoted) or the query (as a subquery) a dataset reads."""
        if self.source.table:
            return ".".join(self._quote(part) for part in self.source.table.split("."))
        return f"({self.source.query}) AS ingest_query"

    def _select(
        self, window: Window, *, count: bool, ranged: bool = False, epoch: bool = False
    ) -> tuple[str, list[Any]]:
        """The window's query; ``ranged`` orders by time, ``epoch`` adds each row's epoch (us)."""
        source = self.source
        relation = self._relation()
        columns = ", ".join(self._quote(c) for c in source.columns) if source.columns else "*"
        if self.snapshot or source.time_column is None:
            return f"SELECT {'count(*)' if count else columns} FROM {relation}", []
        column = self._quote(source.time_column)
        order = ""
        if epoch:
            epochs = (
                f"(extract(epoch FROM {column}::timestamptz) * 1000000)::bigint"
                if self.backend == "postgresql"
                else f"epoch_us({column}::TIMESTAMPTZ)"
            )
            columns = f"{columns}, {epochs} AS {_EPOCH}"
        if ranged:
            order = f" ORDER BY {column}"
        select = f"SELECT {'count(*)' if count else columns} FROM {relation}"
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        if self.backend == "postgresql":
            # The bounds are inlined as typed literals: ADBC streams a query without parameters
            # through COPY in bounded batches, while a parameterised one is fetched whole. They
            # are timezone-aware datetimes rendered by isoformat(), never text from a user.
            low, high = (f"'{moment.isoformat()}'::timestamptz" for moment in (start, end))
            return f"{select} WHERE {column} >= {low} AND {column} < {high}{order}", []
        if self.backend == "duckdb":
            return f"{select} WHERE {column} >= ? AND {column} < ?{order}", [start, end]
        if self._parsed.get_backend_name() == "sqlite":
            # SQLite keeps timestamps as text in several ISO shapes; normalise before comparing.
            text = "%Y-%m-%d %H:%M:%S"
            return (
                f"{select} WHERE datetime({column}) >= :start AND datetime({column}) < :end",
                [start.strftime(text), end.strftime(text)],
            )
        naive = [start.replace(tzinfo=None), end.replace(tzinfo=None)]
        return f"{select} WHERE {column} >= :start AND {column} < :end", naive

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connection(
        self,
    ) -> Iterator[Run]:
        """Open a connection (with retries) and yield a function that runs one query."""
        opener: Callable[[], AbstractContextManager[Any]] = {
            "postgresql": self._postgres,
            "duckdb": self._duckdb,
            "sqlalchemy": self._sqlalchemy,
        }[self.backend]
        with ExitStack() as stack:
            run = self._retrying(lambda: stack.enter_context(opener()))
            try:
                yield run
            except IngestError:  # already explained (a load failing inside a session, too)
                raise
            except Exception as exc:
                raise self._error(exc, connecting=False) from None

    def _retrying(self, attempt: Callable[[], T]) -> T:
        retry = self.source.retry
        retrying = Retrying(
            stop=stop_after_attempt(retry.attempts),
            wait=wait_exponential_jitter(
                multiplier=retry.delay_seconds,
                exp_base=retry.backoff,
                max=retry.max_delay_seconds,
                jitter=retry.delay_seconds,
            ),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Transient)),
            reraise=True,
        )

        def classified() -> T:
            try:
                return attempt()
            except Exception as exc:
                error = self._error(exc, connecting=True)
                if error.transient:
                    raise _Transient() from error
                raise error from None

        try:
            return retrying(classified)
        except _Transient as exc:
            cause = exc.__cause__
            assert isinstance(cause, SourceError)
            raise SourceUnavailable(
                cause.message + f" (after {retry.attempts} attempt(s))", fix=cause.fix
            ) from None

    def _error(self, exc: Exception, *, connecting: bool) -> SourceError:
        where = f"Dataset '{self.dataset}', {self._parsed.get_backend_name()} at {self.host}"
        missing = _missing_driver(exc)
        if missing:
            return SourceError(
                f"{where}: the database driver {missing!r} that {self._parsed.drivername}:// "
                "URLs need is not installed.",
                fix=f"Add {missing} to the project's dependencies (uv add {missing}), or use a "
                "URL whose driver is installed.",
            )
        detail = self._redact(" ".join(str(exc).split()))[:500] or type(exc).__name__
        lowered = detail.lower()
        if any(hint in lowered for hint in _AUTH_HINTS):
            return SourceError(
                f"{where}: the database refused the login: {detail}",
                fix=f"Check the user and password in {self.source.connection}.",
            )
        if any(hint in lowered for hint in _MISSING_HINTS):
            what = self.source.table or "the query"
            return SourceError(
                f"{where}: {what} or a column of it does not exist: {detail}",
                fix="Check source.table / source.query, source.columns and source.time_column.",
            )
        transient = any(hint in lowered for hint in _TRANSIENT_HINTS)
        if connecting:
            return (SourceUnavailable if transient else SourceError)(
                f"{where}: cannot connect: {detail}",
                fix=f"Check that the database at {self.host} is reachable from the code "
                "location" + ("; the load is safe to retry." if transient else "."),
            )
        if transient:
            return ReadInterrupted(
                f"{where}: the connection broke during the read: {detail}",
                fix="Nothing was written; the window is read again from its start, and the load "
                "is safe to rerun.",
            )
        return SourceError(
            f"{where}: the read failed: {detail}",
            fix="Check source.table / source.query and the database's log.",
        )

    @contextmanager
    def _postgres(self) -> Iterator[Run]:
        import adbc_driver_postgresql.dbapi as adbc_pg

        uri = self._parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with adbc_pg.connect(uri) as conn, conn.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            # Batches of about this many bytes bound the memory a window takes, whatever its size.
            cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(POSTGRES_BATCH_BYTES)}
            )

            def run(sql: str, params: list[Any]) -> Generator[pa.RecordBatch, None, None]:
                cursor.execute(sql, parameters=params or None)
                yield from cursor.fetch_record_batch()

            yield run

    @contextmanager
    def _duckdb(self) -> Iterator[Run]:
        import duckdb

        with duckdb.connect(self._parsed.database or ":memory:", read_only=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")

            def run(sql: str, params: list[Any]) -> Generator[pa.RecordBatch, None, None]:
                yield from conn.execute(sql, params).to_arrow_reader(self.source.batch_rows)

            yield run

    @contextmanager
    def _sqlalchemy(self) -> Iterator[Run]:
        with _sqlalchemy_engine(self._url).connect() as conn:
            conn = conn.execution_options(stream_results=True, yield_per=self.source.batch_rows)

            def run(sql: str, params: list[Any]) -> Generator[pa.RecordBatch, None, None]:
                bound: dict[str, Any] = dict(zip(("start", "end"), params, strict=False))
                result = conn.execute(sa.text(sql), bound)
                names = list(result.keys())
                for rows in result.partitions(self.source.batch_rows):
                    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
                    yield pa.RecordBatch.from_arrays(
                        [pa.array(list(values)) for values in columns], names=names
                    )

            yield run


def _missing_driver(exc: BaseException) -> str | None:
    """The module name of a database driver that is not installed, if that is the failure."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


_ENGINES: dict[str, sa.engine.Engine] = {}


def _sqlalchemy_engine(url: str) -> sa.engine.Engine:
    """One pooled engine per URL per process."""
    if url not in _ENGINES:
        _ENGINES[url] = sa.create_engine(url, pool_pre_ping=True)
    return _ENGINES[url]

"""Redis Streams, read a window at a time by entry ID.

An entry's ID is ``<milliseconds>-<sequence>``: the time the server added it, then a counter. A
window ``[start, end)`` placed by that time is the ID range ``start-0 .. (end - 1 ms)-max``,
read in pages with ``XRANGE``; reading it again gives the same entries for as long as the
stream keeps them. With a declared ``time_field``, the range is widened by the allowed lateness
and each entry is kept when its own time falls in the window (an entry whose time is missing or
unreadable stays in the window of its ID, where validation reports it).

A stream trimmed (``MAXLEN``/``MINID``) past a window's start no longer holds all of that
window's entries: such a window fails with the stream's oldest entry named, rather than loading
part of its rows. The URL's password never appears in a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import pyarrow as pa

from ingest_assets.errors import SourceError, SourceUnavailable
from ingest_assets.redaction import register_secret
from ingest_assets.sources.arrivals import Arrival
from ingest_assets.sources.base import Chunk, ReadPlan
from ingest_assets.sources.records import records_batch
from ingest_assets.sources.stream.spec import StreamSource
from ingest_assets.windows import Window

_MAX_SEQUENCE = 18_446_744_073_709_551_615
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)


def millis(moment: datetime) -> int:
    """Epoch milliseconds of a moment (floored)."""
    return (moment - _UNIX) // timedelta(milliseconds=1)


def id_time(entry_id: bytes | str) -> datetime:
    """The time an entry ID says its entry was added."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return _UNIX + timedelta(milliseconds=int(text.split("-", 1)[0]))


def event_time(value: Any) -> datetime | None:
    """An entry's time field as a moment (ISO 8601, naive as UTC, or epoch ms), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _UNIX + timedelta(milliseconds=value)
        except OverflowError:
            return None
    if not isinstance(value, str | bytes):
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return event_time(int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class StreamReader:
    """Reads a dataset's windows from a Redis stream.

    Args:
        source: The dataset's source declaration.
        url: The server's URL (a secret: only its host is ever shown).
        dataset: The dataset's name, for messages.
    """

    def __init__(self, source: StreamSource, url: str, *, dataset: str) -> None:
        self.source = source
        self.dataset = dataset
        self._url = url
        parts = urlsplit(url)
        register_secret(parts.password)
        self.origin = f"redis://{parts.hostname}:{parts.port or 6379}/{source.stream}"
        self._client: Any = None

    def client(self) -> Any:
        """The Redis client (one connection pool per reader)."""
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self._url, socket_timeout=30)
        return self._client

    def plan(self, window: Window) -> ReadPlan:
        """A window reads one stream; its size is not known before reading."""
        return ReadPlan([self.origin], 0)

    def bounds(self, window: Window) -> tuple[str, str]:
        """The ID range of the entries a window may hold."""
        start, end = window.start, window.end
        if self.source.time_field is not None:
            lateness = timedelta(seconds=self.source.lateness_seconds)
            start, end = start - lateness, end + lateness
        return f"{millis(start)}-0", f"{millis(end) - 1}-{_MAX_SEQUENCE}"

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        """Stream the window's entries as Arrow batches, a page of entries each."""
        with self._errors():
            low, high = self.bounds(window)
            self._check_kept(window, low)
            first_row = 1
            while True:
                entries = self.client().xrange(
                    self.source.stream, min=low, max=high, count=self.source.batch_entries
                )
                records = [r for r in (self._record(i, f, window) for i, f in entries) if r]
                if records:
                    yield Chunk(
                        records_batch(records, arrow_types), self.origin, first_row, window.start
                    )
                    first_row += len(records)
                if len(entries) < self.source.batch_entries:
                    return
                low = "(" + entries[-1][0].decode()

    def _record(
        self, entry_id: bytes, fields: dict[bytes, bytes], window: Window
    ) -> dict[str, Any] | None:
        """An entry as a record, or None when its time places it in another window."""
        record = self._as_record(entry_id, fields)
        moment = self._moment(record, entry_id)
        if not window.start <= moment < window.end:
            return None
        return record

    def _moment(self, record: dict[str, Any], entry_id: bytes) -> datetime:
        """The time that places an entry: its time field's, else its ID's.

        A time given as epoch milliseconds is written back as ISO 8601 (the column's text);
        a missing or unreadable one leaves the entry in its ID's window, where validation
        reports it.
        """
        name = self.source.time_field
        if name is None:
            return id_time(entry_id)
        value = record.get(name)
        moment = event_time(value)
        if moment is None:
            return id_time(entry_id)
        if not isinstance(value, str) or value.strip().isdigit():
            record[name] = moment.isoformat()
        return moment

    def _as_record(self, entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
        """An entry's record: its JSON payload field, or its fields; then its ID if asked."""
        source = self.source
        if source.payload_field is not None:
            payload = fields.get(source.payload_field.encode())
            try:
                record = orjson.loads(payload) if payload is not None else {}
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                raise SourceError(
                    f"Dataset '{self.dataset}', {self.origin} entry {entry_id.decode()}: field "
                    f"{source.payload_field!r} is not a JSON object. Nothing was written.",
                    fix="Write each entry's record as a JSON object in that field, or unset "
                    "source.payload_field to read the entry's fields as the record.",
                )
        else:
            record = {
                key.decode(errors="replace"): value.decode(errors="replace")
                for key, value in fields.items()
            }
        if source.id_field is not None:
            record[source.id_field] = entry_id.decode()
        return record

    def describe(self) -> str:
        """What the stream holds: its length and its newest entry (the server must answer)."""
        with self._errors():
            self._check_exists()
            info = self.client().xinfo_stream(self.source.stream)
        last = info.get("last-entry")
        newest = id_time(last[0]).isoformat() if last else "none"
        return f"{info.get('length', 0)} entries; newest added {newest}"

    def arrivals(self, cursor: str | None, limit: int) -> list[Arrival]:
        """Up to ``limit`` entries after the ID ``cursor``, each with the time that places it."""
        with self._errors():
            self._check_exists()
            low = "-" if cursor is None else f"({cursor}"
            entries = self.client().xrange(self.source.stream, min=low, max="+", count=limit)
        return [
            Arrival(entry_id.decode(), self._moment(self._as_record(entry_id, fields), entry_id))
            for entry_id, fields in entries
        ]

    def _check_exists(self) -> None:
        if not self.client().exists(self.source.stream):
            raise SourceError(
                f"Dataset '{self.dataset}': stream {self.source.stream!r} does not exist on "
                f"{self.origin.rsplit('/', 1)[0]}.",
                fix="Check source.stream (the stream's key) and the database in the URL.",
            )

    def _check_kept(self, window: Window, low: str) -> None:
        """Fail a window that starts before what a trimmed stream still keeps."""
        self._check_exists()
        info = self.client().xinfo_stream(self.source.stream)
        first = info.get("first-entry")
        if first is None:
            return
        trimmed = int(info.get("entries-added", info.get("length", 0))) > int(info.get("length", 0))
        oldest = id_time(first[0])
        if trimmed and millis(oldest) > int(low.split("-", 1)[0]):
            raise SourceError(
                f"Dataset '{self.dataset}', window {window}: stream {self.source.stream!r} was "
                f"trimmed; its oldest entry was added at {oldest.isoformat()}, after the window "
                "starts, so part of the window's entries are gone. Nothing was written.",
                fix="Load windows while the stream keeps them (raise its MAXLEN/MINID, or "
                "load more often); older data must come from another copy.",
            )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn Redis's failures into the project's errors, naming the stream, never the URL."""
        import redis

        try:
            yield
        except redis.AuthenticationError as exc:
            raise SourceError(
                f"Dataset '{self.dataset}': {self.origin} refused the credentials: {exc}",
                fix=f"Check the password in {self.source.url_env}.",
            ) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise SourceUnavailable(
                f"Dataset '{self.dataset}': {self.origin} does not answer: {exc}",
                fix=f"Check that the server runs and {self.source.url_env} points at it.",
            ) from None
        except redis.ResponseError as exc:
            raise SourceError(
                f"Dataset '{self.dataset}': {self.origin} answered an error: {exc}",
                fix=f"Check that {self.source.stream!r} is a stream.",
            ) from None

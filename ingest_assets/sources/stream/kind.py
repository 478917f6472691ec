"""The stream source kind: entries of a Redis stream, placed in windows by their time."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ingest_assets.errors import SourceError
from ingest_assets.sources.arrivals import Arrival, ArrivalFeed
from ingest_assets.sources.registry import SOURCE_KINDS, SourceKind
from ingest_assets.sources.stream.spec import StreamSource
from ingest_assets.windows import Window

if TYPE_CHECKING:
    from ingest_assets.sources.stream.reader import StreamReader
    from ingest_assets.spec.dataset import DatasetSpec


class StreamKind(SourceKind[StreamSource]):
    """A Redis stream, read window by window by entry ID."""

    name = "stream"
    model = StreamSource
    template = """        kind: stream
        backend: redis
        url_env: "<VARIABLE holding the server URL, e.g. REDIS_URL>"
        stream: "<the stream's key>"
"""

    def open(self, dataset: DatasetSpec, source: StreamSource, resources: Any) -> StreamReader:
        """A reader on the server the variable names."""
        from ingest_assets.sources.stream.reader import StreamReader

        url = os.environ.get(source.url_env, "")
        if not url:
            raise SourceError(
                f"Dataset '{dataset.name}': {source.url_env}, which holds the stream server's "
                "URL, is not set.",
                fix="Set the variable for the code location (e.g. redis://host:6379/0).",
            )
        return StreamReader(source, url, dataset=dataset.name)

    def label(self, source: StreamSource) -> str:
        """'redis $REDIS_URL events'."""
        return f"{source.backend} ${source.url_env} {source.stream}"

    def tag(self, source: StreamSource) -> str:
        """'redis'."""
        return source.backend

    def metadata(self, source: StreamSource) -> dict[str, Any]:
        """The stream, where its URL comes from, and what places an entry in its window."""
        return {
            "source": source.stream,
            "url_env": source.url_env,
            "time": source.time_field or "entry ID",
        }

    def pool_key(self, source: StreamSource) -> str:
        """One pool per server."""
        return f"stream_{source.url_env}"

    def check(self, dataset: DatasetSpec, source: StreamSource) -> None:
        """Streams are read by window: a snapshot load has no meaning."""
        if dataset.load.mode == "snapshot":
            raise ValueError("load.mode 'snapshot' applies to SQL sources only")

    def probe(
        self, dataset: DatasetSpec, source: StreamSource, resources: Any, window: Window
    ) -> str:
        """The server answers and the stream exists; its length and newest entry."""
        reader = self.open(dataset, source, resources)
        return reader.describe()

    def arrivals(self, dataset: DatasetSpec, source: StreamSource) -> ArrivalFeed:
        """What an arrival sensor follows: the stream's entries after the cursor's ID."""

        def open_log(resources: Any) -> _StreamLog:
            return _StreamLog(self.open(dataset, source, resources))

        return ArrivalFeed(label=self.label(source), resource_keys=set(), open=open_log)


class _StreamLog:
    """A stream's entries by ID, with the time that places each."""

    def __init__(self, reader: StreamReader) -> None:
        self.reader = reader

    def after(self, cursor: str | None, limit: int) -> list[Arrival]:
        return self.reader.arrivals(cursor, limit)


SOURCE_KINDS.register(StreamKind())

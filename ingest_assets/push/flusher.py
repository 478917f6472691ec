"""Journaled records written as files: by size or age, under the dataset's key template.

A flush claims the oldest pending rows of a dataset, writes one file per period of the key
template (and one dead-letter file per day of receipt), named after the journal and the flush
(``push-<journal>-<flush>``), then drops the rows. A flush a crash interrupted is redone at the
next start with the same rows and names, so a file is overwritten with the same records, never
written twice under different names. The landing sensor then loads the partitions as usual.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ingest_assets.push.door import Door
from ingest_assets.push.journal import Claimed, Journal
from ingest_assets.sources.object_store.reader import WritableStore
from ingest_assets.sources.records import records_batch

log = logging.getLogger(__name__)

#: How often the flusher looks at the journal.
TICK_SECONDS = 0.5
#: How often idempotency keys older than their retention are forgotten.
FORGET_SECONDS = 600


class Flusher:
    """Writes the journal's pending records of every dataset as files.

    Args:
        journal: The server's journal.
        doors: The datasets that take pushes, by name.
        resources: What opens their stores (an S3 client for s3:// locations).
    """

    def __init__(self, journal: Journal, doors: dict[str, Door], resources: Any) -> None:
        self.journal = journal
        self.doors = doors
        self._stores: dict[str, tuple[WritableStore, WritableStore]] = {}
        self._resources = resources
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._forgotten = 0.0

    def stores(self, door: Door) -> tuple[WritableStore, WritableStore]:
        """The dataset's landing store and dead-letter store (opened once)."""
        if door.name not in self._stores:
            target = door.target
            self._stores[door.name] = (
                target.open_store(self._resources),
                target.open_dead_letters(self._resources),
            )
        return self._stores[door.name]

    def recover(self) -> int:
        """Redo the flushes a crash (or a store that did not answer) interrupted."""
        unfinished = self.journal.unfinished()
        written = 0
        for dataset, flush in unfinished:
            if dataset in self.doors:
                written += self._write(self.doors[dataset], flush)
        return written

    def tick(self, now: float, *, everything: bool = False) -> int:
        """Flush each dataset whose pending rows are many or old enough; the files written."""
        written = self.recover()
        for door in self.doors.values():
            api = door.api
            while True:
                pending = self.journal.pending(door.name)
                oldest = self.journal.oldest(door.name)
                due = pending >= api.flush_rows or (
                    oldest is not None and (everything or now - oldest >= api.flush_seconds)
                )
                if not due:
                    break
                flush = self.journal.claim(door.name, api.flush_rows)
                if flush is None:
                    break
                written += self._write(door, flush)
            if now - self._forgotten >= FORGET_SECONDS:
                self.journal.forget(door.name, now - api.idempotency_days * 86_400)
        if now - self._forgotten >= FORGET_SECONDS:
            self._forgotten = now
        return written

    def _write(self, door: Door, flush: int) -> int:
        """Write a claimed flush's files, then drop its rows from the journal."""
        landing, dead_letters = self.stores(door)
        name = f"push-{self.journal.instance}-{flush:010d}"
        written = 0
        for group in self.journal.claimed(flush):
            if group.kind == "good":
                key = door.target.key(datetime.fromisoformat(group.period), name)
                landing.put(key, self._encoded(door, group))
            else:
                key = f"{group.period}/dead-{self.journal.instance}-{flush:010d}.ndjson"
                dead_letters.put(key, group.lines)
            written += 1
            log.info("%s: wrote %d records to %s", door.name, group.rows, key)
        self.journal.finish(door.name, flush)
        return written

    def _encoded(self, door: Door, group: Claimed) -> bytes:
        """The file's bytes: the NDJSON lines, or Parquet of the same records."""
        if door.target.format == "ndjson":
            return group.lines
        records = [orjson.loads(line) for line in group.lines.splitlines() if line]
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_batches([records_batch(records, door.types)]), sink)
        return sink.getvalue()

    def start(self) -> None:
        """Redo interrupted flushes, then flush in a background thread until :meth:`stop`."""
        self.recover()
        self._thread = threading.Thread(target=self._run, name="ingest-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick(time.time())
            except Exception:  # a store that does not answer: the rows wait in the journal
                log.exception("writing pushed records failed; they stay journaled and are retried")

    def stop(self) -> None:
        """Stop the thread and write everything still pending (a clean shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.tick(time.time(), everything=True)
        except Exception:
            log.exception("writing pushed records at shutdown failed; they stay journaled")

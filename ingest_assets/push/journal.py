"""The ingest API's journal: what was acknowledged, durable before the answer is sent.

A SQLite database (write-ahead log; a committed transaction survives the process being killed)
holds, per dataset:

* ``pending``: accepted records not yet written as files, as NDJSON lines grouped by the period
  of the key template they land in (``good``), and rejected ones with their reasons (``dead``);
* ``records`` and ``requests``: idempotency keys accepted recently (a record's key field, a
  request's ``Idempotency-Key`` header with the answer it got);
* ``flushes``: writes of pending rows as files. A flush first claims its rows, then writes its
  files under names derived from its id, then deletes the rows; a flush interrupted by a crash
  is redone from the same rows under the same names, so a file is never written twice with
  different contents, and no row is both written and kept.

Every change happens under one lock, in one transaction: a request's records, its keys and its
answer commit together or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    kind TEXT NOT NULL,
    period TEXT NOT NULL,
    rows INTEGER NOT NULL,
    lines BLOB NOT NULL,
    received REAL NOT NULL,
    flush INTEGER
);
CREATE INDEX IF NOT EXISTS pending_by_dataset ON pending (dataset, flush, seq);
CREATE TABLE IF NOT EXISTS records (
    dataset TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (dataset, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    dataset TEXT NOT NULL, key TEXT NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (dataset, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flushes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Accepted:
    """A valid record: its index, its NDJSON line, the period it lands in, its idempotency key."""

    index: int
    line: bytes
    period: str
    key: str | None


@dataclass(frozen=True)
class Answer:
    """What a request was answered: an HTTP status and a JSON body."""

    status: int
    body: bytes
    replayed: bool = False


@dataclass(frozen=True)
class Entry:
    """One request to journal.

    Attributes:
        accepted: Its valid records.
        dead: Its dead letters, as (period, NDJSON line).
        request_key: Its Idempotency-Key.
        answer: Makes its answer from the number of records dropped as duplicates.
    """

    accepted: list[Accepted]
    dead: list[tuple[str, bytes]]
    request_key: str | None
    answer: Callable[[int], Answer]


@dataclass(frozen=True)
class Claimed:
    """Rows of one kind and period claimed by a flush, as NDJSON."""

    kind: str
    period: str
    rows: int
    lines: bytes


class Journal:
    """The journal of one ingest API server.

    Args:
        path: The SQLite file (created if missing).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit reaches the OS before it returns, so a killed process loses nothing
        # (only a power cut may lose the last commits).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        row = self._db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        if row is None:
            instance = uuid.uuid4().hex[:8]
            self._db.execute("INSERT INTO meta VALUES ('instance', ?)", (instance,))
        else:
            instance = row[0]
        #: Names this journal's files apart from another server's.
        self.instance: str = instance
        self._pending: dict[str, int] = dict(
            self._db.execute("SELECT dataset, sum(rows) FROM pending GROUP BY dataset").fetchall()
        )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def pending(self, dataset: str) -> int:
        """Records of the dataset accepted and not yet written as files."""
        return self._pending.get(dataset, 0)

    def oldest(self, dataset: str) -> float | None:
        """When the oldest unclaimed pending row of the dataset was received (epoch seconds)."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(received) FROM pending WHERE dataset = ? AND flush IS NULL",
                (dataset,),
            ).fetchone()
        return row[0] if row else None

    def replay(self, dataset: str, key: str) -> Answer | None:
        """The answer a request with this Idempotency-Key got, if one was accepted."""
        with self._lock:
            return self._replayed(self._db, dataset, key)

    def accept(self, dataset: str, entries: list[Entry]) -> list[Answer]:
        """Journal requests' records and answers, in order, in one transaction.

        A request whose Idempotency-Key was accepted before (or earlier in ``entries``) gets
        that request's answer again and writes nothing.
        """
        now = time.time()
        answers = []
        added = 0
        with self._transaction() as db:
            for entry in entries:
                answer = self._replayed(db, dataset, entry.request_key)
                if answer is None:
                    answer, rows = self._accept_one(db, dataset, entry, now)
                    added += rows
                answers.append(answer)
            # Counted under the lock: the flusher's thread takes rows away concurrently.
            self._pending[dataset] = self._pending.get(dataset, 0) + added
        return answers

    def _replayed(self, db: sqlite3.Connection, dataset: str, key: str | None) -> Answer | None:
        if key is None:
            return None
        row = db.execute(
            "SELECT status, body FROM requests WHERE dataset = ? AND key = ?", (dataset, key)
        ).fetchone()
        return Answer(row[0], row[1], replayed=True) if row else None

    def _accept_one(
        self, db: sqlite3.Connection, dataset: str, entry: Entry, now: float
    ) -> tuple[Answer, int]:
        """Journal one request; its answer and the rows added."""
        fresh = self._fresh(db, dataset, entry.accepted, now)
        groups: dict[tuple[str, str], list[bytes]] = {}
        for record in fresh:
            groups.setdefault(("good", record.period), []).append(record.line)
        for period, line in entry.dead:
            groups.setdefault(("dead", period), []).append(line)
        db.executemany(
            "INSERT INTO pending (dataset, kind, period, rows, lines, received) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (dataset, kind, period, len(lines), b"\n".join(lines) + b"\n", now)
                for (kind, period), lines in groups.items()
            ],
        )
        answer = entry.answer(len(entry.accepted) - len(fresh))
        if entry.request_key is not None:
            db.execute(
                "INSERT INTO requests VALUES (?, ?, ?, ?, ?)",
                (dataset, entry.request_key, answer.status, answer.body, now),
            )
        return answer, len(fresh) + len(entry.dead)

    def _fresh(
        self, db: sqlite3.Connection, dataset: str, accepted: list[Accepted], now: float
    ) -> list[Accepted]:
        """The records whose key was not accepted before (nor earlier in the same request)."""
        keys = [record.key for record in accepted if record.key is not None]
        if not keys:
            return accepted
        seen = {
            row[0]
            for row in db.execute(
                "SELECT key FROM records WHERE dataset = ? AND key IN "
                "(SELECT value FROM json_each(?))",  # one index lookup per key
                (dataset, orjson.dumps(keys)),
            )
        }
        fresh = []
        for record in accepted:
            if record.key is None:
                fresh.append(record)
            elif record.key not in seen:
                seen.add(record.key)
                fresh.append(record)
        new_keys = [record.key for record in fresh if record.key is not None]
        db.executemany(
            "INSERT INTO records VALUES (?, ?, ?)", [(dataset, key, now) for key in new_keys]
        )
        return fresh

    def claim(self, dataset: str, max_rows: int) -> int | None:
        """Claim the oldest pending rows (about ``max_rows``) for a new flush; its id, or None."""
        with self._transaction() as db:
            taken, total = [], 0
            for seq, rows in db.execute(
                "SELECT seq, rows FROM pending WHERE dataset = ? AND flush IS NULL ORDER BY seq",
                (dataset,),
            ):
                if taken and total + rows > max_rows:
                    break
                taken.append(seq)
                total += rows
            if not taken:
                return None
            cursor = db.execute("INSERT INTO flushes (dataset) VALUES (?)", (dataset,))
            flush = cursor.lastrowid
            assert flush is not None
            db.execute(
                "UPDATE pending SET flush = ? WHERE dataset = ? AND flush IS NULL AND seq <= ?",
                (flush, dataset, taken[-1]),
            )
        return flush

    def claimed(self, flush: int) -> Iterator[Claimed]:
        """A flush's rows, one group per kind and period, in the order they were received."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, period, rows, lines FROM pending WHERE flush = ? ORDER BY seq",
                (flush,),
            ).fetchall()
        groups: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
        for kind, period, count, lines in rows:
            groups.setdefault((kind, period), []).append((count, lines))
        for (kind, period), parts in groups.items():
            yield Claimed(kind, period, sum(n for n, _ in parts), b"".join(b for _, b in parts))

    def finish(self, dataset: str, flush: int) -> None:
        """A flush's files are written: drop its rows."""
        with self._transaction() as db:
            row = db.execute("SELECT sum(rows) FROM pending WHERE flush = ?", (flush,)).fetchone()
            db.execute("DELETE FROM pending WHERE flush = ?", (flush,))
            db.execute("UPDATE flushes SET done = 1 WHERE id = ?", (flush,))
            self._pending[dataset] = max(0, self._pending.get(dataset, 0) - int(row[0] or 0))

    def unfinished(self) -> list[tuple[str, int]]:
        """Flushes a crash interrupted, as (dataset, flush id), oldest first."""
        with self._lock:
            return self._db.execute(
                "SELECT dataset, id FROM flushes WHERE done = 0 ORDER BY id"
            ).fetchall()

    def forget(self, dataset: str, before: float) -> None:
        """Forget idempotency keys accepted before ``before`` (epoch seconds)."""
        with self._transaction() as db:
            db.execute("DELETE FROM records WHERE dataset = ? AND at < ?", (dataset, before))
            db.execute("DELETE FROM requests WHERE dataset = ? AND at < ?", (dataset, before))
            db.execute("DELETE FROM flushes WHERE done = 1")

"""One thread judges and journals every pushed request; concurrent ones as one batch.

Requests wait in a queue; the intake thread takes every request waiting (up to a number of
bytes), judges each dataset's share as one batch with the dataset's validator, and journals them
in one transaction (a group commit). A lone request is handled at once; under load, many small
requests share validation's fixed costs and one commit, and one thread does the CPU work, so
the event loop keeps answering and threads do not contend for the interpreter.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from ingest_assets.push.door import Door, Pushed, Refused
from ingest_assets.push.journal import Answer, Journal

log = logging.getLogger(__name__)

#: Bytes of request bodies judged together at most.
GROUP_BYTES = 4 * 2**20


@dataclass(frozen=True)
class _Waiting:
    door: Door
    request: Pushed
    future: Future[Answer]


class Intake:
    """The thread that judges and journals pushed requests.

    Args:
        journal: Where accepted records are kept.
        group_bytes: Bytes of bodies judged together at most.
    """

    def __init__(self, journal: Journal, group_bytes: int = GROUP_BYTES) -> None:
        self.journal = journal
        self.group_bytes = group_bytes
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, door: Door, request: Pushed) -> Future[Answer]:
        """Queue a request; its future gives the answer, or raises :class:`Refused`."""
        future: Future[Answer] = Future()
        self._queue.put(_Waiting(door, request, future))
        return future

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="ingest-intake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Handle what is queued, then stop the thread."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, size, last = [first], len(first.request.body), False
            while size < self.group_bytes:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    last = True
                    break
                group.append(item)
                size += len(item.request.body)
            self._handle(group)
            if last:
                return

    def _handle(self, group: list[_Waiting]) -> None:
        """Judge and journal a group, a dataset at a time; settle every request's future."""
        doors: dict[str, list[_Waiting]] = {}
        for waiting in group:
            doors.setdefault(waiting.door.name, []).append(waiting)
        for share in doors.values():
            try:
                outcomes = share[0].door.take([w.request for w in share], self.journal)
            except Exception as exc:  # nothing of this share was journaled
                log.exception("%s: pushed records could not be journaled", share[0].door.name)
                for waiting in share:
                    waiting.future.set_exception(exc)
                continue
            for waiting, outcome in zip(share, outcomes, strict=True):
                if isinstance(outcome, Refused):
                    waiting.future.set_exception(outcome)
                else:
                    waiting.future.set_result(outcome)

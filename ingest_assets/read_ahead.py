"""Reading on a thread of its own while the rows read before are validated and staged.

Validation runs on one core; without this the source's work (listing, download, parsing,
fetching from a database) would wait for it and leave the other core idle. A :class:`Pump`
runs a source's iterator on a thread and hands its items over through a bounded queue, so
memory stays that of a few batches. :class:`ReadAhead` reads the next window of a range (files)
while the current one is validated; ``RangeReader`` pumps a range's one stream (SQL, REST).

CPU time stays true per window: each item carries the CPU time its thread spent producing it,
and the window that consumes the item counts it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ingest_assets.sources.base import Chunk, ReadPlan, SourceReader
from ingest_assets.windows import Window

#: Items produced ahead that wait for the consumer at most.
AHEAD_ITEMS = 2
#: How often a producer blocked on a full queue looks whether it was called off.
_POLL_SECONDS = 0.05


@dataclass
class _Failed:
    """What the producer raised, raised again where its items are consumed."""

    error: BaseException


_END = object()


class Pump:
    """An iterator run on a thread; its items handed over in order through a bounded queue.

    Args:
        produce: Makes the iterator (called on the thread).
        name: The thread's name.
    """

    def __init__(self, produce: Callable[[], Iterator[Any]], name: str) -> None:
        self._produce = produce
        self._queue: queue.Queue[tuple[object, float]] = queue.Queue(maxsize=AHEAD_ITEMS)
        self._stop = threading.Event()
        self._clock: int | None = None
        self._spent = 0.0  # the thread's CPU time once it ended
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def cpu_now(self) -> float:
        """The CPU time the thread has spent so far (all of it once it ended)."""
        clock = self._clock
        if clock is not None:
            try:
                return time.clock_gettime(clock)
            except OSError:  # ending: _spent is about to hold its time
                pass
        return self._spent

    def _run(self) -> None:
        self._clock = time.pthread_getcpuclockid(threading.get_ident())
        items: Iterator[Any] | None = None
        try:
            items = self._produce()
            before = time.thread_time()
            for item in items:
                after = time.thread_time()
                if not self._put(item, after - before):
                    return
                before = time.thread_time()
            self._put(_END, time.thread_time() - before)
        except BaseException as exc:  # raised where the items are consumed
            self._put(_Failed(exc), 0.0)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator called off closes its files and connections
            self._spent = time.thread_time()
            self._clock = None

    def _put(self, item: object, cpu_seconds: float) -> bool:
        """Hand an item over; False when the pump was called off meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put((item, cpu_seconds), timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def items(self) -> Iterator[tuple[Any, float]]:
        """The items in order, each with the CPU time spent producing it; then the end.

        What the iterator raised is raised at the point it raised.
        """
        while True:
            item, cpu_seconds = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item, cpu_seconds

    def cancel(self) -> None:
        """Call the pump off and wait for its thread to end."""
        self._stop.set()
        self._thread.join()


class PumpedCpu:
    """CPU time of a reader's pumps: spent so far, and counted per window consuming it."""

    def __init__(self) -> None:
        self.pumps: list[Pump] = []
        #: CPU time of the items each window consumed, by window start.
        self.consumed: dict[Window, float] = {}

    def spent(self) -> float:
        """CPU time every pump of the reader has spent so far."""
        return sum(pump.cpu_now() for pump in self.pumps)

    def count(self, window: Window, cpu_seconds: float) -> None:
        """An item of ``window`` was consumed that took ``cpu_seconds`` to produce."""
        self.consumed[window] = self.consumed.get(window, 0.0) + cpu_seconds


class ReadAhead:
    """A source read window by window, each next window's read started ahead on a thread.

    Windows must be read in the order given; a window read again (after its stream broke
    off) or out of order is read directly.

    Args:
        reader: The source.
        windows: The range's windows, oldest first.
    """

    def __init__(self, reader: SourceReader, windows: list[Window]) -> None:
        self._reader = reader
        self._windows = windows
        self._ahead: tuple[Window, Pump, Iterator[tuple[Any, float]]] | None = None
        self.cpu = PumpedCpu()

    def plan(self, window: Window) -> ReadPlan:
        """What the window reads: listed ahead when its read started ahead."""
        if self._ahead is not None and self._ahead[0] == window:
            plan, cpu_seconds = next(self._ahead[2])  # the pump's first item
            self.cpu.count(window, cpu_seconds)
            return plan
        self.close()
        return self._reader.plan(window)

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        """The window's chunks; once they are all read, the next window's read starts."""
        ahead, self._ahead = self._ahead, None
        try:
            if ahead is not None and ahead[0] == window:
                for chunk, cpu_seconds in ahead[2]:
                    self.cpu.count(window, cpu_seconds)
                    yield chunk
            else:
                if ahead is not None:
                    ahead[1].cancel()
                    ahead = None
                yield from self._reader.read(window, arrow_types)
        finally:
            if ahead is not None:
                ahead[1].cancel()
        if window in self._windows[:-1]:
            self._start(self._windows[self._windows.index(window) + 1], arrow_types)

    def _start(self, window: Window, arrow_types: dict[str, pa.DataType]) -> None:
        def produce() -> Iterator[Any]:
            yield self._reader.plan(window)
            yield from self._reader.read(window, arrow_types)

        pump = Pump(produce, "ingest-read-ahead")
        self.cpu.pumps.append(pump)
        self._ahead = (window, pump, pump.items())

    def close(self) -> None:
        """Call off a read ahead that nobody will consume."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[1].cancel()

"""What every source gives the engine: a plan of what a window reads, then the rows as chunks."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy
import pyarrow as pa

from ingest_assets.windows import Window


@dataclass(frozen=True)
class Chunk:
    """A record batch with where it came from.

    Attributes:
        batch: The rows.
        origin: The object URI or table the rows were read from (no secrets).
        first_row: The line (row, for Parquet) of the batch's first row in its origin, 1-based,
            as parse errors number lines (a CSV's header counts).
        period_start: Start of the period the rows were read for; stored with each row so that a
            window's rows can be replaced exactly.
    """

    batch: pa.RecordBatch
    origin: str
    first_row: int
    period_start: datetime


@dataclass(frozen=True)
class Origins:
    """Where each row of a batch came from: runs of consecutive rows, each from one origin.

    A batch may gather several chunks (pages of an API, small files), so that validation and
    staging pay their fixed costs once per many rows; every row still reports its own object and
    row number.

    Attributes:
        offsets: Position in the batch of each run's first row, ascending, starting at 0.
        origins: Each run's object URI or table.
        first_rows: Each run's line (row) number of its first row within its origin.
        rows: The batch's number of rows.
    """

    offsets: Sequence[int]
    origins: Sequence[str]
    first_rows: Sequence[int]
    rows: int

    @classmethod
    def single(cls, origin: str, rows: int, first_row: int = 1) -> Origins:
        """All ``rows`` rows from one origin, numbered from ``first_row``."""
        return cls([0], [origin], [first_row], rows)

    @property
    def names(self) -> str:
        """Every origin of the batch, once each, for failures that concern the whole batch."""
        return ", ".join(dict.fromkeys(self.origins))

    def locate(self, index: int) -> tuple[str, int]:
        """The origin and row number of the batch's row ``index`` (0-based)."""
        run = bisect_right(self.offsets, index) - 1
        return self.origins[run], self.first_rows[run] + index - self.offsets[run]

    def column(self, positions: pa.Array | None = None) -> pa.Array:
        """Each row's origin as a string column: of every row, or of the rows at ``positions``."""
        if len(self.origins) == 1:
            count = self.rows if positions is None else len(positions)
            return pa.repeat(pa.scalar(self.origins[0]), count)
        lengths = numpy.diff([*self.offsets, self.rows])
        runs = pa.array(numpy.repeat(numpy.arange(len(self.origins), dtype=numpy.int32), lengths))
        if positions is not None:
            runs = runs.take(positions)
        return pa.DictionaryArray.from_arrays(runs, pa.array(self.origins, pa.string())).cast(
            pa.string()
        )


@dataclass
class ReadPlan:
    """What a window will read: origins (object URIs or a table) and their size in bytes."""

    origins: list[str] = field(default_factory=list)
    bytes: int = 0


class SourceReader(Protocol):
    """A source, opened for one dataset."""

    def plan(self, window: Window) -> ReadPlan:
        """List what the window will read; raise ``SourceError`` when there is nothing to read."""
        ...

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        """Stream the window's rows; ``arrow_types`` are the declared column types."""
        ...


@runtime_checkable
class Sessions(Protocol):
    """A reader that can hold one connection for a whole run (a database session)."""

    def session(self) -> AbstractContextManager[None]:
        """Hold the connection until the block ends; reads inside it share it."""
        ...


@runtime_checkable
class RangeReads(SourceReader, Protocol):
    """A reader that reads a range of windows in one pass, its chunks window after window."""

    def read_range(
        self, windows: list[Window], arrow_types: dict[str, pa.DataType]
    ) -> Iterator[Chunk]:
        """Stream the rows of every window, oldest first, each chunk tagged with its period."""
        ...


@runtime_checkable
class Counts(Protocol):
    """A reader that can count a window's rows at the source (for reconciliation)."""

    def count(self, window: Window) -> int:
        """The rows the source holds for ``window``."""
        ...

    def placing_column(self) -> str | None:
        """The column whose values place a row in its window (rows are counted by it)."""
        ...

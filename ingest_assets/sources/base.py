"""What every source gives the engine: a plan of what a window reads, then the rows as chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from ingest_assets.windows import Window


@dataclass(frozen=True)
class Chunk:
    """A record batch with where it came from.

    Attributes:
        batch: The rows.
        origin: The object URI or table the rows were read from (no secrets).
        first_row: 1-based row number of the batch's first row within its origin.
        period_start: Start of the period the rows were read for; stored with each row so that a
            window's rows can be replaced exactly.
    """

    batch: pa.RecordBatch
    origin: str
    first_row: int
    period_start: datetime


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

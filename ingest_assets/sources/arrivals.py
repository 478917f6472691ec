"""Sources whose entries arrive in order (streams): what an arrival sensor reads on from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ingest_assets.spec.dataset import DatasetSpec


@dataclass(frozen=True)
class Arrival:
    """One entry: its ID (ordered: every later entry's is greater) and the time that places it."""

    entry_id: str
    moment: datetime


class ArrivalLog(Protocol):
    """The entries of a source in the order they arrived."""

    def after(self, cursor: str | None, limit: int) -> list[Arrival]:
        """Up to ``limit`` entries after the entry ``cursor`` (from the first when None)."""
        ...


@dataclass(frozen=True)
class ArrivalFeed:
    """What an arrival sensor reads for one dataset.

    Attributes:
        label: The source, for messages.
        resource_keys: The resources the log is reached through.
        open: Opens the log from a sensor's resources.
    """

    label: str
    resource_keys: set[str]
    open: Callable[[Any], ArrivalLog]


@runtime_checkable
class Arrives(Protocol):
    """A source kind whose entries arrive in order, so that an arrival sensor can follow it."""

    def arrivals(self, dataset: DatasetSpec, source: Any) -> ArrivalFeed:
        """The feed of a dataset of this kind."""
        ...

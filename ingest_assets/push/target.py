"""Where a dataset's pushed records land: files under its source's key template."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from ingest_assets.sources.object_store.reader import WritableStore, render_key_pattern

if TYPE_CHECKING:
    from ingest_assets.spec.dataset import DatasetSpec

#: The formats pushed records are written in.
PushFormat = Literal["ndjson", "parquet"]


@dataclass(frozen=True)
class PushTarget:
    """Where one dataset's pushed records are written, and its dead letters.

    Attributes:
        location: The landing location, for messages.
        key_template: The source's key template; its one ``*`` becomes each file's name.
        format: The files' format (the source's).
        granularity: The finest period the template pins down (a file holds one period).
        timezone: The zone the template's periods follow (the partitioning's).
        dead_letters: The dead letters' location, for messages.
        open_store: Opens the landing store from resources.
        open_dead_letters: Opens the dead letters' store from resources.
    """

    location: str
    key_template: str
    format: PushFormat
    granularity: str
    timezone: str
    dead_letters: str
    open_store: Callable[[Any], WritableStore]
    open_dead_letters: Callable[[Any], WritableStore]

    def period_of(self, moment: datetime) -> datetime:
        """The start of the template's period that holds ``moment`` (in the template's zone)."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        local = local.replace(minute=0, second=0, microsecond=0)
        if self.granularity != "hourly":
            local = local.replace(hour=0)
        if self.granularity in ("monthly", "yearly"):
            local = local.replace(day=1)
        if self.granularity == "yearly":
            local = local.replace(month=1)
        return local

    def key(self, period: datetime, name: str) -> str:
        """The key of a file named ``name`` (without extension) in the period ``period``."""
        return render_key_pattern(self.key_template, period).replace("*", name, 1)


@runtime_checkable
class TakesPushes(Protocol):
    """A source kind whose files pushed records can be written as (object stores)."""

    def push_target(self, dataset: DatasetSpec, source: Any) -> PushTarget:
        """Where a dataset of this kind lands pushed records.

        Raises:
            ValueError: the source cannot take them (its key template or format), with the fix.
        """
        ...

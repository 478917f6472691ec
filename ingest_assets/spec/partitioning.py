"""How a dataset is cut in time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from ingest_assets.spec.base import Cadence, Strict


class Partitioning(Strict):
    """How the dataset is cut into time partitions. Windows are half-open [start, end)."""

    cadence: Cadence = Field(description="hourly, daily, weekly or monthly.")
    start: str = Field(description="First partition, ISO date or datetime, e.g. '2026-01-01'.")
    timezone: str = Field(
        default="UTC", description="IANA time zone the partition boundaries follow."
    )
    end_offset: int = Field(
        default=0,
        description="Partitions to extend past the last closed one (1 = include the open one).",
    )

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO date or datetime such as '2026-01-01'"
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as 'UTC'") from None
        return value

    @property
    def start_datetime(self) -> datetime:
        """The first partition's start as a naive datetime in the partition time zone."""
        return datetime.fromisoformat(self.start).replace(tzinfo=None)

"""Time windows: the half-open ``[start, end)`` span one load covers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` with time-zone-aware bounds.

    Attributes:
        start: First instant inside the window.
        end: First instant after the window.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be time-zone aware")
        if self.end <= self.start:
            raise ValueError(f"empty window: end {self.end} is not after start {self.start}")

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    def periods(self, granularity: str) -> Iterator[datetime]:
        """Yield the start of every calendar period of ``granularity`` inside the window.

        Periods follow the window's time zone (a day is a local calendar day); hours are stepped
        in UTC so that daylight-saving changes neither skip nor repeat an hour.
        """
        current = self.start
        while current < self.end:
            yield current
            current = _next_period(current, granularity)


def _next_period(moment: datetime, granularity: str) -> datetime:
    tz = moment.tzinfo
    assert tz is not None
    if granularity == "hourly":
        return (moment.astimezone(UTC) + timedelta(hours=1)).astimezone(tz)
    naive = moment.replace(tzinfo=None)
    if granularity == "daily":
        naive = naive.replace(hour=0, minute=0) + timedelta(days=1)
    elif granularity == "monthly":
        naive = (naive.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
    elif granularity == "yearly":
        naive = naive.replace(year=naive.year + 1, month=1, day=1, hour=0, minute=0)
    else:
        raise ValueError(f"unknown granularity {granularity!r}")
    return naive.replace(tzinfo=tz)

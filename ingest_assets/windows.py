"""Time windows: the half-open ``[start, end)`` span one load covers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


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
        if self.end.timestamp() <= self.start.timestamp():
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


#: How Dagster writes the partition key of each cadence (keys are local times of the dataset's
#: time zone).
KEY_FORMATS = {
    "hourly": "%Y-%m-%d-%H:%M",
    "daily": "%Y-%m-%d",
    "weekly": "%Y-%m-%d",
    "monthly": "%Y-%m-%d",
}


def window_for(key: str, cadence: str, timezone: str) -> Window:
    """The window of one partition key, as Dagster's time partitions compute it.

    Daily, weekly and monthly windows run from local midnight to local midnight (a day may have
    23 or 25 hours); hourly windows are 60 minutes of absolute time. Weekly partitions start on
    Sunday, monthly ones on the 1st.

    Raises:
        ValueError: the key is not a partition key of the cadence.
    """
    tz = ZoneInfo(timezone)
    try:
        naive = datetime.strptime(key, KEY_FORMATS[cadence])
        start = naive.replace(tzinfo=tz)
    except (KeyError, ValueError):
        try:  # the second of two equal local hours (a fall-back) carries its UTC offset
            start = datetime.strptime(key, KEY_FORMATS[cadence] + "%z").astimezone(tz)
            naive = start.replace(tzinfo=None)
        except (KeyError, ValueError):
            raise ValueError(
                f"{key!r} is not a {cadence} partition key (format {KEY_FORMATS.get(cadence)})"
            ) from None
    misaligned = {
        "weekly": naive.isoweekday() != 7,
        "monthly": naive.day != 1,
    }.get(cadence, False)
    if misaligned:
        raise ValueError(f"{key!r} does not start a {cadence} partition")
    if cadence == "hourly":
        return Window(start, (start.astimezone(UTC) + timedelta(hours=1)).astimezone(tz))
    if cadence == "weekly":
        return Window(start, (naive + timedelta(days=7)).replace(tzinfo=tz))
    return Window(start, _next_period(start, cadence))

"""Dagster time partitions of a dataset, and the moments that follow from them."""

from datetime import datetime

import dagster as dg

from ingest_assets.spec import Partitioning

_PARTITIONS = {
    "hourly": dg.HourlyPartitionsDefinition,
    "daily": dg.DailyPartitionsDefinition,
    "weekly": dg.WeeklyPartitionsDefinition,
    "monthly": dg.MonthlyPartitionsDefinition,
}


def partitions_def(partitioning: Partitioning) -> dg.TimeWindowPartitionsDefinition:
    """The Dagster partitions of a dataset's partitioning."""
    return _PARTITIONS[partitioning.cadence](
        start_date=partitioning.start_datetime,
        timezone=partitioning.timezone,
        end_offset=partitioning.end_offset,
    )


def cron_after_close(cadence: str, minutes: int) -> str:
    """A cron expression that fires ``minutes`` after each partition boundary.

    Offsets longer than a period keep their time of day (and weekday or day of month): a daily
    partition due 26 hours after closing is due at 02:00. Weekly partitions start on Sunday.
    """
    days, hour, minute = minutes // 1440, minutes // 60 % 24, minutes % 60
    return {
        "hourly": f"{minute} * * * *",
        "daily": f"{minute} {hour} * * *",
        "weekly": f"{minute} {hour} * * {days % 7}",
        "monthly": f"{minute} {hour} {min(1 + days, 28)} * *",
    }[cadence]


def latest_closed_partition(
    partitions: dg.TimeWindowPartitionsDefinition, moment: datetime
) -> str | None:
    """The key of the last partition whose window ended at or before ``moment``."""
    if moment.timestamp() < partitions.start.timestamp():
        return None
    current = partitions.get_partition_key_for_timestamp(moment.timestamp())
    start = partitions.time_window_for_partition_key(current).start.timestamp()
    if start - 1 < partitions.start.timestamp():
        return None
    return partitions.get_partition_key_for_timestamp(start - 1)

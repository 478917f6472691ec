"""Schedules: each tick of a dataset's schedule requests the partition that just closed."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ingest_assets.spec import DatasetSpec, ScheduleTrigger
from ingest_assets.triggers.partitions import (
    cron_after_close,
    latest_closed_partition,
    partitions_def,
)


def dataset_job(spec: DatasetSpec, asset_key: dg.AssetKey | None = None) -> Any:
    """The job that loads one dataset (its asset and checks), at the dataset's priority."""
    return dg.define_asset_job(
        f"{spec.name}_job",
        selection=[asset_key or dg.AssetKey(spec.name)],
        tags={"dagster/priority": str(spec.priority)},
        description=f"Loads partitions of {spec.name}.",
    )


def dataset_schedule(
    spec: DatasetSpec, trigger: ScheduleTrigger, asset_key: dg.AssetKey | None = None
) -> dg.ScheduleDefinition:
    """The schedule of a dataset with ``trigger: {type: schedule}``.

    Each tick loads the partition that just closed (its window ended ``delay`` ago), or with
    ``cron`` the latest closed partition at each tick.
    """
    status = (
        dg.DefaultScheduleStatus.RUNNING if trigger.running else dg.DefaultScheduleStatus.STOPPED
    )
    cadence = spec.partitioning.cadence
    cron = trigger.cron or cron_after_close(cadence, trigger.delay_minutes)
    partitions = partitions_def(spec.partitioning)

    @dg.schedule(
        name=f"{spec.name}_schedule",
        description=f"Loads each {cadence} partition of {spec.name} once it has closed.",
        cron_schedule=cron,
        execution_timezone=spec.partitioning.timezone,
        job=dataset_job(spec, asset_key),
        default_status=status,
    )
    def _tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        moment = context.scheduled_execution_time or datetime.now(UTC)
        key = latest_closed_partition(partitions, moment)
        if key is None:
            return dg.SkipReason(f"no partition of {spec.name} has closed yet")
        return dg.RunRequest(
            run_key=key, partition_key=key, tags={"dagster/priority": str(spec.priority)}
        )

    return _tick

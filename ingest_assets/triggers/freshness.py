"""Freshness SLAs: Dagster's FreshnessPolicy on the asset, and what it lacks for partitions.

Dagster's freshness policies judge an asset by its latest materialization, whichever partition
that was, so backfilling an old day makes a late dataset look fresh. The ``timeliness`` check
judges the partitions themselves: the latest partition whose deadline has passed must have
landed (else fail), and a closed partition still missing past its warning point warns. It runs
on its own schedule and shows in the UI like any check.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from ingest_assets.sla import PartitionTimeliness, Timeliness, judge, partition_timeliness
from ingest_assets.spec import DatasetSpec, SlaSpec
from ingest_assets.triggers.partitions import (
    cron_after_close,
    latest_closed_partition,
    partitions_def,
)

TIMELINESS_CHECK = "timeliness"
_MAX_JUDGED = 200  # partitions looked at, at most (hourly data with a week-long deadline)


def freshness_policy(spec: DatasetSpec) -> dg.FreshnessPolicy | None:
    """The asset's freshness policy: materialized between a partition's close and its deadline."""
    sla = spec.sla
    if sla is None:
        return None
    return dg.FreshnessPolicy.cron(
        deadline_cron=cron_after_close(spec.partitioning.cadence, sla.deadline_minutes),
        lower_bound_delta=timedelta(minutes=sla.deadline_minutes),
        timezone=spec.partitioning.timezone,
    )


def closed_partitions(
    partitions: dg.TimeWindowPartitionsDefinition, now: datetime, sla: SlaSpec
) -> list[tuple[str, datetime]]:
    """The closed partitions that can matter at ``now``, latest first, with their close times."""
    found: list[tuple[str, datetime]] = []
    key = latest_closed_partition(partitions, now)
    while key is not None and len(found) < _MAX_JUDGED:
        window = partitions.time_window_for_partition_key(key)
        found.append((key, window.end))
        if window.end + timedelta(minutes=sla.deadline_minutes) <= now:
            break
        key = latest_closed_partition(partitions, window.start)
    return found


def missed_partitions(
    spec: DatasetSpec,
    instance: dg.DagsterInstance,
    now: datetime,
    after: datetime | None,
    *,
    asset_key: dg.AssetKey | None = None,
) -> tuple[list[PartitionTimeliness], datetime | None]:
    """Every partition that closed after ``after`` and is past its deadline without landing.

    Args:
        spec: A dataset with an SLA.
        instance: Where materializations are recorded.
        now: The moment of judgement.
        after: Partitions that closed at or before this moment were judged already (None:
            look back as far as ``_MAX_JUDGED`` partitions).
        asset_key: The dataset's asset (default: its name).

    Returns:
        The missed partitions, oldest first, and the close time of the latest partition past
        its deadline (judged for good from now on), or ``after`` when there is none.
    """
    sla = spec.sla
    assert sla is not None
    partitions = partitions_def(spec.partitioning)
    due: list[tuple[str, datetime]] = []
    key = latest_closed_partition(partitions, now)
    while key is not None and len(due) < _MAX_JUDGED:
        window = partitions.time_window_for_partition_key(key)
        if after is not None and window.end <= after:
            break
        if window.end + timedelta(minutes=sla.deadline_minutes) <= now:
            due.append((key, window.end))
        key = latest_closed_partition(partitions, window.start)
    landed = landed_at(instance, asset_key or dg.AssetKey(spec.name), [key for key, _ in due])
    missed = [
        verdict
        for key, closed_at in reversed(due)
        if (verdict := partition_timeliness(key, closed_at, landed.get(key), now, sla)).status
        == "fail"
    ]
    return missed, (due[0][1] if due else after)


def landed_at(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str]
) -> dict[str, datetime]:
    """When each of ``partitions`` was first materialized."""
    if not partitions:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions),
        limit=10_000,
        ascending=True,
    ).records
    first: dict[str, datetime] = {}
    for record in records:
        if record.partition_key is not None and record.partition_key not in first:
            first[record.partition_key] = datetime.fromtimestamp(record.timestamp, UTC)
    return first


def evaluate_timeliness(
    spec: DatasetSpec,
    instance: dg.DagsterInstance,
    now: datetime,
    *,
    asset_key: dg.AssetKey | None = None,
) -> Timeliness:
    """A dataset's timeliness at ``now``, from the materializations the instance recorded."""
    assert spec.sla is not None
    closed = closed_partitions(partitions_def(spec.partitioning), now, spec.sla)
    asset_key = asset_key or dg.AssetKey(spec.name)
    landed = landed_at(instance, asset_key, [key for key, _ in closed])
    return judge(closed, landed, now, spec.sla)


def _check_result(
    spec: DatasetSpec, timeliness: Timeliness, asset_key: dg.AssetKey
) -> dg.AssetCheckResult:
    worst = timeliness.worst
    metadata: dict[str, Any] = {
        "status": timeliness.status,
        "partitions": dg.MetadataValue.json(
            [
                {
                    "partition": p.partition,
                    "status": p.status,
                    "due_at": p.due_at.isoformat(),
                    "landed_at": p.landed_at.isoformat() if p.landed_at else None,
                }
                for p in timeliness.partitions
            ]
        ),
    }
    if worst is not None:
        metadata.update(
            partition=worst.partition,
            due_at=worst.due_at.isoformat(),
            landed_at=worst.landed_at.isoformat() if worst.landed_at else "not landed",
        )
    return dg.AssetCheckResult(
        check_name=TIMELINESS_CHECK,
        asset_key=asset_key,
        passed=timeliness.status == "pass",
        severity=dg.AssetCheckSeverity.WARN
        if timeliness.status == "warn"
        else dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=timeliness.describe(),
    )


def timeliness_check(
    spec: DatasetSpec, asset_key: dg.AssetKey | None = None
) -> dg.AssetChecksDefinition:
    """The ``timeliness`` check of a dataset with an SLA (on its asset, by default its name)."""
    asset_key = asset_key or dg.AssetKey(spec.name)
    sla = spec.sla
    assert sla is not None
    warn = f", warns from {sla.warn_after}" if sla.warn_after else ""

    description = (
        f"Each partition lands within {sla.deadline} (HH:MM) of closing{warn}; fails while the "
        "latest partition past its deadline is missing. Judged on its own schedule, not in loads."
    )

    @dg.multi_asset_check(
        specs=[dg.AssetCheckSpec(TIMELINESS_CHECK, asset=asset_key, description=description)],
        name=f"{spec.name}_{TIMELINESS_CHECK}",
        can_subset=True,
    )
    def _timeliness(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        if asset_key in (context.run.asset_selection or ()):
            # A load run (a manual materialization, a backfill) is not the moment to judge
            # deadlines: the check's own schedule does.
            context.log.info(
                "%s: timeliness is judged by its own schedule, not in a load run", spec.name
            )
            return
        timeliness = evaluate_timeliness(
            spec, context.instance, datetime.now(UTC), asset_key=asset_key
        )
        yield _check_result(spec, timeliness, asset_key)

    return _timeliness


def timeliness_schedule(
    spec: DatasetSpec, asset_key: dg.AssetKey | None = None
) -> dg.ScheduleDefinition:
    """The schedule that runs a dataset's timeliness check."""
    asset_key = asset_key or dg.AssetKey(spec.name)
    sla = spec.sla
    assert sla is not None
    job = dg.define_asset_job(
        f"{spec.name}_timeliness_job",
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(asset_key, TIMELINESS_CHECK)),
        description=f"Runs the timeliness check of {spec.name}.",
    )
    return dg.ScheduleDefinition(
        name=f"{spec.name}_timeliness_schedule",
        cron_schedule=sla.check_cron,
        execution_timezone=spec.partitioning.timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if sla.running
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Checks that the partitions of {spec.name} land by their deadline.",
    )

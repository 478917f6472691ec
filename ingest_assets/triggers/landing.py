"""The landing sensor: objects that land in a dataset's store request runs of their partitions."""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from ingest_assets.sources.object_store.landing import (
    LandingCursor,
    LandingFeed,
    LandingRequest,
    LandingScan,
    Lands,
    scan_landing,
)
from ingest_assets.sources.object_store.reader import (
    KeyPeriods,
    ObjectStore,
    literal_prefix,
    store_errors,
)
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec, LandingTrigger
from ingest_assets.triggers.partitions import partitions_def
from ingest_assets.triggers.schedules import dataset_job


class LandingWatch:
    """What one tick of a dataset's landing sensor does, without Dagster's sensor machinery.

    Args:
        spec: The dataset (of a source kind whose data lands as objects).
        trigger: Its landing trigger.
    """

    def __init__(self, spec: DatasetSpec, trigger: LandingTrigger) -> None:
        kind = SOURCE_KINDS.of(spec.source)
        if not isinstance(kind, Lands):  # the spec refuses it: a defect if it gets here
            raise TypeError(f"{kind.name} sources do not land as objects")
        self.spec = spec
        self.feed: LandingFeed = kind.landing(spec, spec.source)
        self.trigger = trigger
        self.partitions = partitions_def(spec.partitioning)
        self.periods = KeyPeriods(self.feed.key_template, spec.partitioning.timezone)
        self.prefix = literal_prefix(self.feed.key_template)

    def place(self, key: str) -> str | None:
        """The partition an object key belongs to, or None."""
        moment = self.periods.period_of(key)
        if moment is None or moment < self.partitions.start:
            return None
        return self.partitions.get_partition_key_for_timestamp(moment.timestamp())

    def scan(self, store: ObjectStore, cursor: str | None, now: float) -> LandingScan:
        """One tick: continue the listing from ``cursor`` at time ``now``."""
        with dg.partition_loading_context(effective_dt=datetime.fromtimestamp(now, UTC)):
            last = self.partitions.get_last_partition_key()

            def ready(partition: str) -> bool:
                return last is not None and not self.partitions.less_than(last, partition)

            with store_errors(self.spec.name, self.feed.location):
                return scan_landing(
                    store,
                    self.prefix,
                    LandingCursor.loads(cursor, now=now),
                    place=self.place,
                    ready=ready,
                    now=now,
                    settle=self.trigger.settle_seconds,
                    lookback=self.trigger.lookback_seconds,
                    max_keys=self.trigger.max_keys_per_tick,
                    max_seconds=self.trigger.max_seconds_per_tick,
                )


def landing_sensor(
    spec: DatasetSpec, trigger: LandingTrigger, asset_key: dg.AssetKey | None = None
) -> dg.SensorDefinition:
    """The sensor of a dataset with ``trigger: {type: landing}``.

    Each tick continues a listing of the dataset's location (see
    :mod:`ingest_assets.sources.object_store.landing`) and requests runs of the partitions with
    new or changed objects (consecutive ones share a range run); the run key names the object
    versions, so a repeated tick asks for nothing new.
    """
    watch = LandingWatch(spec, trigger)
    feed = watch.feed

    def tick(context: dg.SensorEvaluationContext) -> Tick:
        scan = watch.scan(feed.open_store(context.resources), context.cursor, time.time())
        return Tick(scan.requests, scan.cursor.dumps(), scan.describe())

    return requesting_sensor(
        spec,
        asset_key,
        trigger="landing",
        description=f"Requests a run of each partition of {spec.name} whose objects land or "
        f"change under {feed.location} ({feed.key_template}).",
        settings=(trigger.interval_seconds, trigger.running, feed.resource_keys),
        partitions=watch.partitions,
        tick=tick,
    )


@dataclass(frozen=True)
class Tick:
    """What a sensor's tick found: partitions to request, the next cursor, a summary."""

    requests: list[LandingRequest]
    cursor: str
    summary: str


def requesting_sensor(
    spec: DatasetSpec,
    asset_key: dg.AssetKey | None,
    *,
    trigger: str,
    description: str,
    settings: tuple[int, bool, set[str]],
    partitions: dg.TimeWindowPartitionsDefinition,
    tick: Callable[[dg.SensorEvaluationContext], Tick],
) -> dg.SensorDefinition:
    """A sensor named ``<dataset>_<trigger>_sensor`` that requests the runs its ticks find.

    Consecutive partitions share a range run of up to the dataset's
    ``max_partitions_per_run``: a backlog of days is a few runs, not one a day.

    Args:
        spec: The dataset.
        asset_key: Its asset's key.
        trigger: The trigger type (names the sensor, tags the runs).
        description: What the sensor does, for the UI.
        settings: The minimum interval between ticks, whether it starts running, and the
            resources its ticks need.
        partitions: The dataset's partitions.
        tick: One evaluation.
    """
    interval, running, resource_keys = settings

    @dg.sensor(
        name=f"{spec.name}_{trigger}_sensor",
        description=description,
        job=dataset_job(spec, asset_key),
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING
        if running
        else dg.DefaultSensorStatus.STOPPED,
        required_resource_keys=resource_keys,
    )
    def _sense(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        found = tick(context)
        context.log.info(f"{spec.name}: {found.summary}")
        if not found.requests:
            return dg.SensorResult(skip_reason=found.summary, cursor=found.cursor)
        groups = consecutive_ranges(found.requests, partitions, spec)
        return dg.SensorResult(
            run_requests=[range_run_request(spec, group, trigger) for group in groups],
            cursor=found.cursor,
        )

    return _sense


def consecutive_ranges(
    requests: list[LandingRequest], partitions: dg.TimeWindowPartitionsDefinition, spec: DatasetSpec
) -> list[list[LandingRequest]]:
    """The requests in partition order, cut into runs of consecutive partitions."""
    groups: list[list[LandingRequest]] = []
    for request in sorted(requests, key=lambda r: r.partition):
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and len(groups[-1]) < spec.load.max_partitions_per_run
            and partitions.get_next_partition_key(last.partition) == request.partition
        ):
            groups[-1].append(request)
        else:
            groups.append([request])
    return groups


def range_run_request(
    spec: DatasetSpec, group: list[LandingRequest], trigger: str
) -> dg.RunRequest:
    """One run over a group of consecutive partitions; its key names every new version."""
    first, last = group[0], group[-1]
    keys = [key for request in group for key in request.keys]
    tags = {
        "dagster/priority": str(spec.priority),
        "ingest/trigger": trigger,
        "ingest/new_objects": str(sum(len(request.versions) for request in group)),
        **({"ingest/first_new_key": keys[0][:200]} if keys else {}),
    }
    if len(group) == 1:
        return dg.RunRequest(run_key=first.run_key, partition_key=first.partition, tags=tags)
    run_key = hashlib.sha256("\n".join(r.run_key for r in group).encode()).hexdigest()
    return dg.RunRequest(
        run_key=f"{first.partition}..{last.partition}:{run_key[:32]}",
        tags={
            **tags,
            "dagster/asset_partition_range_start": first.partition,
            "dagster/asset_partition_range_end": last.partition,
        },
    )

"""The landing sensor: objects that land in a dataset's store request runs of their partitions."""

import time
from datetime import UTC, datetime

import dagster as dg

from ingest_assets.sources.object_store.landing import (
    LandingCursor,
    LandingFeed,
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
    :mod:`ingest_assets.sources.object_store.landing`) and requests one run per partition with
    new or changed objects; the run key names the object versions, so a repeated tick asks
    for nothing new.
    """
    watch = LandingWatch(spec, trigger)
    feed = watch.feed

    @dg.sensor(
        name=f"{spec.name}_landing_sensor",
        description=f"Requests a run of each partition of {spec.name} whose objects land or "
        f"change under {feed.location} ({feed.key_template}).",
        job=dataset_job(spec, asset_key),
        minimum_interval_seconds=trigger.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if trigger.running
        else dg.DefaultSensorStatus.STOPPED,
        required_resource_keys=feed.resource_keys,
    )
    def _sense(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        scan = watch.scan(feed.open_store(context.resources), context.cursor, time.time())
        context.log.info(f"{spec.name}: {scan.describe()}")
        return _result(spec, scan)

    return _sense


def _result(spec: DatasetSpec, scan: LandingScan) -> dg.SensorResult:
    cursor = scan.cursor.dumps()
    if not scan.requests:
        return dg.SensorResult(skip_reason=scan.describe(), cursor=cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=found.run_key,
                partition_key=found.partition,
                tags={
                    "dagster/priority": str(spec.priority),
                    "ingest/trigger": "landing",
                    "ingest/new_objects": str(len(found.versions)),
                    **({"ingest/first_new_key": found.keys[0][:200]} if found.keys else {}),
                },
            )
            for found in scan.requests
        ],
        cursor=cursor,
    )

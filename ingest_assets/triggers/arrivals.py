"""The arrival sensor: entries that arrive on a stream request runs of their partitions.

Each tick reads the entries after the cursor's ID (at most ``max_entries_per_tick``), maps each
to the partition of its time, and requests a run of every partition that got entries and is
closed; entries of a partition still open wait in the cursor until it closes. The cursor (the
last entry ID read, and the partitions waiting with their newest entry) is stored with the
tick's run requests, so a restarted daemon resumes at the next entry: no entry is skipped, and
run keys (the partition and its newest entry) make a tick evaluated twice ask for the same runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from ingest_assets.sources.arrivals import ArrivalLog, Arrives
from ingest_assets.sources.object_store.landing import LandingRequest
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import ArrivalTrigger, DatasetSpec
from ingest_assets.triggers.landing import Tick, requesting_sensor
from ingest_assets.triggers.partitions import partitions_def


@dataclass
class ArrivalCursor:
    """Where an arrival sensor stands: the last entry read, partitions waiting to close."""

    last: str | None = None
    waiting: dict[str, str] = field(default_factory=dict)

    @classmethod
    def loads(cls, text: str | None) -> ArrivalCursor:
        """The cursor of a stored string (a new one for None)."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(data.get("last"), dict(data.get("waiting", {})))

    def dumps(self) -> str:
        """The cursor as the sensor stores it."""
        return json.dumps({"last": self.last, "waiting": self.waiting}, sort_keys=True)


@dataclass
class ArrivalScan:
    """What one tick found: runs to request (one per partition) and the next cursor."""

    requests: list[LandingRequest]
    cursor: ArrivalCursor
    read: int = 0
    ignored: int = 0

    def describe(self) -> str:
        """A one-line summary for the tick's log."""
        return (
            f"read {self.read} new entries up to {self.cursor.last or '(none)'}: "
            f"{len(self.requests)} partition(s) to load, {len(self.cursor.waiting)} waiting to "
            f"close, {self.ignored} before the first partition"
        )


def _entry_order(entry_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in entry_id.split("-"))


class ArrivalWatch:
    """What one tick of a dataset's arrival sensor does, without Dagster's sensor machinery."""

    def __init__(self, spec: DatasetSpec, trigger: ArrivalTrigger) -> None:
        kind = SOURCE_KINDS.of(spec.source)
        if not isinstance(kind, Arrives):  # the spec refuses it: a defect if it gets here
            raise TypeError(f"{kind.name} sources have no arrivals to follow")
        self.spec = spec
        self.trigger = trigger
        self.feed = kind.arrivals(spec, spec.source)
        self.partitions = partitions_def(spec.partitioning)

    def scan(self, log: ArrivalLog, cursor: str | None, now: float) -> ArrivalScan:
        """One tick: read on from ``cursor`` at time ``now``."""
        state = ArrivalCursor.loads(cursor)
        entries = log.after(state.last, self.trigger.max_entries_per_tick)
        newest = dict(state.waiting)
        ignored = 0
        start = self.partitions.start.timestamp()
        for entry in entries:
            stamp = entry.moment.timestamp()
            if stamp < start:
                ignored += 1
                continue
            partition = self.partitions.get_partition_key_for_timestamp(stamp)
            if partition not in newest or _entry_order(entry.entry_id) > _entry_order(
                newest[partition]
            ):
                newest[partition] = entry.entry_id
        with dg.partition_loading_context(effective_dt=datetime.fromtimestamp(now, UTC)):
            last = self.partitions.get_last_partition_key()
        # A tick that stopped at its limit may have read only part of its last partition's
        # entries: that partition waits for the tick that reads past it.
        unfinished = None
        if entries and len(entries) >= self.trigger.max_entries_per_tick:
            stamp = entries[-1].moment.timestamp()
            if stamp >= start:
                unfinished = self.partitions.get_partition_key_for_timestamp(stamp)
        requests, waiting = [], {}
        for partition, entry_id in sorted(newest.items()):
            closed = last is not None and not self.partitions.less_than(last, partition)
            if closed and partition != unfinished:
                requests.append(LandingRequest(partition, {entry_id.encode()}, [entry_id]))
            else:
                waiting[partition] = entry_id
        state = ArrivalCursor(entries[-1].entry_id if entries else state.last, waiting)
        return ArrivalScan(requests, state, read=len(entries), ignored=ignored)


def arrival_sensor(
    spec: DatasetSpec, trigger: ArrivalTrigger, asset_key: dg.AssetKey | None = None
) -> dg.SensorDefinition:
    """The sensor of a dataset with ``trigger: {type: arrival}``."""
    watch = ArrivalWatch(spec, trigger)
    feed = watch.feed

    def tick(context: dg.SensorEvaluationContext) -> Tick:
        scan = watch.scan(feed.open(context.resources), context.cursor, time.time())
        return Tick(scan.requests, scan.cursor.dumps(), scan.describe())

    return requesting_sensor(
        spec,
        asset_key,
        trigger="arrival",
        description=f"Requests a run of each partition of {spec.name} whose entries arrive "
        f"on {feed.label}.",
        settings=(trigger.interval_seconds, trigger.running, feed.resource_keys),
        partitions=watch.partitions,
        tick=tick,
    )

"""The landing sensor against a real S3 API (moto's server) and a local folder: every object
version requests exactly one run of its partition, ticks are bounded and resume from the cursor,
half-written objects wait for the settle delay, and objects of open partitions wait for them."""

import os
import random
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from ingest_assets.components.assets import dataset_asset
from ingest_assets.sources.object_store.landing import (
    LandingCursor,
    LandingRequest,
    LandingScan,
    version_digest,
)
from ingest_assets.sources.object_store.reader import (
    KeyPeriods,
    LocalStore,
    ObjectInfo,
    ObjectStore,
    S3Store,
)
from ingest_assets.spec import DatasetSpec, LandingTrigger
from ingest_assets.triggers.landing import LandingWatch, landing_sensor
from ingest_assets_tests.conftest import orders_spec

DAYS = [f"2026-10-{day:02d}" for day in range(1, 31)]


def _spec(location: str, **trigger: Any) -> DatasetSpec:
    return orders_spec(location, trigger={"type": "landing", **trigger})


class Sensor:
    """A dataset's landing sensor in its definitions, evaluated the way the daemon does."""

    def __init__(self, spec: DatasetSpec, resources: dict[str, Any] | None = None) -> None:
        assert isinstance(spec.trigger, LandingTrigger)
        self.resources = resources or {}
        self.defs = dg.Definitions(
            assets=[dataset_asset(spec, origin="test")],
            sensors=[landing_sensor(spec, spec.trigger)],
            resources={"duckdb": DuckDBResource(database=":memory:"), **self.resources},
        )
        self.sensor = self.defs.resolve_sensor_def(f"{spec.name}_landing_sensor")

    def tick(self, cursor: str | None) -> Any:
        """One evaluation from ``cursor`` (its run requests checked against the job)."""
        context = dg.build_sensor_context(
            cursor=cursor,
            resources=self.resources,
            repository_def=self.defs.get_repository_def(),
        )
        return self.sensor.evaluate_tick(context)


def _partitions(request: dg.RunRequest) -> list[str]:
    """The partitions a run request loads: its one partition, or its range's."""
    if request.partition_key:
        return [request.partition_key]
    span = request.partition_key_range
    assert span is not None, request
    return DAILY.get_partition_keys_in_range(span)


DAILY = dg.DailyPartitionsDefinition(start_date="2026-10-01")


class Ticker:
    """Drives a dataset's landing scan tick by tick, as the sensor does: each tick starts from
    the stored cursor string only (a restarted daemon does the same)."""

    def __init__(self, spec: DatasetSpec, store: ObjectStore) -> None:
        assert isinstance(spec.trigger, LandingTrigger)
        self.watch = LandingWatch(spec, spec.trigger)
        self.store = store
        self.cursor: str | None = None
        self.requests: list[LandingRequest] = []
        self.scans: list[LandingScan] = []

    def tick(self) -> list[LandingRequest]:
        scan = self.watch.scan(self.store, self.cursor, time.time())
        self.cursor = scan.cursor.dumps()
        self.requests += scan.requests
        self.scans.append(scan)
        return scan.requests

    @property
    def passes(self) -> int:
        return LandingCursor.loads(self.cursor, now=0).passes


def _s3_resources(endpoint: str) -> dict[str, Any]:
    return {
        "s3": S3Resource(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    }


def _seed(bucket: str, keys: list[str], body: bytes = b"a\n1\n") -> list[ObjectInfo]:
    """Write objects straight into the S3 server's storage (10,000 HTTP PUTs take ~70 s here);
    the sensor still lists them over the S3 API. Returns them as S3 lists them."""
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    written = []
    for key in keys:
        obj = backend.put_object(bucket, key, body)
        modified = obj.last_modified.replace(microsecond=0, tzinfo=UTC)  # S3 lists seconds
        written.append(ObjectInfo(key, len(body), obj.etag.strip('"'), modified.timestamp()))
    return written


def _put(client: Any, bucket: str, key: str, body: bytes) -> ObjectInfo:
    """Write an object over the S3 API; returns it as S3 lists it."""
    etag = client.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key)
    modified = stored.last_modified.replace(microsecond=0, tzinfo=UTC)
    return ObjectInfo(key, len(body), etag, modified.timestamp())


def _tick_until_quiet(ticker: Ticker) -> None:
    """Tick until two complete passes in a row request nothing."""
    quiet = 0
    for _ in range(100):
        passes = ticker.passes
        found = ticker.tick()
        if ticker.passes > passes:
            quiet = quiet + 1 if not found else 0
            if quiet == 2:
                return
    raise AssertionError("the sensor never settled")


def test_every_object_version_requests_exactly_one_run_of_its_partition(
    s3_env: str, bucket: str
) -> None:
    """10,000 objects over 30 days land in random order while passes are under way (a pass
    spans several ticks), late keys land in days already loaded, 504 keys are overwritten with
    new content and 96 are delivered again with the same content."""
    rng = random.Random(7)
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    spec = _spec(
        f"s3://{bucket}/orders", settle_seconds=0, lookback_seconds=2, max_keys_per_tick=1_500
    )
    ticker = Ticker(spec, S3Store(client, bucket, "orders"))
    keys = [f"orders/dt={DAYS[i % 30]}/part-{i:05d}.csv" for i in range(10_000)]
    rng.shuffle(keys)
    first, late = keys[:7_000], keys[7_000:]
    expected: dict[bytes, str] = {}  # version -> its partition

    def landed(info: ObjectInfo) -> None:
        relative = replace(info, key=info.key.removeprefix("orders/"))
        expected[version_digest(relative)] = info.key.split("dt=")[1][:10]

    for start in range(0, len(first), 500):  # arrivals interleaved with ticks
        for info in _seed(bucket, first[start : start + 500]):
            landed(info)
        ticker.tick()
    _tick_until_quiet(ticker)
    time.sleep(2.5)  # older than the lookback: later passes skip them without remembering them

    overwritten = rng.sample(first, 600)
    for step, start in enumerate(range(0, len(late), 500)):
        for info in _seed(bucket, late[start : start + 500]):
            landed(info)
        for key in overwritten[step * 84 : step * 84 + 84]:  # 504 changes over the steps
            landed(_put(client, bucket, key, f"a\n{rng.random()}\n".encode()))
        ticker.tick()
    for key in overwritten[504:]:  # delivered again, same content: a new landing all the same
        landed(_put(client, bucket, key, b"a\n1\n"))
    _tick_until_quiet(ticker)

    requested = Counter(v for request in ticker.requests for v in request.versions)
    assert len(expected) == 10_000 + 600
    assert set(requested) == set(expected), "no object version is skipped"
    assert set(requested.values()) == {1}, "no object version is requested twice"
    for request in ticker.requests:
        assert {expected[v] for v in request.versions} == {request.partition}
    assert len({r.run_key for r in ticker.requests}) == len(ticker.requests)
    # Many objects of one partition share a run: far fewer runs than objects.
    assert len(ticker.requests) < 1_000
    assert max(len(r.versions) for r in ticker.requests) > 50
    # Versions older than the lookback are forgotten as passes go on: the cursor stays small.
    time.sleep(2.5)
    _tick_until_quiet(ticker)
    assert len(ticker.cursor or "") < 1_000


class _Clock:
    """A monotonic clock that moves 1 ms at every reading: a tick's 8 s budget is spent after
    8,000 keys however fast or slow the machine lists them."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 0.001
        return self.now


def test_one_tick_over_100000_keys_stops_at_its_budget_and_the_next_tick_continues(
    s3_env: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensor itself, with the default tick budget (8 s), over 100,000 keys."""
    from ingest_assets.sources.object_store import landing

    _seed(bucket, [f"orders/dt={DAYS[i % 30]}/part-{i:06d}.csv" for i in range(100_000)])
    sensor = Sensor(_spec(f"s3://{bucket}/orders", settle_seconds=0), _s3_resources(s3_env))
    monkeypatch.setattr(landing, "time", _Clock())

    first = sensor.tick(None)
    state = LandingCursor.loads(first.cursor, now=0)
    assert state.after, "the tick stopped at its budget; the listing continues from here"
    requested = sum(int(r.tags["ingest/new_objects"]) for r in first.run_requests)
    listed = len([k for k in _all_keys(bucket) if k <= f"orders/{state.after}"])
    assert requested == listed, "every key listed in the tick was requested"
    assert 7_000 < listed < 8_000, "8 s of budget at 1 ms a reading"

    second = sensor.tick(first.cursor)
    assert LandingCursor.loads(second.cursor, now=0).after > state.after
    first_partitions = {p for r in first.run_requests for p in _partitions(r)}
    second_partitions = {p for r in second.run_requests for p in _partitions(r)}
    assert len(first.run_requests) <= 2, "a backlog of days is one range run, not one a day"
    assert min(second_partitions) >= max(first_partitions), "it continued, not restarted"
    assert not {r.run_key for r in first.run_requests} & {r.run_key for r in second.run_requests}


def _all_keys(bucket: str) -> list[str]:
    return list(s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(bucket).keys.keys())


def test_a_repeated_tick_requests_the_same_runs(s3_env: str, bucket: str) -> None:
    """A tick whose cursor was lost (crash before it was stored) asks again for the same run
    keys, which Dagster runs once."""
    _seed(bucket, [f"orders/dt={day}/part-1.csv" for day in DAYS[:3]])
    _seed(bucket, ["orders/dt=2026-10-02/part-2.csv", "orders/dt=2026-10-02/readme.txt"])
    sensor = Sensor(_spec(f"s3://{bucket}/orders", settle_seconds=0), _s3_resources(s3_env))
    first = sensor.tick(None)
    again = sensor.tick(None)
    assert [r.run_key for r in first.run_requests] == [r.run_key for r in again.run_requests]
    (request,) = first.run_requests  # three days in a row: one run over their range
    assert request.partition_key_range == dg.PartitionKeyRange(DAYS[0], DAYS[2])
    assert request.tags["ingest/new_objects"] == "4"
    assert request.tags["ingest/first_new_key"] == "dt=2026-10-01/part-1.csv"
    nothing = sensor.tick(first.cursor)
    assert not nothing.run_requests and "1 not matching" in (nothing.skip_message or "")


def test_a_backlog_becomes_range_runs_of_consecutive_days_up_to_the_run_size(
    s3_env: str, bucket: str
) -> None:
    landed = [*DAYS[:5], *DAYS[6:8], DAYS[9]]  # a gap on the 6th and the 9th
    _seed(bucket, [f"orders/dt={day}/part-1.csv" for day in landed])
    spec = orders_spec(
        f"s3://{bucket}/orders",
        trigger={"type": "landing", "settle_seconds": 0},
        load={"max_partitions_per_run": 3},
    )
    requests = Sensor(spec, _s3_resources(s3_env)).tick(None).run_requests
    assert [_partitions(r) for r in requests] == [
        DAYS[0:3], DAYS[3:5], DAYS[6:8], [DAYS[9]],
    ]  # fmt: skip
    assert sorted(p for r in requests for p in _partitions(r)) == landed
    assert len({r.run_key for r in requests}) == 4


def test_half_written_files_wait_for_the_settle_delay(data_dir: Path) -> None:
    """Local folder: a file still changing is left alone until it has settled; a file copied
    with an old modification time (cp -p, rsync -t) still counts as landed."""
    spec = _spec("landing/orders", settle_seconds=1.5)
    tick = Sensor(spec).tick
    folder = data_dir / "landing" / "orders"

    (folder / "dt=2026-10-05").mkdir(parents=True)
    (folder / "dt=2026-10-05" / "a.csv").write_text("order_id\n1\n")
    first = tick(None)
    assert not first.run_requests and "1 not settled" in (first.skip_message or "")
    time.sleep(1.6)
    second = tick(first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2026-10-05"]

    copied = folder / "dt=2026-10-06" / "b.csv"
    copied.parent.mkdir()
    copied.write_text("order_id\n2\n")
    two_days_ago = time.time() - 2 * 86400
    os.utime(copied, (two_days_ago, two_days_ago))
    time.sleep(1.6)
    third = tick(second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2026-10-06"]


def test_objects_of_an_open_partition_wait_until_it_exists(data_dir: Path) -> None:
    spec = _spec("landing/orders", settle_seconds=0)
    assert isinstance(spec.trigger, LandingTrigger)
    watch = LandingWatch(spec, spec.trigger)
    store = LocalStore(data_dir / "landing" / "orders")
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).date()
    yesterday = today - timedelta(days=1)
    for day in (yesterday, today):
        path = data_dir / "landing" / "orders" / f"dt={day}" / "a.csv"
        path.parent.mkdir(parents=True)
        path.write_text("order_id\n1\n")

    first = watch.scan(store, None, now)
    assert [r.partition for r in first.requests] == [str(yesterday)]
    assert first.waiting == 1
    tomorrow = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    later = watch.scan(store, first.cursor.dumps(), tomorrow.timestamp() + 1)
    assert [(r.partition, len(r.versions)) for r in later.requests] == [(str(today), 1)]
    assert later.waiting == 0


@pytest.mark.parametrize(
    ("template", "key", "expected"),
    [
        ("dt={date}/*.csv", "dt=2026-11-03/a.csv", "2026-11-03T00:00:00+01:00"),
        ("dt={date}/*.csv", "dt=2026-11-03/sub/a.csv", None),
        ("dt={date}/*.csv", "dt=2026-13-03/a.csv", None),
        ("{year}/{month}/{day}/{hour}/**/*.csv*", "2026/11/03/05/x/b.csv.gz", "05:00:00+01:00"),
        ("events_{start:%Y%j}.parquet", "events_2026032.parquet", "2026-02-01T00:00:00+01:00"),
        ("{year}/{date}.parquet", "2025/2026-02-01.parquet", None),
    ],
)
def test_keys_map_back_to_their_period(template: str, key: str, expected: str | None) -> None:
    moment = KeyPeriods(template, "Europe/Berlin").period_of(key)
    if expected is None:
        assert moment is None
    else:
        assert moment is not None and moment.isoformat().endswith(expected)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"kind": "sql", "url_env": "DB_URL", "table": "t", "time_column": "ordered_at"},
            "trigger type 'landing' watches an object store",
        ),
        (
            {"location": "landing", "key_template": "{start:%b-%Y}.csv"},
            "the landing sensor reads partitions back from keys",
        ),
    ],
)
def test_landing_triggers_that_cannot_work_fail_at_load(
    source: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        orders_spec("landing", source=source, trigger={"type": "landing"})

"""Redis Streams as a partitioned source, against a real Redis server (Debian's redis-server)
on a free loopback port: windows read by entry ID land in exactly their partitions, a window
read again gives the same rows, the arrival sensor follows the stream without gaps or
duplicates across restarts, and a trimmed or missing stream fails clearly."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import redis
from dagster_duckdb import DuckDBResource

from ingest_assets.components.assets import dataset_asset
from ingest_assets.errors import SourceError, SourceUnavailable
from ingest_assets.spec import ArrivalTrigger, DatasetSpec
from ingest_assets.triggers.arrivals import ArrivalWatch, arrival_sensor
from ingest_assets_tests.conftest import free_port, load_days, query

DAYS = ["2026-11-02", "2026-11-03", "2026-11-04"]
START = datetime(2026, 11, 2, tzinfo=UTC)
COLUMNS = {
    "user": {"dtype": "string", "nullable": False},
    "action": {"dtype": "string", "checks": {"isin": ["view", "click"]}},
    "amount": {"dtype": "float64"},
}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real Redis server (Debian's redis-server, which ./run test installs) on loopback."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: ./run test installs Debian's redis-server"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


@pytest.fixture
def stream(redis_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh stream key, with REDIS_URL set as a user would."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    name = f"events-{request.node.name}"
    redis.Redis.from_url(redis_url).delete(name)
    return name


def _spec(stream: str, **source: Any) -> DatasetSpec:
    columns = dict(COLUMNS)
    if source.get("time_field"):
        columns["at"] = {"dtype": "timestamp", "nullable": False}
    return DatasetSpec.model_validate(
        {
            "name": "events",
            "source": {"kind": "stream", "backend": "redis", "url_env": "REDIS_URL",
                       "stream": stream, **source},
            "partitioning": {"cadence": "daily", "start": "2026-11-01"},
            "schema": {"columns": columns},
            "destination": {"table": "raw.events"},
            "trigger": {"type": "arrival", "max_entries_per_tick": 40_000},
        }
    )  # fmt: skip


def _add(url: str, stream: str, entries: list[tuple[datetime, dict[str, str]]]) -> None:
    """XADD entries in time order, each with the ID of its time."""
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for moment, fields in entries:
        pipe.xadd(stream, fields, id=f"{int(moment.timestamp() * 1000)}-*")
        if len(pipe) >= 5_000:
            pipe.execute()
    pipe.execute()


def _entries(count: int) -> list[tuple[datetime, dict[str, str]]]:
    span = timedelta(days=3).total_seconds()
    return [
        (START + timedelta(seconds=span * n / count), {"user": f"u{n}", "action": "view",
                                                        "amount": str(n % 100)})
        for n in range(count)
    ]  # fmt: skip


def test_a_hundred_thousand_entries_load_into_exactly_their_partitions(
    stream: str, redis_url: str, data_dir: Path
) -> None:
    entries = _entries(100_000)
    _add(redis_url, stream, entries)
    spec = _spec(stream)
    load_days(spec, DAYS)
    expected = Counter(moment.date().isoformat() for moment, _ in entries)
    per_day = query(
        data_dir,
        "SELECT _ingest_window_start::DATE::VARCHAR, count(*), count(DISTINCT user) "
        "FROM raw.events GROUP BY 1 ORDER BY 1",
    )
    assert per_day == [(day, expected[day], expected[day]) for day in DAYS]
    before = query(data_dir, "SELECT user, amount, _ingest_window_start FROM raw.events ORDER BY 1")
    load_days(spec, [DAYS[1]], run_id="again")  # a window read again: the same rows
    after = query(data_dir, "SELECT user, amount, _ingest_window_start FROM raw.events ORDER BY 1")
    assert after == before


def test_event_time_places_late_entries_in_their_own_partition(
    stream: str, redis_url: str, data_dir: Path
) -> None:
    """With time_field, an entry added after midnight for the day before loads in that day."""
    late = START + timedelta(days=1, minutes=20)  # added 00:20 on the 3rd...
    eleven = START + timedelta(hours=23)
    before_midnight = (START + timedelta(hours=23, minutes=59)).isoformat()
    as_millis = str(int(late.timestamp() * 1000))
    _add(redis_url, stream, [
        (eleven, {"user": "a", "action": "view", "at": eleven.isoformat()}),
        (late, {"user": "b", "action": "view", "at": before_midnight}),
        (late + timedelta(minutes=1), {"user": "c", "action": "click", "at": as_millis}),
    ])  # fmt: skip
    spec = _spec(stream, time_field="at", lateness_seconds=3600)
    load_days(spec, DAYS[:2])
    rows = query(
        data_dir, "SELECT user, _ingest_window_start::DATE::VARCHAR FROM raw.events ORDER BY 1"
    )
    assert rows == [("a", DAYS[0]), ("b", DAYS[0]), ("c", DAYS[1])]


def _sensor_ticks(spec: DatasetSpec, cursor: str | None, now: float) -> tuple[list[str], str, int]:
    """One tick of the arrival sensor, as a restarted daemon runs it (from the cursor string)."""
    assert isinstance(spec.trigger, ArrivalTrigger)
    watch = ArrivalWatch(spec, spec.trigger)
    scan = watch.scan(watch.feed.open({}), cursor, now)
    return [r.run_key for r in scan.requests], scan.cursor.dumps(), scan.read


def test_the_arrival_sensor_follows_the_stream_without_gaps_or_duplicates(
    stream: str, redis_url: str
) -> None:
    entries = _entries(100_000)
    _add(redis_url, stream, entries[:70_000])
    spec = _spec(stream)
    during_day_3 = (START + timedelta(days=2, hours=12)).timestamp()
    cursor, read, keys = None, 0, []
    for _ in range(3):  # 40,000 entries a tick: a restart (a new watch) between every tick
        found, cursor, count = _sensor_ticks(spec, cursor, during_day_3)
        keys += found
        read += count
    assert read == 70_000
    assert [key.split(":")[0] for key in keys] == DAYS[:2], "day 3 is open: it waits"
    _add(redis_url, stream, entries[70_000:])
    found, cursor, count = _sensor_ticks(
        spec, cursor, (START + timedelta(days=3, hours=1)).timestamp()
    )
    assert count == 30_000 and [key.split(":")[0] for key in found] == [DAYS[2]]
    again, _, count = _sensor_ticks(spec, cursor, (START + timedelta(days=3, hours=2)).timestamp())
    assert (again, count) == ([], 0), "nothing new: nothing asked"
    # an entry of a day still open waits in the cursor, and is asked for once the day closes
    _add(redis_url, stream, [(START + timedelta(days=3, hours=3), {"user": "x", "action": "view"})])
    found, cursor, count = _sensor_ticks(
        spec, cursor, (START + timedelta(days=3, hours=4)).timestamp()
    )
    assert (found, count) == ([], 1)
    found, _, count = _sensor_ticks(spec, cursor, (START + timedelta(days=4, hours=1)).timestamp())
    assert ([key.split(":")[0] for key in found], count) == (["2026-11-05"], 0)


def test_the_arrival_sensor_requests_runs_dagster_accepts(
    stream: str, redis_url: str, data_dir: Path
) -> None:
    _add(redis_url, stream, _entries(3_000))
    spec = _spec(stream)
    assert isinstance(spec.trigger, ArrivalTrigger)
    resources = {"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))}
    asset = dataset_asset(spec, origin="test")
    defs = dg.Definitions(assets=[asset], sensors=[arrival_sensor(spec, spec.trigger)],
                          resources=resources)  # fmt: skip
    sensor = defs.resolve_sensor_def("events_arrival_sensor")
    context = dg.build_sensor_context(repository_def=defs.get_repository_def(), resources={})
    result = sensor.evaluate_tick(context)
    (request,) = result.run_requests or []
    tags = request.tags
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == (DAYS[0], DAYS[2])
    assert tags["ingest/trigger"] == "arrival"
    for day in DAYS:
        run = dg.materialize([asset], partition_key=day, resources=resources, raise_on_error=False)
        assert run.success
    assert query(data_dir, "SELECT count(*) FROM raw.events") == [(3_000,)]


def test_a_trimmed_or_missing_stream_fails_clearly(stream: str, redis_url: str) -> None:
    from ingest_assets.core import open_reader
    from ingest_assets.windows import Window

    spec = _spec(stream)
    day = Window(START, START + timedelta(days=1))
    with pytest.raises(SourceError, match=r"stream 'events-.*' does not exist"):
        list(open_reader(spec).read(day, {}))
    _add(redis_url, stream, _entries(3_000))
    redis.Redis.from_url(redis_url).xtrim(stream, maxlen=1_500)  # day 1 and part of day 2 gone
    with pytest.raises(SourceError, match="was trimmed; its oldest entry was added at"):
        list(open_reader(spec).read(day, {}))
    later = Window(START + timedelta(days=2), START + timedelta(days=3))
    assert sum(c.batch.num_rows for c in open_reader(spec).read(later, {})) == 1_000


def test_a_server_that_does_not_answer_is_a_transient_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ingest_assets.core import open_reader
    from ingest_assets.windows import Window

    monkeypatch.setenv("REDIS_URL", f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0")
    spec = _spec("events")
    with pytest.raises(SourceUnavailable) as raised:
        list(open_reader(spec).read(Window(START, START + timedelta(days=1)), {}))
    assert "s3cret-pw" not in str(raised.value)

"""Schedules declared by datasets request the partition that just closed."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from ingest_assets.components.assets import dataset_asset, dataset_schedule
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.conftest import orders_spec

RESOURCES = {"duckdb": DuckDBResource(database=":memory:")}


def _requested(spec: DatasetSpec, tick: datetime) -> list[str | None]:
    schedule = dataset_schedule(spec)
    assert schedule is not None
    defs = dg.Definitions(
        assets=[dataset_asset(spec, origin="test")], schedules=[schedule], resources=RESOURCES
    )
    with dg.instance_for_test() as instance:
        resolved = defs.resolve_schedule_def(f"{spec.name}_schedule")
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        )
        result = resolved.evaluate_tick(context)
    return [request.partition_key for request in result.run_requests or []]


def _spec(trigger: dict[str, Any], **partitioning: Any) -> DatasetSpec:
    return orders_spec(
        "landing/orders",
        trigger=trigger,
        partitioning={"cadence": "daily", "start": "2026-10-01", **partitioning},
    )


def test_a_tick_at_0215_requests_yesterdays_partition() -> None:
    spec = _spec({"delay": "02:15"})
    schedule = dataset_schedule(spec)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 2 * * *", "UTC")
    assert _requested(spec, datetime(2026, 11, 21, 2, 15, tzinfo=UTC)) == ["2026-11-20"]


def test_hourly_dataset_with_a_minutes_delay() -> None:
    spec = orders_spec(
        "landing/orders",
        source={"location": "landing/orders", "key_template": "{date}/{hour}.csv"},
        partitioning={"cadence": "hourly", "start": "2026-11-01-00:00"},
        trigger={"delay": "00:10"},
    )
    assert _requested(spec, datetime(2026, 11, 21, 10, 10, tzinfo=UTC)) == ["2026-11-21-09:00"]


def test_explicit_cron_in_the_partition_time_zone_loads_the_latest_closed_partition() -> None:
    spec = _spec({"cron": "0 6 * * *"}, timezone="Europe/Berlin")
    # 06:00 in Berlin on Nov 21 is 05:00 UTC; the latest closed Berlin day is Nov 20.
    assert _requested(spec, datetime(2026, 11, 21, 5, 0, tzinfo=UTC)) == ["2026-11-20"]


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"delay": "2h"}, "is not a time of day"),
        ({"cron": "every day"}, "five-field cron"),
        ({"kind": "sensor"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_triggers_are_explained(trigger: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(trigger)


def test_no_trigger_no_schedule() -> None:
    assert dataset_schedule(orders_spec("landing/orders")) is None

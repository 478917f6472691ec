"""Triggers and run policies: schedules request the partition that just closed; only transient
failures are retried; priorities and pools reach the runs and steps."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from ingest_assets.components.assets import dataset_asset
from ingest_assets.spec import DatasetSpec, ScheduleTrigger
from ingest_assets.triggers.schedules import dataset_schedule
from ingest_assets_tests.conftest import free_port, orders_spec
from ingest_assets_tests.test_rest import rest_spec

RESOURCES = {"duckdb": DuckDBResource(database=":memory:")}


def _schedule(spec: DatasetSpec) -> dg.ScheduleDefinition:
    assert isinstance(spec.trigger, ScheduleTrigger)
    return dataset_schedule(spec, spec.trigger)


def _requested(spec: DatasetSpec, tick: datetime) -> list[str | None]:
    schedule = _schedule(spec)
    defs = dg.Definitions(
        assets=[dataset_asset(spec, origin="test")], schedules=[schedule], resources=RESOURCES
    )
    instance = dg.DagsterInstance.ephemeral()
    resolved = defs.resolve_schedule_def(f"{spec.name}_schedule")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
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
    schedule = _schedule(spec)
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
    assert orders_spec("landing/orders").trigger is None


def _retries(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY")


def test_transient_failures_are_retried_until_the_third_try_succeeds(tmp_path: Path) -> None:
    from ingest_assets_tests.api_server import api_server, make_records

    with api_server(free_port()) as (base, state):
        state.records = make_records("2026-10-02", 20)
        state.fail_first = 2  # the first two tries meet an HTTP 500
        spec = _rest_spec(base)
        result = dg.materialize(
            [dataset_asset(spec, origin="test")],
            partition_key="2026-10-02",
            resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
            raise_on_error=False,
        )
    assert result.success
    assert _retries(result) == 2, "two failed tries, the third succeeds"
    assert (
        result.asset_materializations_for_node("orders")[0].metadata["dagster/row_count"].value
        == 20
    )


def test_validation_failures_are_not_retried(tmp_path: Path) -> None:
    from ingest_assets_tests.api_server import api_server, make_records

    with api_server(free_port()) as (base, state):
        state.records = make_records("2026-10-02", 20)
        state.drift_page = 1
        result = dg.materialize(
            [dataset_asset(_rest_spec(base, "/v1/page"), origin="test")],
            partition_key="2026-10-02",
            resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
            raise_on_error=False,
        )
    assert not result.success
    assert _retries(result) == 0
    assert state.requests == 1


def _rest_spec(base: str, endpoint: str = "/v1/all") -> DatasetSpec:
    return rest_spec(
        base,
        endpoint,
        {"id": {"dtype": "string"}, "amount": {"dtype": "float64"}},
        dataset={
            "retry": {"max_retries": 3, "delay_seconds": 0.01, "jitter": "none"},
            "priority": 5,
        },
        retry={"attempts": 1},  # no retry inside the reader: the step retries
    )


def test_priority_and_pool_reach_the_run_and_the_step() -> None:
    spec = _rest_spec("http://127.0.0.1:9")
    asset = dataset_asset(spec, origin="test")
    assert asset.op.pool == "ingest_api_127_0_0_1_9"
    assert asset.op.retry_policy == dg.RetryPolicy(
        max_retries=3, delay=0.01, backoff=dg.Backoff.EXPONENTIAL
    )
    files = orders_spec("landing/orders")  # a pool per folder: a busy one holds no other back
    assert dataset_asset(files, origin="test").op.pool == "ingest_files_landing_orders"

"""Freshness SLAs: the per-partition timeliness check passes before the deadline, warns after the
warning point and fails after the deadline (with frozen time), on its own schedule; the asset
carries Dagster's FreshnessPolicy."""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource
from freezegun import freeze_time

from ingest_assets.components.assets import dataset_asset
from ingest_assets.sla import judge
from ingest_assets.spec import DatasetSpec, SlaSpec
from ingest_assets.triggers.freshness import (
    TIMELINESS_CHECK,
    timeliness_check,
    timeliness_schedule,
)
from ingest_assets_tests.conftest import orders_spec

SLA = {"deadline": "02:00", "warn_after": "01:00"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "landed", "status", "partition"),
    [
        ("2026-11-21T00:30", {}, "pass", "2026-11-20"),  # closed, not due, before warning
        ("2026-11-21T01:30", {}, "warn", "2026-11-20"),
        ("2026-11-21T02:30", {}, "fail", "2026-11-20"),
        ("2026-11-21T02:30", {"2026-11-20": "2026-11-21T01:45"}, "pass", "2026-11-20"),
        ("2026-11-21T02:30", {"2026-11-20": "2026-11-21T02:10"}, "pass", "2026-11-20"),
        # Just after midnight the previous day is due and missing: still a failure.
        ("2026-11-22T00:30", {}, "fail", "2026-11-20"),
        ("2026-11-22T00:30", {"2026-11-20": "2026-11-21T01:00"}, "pass", "2026-11-21"),
    ],
)
def test_judging_partitions(now: str, landed: dict[str, str], status: str, partition: str) -> None:
    moment = _at(now)
    days = [(f"2026-11-{day}", _at(f"2026-11-{day + 1}T00:00")) for day in range(21, 14, -1)]
    closed = [(key, closed_at) for key, closed_at in days if closed_at <= moment]
    earlier = {f"2026-11-{day}": _at(f"2026-11-{day + 1}T01:00") for day in range(15, 20)}
    result = judge(
        closed,
        {**earlier, **{key: _at(value) for key, value in landed.items()}},
        moment,
        SlaSpec.model_validate(SLA),
    )
    assert result.status == status
    assert result.worst is not None and result.worst.partition == partition


def test_a_late_landing_is_reported_as_late() -> None:
    closed = [("2026-11-20", _at("2026-11-21T00:00"))]
    result = judge(
        closed, {"2026-11-20": _at("2026-11-21T02:10")}, _at("2026-11-21T03:00"), SlaSpec(**SLA)
    )
    assert "late by 0:10:00" in result.describe()


@pytest.mark.parametrize(
    ("sla", "message"),
    [
        ({"deadline": "2h"}, "is not a duration as HH:MM"),
        ({"deadline": "02:00", "warn_after": "03:00"}, "must come before deadline"),
        ({"deadline": "02:00", "check_cron": "often"}, "five-field cron"),
    ],
)
def test_invalid_slas_fail_at_load(sla: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        orders_spec("landing/orders", sla=sla)


def _spec() -> DatasetSpec:
    return orders_spec(
        "landing/orders",
        partitioning={"cadence": "daily", "start": "2026-11-01"},
        sla={**SLA, "check_cron": "*/10 * * * *"},
    )


def test_the_asset_has_a_freshness_policy_and_the_check_its_own_schedule() -> None:
    spec = _spec()
    policy = dataset_asset(spec, origin="test").specs_by_key[dg.AssetKey("orders")]
    assert policy.freshness_policy == dg.FreshnessPolicy.cron(
        deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=2)
    )
    schedule = timeliness_schedule(spec)
    assert (schedule.cron_schedule, schedule.job_name) == ("*/10 * * * *", "orders_timeliness_job")


def test_the_timeliness_check_passes_warns_and_fails_with_frozen_time() -> None:
    spec = _spec()
    defs = dg.Definitions(
        assets=[dataset_asset(spec, origin="test")],
        asset_checks=[timeliness_check(spec)],
        schedules=[timeliness_schedule(spec)],
        resources={"duckdb": DuckDBResource(database=":memory:")},
    )
    job = defs.resolve_job_def("orders_timeliness_job")
    instance = dg.DagsterInstance.ephemeral()

    def land(partition: str, moment: str) -> None:
        with freeze_time(_at(moment)):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key="orders", partition=partition)
            )

    for day in range(1, 20):  # every day up to Nov 19 landed on time
        land(f"2026-11-{day:02d}", f"2026-11-{day + 1:02d}T00:40")

    def evaluate(moment: str) -> dg.AssetCheckEvaluation:
        with freeze_time(_at(moment), tick=True):
            result = job.execute_in_process(instance=instance)
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.check_name == TIMELINESS_CHECK
        return evaluation

    before = evaluate("2026-11-21T00:45")
    assert before.passed
    assert before.metadata["partition"].value == "2026-11-20"

    warned = evaluate("2026-11-21T01:15")
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert "has not landed yet" in (warned.description or "")

    failed = evaluate("2026-11-21T02:05")
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["landed_at"].value == "not landed"

    land("2026-11-20", "2026-11-21T02:20")  # late
    recovered = evaluate("2026-11-21T02:30")
    assert recovered.passed
    assert recovered.metadata["landed_at"].value.startswith("2026-11-21T02:20")

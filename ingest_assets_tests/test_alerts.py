"""Alerts: a failing run produces exactly one webhook call to a local receiver with the
documented payload (not one per retry); a missed SLA alerts once per partition; Slack through
dagster-slack."""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource
from dagster_slack import SlackResource
from freezegun import freeze_time

from ingest_assets.components.assets import dataset_asset
from ingest_assets.resources.notifier import Alert, Notifier
from ingest_assets.spec import DatasetSpec
from ingest_assets.triggers.alerts import run_failure_alerts, sla_alert_sensor
from ingest_assets_tests.conftest import free_port, order_rows, orders_spec, write_csv
from ingest_assets_tests.test_rest import rest_spec


@dataclass
class Receiver:
    """A local HTTP endpoint that records what it is sent."""

    url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            is_json = "json" in (self.headers.get("Content-Type") or "")
            state.calls.append((self.path, json.loads(body) if is_json else {"raw": body}))
            payload = json.dumps(state.answer).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _run_retries(max_retries: int) -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral(
        settings={
            "run_retries": {
                "enabled": True,
                "max_retries": max_retries,
                "retry_on_asset_or_op_failure": True,
            }
        }
    )


def _alert_for(instance: dg.DagsterInstance, run_id: str, notifier: Notifier) -> Any:
    """Evaluate the failure sensor for one failed run, as the daemon does."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    (failure,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failure.dagster_event is not None
    with dg.build_run_status_sensor_context(
        sensor_name="ingest_run_failure_alerts",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"notifier": notifier},
    ) as context:
        return run_failure_alerts(context.for_run_failure())


def _materialize(
    spec: DatasetSpec, tmp_path: Path, instance: dg.DagsterInstance, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [dataset_asset(spec, origin="test")],
        partition_key="2026-10-02",
        resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
        instance=instance,
        raise_on_error=False,
        **kwargs,
    )


def test_a_failed_blocking_check_gives_one_webhook_call_with_the_documented_payload(
    receiver: Receiver, data_dir: Path, tmp_path: Path
) -> None:
    rows = order_rows("2026-10-02", 10)
    rows[3]["amount"] = "-5"
    write_csv(data_dir / "landing" / "orders" / "dt=2026-10-02" / "a.csv", rows)
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(orders_spec("landing/orders"), tmp_path, instance)
    assert not result.success

    notifier = Notifier(webhook_url=receiver.url + "/hooks/ingest", ui_url="http://ui.local:3000")
    _alert_for(instance, result.run_id, notifier)

    assert len(receiver.calls) == 1
    path, payload = receiver.calls[0]
    assert path == "/hooks/ingest"
    assert set(payload) == set(Alert.model_fields)
    assert payload["kind"] == "run_failure" and payload["severity"] == "error"
    assert payload["dataset"] == "orders" and payload["datasets"] == ["orders"]
    assert payload["partition"] == "2026-10-02"
    assert payload["failed_checks"] == ["orders:schema"]
    assert "failed validation" in payload["error"] and "amount" in payload["error"]
    assert payload["run_id"] == result.run_id
    assert payload["run_url"] == f"http://ui.local:3000/runs/{result.run_id}"
    datetime.fromisoformat(payload["occurred_at"])


def test_retries_do_not_multiply_alerts(receiver: Receiver, tmp_path: Path) -> None:
    """A load retried twice inside its run, and the run retried once by Dagster: one alert."""
    from ingest_assets_tests.api_server import api_server, make_records

    notifier = Notifier(webhook_url=receiver.url)
    instance = _run_retries(max_retries=1)
    with api_server(free_port()) as (base, state):
        state.records = make_records("2026-10-02", 5)
        state.fail_first = 100  # the API keeps failing
        spec = rest_spec(
            base,
            "/v1/all",
            {"id": {"dtype": "string"}},
            dataset={"retry": {"max_retries": 2, "delay_seconds": 0.01, "jitter": "none"}},
            retry={"attempts": 1},
        )
        first = _materialize(spec, tmp_path, instance)
        # The last attempt: its retry budget is spent, so Dagster marks it will_retry=false
        # (the run-retry daemon would launch it with the parent's lineage).
        retried = _materialize(
            spec,
            tmp_path,
            instance,
            tags={"dagster/parent_run_id": first.run_id, "dagster/max_retries": "0"},
        )
    assert state.requests == 6, "three tries in each of the two runs"
    runs = [instance.get_run_by_id(run.run_id) for run in (first, retried)]
    assert [run.tags["dagster/will_retry"] for run in runs if run] == ["true", "false"]
    for run in (first, retried):
        _alert_for(instance, run.run_id, notifier)
    assert [payload["run_id"] for _, payload in receiver.calls] == [retried.run_id]
    assert "answered HTTP 500" in receiver.calls[0][1]["error"]


def _ticker(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, notifier: Notifier
) -> Callable[[datetime, str | None], str | None]:
    """Evaluate the sensor at a moment with a cursor, as the daemon would; the new cursor."""

    def tick(moment: datetime, cursor: str | None) -> str | None:
        with (
            dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"notifier": notifier}
            ) as context,
            freeze_time(moment, tick=True),
        ):
            sensor.evaluate_tick(context)
            return context.cursor

    return tick


def test_a_missed_sla_alerts_once_per_partition(receiver: Receiver) -> None:
    spec = orders_spec(
        "landing/orders",
        partitioning={"cadence": "daily", "start": "2026-11-19"},
        sla={"deadline": "02:00"},
    )
    sensor = sla_alert_sensor(spec)
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time(datetime(2026, 11, 20, 1, 0, tzinfo=UTC)):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="orders", partition="2026-11-19")
        )
    tick = _ticker(sensor, instance, Notifier(webhook_url=receiver.url))
    cursor = tick(datetime(2026, 11, 21, 1, 30, tzinfo=UTC), None)  # not due yet
    assert receiver.calls == []
    cursor = tick(datetime(2026, 11, 21, 2, 30, tzinfo=UTC), cursor)
    cursor = tick(datetime(2026, 11, 21, 3, 0, tzinfo=UTC), cursor)  # still missing: no repeat
    assert [(p["kind"], p["partition"]) for _, p in receiver.calls] == [
        ("sla_missed", "2026-11-20")
    ]
    assert "has not landed" in receiver.calls[0][1]["error"]


def test_an_sla_sensor_that_starts_late_alerts_every_missed_partition_once(
    receiver: Receiver,
) -> None:
    spec = orders_spec(
        "landing/orders",
        partitioning={"cadence": "daily", "start": "2026-11-20"},
        sla={"deadline": "02:00"},
    )
    sensor = sla_alert_sensor(spec)
    instance = dg.DagsterInstance.ephemeral()
    for day in ("2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24", "2026-11-25"):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="orders", partition=day)
        )
    tick = _ticker(sensor, instance, Notifier(webhook_url=receiver.url))

    # Days 26, 27 and 28 never landed; the sensor's first tick is on the 29th at 03:00.
    cursor = tick(datetime(2026, 11, 29, 3, 0, tzinfo=UTC), None)
    assert [p["partition"] for _, p in receiver.calls] == ["2026-11-26", "2026-11-27", "2026-11-28"]
    cursor = tick(datetime(2026, 11, 29, 4, 0, tzinfo=UTC), cursor)  # nothing new: no repeat
    assert len(receiver.calls) == 3
    instance.report_runless_asset_event(  # a late landing is not a miss any more
        dg.AssetMaterialization(asset_key="orders", partition="2026-11-29")
    )
    tick(datetime(2026, 12, 1, 3, 0, tzinfo=UTC), cursor)
    assert [p["partition"] for _, p in receiver.calls][3:] == ["2026-11-30"]


def test_slack_through_dagster_slack(receiver: Receiver) -> None:
    """Slack is a cloud service: the local receiver stands in for its chat.postMessage API."""
    receiver.answer = {"ok": True}
    notifier = Notifier(
        slack=SlackResource(token="xoxb-test"),
        slack_channel="#data-alerts",
        slack_api_url=receiver.url + "/api/",
    )
    alert = Alert(
        kind="run_failure",
        dataset="orders",
        datasets=["orders"],
        partition="2026-11-05",
        error="Dataset 'orders' failed validation",
        run_url="http://127.0.0.1:3000/runs/abc",
        occurred_at="2026-11-21T02:05:00+00:00",
    )
    assert notifier.send(alert) == ["slack"]
    ((path, payload),) = receiver.calls
    assert path == "/api/chat.postMessage"
    assert payload["channel"] == "#data-alerts"
    assert "orders [2026-11-05]: load failed" in payload["text"]


def test_a_refusing_webhook_is_retried_then_reported_without_its_url(receiver: Receiver) -> None:
    receiver.status = 503
    secret_url = receiver.url + "/hooks/T000/secret-token"
    notifier = Notifier(webhook_url=secret_url)
    alert = Alert(
        kind="sla_missed", dataset="orders", datasets=["orders"], error="late", occurred_at="now"
    )
    with pytest.raises(RuntimeError) as failure:
        notifier.send(alert)
    assert len(receiver.calls) == 3
    assert "secret-token" not in str(failure.value)
    assert "INGEST_ALERT_WEBHOOK_URL" in str(failure.value)

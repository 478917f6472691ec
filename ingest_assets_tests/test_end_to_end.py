"""End to end: the real webserver and daemon serve the project's workspace; a backfill over GraphQL
loads the demo files into DuckDB."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from ingest_assets.demo import seed_demo
from ingest_assets.paths import PROJECT_ROOT
from ingest_assets_tests.conftest import free_port, graphql, query, stop_group

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}
"""
LOCATION_STATUS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
RUNS = """
{ runsOrError { __typename ... on Runs { results { runId status tags { key value } } } } }
"""


class Dagster:
    """A running ``dagster dev`` (webserver + daemon) and its GraphQL endpoint."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def graphql(self, query_text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return graphql(self.url, query_text, variables)

    @contextmanager
    def daemon_paused(self) -> Iterator[None]:
        """Freeze the daemon (SIGSTOP), so that runs launched meanwhile all wait in the queue
        and its next dequeue sees them together, whatever the machine's speed."""
        processes = _session_processes(self.process.pid)
        (daemon,) = [pid for pid, line in processes if "dagster._daemon run" in line]
        os.kill(daemon, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(daemon, signal.SIGCONT)

    def wait_until_loaded(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                entries = self.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(1)
                continue
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [
                    e
                    for e in entries
                    if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"
                ]
                assert not errors, errors
                return
            time.sleep(1)
        raise AssertionError("the code location did not load:\n" + self.log.read_text()[-3000:])


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[Dagster]:
    """``dg dev`` (webserver and daemon) on a free loopback port, with the project's workspace and
    instance files."""
    with run_dagster_dev(tmp_path) as server:
        yield server


def _session_processes(session: int) -> list[tuple[int, str]]:
    """The processes of a process group, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != session:
                continue
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ProcessLookupError):
            continue
        found.append((int(entry.name), line))
    return found


@contextmanager
def run_dagster_dev(
    tmp_path: Path, seed_until: str = "2026-11-04", **instance_changes: str
) -> Iterator[Dagster]:
    """Start ``dg dev`` with the project's dagster.yaml, with lines replaced as given, over the
    demo's files up to ``seed_until``."""
    home = tmp_path / "home"
    home.mkdir()
    settings = (PROJECT_ROOT / "dagster.yaml").read_text()
    for old, new in instance_changes.items():
        assert old in settings
        settings = settings.replace(old, new)
    (home / "dagster.yaml").write_text(settings)
    data = tmp_path / "data"
    seed_demo(data, until=date.fromisoformat(seed_until))
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "INGEST_ASSETS_DATA_DIR": str(data),
        "DEMO_APP_DB_URL": f"sqlite:///{data / 'demo_app.sqlite'}",
        "INGEST_MASKING_SALT": "end-to-end-test-salt",
    }
    log = tmp_path / "dagster.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dg"),
                "dev",
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Dagster(f"http://127.0.0.1:{port}", process, log)
    try:
        server.wait_until_loaded()
        yield server
    finally:
        stop_group(process)


def test_backfill_of_three_partitions_through_graphql_lands_rows_in_duckdb_in_one_run(
    dagster_dev: Dagster, tmp_path: Path
) -> None:
    partitions = ["2026-11-01", "2026-11-02", "2026-11-03"]
    launched = dagster_dev.graphql(
        LAUNCH_BACKFILL,
        {
            "params": {
                "partitionNames": partitions,
                "assetSelection": [{"path": ["orders"]}, {"path": ["customers"]}],
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline = time.monotonic() + 400
    status = "REQUESTED"
    while time.monotonic() < deadline:
        status = dagster_dev.graphql(BACKFILL_STATUS, {"id": backfill_id})[
            "partitionBackfillOrError"
        ]["status"]
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        time.sleep(2)
    runs = dagster_dev.graphql(RUNS)["runsOrError"]["results"]
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (
        status,
        runs,
        dagster_dev.log.read_text()[-4000:],
    )
    # Both datasets allow 31 partitions per run: the backfill is a single run over the range.
    assert len(runs) == 1 and {r["status"] for r in runs} == {"SUCCESS"}
    tags = {tag["key"]: tag["value"] for tag in runs[0]["tags"]}
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == (partitions[0], partitions[-1])

    data = tmp_path / "data"
    counts = query(
        data,
        "SELECT _ingest_window_start::DATE::VARCHAR, count(*), count(DISTINCT _ingest_run_id) "
        "FROM raw.orders GROUP BY 1 ORDER BY 1",
    )
    # The third day's two malformed emails are quarantined (a warn rule); the rest loads.
    assert counts == [("2026-11-01", 240, 1), ("2026-11-02", 240, 1), ("2026-11-03", 238, 1)]
    assert query(data, "SELECT _ingest_rule, count(*) FROM raw.orders__rejected GROUP BY 1") == [
        ("email: true", 2)  # the rule as the YAML declares it
    ]
    emails = query(
        data,
        "SELECT count(*) FROM raw.orders WHERE NOT regexp_full_match("
        "customer_email, '[0-9a-f]{64}')",
    )
    assert emails == [(0,)], "customer emails are stored hashed"
    audit = query(
        data, "SELECT dataset, status, count(*) FROM ingest_audit.loads GROUP BY ALL ORDER BY 1"
    )
    assert audit == [("customers", "success", 3), ("orders", "success", 3)]
    # The SQL dataset: each day's new and changed customers, merged by id.
    with sqlite3.connect(data / "demo_app.sqlite") as app:
        (expected,) = app.execute(
            "SELECT count(*) FROM customers WHERE updated_at < '2026-11-04'"
        ).fetchone()
    customers = query(data, "SELECT count(*), count(DISTINCT id) FROM raw.customers")
    assert customers == [(expected, expected)] and expected > 250


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def test_queued_runs_launch_in_priority_order_and_pool_limits_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two run slots, one slot per source pool. Two runs take the slots; three runs of one
    dataset queue behind them with priorities 0, 10 and 5: they are dequeued 10, 5, 0, and no
    two loads from one folder (pool ingest_files_landing_orders) ever run at the same time."""
    changes = {
        "max_concurrent_runs: 3": "max_concurrent_runs: 2",
        "default_limit: 2": "default_limit: 1",
    }
    with run_dagster_dev(tmp_path, **changes) as dagster:

        def launch(job: str, partition: str, priority: int) -> str:
            tags = [
                {"key": "dagster/partition", "value": partition},
                {"key": "dagster/priority", "value": str(priority)},
            ]
            result = dagster.graphql(
                LAUNCH_RUN,
                {
                    "params": {
                        "selector": {
                            "repositoryLocationName": "ingest_assets",
                            "repositoryName": "__repository__",
                            "jobName": job,
                        },
                        "executionMetadata": {"tags": tags},
                        "runConfigData": {},
                    }
                },
            )["launchRun"]
            assert result["__typename"] == "LaunchRunSuccess", result
            return result["run"]["runId"]

        # All five wait in the queue before the daemon looks: how fast launches and runs go on
        # this machine cannot change which runs the queue holds at its first dequeue.
        with dagster.daemon_paused():
            launch("customers_job", "2026-11-01", 0)  # pool ingest_sql_demo_app_db_url
            launch("page_views_job", "2026-11-01", 0)  # pool ingest_files_landing_web
            by_priority = {
                p: launch("orders_job", f"2026-11-0{i + 2}", p) for i, p in enumerate([0, 10, 5])
            }

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = dagster.graphql(RUNS)["runsOrError"]["results"]
            if len(runs) == 5 and all(r["status"] in ("SUCCESS", "FAILURE") for r in runs):
                break
            time.sleep(2)
        assert {r["status"] for r in runs} == {"SUCCESS"}, (runs, dagster.log.read_text()[-3000:])

    monkeypatch.chdir(tmp_path / "home")  # dagster.yaml's storage paths are relative to it
    instance = dg.DagsterInstance.from_config(str(tmp_path / "home"))
    try:
        runs = sorted(
            instance.get_runs(),
            key=lambda run: _event_time(instance, run.run_id, dg.DagsterEventType.RUN_ENQUEUED),
        )
        started = sorted(
            runs,
            key=lambda run: _event_time(instance, run.run_id, dg.DagsterEventType.RUN_STARTING),
        )
        # Launched by priority, and in submission order within a priority.
        expected = sorted(runs, key=lambda run: -int(run.tags["dagster/priority"]))
        assert [r.run_id for r in started] == [r.run_id for r in expected]
        assert [by_priority[p] for p in (10, 5)] == [r.run_id for r in started[:2]]

        pool = instance.event_log_storage.get_concurrency_info("ingest_files_landing_orders")
        assert (pool.slot_count, pool.using_default_limit) == (1, True)
        windows = sorted(
            (
                _event_time(instance, run.run_id, dg.DagsterEventType.STEP_START, "orders"),
                _event_time(instance, run.run_id, dg.DagsterEventType.STEP_SUCCESS, "orders"),
            )
            for run in runs
            if run.job_name == "orders_job"
        )
        assert len(windows) == 3
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(windows))
    finally:
        instance.dispose()


def _event_time(
    instance: dg.DagsterInstance,
    run_id: str,
    event_type: dg.DagsterEventType,
    step: str | None = None,
) -> float:
    (entry,) = [
        e
        for e in instance.all_logs(run_id, of_type=event_type)
        if step is None or e.step_key == step
    ]
    return entry.timestamp


PARTITION_STATUSES = """
query Statuses($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { status startKey endKey } } }
  }
}
"""
MATERIALIZATIONS = """
query Materializations($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 100) { partition metadataEntries {
      label ... on IntMetadataEntry { intValue } } } }
  }
}
"""
CHECK_EXECUTIONS = """
query Executions($path: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 100) {
    partition status evaluation { description severity }
  }
}
"""


def _wait_for_backfill(dagster: Dagster, backfill_id: str) -> str:
    deadline = time.monotonic() + 400
    status = "REQUESTED"
    while time.monotonic() < deadline:
        status = dagster.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"][
            "status"
        ]
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            return status
        time.sleep(2)
    raise AssertionError(f"backfill still {status}:\n{dagster.log.read_text()[-3000:]}")


def test_a_backfill_with_one_bad_day_shows_nine_days_materialized_each_with_its_own_figures(
    tmp_path: Path,
) -> None:
    """Ten days in one run: the day with a negative amount fails alone; the other nine are
    materialized with their own row counts and their own check evaluations, and the day whose
    two malformed emails were quarantined (within the threshold) shows a passing check."""
    days = [f"2026-11-{day:02d}" for day in range(1, 11)]
    with run_dagster_dev(tmp_path, seed_until="2026-11-10") as dagster:
        bad = sorted((tmp_path / "data/landing/orders/dt=2026-11-05").glob("*.csv"))[0]
        lines = bad.read_text().splitlines()
        header = lines[0].split(",")
        fields = lines[1].split(",")
        fields[header.index("amount")] = "-5"
        bad.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")

        launched = dagster.graphql(
            LAUNCH_BACKFILL,
            {"params": {"partitionNames": days, "assetSelection": [{"path": ["orders"]}]}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        _wait_for_backfill(dagster, launched["backfillId"])
        runs = dagster.graphql(RUNS)["runsOrError"]["results"]
        assert len(runs) == 1, runs  # one run over the ten days

        (node,) = dagster.graphql(PARTITION_STATUSES, {"path": ["orders"]})["assetNodes"]
        ranges = node["assetPartitionStatuses"]["ranges"]
        assert [(r["status"], r["startKey"], r["endKey"]) for r in ranges] == [
            ("MATERIALIZED", days[0], days[3]),
            ("FAILED", days[4], days[4]),
            ("MATERIALIZED", days[5], days[9]),
        ]

        loaded = dict(
            query(
                tmp_path / "data",
                "SELECT _ingest_window_start::DATE::VARCHAR, count(*) FROM raw.orders GROUP BY 1",
            )
        )
        events = dagster.graphql(MATERIALIZATIONS, {"path": ["orders"]})["assetOrError"]
        counts = {
            event["partition"]: {e["label"]: e.get("intValue") for e in event["metadataEntries"]}
            for event in events["assetMaterializations"]
        }
        assert sorted(counts) == sorted(loaded) and len(loaded) == 9
        for day, rows in loaded.items():
            assert counts[day]["dagster/row_count"] == rows, day
        assert counts["2026-11-03"]["rows_rejected"] == 2
        assert counts["2026-11-01"]["rows_rejected"] == 0

        executions = dagster.graphql(CHECK_EXECUTIONS, {"path": ["orders"], "check": "schema"})
        by_day = {e["partition"]: e for e in executions["assetCheckExecutions"]}
        assert sorted(by_day) == days, "each partition has its own evaluation"
        assert by_day["2026-11-05"]["status"] == "FAILED"
        assert {by_day[day]["status"] for day in days if day != "2026-11-05"} == {"SUCCEEDED"}
        quarantined = by_day["2026-11-03"]["evaluation"]["description"]
        assert quarantined.startswith("Passed with a warning: 2 rows"), quarantined

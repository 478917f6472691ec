"""End to end: the real webserver and daemon serve the project's workspace; a backfill over GraphQL
loads the demo files into DuckDB."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from ingest_assets.demo import seed_demo
from ingest_assets.environment import PROJECT_ROOT
from ingest_assets_tests.conftest import free_port, query

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
        response = requests.post(
            f"{self.url}/graphql",
            json={"query": query_text, "variables": variables or {}},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

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
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    seed_demo(data, until=date(2026, 11, 4))
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "INGEST_ASSETS_DATA_DIR": str(data),
        "DEMO_APP_DB_URL": f"sqlite:///{data / 'demo_app.sqlite'}",
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
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_backfill_of_three_partitions_through_graphql_lands_rows_in_duckdb(
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
    assert len(runs) == 3 and {r["status"] for r in runs} == {"SUCCESS"}

    data = tmp_path / "data"
    counts = query(
        data,
        "SELECT _ingest_window_start::DATE::VARCHAR, count(*), count(DISTINCT _ingest_run_id) "
        "FROM raw.orders GROUP BY 1 ORDER BY 1",
    )
    assert counts == [(day, 240, 1) for day in partitions]
    # The SQL dataset: each day's new and changed customers, merged by id.
    with sqlite3.connect(data / "demo_app.sqlite") as app:
        (expected,) = app.execute(
            "SELECT count(*) FROM customers WHERE updated_at < '2026-11-04'"
        ).fetchone()
    customers = query(data, "SELECT count(*), count(DISTINCT id) FROM raw.customers")
    assert customers == [(expected, expected)] and expected > 250

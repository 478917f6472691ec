"""The deployment shape, for real: the production profile (deploy/) with Dagster's records in
PostgreSQL and compute logs in S3; the code server, the daemon and the webserver as separate
processes; a backfill of three datasets over 10 partitions each into PostgreSQL and an Iceberg
lake on S3, several runs at once; a run worker killed by SIGKILL mid-run and retried; then the
Dagster home and the temp folders deleted, and a restarted webserver still shows everything."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import boto3
import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog.sql import SqlCatalog

from ingest_assets.paths import PROJECT_ROOT
from ingest_assets_tests.conftest import csv_bytes, free_port, graphql, order_rows, stop_group
from ingest_assets_tests.postgres import Postgres

HERE = Path(__file__).parent / "deployment"
BIN = Path(sys.executable).parent
DAYS = [f"2026-10-{day:02d}" for day in range(1, 11)]
ORDERS_PER_DAY, CUSTOMERS_PER_DAY = 200, 30
ASSETS = ["orders_pg", "orders_lake", "customers"]
BUCKET = "deploy-landing"

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}
"""
RUNS = """
{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }
"""
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
MATERIALIZED = """
query Asset($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations { partition runId } }
  }
}
"""
CHECKS = """
query Checks($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetChecksOrError { ... on AssetChecks { checks { name
      executionForLatestMaterialization { status } } } }
  }
}
"""


@dataclass
class Deployment:
    """The three services' settings and processes."""

    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    web_port: int

    def graphql(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return graphql(f"http://127.0.0.1:{self.web_port}", text, variables)

    def start(self, name: str, *commands: list[str]) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [part for command in commands for part in command],
            cwd=self.root / "workdir",
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, name: str) -> None:
        stop_group(self.processes.pop(name))

    def start_webserver(self) -> None:
        workspace = str(PROJECT_ROOT / "deploy" / "workspace.yaml")
        self.start(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.web_port),
            ],
        )
        self.wait_until_loaded()

    def wait_until_loaded(self) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                entries = self.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
            except (requests.ConnectionError, requests.Timeout):
                entries = []
            loaded = [e["locationOrLoadError"]["__typename"] for e in entries]
            if loaded == ["RepositoryLocation"]:
                return
            time.sleep(1)
        raise AssertionError("the code location did not load:\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.root.glob("*.log"))
        )


def _with_read_only(folders: list[Path]) -> list[str]:
    """A command prefix that runs the command in a mount namespace of its own, where ``folders``
    are read-only (even for root): a run that wrote there would fail."""
    mounts = " && ".join(
        f"mount --bind {shlex.quote(str(f))} {shlex.quote(str(f))} && "
        f"mount -o remount,bind,ro {shlex.quote(str(f))}"
        for f in folders
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"',
            "read-only"]  # fmt: skip


def _seed(app: Postgres, s3_endpoint: str) -> None:
    """Orders land in S3 (a CSV a day); the application database holds customers."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    for day in DAYS:
        body = csv_bytes(order_rows(day, ORDERS_PER_DAY))
        client.put_object(Bucket=BUCKET, Key=f"orders/dt={day}/part-1.csv", Body=body)
    first = datetime(2026, 10, 1, tzinfo=UTC)
    customers = pa.table(
        {
            "id": list(range(len(DAYS) * CUSTOMERS_PER_DAY)),
            "name": [f"customer {i}" for i in range(len(DAYS) * CUSTOMERS_PER_DAY)],
            "updated_at": pa.array(
                [first + timedelta(minutes=48 * i) for i in range(len(DAYS) * CUSTOMERS_PER_DAY)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    with pg.connect(app.url()) as conn, conn.cursor() as cursor:
        cursor.adbc_ingest("customers", customers, mode="create")
        conn.commit()


@contextmanager
def _deployment(tmp_path: Path, postgres: Postgres, s3_endpoint: str) -> Iterator[Deployment]:
    storage = postgres.fresh_database("dagster_deploy")
    warehouse = postgres.fresh_database("warehouse_deploy")
    app = postgres.fresh_database("app_deploy")
    catalog = postgres.fresh_database("lake_catalog_deploy")
    _seed(app, s3_endpoint)
    for folder in ("home", "workdir", "tmp"):
        (tmp_path / folder).mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", tmp_path / "home" / "dagster.yaml")
    code_port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "DAGSTER_PG_HOST": storage.host,
        "DAGSTER_PG_PORT": str(storage.port),
        "DAGSTER_PG_DB": storage.database,
        "DAGSTER_PG_USER": storage.user,
        "DAGSTER_PG_PASSWORD": storage.password,
        "DAGSTER_COMPUTE_LOGS_BUCKET": BUCKET,
        "DAGSTER_COMPUTE_LOGS_PREFIX": "compute-logs",
        "DAGSTER_S3_ENDPOINT_URL": s3_endpoint,
        "INGEST_S3_ENDPOINT_URL": s3_endpoint,
        "INGEST_CODE_SERVER_HOST": "127.0.0.1",
        "INGEST_CODE_SERVER_PORT": str(code_port),
        "INGEST_ASSETS_DATA_DIR": str(tmp_path / "no-local-data"),  # must stay absent
        "WAREHOUSE_URL": warehouse.url(),
        "APP_DB_URL": app.url(),
        "LAKE_CATALOG_URL": catalog.url(scheme="postgresql+psycopg2"),
    }
    deployment = Deployment(tmp_path, env, {}, free_port())
    try:
        read_only = [tmp_path / "workdir", PROJECT_ROOT]  # where runs execute and the code
        deployment.start(
            "code-server",
            _with_read_only(read_only),
            [
                str(BIN / "dagster"),
                "code-server",
                "start",
                "-m",
                "shop_datasets.definitions",
                "--working-directory",
                str(HERE),
                "-h",
                "127.0.0.1",
                "-p",
                str(code_port),
            ],
        )
        workspace = str(PROJECT_ROOT / "deploy" / "workspace.yaml")
        deployment.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])
        deployment.start_webserver()
        yield deployment
    finally:
        for name in list(deployment.processes):
            deployment.stop(name)


def _runs(deployment: Deployment) -> list[dict[str, Any]]:
    return deployment.graphql(RUNS)["runsOrError"]["results"]


def _hold_three_runs_mid_read(deployment: Deployment) -> dict[str, int]:
    """Freeze (SIGSTOP) each run's process as it starts reading, until three are frozen: three
    runs are then under way at once, however fast this machine launches and finishes them.

    The code server's log names each run's process at its start and each read as it begins.
    Returns the frozen runs' processes by run id.
    """
    log = deployment.root / "code-server.log"
    held: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while len(held) < 3 and time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        for run_id, pid in re.findall(r" - ([0-9a-f-]{36}) - (\d+) - RUN_START", text):
            if run_id in held or f"{run_id} - RUN_SUCCESS" in text:
                continue
            if re.search(f"{run_id} - \\w+ - .*: reading ", text):
                os.kill(int(pid), signal.SIGSTOP)
                held[run_id] = int(pid)
        time.sleep(0.1)
    assert len(held) == 3, f"runs held: {held}\n{deployment.logs()}"
    return held


def _wait_for_every_partition(deployment: Deployment) -> list[dict[str, Any]]:
    """Wait until each day has a successful run and no run is in flight."""
    deadline = time.monotonic() + 900
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = _runs(deployment)
        busy = [r for r in runs if r["status"] not in ("SUCCESS", "FAILURE", "CANCELED")]
        done = {
            tag["value"]
            for run in runs
            if run["status"] == "SUCCESS"
            for tag in run["tags"]
            if tag["key"] in ("dagster/partition", "dagster/asset_partition_range_start")
        }
        if not busy and done == set(DAYS):
            return runs
        time.sleep(2)
    raise AssertionError(f"runs did not finish: {runs}\n{deployment.logs()}")


def _rows_per_day(database: Postgres, table: str, key: str) -> dict[str, tuple[int, int]]:
    with pg.connect(database.url()) as conn, conn.cursor() as cursor:
        cursor.execute(
            f"SELECT _ingest_window_start::date::text, count(*), count(DISTINCT {key}) "
            f"FROM {table} GROUP BY 1"
        )
        return {day: (rows, keys) for day, rows, keys in cursor.fetchall()}


def _lake_rows_per_day(env: dict[str, str]) -> dict[str, int]:
    from ingest_assets.destinations.iceberg.warehouse import s3_properties

    catalog = SqlCatalog(
        "ingest_assets",
        uri=env["LAKE_CATALOG_URL"],
        warehouse=f"s3://{BUCKET}/lake",
        **s3_properties(),
    )
    table = catalog.load_table(("lake", "orders")).scan().to_arrow()
    days = [
        moment.date().isoformat() for moment in table.column("_ingest_window_start").to_pylist()
    ]
    return {day: days.count(day) for day in set(days)}


@pytest.mark.timeout(1200)
def test_a_backfill_on_the_production_shape_survives_a_killed_worker_and_a_lost_dagster_home(
    tmp_path: Path, postgres: Postgres, s3_env: str
) -> None:
    with _deployment(tmp_path, postgres, s3_env) as deployment:
        launched = deployment.graphql(
            LAUNCH_BACKFILL,
            {
                "params": {
                    "partitionNames": DAYS,
                    "assetSelection": [{"path": [name]} for name in ASSETS],
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        held = _hold_three_runs_mid_read(deployment)
        under_way = {run["runId"] for run in _runs(deployment) if run["status"] == "STARTED"}
        assert set(held) <= under_way  # three runs at once, each in the middle of a read
        killed, *others = held
        os.kill(held[killed], signal.SIGKILL)  # a lost node
        for run_id in others:
            os.kill(held[run_id], signal.SIGCONT)
        runs = _wait_for_every_partition(deployment)

        # A run per day (its three datasets' steps in it); the killed one failed and its one
        # retry succeeded.
        failed = [run["runId"] for run in runs if run["status"] == "FAILURE"]
        assert failed == [killed], (runs, deployment.logs())
        retries = [
            run for run in runs
            if {"key": "dagster/parent_run_id", "value": killed} in run["tags"]
        ]  # fmt: skip
        assert [run["status"] for run in retries] == ["SUCCESS"]
        assert len(runs) == len(DAYS) + 1

        # Every partition holds exactly its rows, in the warehouse and in the lake.
        warehouse = Postgres(postgres.host, postgres.port, postgres.user, postgres.password,
                             "warehouse_deploy")  # fmt: skip
        assert _rows_per_day(warehouse, "raw.orders", "order_id") == dict.fromkeys(
            DAYS, (ORDERS_PER_DAY, ORDERS_PER_DAY)
        )
        assert _rows_per_day(warehouse, "raw.customers", "id") == dict.fromkeys(
            DAYS, (CUSTOMERS_PER_DAY, CUSTOMERS_PER_DAY)
        )
        assert _lake_rows_per_day(deployment.env) == dict.fromkeys(DAYS, ORDERS_PER_DAY)

        # Runs executed with the project and their working directory read-only, and nothing
        # was kept on this machine but the killed worker's staging folder.
        mounts = Path(f"/proc/{deployment.processes['code-server'].pid}/mounts").read_text()
        read_only = {line.split()[1] for line in mounts.splitlines() if " ro," in line}
        assert {str(PROJECT_ROOT), str(tmp_path / "workdir")} <= read_only
        assert not (tmp_path / "no-local-data").exists()
        assert list((tmp_path / "workdir").iterdir()) == []
        assert len(list((tmp_path / "tmp").glob("ingest_assets-*"))) <= 1

        # The node is lost: its Dagster home and temp folders go; a new webserver shows it all.
        deployment.stop("webserver")
        shutil.rmtree(tmp_path / "home")
        for staging in (tmp_path / "tmp").glob("ingest_assets-*"):  # the runs' temp folders
            shutil.rmtree(staging)
        (tmp_path / "home").mkdir()
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", tmp_path / "home" / "dagster.yaml")
        deployment.start_webserver()
        assert sorted(run["runId"] for run in _runs(deployment)) == sorted(
            run["runId"] for run in runs
        )
        for name in ASSETS:
            asset = deployment.graphql(MATERIALIZED, {"path": [name]})["assetOrError"]
            assert {m["partition"] for m in asset["assetMaterializations"]} == set(DAYS), name
            (node,) = deployment.graphql(CHECKS, {"path": [name]})["assetNodes"]
            checks = node["assetChecksOrError"]["checks"]
            assert checks and all(
                check["executionForLatestMaterialization"]["status"] == "SUCCEEDED"
                for check in checks
            ), (name, checks)

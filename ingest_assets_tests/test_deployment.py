"""The deployment shape, for real: the production profile (deploy/) with Dagster's records in
PostgreSQL and compute logs in S3; the code server, the daemon and the webserver as separate
processes; a backfill of three datasets over 10 partitions each into PostgreSQL and an Iceberg
lake on S3, several runs at once (held mid-read by a proxy in front of the store); a run worker
killed by SIGKILL mid-run and retried; then the Dagster home and the temp folders deleted, and
a restarted webserver still shows everything."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
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
FAILURES = """
query Failures($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { eventConnection { events {
    ... on ExecutionStepFailureEvent { stepKey error { message } }
    ... on RunFailureEvent { message }
  } } } }
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


#: A request line listing or reading one day's orders (boto3 quotes the prefix's "=").
STALLED_READ = re.compile(rb"^(?:GET|HEAD) \S*dt(?:=|%3D)(2026-10-\d\d)", re.MULTILINE)


class StallingProxy:
    """A TCP proxy in front of the object store that holds every request matching a pattern
    until released: runs stall mid-read, in the store's hands, as behind a slow network.

    Args:
        upstream: The store's URL (``http://host:port``).
        pattern: What a held request's bytes match; its first group names what is held.
    """

    def __init__(self, upstream: str, pattern: re.Pattern[bytes]) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._pattern = pattern
        self._released = threading.Event()
        self._held: set[str] = set()
        self._changed = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> StallingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._listener.close()

    def wait_for(self, count: int, timeout: float) -> set[str]:
        """Wait until requests for ``count`` different things are held; what is held."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._held) >= count, timeout)
            return set(self._held)

    def release(self) -> None:
        """Let every held request through, and hold none from now on."""
        self._released.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, requests_: bool) -> None:
        try:
            while chunk := source.recv(65536):
                match = self._pattern.search(chunk) if requests_ else None
                if match and not self._released.is_set():
                    with self._changed:
                        self._held.add(match.group(1).decode())
                        self._changed.notify_all()
                    self._released.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


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
def _deployment(
    tmp_path: Path, postgres: Postgres, s3_endpoint: str, sources_endpoint: str
) -> Iterator[Deployment]:
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
        "INGEST_S3_ENDPOINT_URL": sources_endpoint,
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
                "--location-name",
                "ingest_assets",
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


def _failures(deployment: Deployment, runs: list[dict[str, Any]]) -> str:
    """What each failed run's failure events said, for an assertion's message."""
    said = []
    for run in runs:
        if run["status"] == "FAILURE":
            result = deployment.graphql(FAILURES, {"runId": run["runId"]})["runOrError"]
            events = [event for event in result["eventConnection"]["events"] if event]
            said.append(f"--- run {run['runId']}: {events}")
    return "\n".join(said)


def _hold_three_runs_mid_read(deployment: Deployment, store: StallingProxy) -> dict[str, int]:
    """Wait until three runs are each stalled listing their day's objects: three runs are then
    under way at once, each in the middle of a read and holding no lock, however fast this
    machine launches and finishes runs.

    The code server's log names each run's process at its start. Returns the stalled runs'
    processes by run id.
    """
    days = store.wait_for(3, timeout=600)
    assert len(days) == 3, f"reads stalled: {days}\n{deployment.logs()}"
    text = (deployment.root / "code-server.log").read_text(errors="replace")
    pids = dict(re.findall(r" - ([0-9a-f-]{36}) - (\d+) - RUN_START", text))
    held = {}
    for run in _runs(deployment):
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        if tags.get("dagster/asset_partition_range_start") in days and run["runId"] in pids:
            held[run["runId"]] = int(pids[run["runId"]])
    assert len(held) == 3, f"runs held: {held} for {days}\n{deployment.logs()}"
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
    raise AssertionError(
        f"runs did not finish: {runs}\n{_failures(deployment, runs)}\n{deployment.logs()}"
    )


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
    with (
        StallingProxy(s3_env, STALLED_READ) as store,
        _deployment(tmp_path, postgres, s3_env, store.url) as deployment,
    ):
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
        held = _hold_three_runs_mid_read(deployment, store)
        under_way = {run["runId"] for run in _runs(deployment) if run["status"] == "STARTED"}
        assert set(held) <= under_way  # three runs at once, each in the middle of a read
        killed = next(iter(held))
        os.kill(held[killed], signal.SIGKILL)  # a lost node
        store.release()
        runs = _wait_for_every_partition(deployment)

        # A run per day (its three datasets' steps in it); the killed one failed and its one
        # retry succeeded.
        failed = [run["runId"] for run in runs if run["status"] == "FAILURE"]
        assert failed == [killed], (runs, _failures(deployment, runs), deployment.logs())
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

"""Shared fixtures: real services on free loopback ports; helpers to declare and load datasets."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import duckdb
import pytest
import requests
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from moto.server import ThreadedMotoServer

from ingest_assets.components.assets import dataset_asset
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.api_server import ApiState, api_server, make_records
from ingest_assets_tests.postgres import Postgres, postgres_server

ORDER_COLUMNS = {
    "order_id": {"dtype": "string", "nullable": False, "unique": True},
    "amount": {"dtype": "float64", "nullable": False, "checks": {"ge": 0}},
    "quantity": {"dtype": "int64", "checks": {"ge": 1}},
    "email": {"dtype": "string", "checks": {"regex": r"^[^@\s]+@[^@\s]+\.[a-z]+$"}},
    "ordered_at": {"dtype": "timestamp", "nullable": False},
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on a free loopback port, for the whole session."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials and endpoint for the local S3 server, as a user would set them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("INGEST_S3_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def bucket(s3_env: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the local S3 server."""
    name = "landing-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory, used for relative locations and the warehouse."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("INGEST_ASSETS_DATA_DIR", str(folder))
    return folder


def order_rows(day: str, count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """Valid order rows of one day."""
    return [
        {
            "order_id": f"{day}-{i:04d}",
            "amount": f"{(i % 97) * 1.5 + 1:.2f}",
            "quantity": str(i % 5 + 1),
            "email": f"user{i}@example.com",
            "ordered_at": f"{day}T{i % 24:02d}:{i % 60:02d}:00Z",
        }
        for i in range(start, start + count)
    ]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as a CSV file with a header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows as CSV bytes with a header."""
    header = ",".join(rows[0])
    lines = [",".join(str(value) for value in row.values()) for row in rows]
    return ("\n".join([header, *lines]) + "\n").encode()


def orders_spec(location: str, **overrides: Any) -> DatasetSpec:
    """An orders dataset reading daily CSV drops under ``location``."""
    raw: dict[str, Any] = {
        "name": "orders",
        "owners": ["team:test"],
        "source": {"location": location, "key_template": "dt={date}/*.csv"},
        "partitioning": {"cadence": "daily", "start": "2026-10-01"},
        "schema": {"columns": ORDER_COLUMNS},
        "destination": {"table": "raw.orders"},
        "retry": {"max_retries": 0},  # failure tests fail at once; retries are tested on their own
    }
    for key, value in overrides.items():
        raw[key] = value
    return DatasetSpec.model_validate(raw)


#: The days the destination tests load, and their rows a day.
DEST_DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]
DEST_PER_DAY = 40


#: The 30 days the concurrency tests load from four processes at once.
RACE_DAYS = [f"2026-10-{day:02d}" for day in range(1, 31)]
#: What each of those four processes loads: runs of days, each run's days in one load.
RACE_PLANS = [
    [RACE_DAYS],  # one run over all 30 days
    [[day] for day in reversed(RACE_DAYS)],  # a run per day, newest first
    [[day] for day in RACE_DAYS[:15]],  # a run per day, the first half
    [RACE_DAYS[15:], RACE_DAYS[10:20]],  # two ranges overlapping every other plan
]


def drop_days(data_dir: Path, per_day: int = DEST_PER_DAY, days: list[str] = DEST_DAYS) -> None:
    """One CSV file of valid orders a day (DEST_DAYS by default), under ``<data dir>/orders``."""
    for day in days:
        write_csv(data_dir / "orders" / f"dt={day}" / "part-1.csv", order_rows(day, per_day))


def window_checksums(rows: list[tuple[Any, ...]]) -> dict[str, str]:
    """An order-independent checksum of each window's rows, whatever store they were read from.

    Each row's last value is its window's start; timestamps count as epoch seconds, so a store's
    time zone does not change the sum.
    """
    sums: dict[str, int] = {}
    for row in rows:
        plain = tuple(value.timestamp() if hasattr(value, "timestamp") else value for value in row)
        digest = int.from_bytes(hashlib.sha256(repr(plain).encode()).digest()[:8])
        window = datetime.fromtimestamp(plain[-1], UTC).isoformat()
        sums[window] = (sums.get(window, 0) + digest) % 2**64
    return {window: f"{total:016x}" for window, total in sorted(sums.items())}


def load_days(spec: DatasetSpec, days: list[str], run_id: str = "test") -> None:
    """Load days of a dataset through the public API, as a script would."""
    from ingest_assets.core import load_windows, open_destination, open_reader, windows_for

    reader, destination = open_reader(spec), open_destination(spec)
    load_windows(spec, windows_for(spec, days), reader, destination, run_id=run_id)


def materialize(
    spec: DatasetSpec,
    partition_key: str,
    data_dir: Path,
    *,
    extra_assets: list[Any] | None = None,
    s3_endpoint: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize one partition of a dataset (and extra assets) the way a run would."""
    resources: dict[str, Any] = {
        "duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))
    }
    if s3_endpoint:
        resources["s3"] = S3Resource(
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        )
    return dg.materialize(
        [dataset_asset(spec, origin="test"), *(extra_assets or [])],
        partition_key=partition_key,
        resources=resources,
        raise_on_error=False,
    )


def query(data_dir: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run a query against the test warehouse."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def check_named(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    """The evaluation of the named check in a run (exactly one)."""
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return evaluation


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    """The message of the run's first step failure."""
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "expected a step failure"
    error = failures[0].step_failure_data.error
    assert error is not None
    messages = []
    while error is not None:  # after retries, the cause carries the last try's error
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


PG_PASSWORD = "pg-Secret-7f3a9"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server on a free loopback port, for the whole session."""
    with postgres_server(free_port(), PG_PASSWORD) as server:
        yield server


#: The day the REST tests load, and how many records the test API holds for each day.
REST_DAY = "2026-10-02"
REST_PER_DAY = 130


@contextmanager
def records_api() -> Iterator[tuple[str, ApiState]]:
    """A local test API holding orders of three days around ``REST_DAY``."""
    with api_server(free_port()) as (base, state):
        for day in ("2026-10-01", REST_DAY, "2026-10-03"):
            state.records += make_records(day, REST_PER_DAY)
        yield base, state


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    """The REST tests' API server."""
    with records_api() as served:
        yield served


def graphql(url: str, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask a Dagster webserver's GraphQL endpoint; the answer's data (its errors fail the test)."""
    response = requests.post(
        f"{url}/graphql", json={"query": text, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def stop_group(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """End a process started in a session of its own, and every process of that session."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

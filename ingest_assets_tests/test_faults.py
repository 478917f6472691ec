"""Faults and figures: a PostgreSQL backend killed mid-read, processes sharing one DuckDB file,
reserved and clashing column names, the audit's CPU and memory, reconciliation with quarantine."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse, duckdb_connector
from ingest_assets.engine import load_window
from ingest_assets.errors import SourceError
from ingest_assets.sources.base import Chunk
from ingest_assets.sources.object_store.reader import LocalStore, ObjectStoreReader
from ingest_assets.sources.sql.reader import SqlReader
from ingest_assets.spec import DatasetSpec, SqlSource
from ingest_assets.windows import Window
from ingest_assets_tests.conftest import order_rows, orders_spec, query, write_csv
from ingest_assets_tests.postgres import Postgres
from ingest_assets_tests.test_sql import checks, run, sql_spec

DAY = Window(datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC))


class _KillsOnce(SqlReader):
    """A reader whose PostgreSQL backend is terminated after its first batch, once."""

    def __init__(self, *args: Any, postgres: Postgres, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.postgres = postgres
        self.killed = 0
        self.reads = 0

    def read(self, window: Window, arrow_types: dict[str, Any]) -> Iterator[Chunk]:
        self.reads += 1
        for chunk in super().read(window, arrow_types):
            yield chunk
            if not self.killed:
                self.killed += 1
                self.postgres.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND query LIKE '%big_events%'"
                )


def test_a_postgres_backend_terminated_mid_read_is_read_again_and_the_window_is_exact(
    postgres: Postgres, tmp_path: Path
) -> None:
    postgres.execute(
        "DROP TABLE IF EXISTS big_events",
        "CREATE TABLE big_events AS SELECT i AS id, repeat('x', 60) || i AS label, "
        "timestamptz '2026-10-02 00:00+00' + (i % 86400) * interval '1 second' AS at "
        "FROM generate_series(1, 400000) AS i",
    )
    spec = sql_spec(
        "big_events",
        {"table": "big_events", "time_column": "at"},
        {"id": {"dtype": "int64", "unique": True}, "label": {"dtype": "string"},
         "at": {"dtype": "timestamp"}},
    )  # fmt: skip
    assert isinstance(spec.source, SqlSource)
    reader = _KillsOnce(spec.source, postgres.url(), dataset="big_events", postgres=postgres)
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "w.duckdb"), "w")
    with reader.session():
        report = load_window(spec, DAY, reader, warehouse, run_id="r")
    assert reader.killed == 1 and reader.reads == 2, "the broken read is read again whole"
    assert (report.rows_read, report.rows_written) == (400_000, 400_000)
    with duckdb_connector(tmp_path / "w.duckdb")() as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM raw.big_events"
        ).fetchall() == [(400_000, 400_000)]


def test_a_read_failure_that_is_not_a_broken_connection_says_so(
    postgres: Postgres, tmp_path: Path
) -> None:
    spec = sql_spec(
        "nothing", {"query": "SELECT 1/0 AS id, now() AS at", "time_column": "at"},
        {"id": {"dtype": "int64"}},
    )  # fmt: skip
    assert isinstance(spec.source, SqlSource)
    reader = SqlReader(spec.source, postgres.url(), dataset="nothing")
    with pytest.raises(SourceError) as failed:
        list(reader.read(DAY, {}))
    assert "the read failed" in str(failed.value) and "division by zero" in str(failed.value)
    assert not failed.value.transient and "reachable from ;" not in str(failed.value)


def test_a_mysql_url_without_its_driver_names_the_package(tmp_path: Path) -> None:
    spec = sql_spec("m", {"table": "t", "time_column": "at"}, {"id": {"dtype": "int64"}})
    assert isinstance(spec.source, SqlSource)
    with pytest.raises(SourceError) as failed:
        reader = SqlReader(spec.source, "mysql+pymysql://u:p4ssw0rd@127.0.0.1/db", dataset="m")
        list(reader.read(DAY, {}))
    message = str(failed.value)
    assert "driver 'pymysql'" in message and "uv add pymysql" in message
    assert "p4ssw0rd" not in message and "reachable" not in message


def _concurrent_load(args: tuple[str, str, int]) -> tuple[int, str]:
    landing, database, day = args
    spec = orders_spec(landing)
    source = spec.source
    window = Window(datetime(2026, 10, day, tzinfo=UTC), datetime(2026, 10, day + 1, tzinfo=UTC))
    reader = ObjectStoreReader(LocalStore(Path(landing)), source, dataset="orders")  # type: ignore[arg-type]
    warehouse = DuckDBWarehouse(duckdb_connector(database), database)
    report = load_window(spec, window, reader, warehouse, run_id=f"run-{day}")
    return report.rows_written, report.load_id


def test_processes_loading_one_duckdb_file_at_once_all_land_with_their_audit_rows(
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    days = list(range(1, 9))
    for day in days:
        write_csv(
            landing / f"dt=2026-10-{day:02d}" / "a.csv", order_rows(f"2026-10-{day:02d}", 3000)
        )
    database = str(tmp_path / "w.duckdb")
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.map(_concurrent_load, [(str(landing), database, day) for day in days])
    assert [rows for rows, _ in results] == [3000] * len(days)
    with duckdb_connector(database)() as conn:
        assert conn.execute("SELECT count(*) FROM raw.orders").fetchall() == [(3000 * len(days),)]
        audited = conn.execute(
            "SELECT load_id, status FROM ingest_audit.loads ORDER BY load_id"
        ).fetchall()
    assert sorted(audited) == sorted((load_id, "success") for _, load_id in results)


def test_a_lock_held_past_the_wait_is_a_transient_destination_error(tmp_path: Path) -> None:
    import duckdb

    from ingest_assets.destinations.duckdb import warehouse as destination
    from ingest_assets.errors import DestinationError

    database = tmp_path / "w.duckdb"
    holder = multiprocessing.get_context("spawn").Process(target=_hold_lock, args=(str(database),))
    holder.start()
    try:
        while not (tmp_path / "held").exists():
            time.sleep(0.05)
        warehouse = DuckDBWarehouse(duckdb_connector(database), "w")
        wait, destination.LOCK_WAIT_SECONDS = destination.LOCK_WAIT_SECONDS, 0.5
        try:
            with pytest.raises(DestinationError) as failed:
                warehouse.load_history("orders", datetime.now(UTC), 3)
        finally:
            destination.LOCK_WAIT_SECONDS = wait
        assert failed.value.transient and "Another process held the database" in str(failed.value)
    finally:
        holder.terminate()
        holder.join()
    assert isinstance(duckdb.connect(str(database)), duckdb.DuckDBPyConnection)


def _hold_lock(database: str) -> None:
    import duckdb

    conn = duckdb.connect(database)
    Path(database).with_name("held").write_text("")
    time.sleep(60)
    conn.close()


def test_a_source_column_with_the_reserved_prefix_is_never_loaded(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    stamp = "1999-01-01T00:00:00Z"
    rows = [{**row, "_ingest_window_start": stamp} for row in order_rows("2026-10-02", 40)]
    write_csv(landing / "dt=2026-10-02" / "a.csv", rows)
    spec = orders_spec(str(landing), quality={"drift": "evolve"})
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "w.duckdb"), "w")
    for _ in range(2):
        reader = ObjectStoreReader(LocalStore(landing), spec.source, dataset="orders")  # type: ignore[arg-type]
        report = load_window(spec, DAY, reader, warehouse, run_id="r")
    drift = report.checks["drift"]
    assert not drift.passed and "_ingest_window_start" in (drift.description or "")
    with duckdb_connector(tmp_path / "w.duckdb")() as conn:
        assert conn.execute(
            "SELECT count(*), min(_ingest_window_start) FROM raw.orders"
        ).fetchall() == [(40, datetime(2026, 10, 2, tzinfo=UTC))]


def test_dedup_works_with_columns_named_like_duckdb_file_columns(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    rows = [
        {"order_id": f"o{i % 5}", "filename": f"f{i}", "file_row_number": str(i),
         "amount": "1", "quantity": "1", "email": "a@b.co", "ordered_at": "2026-10-02T01:00:00Z"}
        for i in range(20)
    ]  # fmt: skip
    write_csv(landing / "dt=2026-10-02" / "a.csv", rows)
    columns = {
        "order_id": {"dtype": "string"},
        "filename": {"dtype": "string"},
        "file_row_number": {"dtype": "int64"},
    }
    spec = orders_spec(str(landing), schema={"columns": columns}, dedup={"key": ["order_id"]})
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "w.duckdb"), "w")
    reader = ObjectStoreReader(LocalStore(landing), spec.source, dataset="orders")  # type: ignore[arg-type]
    report = load_window(spec, DAY, reader, warehouse, run_id="r")
    assert (report.rows_written, report.rows_deduplicated) == (5, 15)
    with duckdb_connector(tmp_path / "w.duckdb")() as conn:  # the row read last wins
        kept = conn.execute("SELECT filename FROM raw.orders ORDER BY order_id").fetchall()
    assert kept == [("f15",), ("f16",), ("f17",), ("f18",), ("f19",)]


class _HeavyWrite(DuckDBWarehouse):
    """A warehouse whose write burns CPU and memory the way a large insert does."""

    def write_windows(self, *args: Any, **kwargs: Any) -> list[int]:
        ballast = bytearray(300 * 2**20)  # touched, so it is resident
        for offset in range(0, len(ballast), 4096):
            ballast[offset] = 1
        started = time.process_time()
        while time.process_time() - started < 0.3:
            pass
        del ballast
        return super().write_windows(*args, **kwargs)


def test_the_audit_row_counts_the_writes_cpu_time_and_memory(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 50))
    spec = orders_spec(str(landing))
    warehouse = _HeavyWrite(duckdb_connector(tmp_path / "w.duckdb"), "w")
    reader = ObjectStoreReader(LocalStore(landing), spec.source, dataset="orders")  # type: ignore[arg-type]
    report = load_window(spec, DAY, reader, warehouse, run_id="r")
    with duckdb_connector(tmp_path / "w.duckdb")() as conn:
        ((cpu, peak),) = conn.execute(
            "SELECT cpu_seconds, peak_rss_bytes FROM ingest_audit.loads"
        ).fetchall()
    assert cpu >= 0.3 and peak >= 300 * 2**20
    assert (report.cpu_seconds, report.peak_rss_bytes) == (cpu, peak)


def test_reconciliation_counts_quarantined_and_deduplicated_rows_as_accounted_for(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = data_dir / "app.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, amount REAL, created_at TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [(i % 18, -1.0 if i == 3 else 2.0, f"2026-10-02 {i:02d}:00:00") for i in range(20)],
        )
    monkeypatch.setenv("APP_DB_URL", f"sqlite:///{database}")
    columns = {
        "id": {"dtype": "int64"},
        "amount": {"dtype": "float64", "checks": {"ge": 0, "severity": "warn"}},
        "created_at": {"dtype": "timestamp"},
    }
    spec = sql_spec("orders", {"table": "orders", "time_column": "created_at"}, columns)
    spec = spec.model_copy(
        update={
            "quality": spec.quality.model_copy(update={"max_rejected_fraction": 0.5}),
            "dedup": DatasetSpec.model_validate(
                {**spec.model_dump(by_alias=True), "dedup": {"key": ["id"]}}
            ).dedup,
        }
    )
    result = run(spec, "2026-10-02", data_dir)
    assert result.success
    found = checks(result)
    assert found["schema"].severity.value == "WARN"  # one row quarantined
    reconciled = found["reconciliation"]
    assert reconciled.passed, reconciled.description
    assert reconciled.metadata["rows_set_aside"].value == 3  # 1 quarantined, 2 duplicates
    alone = checks(run(spec, "2026-10-02", data_dir, checks_only=True))["reconciliation"]
    assert alone.passed and alone.metadata["loaded_rows"].value == 17
    query(data_dir, "SELECT 1")  # the warehouse is readable
    import duckdb

    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("DELETE FROM raw.orders WHERE id = 5")
    alone = checks(run(spec, "2026-10-02", data_dir, checks_only=True))["reconciliation"]
    assert not alone.passed and alone.metadata["difference"].value == -1
    _ = timedelta


def test_no_secret_reaches_any_log_at_debug_in_sql_and_s3_loads(
    postgres: Postgres, data_dir: Path, bucket: str, s3_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import logging

    import boto3
    import dagster as dg
    from dagster_aws.s3 import S3Resource
    from dagster_duckdb import DuckDBResource

    from ingest_assets.components.assets import dataset_asset
    from ingest_assets_tests.conftest import PG_PASSWORD, csv_bytes, step_failure

    postgres.execute(
        "DROP TABLE IF EXISTS logged_orders",
        "CREATE TABLE logged_orders AS SELECT i AS id, timestamptz '2026-10-02 00:00+00' + "
        "i * interval '1 minute' AS created_at FROM generate_series(1, 50) AS i",
    )
    monkeypatch.setenv("APP_DB_URL", postgres.url())
    session_token = "FwoGZXIvYXdzEXAMPLE-session-token-value"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-Secret-Key-9f8e7d")
    monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        sql = sql_spec(
            "orders", {"table": "logged_orders", "time_column": "created_at"},
            {"id": {"dtype": "int64"}, "created_at": {"dtype": "timestamp"}},
        )  # fmt: skip
        assert run(sql, "2026-10-02", data_dir).success
        monkeypatch.setenv("APP_DB_URL", postgres.url(password="wrong-Password-123"))
        assert "refused the login" in step_failure(run(sql, "2026-10-02", data_dir))

        client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
        client.put_object(
            Bucket=bucket, Key="dt=2026-10-02/a.csv", Body=csv_bytes(order_rows("2026-10-02", 5))
        )
        for location, expected in ((f"s3://{bucket}", None), (f"s3://{bucket}-x", "NoSuchBucket")):
            result = dg.materialize(
                [dataset_asset(orders_spec(location), origin="test")],
                partition_key="2026-10-02",
                resources={
                    "duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb")),
                    "s3": S3Resource(  # temporary credentials: the token goes in a header
                        endpoint_url=s3_env,
                        region_name="us-east-1",
                        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                        aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
                        aws_session_token=dg.EnvVar("AWS_SESSION_TOKEN"),
                    ),
                },
                raise_on_error=False,
            )
            assert result.success if expected is None else expected in step_failure(result)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = "\n".join(lines)
    assert "X-Amz-Security-Token" in text, "botocore logs request headers at DEBUG"
    for secret in (PG_PASSWORD, "wrong-Password-123", "s3-Secret-Key-9f8e7d", session_token):
        assert secret not in text

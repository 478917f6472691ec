"""The PostgreSQL warehouse destination against a real server: the same rows as DuckDB, every
load mode, failed loads, concurrent writers, and no password anywhere."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import dagster as dg
import duckdb
import pytest

from ingest_assets.components.assets import dataset_asset
from ingest_assets.errors import DestinationError
from ingest_assets.onboarding import probe
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.conftest import (
    DEST_DAYS,
    DEST_PER_DAY,
    PG_PASSWORD,
    RACE_DAYS,
    RACE_PLANS,
    drop_days,
    load_days,
    orders_spec,
    window_checksums,
)
from ingest_assets_tests.postgres import Postgres

DAYS, PER_DAY = DEST_DAYS, DEST_PER_DAY


@pytest.fixture
def warehouse(postgres: Postgres, monkeypatch: pytest.MonkeyPatch, request: Any) -> Postgres:
    """A fresh warehouse database on the test server; WAREHOUSE_URL points at it."""
    name = "wh_" + request.node.name.lower()[:40].replace("[", "_").replace("]", "_")
    server = postgres.fresh_database(name)
    monkeypatch.setenv("WAREHOUSE_URL", server.url())
    return server


def _rows(server: Postgres, sql: str) -> list[tuple[Any, ...]]:
    with pg.connect(server.url()) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _spec(table: str = "raw.orders", **overrides: Any) -> DatasetSpec:
    destination = {"kind": "postgres", "url_env": "WAREHOUSE_URL", "table": table}
    return orders_spec("orders", destination=destination, **overrides)


def test_postgres_holds_the_rows_duckdb_holds_and_a_rerun_changes_nothing(
    warehouse: Postgres, data_dir: Path
) -> None:
    drop_days(data_dir)
    spec = _spec()
    load_days(spec, DAYS)
    load_days(spec, DAYS[1:2])  # a rerun of one window replaces exactly its rows
    load_days(orders_spec("orders"), DAYS)  # the same dataset into DuckDB
    columns = "order_id, amount, quantity, email, ordered_at, _ingest_window_start"
    in_postgres = _rows(warehouse, f"SELECT {columns} FROM raw.orders ORDER BY order_id")
    audit_sql = "SELECT partition, checksum FROM ingest_audit.loads ORDER BY ended_at"
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        in_duckdb = conn.execute(f"SELECT {columns} FROM raw.orders ORDER BY order_id").fetchall()
        duckdb_audit = conn.execute(audit_sql).fetchall()
    assert len(in_postgres) == len(DAYS) * PER_DAY
    assert [_plain(row) for row in in_postgres] == [_plain(row) for row in in_duckdb]
    assert window_checksums(in_postgres) == window_checksums(in_duckdb)
    types = dict(_rows(warehouse, "SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = 'orders'"))  # fmt: skip
    assert types["ordered_at"] == "timestamp with time zone" and types["quantity"] == "bigint"
    audit = _rows(warehouse, "SELECT partition, status, rows_written FROM ingest_audit.loads "
                             "ORDER BY ended_at")  # fmt: skip
    assert [(s, n) for _, s, n in audit] == [("success", PER_DAY)] * 4
    assert dict(_rows(warehouse, audit_sql)) == dict(duckdb_audit)  # the audit's checksums


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(value.timestamp() if hasattr(value, "timestamp") else value for value in row)


def _load_in_process(url: str, data: str, plan: list[list[str]]) -> None:
    os.environ["WAREHOUSE_URL"], os.environ["INGEST_ASSETS_DATA_DIR"] = url, data
    spec = _spec()
    for days in plan:
        load_days(spec, days)


def test_four_processes_loading_30_overlapping_partitions_leave_exactly_each_partitions_rows(
    warehouse: Postgres, data_dir: Path
) -> None:
    drop_days(data_dir, per_day=100, days=RACE_DAYS)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_load_in_process, args=(warehouse.url(), str(data_dir), p))
               for p in RACE_PLANS]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    counts = _rows(
        warehouse,
        "SELECT _ingest_window_start::date::text, count(*), count(DISTINCT order_id) "
        "FROM raw.orders GROUP BY 1 ORDER BY 1",
    )
    assert counts == [(day, 100, 100) for day in RACE_DAYS]
    loads = _rows(warehouse, "SELECT count(*) FROM ingest_audit.loads WHERE status = 'success'")
    assert loads == [(sum(len(days) for plan in RACE_PLANS for days in plan),)]


def test_the_asset_shows_the_postgres_table_and_no_password_reaches_an_error(
    warehouse: Postgres, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop_days(data_dir)
    asset = dataset_asset(_spec(), origin="test")
    assert asset.specs_by_key[dg.AssetKey("orders")].kinds == {"file", "postgres"}
    result = dg.materialize([asset], partition_key=DAYS[0])
    (materialization,) = result.asset_materializations_for_node("orders")
    assert (
        materialization.metadata["dagster/table_name"].value == f"{warehouse.database}.raw.orders"
    )
    assert materialization.metadata["dagster/row_count"].value == PER_DAY
    uri = materialization.metadata["dagster/uri"].value
    assert str(uri).endswith("?table=raw.orders") and PG_PASSWORD not in str(uri)
    answer = probe(_spec(), now=datetime(2026, 10, 2, 12, tzinfo=UTC))  # ingest-assets check
    assert answer.ok and answer.detail.endswith("raw.orders holds 40 rows"), answer.detail
    assert "_ingest_probe" not in str(_rows(warehouse, "SELECT tablename FROM pg_tables"))

    monkeypatch.setenv("WAREHOUSE_URL", warehouse.url(password="not-the-Password-42"))
    with pytest.raises(DestinationError) as failed:
        load_days(_spec(), DAYS[:1])
    assert "not-the-Password-42" not in str(failed.value) and PG_PASSWORD not in str(failed.value)
    assert "***" in str(failed.value) or "password authentication failed" in str(failed.value)

"""The Iceberg lake destination through pyiceberg and a SQL catalog: a local folder and S3 (moto),
the same rows as DuckDB, failed loads, merge order, concurrent writers, and DuckDB reading it."""

from __future__ import annotations

import logging
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError

from ingest_assets.components.assets import dataset_asset
from ingest_assets.destinations.iceberg.warehouse import s3_properties
from ingest_assets.onboarding import probe
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.conftest import (
    DEST_DAYS,
    DEST_PER_DAY,
    RACE_DAYS,
    RACE_PLANS,
    drop_days,
    load_days,
    orders_spec,
    window_checksums,
)

DAYS, PER_DAY = DEST_DAYS, DEST_PER_DAY
SECRET = "lake-Secret-Key-7731"
COLUMNS = ["order_id", "amount", "quantity", "email", "ordered_at", "_ingest_window_start"]


def _spec(table: str = "raw.orders", warehouse: str = "lake", **overrides: Any) -> DatasetSpec:
    destination = {"kind": "iceberg", "table": table, "warehouse": warehouse}
    return orders_spec("orders", destination=destination, **overrides)


def _catalog(data_dir: Path, warehouse: str) -> SqlCatalog:
    extra = s3_properties() if warehouse.startswith("s3://") else {}
    warehouse = warehouse or f"file://{data_dir / 'lake'}"
    uri = f"sqlite:///{data_dir / 'iceberg_catalog.db'}"
    return SqlCatalog("ingest_assets", uri=uri, warehouse=warehouse, **extra)


def _table_rows(data_dir: Path, warehouse: str, table: str) -> list[tuple[Any, ...]]:
    lake = _catalog(data_dir, warehouse).load_table(tuple(table.split(".")))
    rows = lake.scan(selected_fields=tuple(COLUMNS)).to_arrow().sort_by("order_id").to_pylist()
    return [tuple(row[c] for c in COLUMNS) for row in rows]


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_iceberg_holds_the_rows_duckdb_holds_and_a_rerun_changes_nothing(
    where: str,
    data_dir: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    warehouse = "lake"
    if where == "s3":
        bucket = request.getfixturevalue("bucket")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # moto takes any key
        warehouse = f"s3://{bucket}/lake"
    drop_days(data_dir)
    spec = _spec(warehouse=warehouse)
    load_days(spec, DAYS)
    load_days(spec, DAYS[1:2])  # a rerun of one window replaces exactly its rows
    load_days(orders_spec("orders"), DAYS)  # the same dataset into DuckDB
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        in_duckdb = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM raw.orders ORDER BY 1"
        ).fetchall()
        duckdb_audit = conn.execute("SELECT partition, checksum FROM ingest_audit.loads").fetchall()
    in_lake = _table_rows(data_dir, "" if where == "folder" else warehouse, "raw.orders")
    assert len(in_lake) == len(DAYS) * PER_DAY
    assert [_plain(r) for r in in_lake] == [_plain(r) for r in in_duckdb]
    assert window_checksums(in_lake) == window_checksums(in_duckdb)
    catalog = _catalog(data_dir, "" if where == "folder" else warehouse)
    lake = catalog.load_table(("raw", "orders"))
    assert [field.name for field in lake.spec().fields] == ["window"]  # partitioned by day
    assert lake.current_snapshot().summary["ingest.run_id"] == "test"  # type: ignore[union-attr]
    audit = catalog.load_table(("ingest_audit", "loads")).scan().to_arrow()
    assert audit.column("status").to_pylist() == ["success"] * 4
    lake_audit = audit.select(["partition", "checksum"]).to_pylist()  # the audit's checksums
    assert {row["partition"]: row["checksum"] for row in lake_audit} == dict(duckdb_audit)
    assert SECRET not in caplog.text and SECRET not in str(audit.to_pylist())


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(value.timestamp() if hasattr(value, "timestamp") else value for value in row)


def test_duckdb_reads_the_lake_the_readme_way(data_dir: Path) -> None:
    drop_days(data_dir)
    load_days(_spec(), DAYS)
    lake = _catalog(data_dir, "").load_table(("raw", "orders"))
    with duckdb.connect() as conn:
        conn.register("orders", lake.scan().to_arrow())
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (len(DAYS) * PER_DAY,)


def _load_in_process(data: str, plan: list[list[str]]) -> None:
    os.environ["INGEST_ASSETS_DATA_DIR"] = data
    spec = _spec()
    for days in plan:
        load_days(spec, days)


def test_four_processes_loading_30_overlapping_partitions_leave_exactly_each_partitions_rows(
    data_dir: Path,
) -> None:
    drop_days(data_dir, per_day=20, days=RACE_DAYS)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_load_in_process, args=(str(data_dir), plan))
               for plan in RACE_PLANS]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    rows = _table_rows(data_dir, "", "raw.orders")
    by_day: dict[str, set[str]] = {}
    for row in rows:
        by_day.setdefault(row[5].date().isoformat(), set()).add(row[0])
    assert len(rows) == 30 * 20
    assert {day: len(ids) for day, ids in by_day.items()} == dict.fromkeys(RACE_DAYS, 20)
    audit = _catalog(data_dir, "").load_table(("ingest_audit", "loads")).scan().to_arrow()
    loads = sum(len(days) for plan in RACE_PLANS for days in plan)
    assert audit.column("status").to_pylist() == ["success"] * loads


def test_the_asset_shows_the_iceberg_table(data_dir: Path) -> None:
    drop_days(data_dir)
    asset = dataset_asset(_spec(), origin="test")
    assert asset.specs_by_key[dg.AssetKey("orders")].kinds == {"file", "iceberg"}
    result = dg.materialize([asset], partition_key=DAYS[0])
    (materialization,) = result.asset_materializations_for_node("orders")
    assert materialization.metadata["dagster/table_name"].value == "iceberg.raw.orders"
    assert materialization.metadata["dagster/row_count"].value == PER_DAY
    assert str(materialization.metadata["dagster/uri"].value).endswith("lake/raw.db/orders")
    answer = probe(_spec(), now=datetime(2026, 10, 2, 12, tzinfo=UTC))  # ingest-assets check
    assert answer.ok and answer.detail.endswith("raw.orders holds 40 rows"), answer.detail


def test_first_loads_racing_to_create_the_namespace_and_table_both_land(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first loads on a fresh catalog: each checks that the namespace and the table are
    absent, the other creates them first, and its own insert conflicts. The load that lost
    the race writes on top of what the other created."""
    drop_days(data_dir)
    load_days(_spec(), DAYS[:1])  # the other writer: namespace, table and audit table exist
    lost: list[str] = []
    real_exists, real_load = SqlCatalog.namespace_exists, SqlCatalog.load_table

    def stale_exists(self: SqlCatalog, namespace: Any) -> bool:
        if "namespace" not in lost:  # what a writer saw just before the other's insert
            lost.append("namespace")
            return False
        return real_exists(self, namespace)

    def stale_load(self: SqlCatalog, identifier: Any) -> Any:
        if "table" not in lost and tuple(identifier) == ("raw", "orders"):
            lost.append("table")
            raise NoSuchTableError("raw.orders")  # it was absent a moment before
        return real_load(self, identifier)

    monkeypatch.setattr(SqlCatalog, "namespace_exists", stale_exists)
    monkeypatch.setattr(SqlCatalog, "load_table", stale_load)
    load_days(_spec(), DAYS[1:2])
    assert lost == ["table", "namespace"], "the race was run"
    days = {row[5].date().isoformat() for row in _table_rows(data_dir, "lake", "raw.orders")}
    assert days == set(DAYS[:2])
    assert len(_table_rows(data_dir, "lake", "raw.orders")) == 2 * PER_DAY

"""The guarantees every destination gives, tested on each: DuckDB, PostgreSQL and Iceberg.

A failed load keeps the previous rows and leaves a ``failed`` audit row; merge by key gives the
same table whatever order the partitions are merged in, the latest version winning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from ingest_assets.errors import IngestError, ValidationFailed
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.conftest import (
    DEST_DAYS,
    DEST_PER_DAY,
    drop_days,
    load_days,
    order_rows,
    orders_spec,
    write_csv,
)
from ingest_assets_tests.postgres import Postgres

KINDS = ["duckdb", "postgres", "iceberg"]


class Store:
    """One destination of a test: how datasets name it and how the test reads it back."""

    def __init__(self, kind: str, data_dir: Path, url: str | None = None) -> None:
        self.kind, self.data_dir, self.url = kind, data_dir, url

    def spec(self, table: str = "raw.orders", **overrides: Any) -> DatasetSpec:
        """The orders dataset of the destination tests, into this store's ``table``."""
        destination: dict[str, Any] = {"table": table}
        if self.kind == "postgres":
            destination |= {"kind": "postgres", "url_env": "WAREHOUSE_URL"}
        elif self.kind == "iceberg":
            destination |= {"kind": "iceberg", "warehouse": "lake"}
        return orders_spec("orders", destination=destination, **overrides)

    def read(self, table: str) -> pa.Table:
        """Every row of a table."""
        if self.kind == "iceberg":
            uri = f"sqlite:///{self.data_dir / 'iceberg_catalog.db'}"
            lake = f"file://{self.data_dir / 'lake'}"
            catalog = SqlCatalog("ingest_assets", uri=uri, warehouse=lake)
            return catalog.load_table(tuple(table.split("."))).scan().to_arrow()
        if self.kind == "postgres":
            assert self.url is not None
            with pg.connect(self.url) as conn, conn.cursor() as cursor:
                cursor.execute(f"SELECT * FROM {table}")
                return cursor.fetch_arrow_table()
        with duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True) as conn:
            return conn.execute(f"SELECT * FROM {table}").to_arrow_table()


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Each destination in turn (PostgreSQL: a fresh database on the test server)."""
    if request.param != "postgres":
        return Store(request.param, data_dir)
    postgres: Postgres = request.getfixturevalue("postgres")
    name = "wh_" + request.node.name.lower()[:40].replace("[", "_").replace("]", "_")
    server = postgres.fresh_database(name)
    monkeypatch.setenv("WAREHOUSE_URL", server.url())
    return Store("postgres", data_dir, server.url())


def _break_a_rule(path: Path) -> type[Exception]:
    bad = order_rows(DEST_DAYS[0], DEST_PER_DAY)
    bad[3]["amount"] = -5  # breaks an error rule
    write_csv(path, bad)
    return ValidationFailed


def _unreadable_file(path: Path) -> type[Exception]:
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2] + b'\n"unterminated,quote\n' + b"\xff" * 64)
    return IngestError


@pytest.mark.parametrize("failure", [_break_a_rule, _unreadable_file], ids=["rule", "bad-file"])
def test_a_failed_load_keeps_the_previous_rows_and_leaves_a_failed_audit_row(
    store: Store, data_dir: Path, failure: Callable[[Path], type[Exception]]
) -> None:
    drop_days(data_dir)
    spec = store.spec()
    load_days(spec, DEST_DAYS[:1])
    expected = failure(data_dir / "orders" / f"dt={DEST_DAYS[0]}" / "part-1.csv")
    with pytest.raises(expected) as failed:
        load_days(spec, DEST_DAYS[:1])
    assert "orders" in str(failed.value)  # names the dataset
    assert store.read("raw.orders").num_rows == DEST_PER_DAY
    audit = store.read("ingest_audit.loads").sort_by("ended_at")
    assert audit.column("status").to_pylist() == ["success", "failed"]


def test_merge_gives_the_same_table_in_any_order(store: Store, data_dir: Path) -> None:
    for day in DEST_DAYS:  # the same keys every day, newer versions later
        rows = [{**row, "order_id": f"o{i}"} for i, row in enumerate(order_rows(day, 10))]
        write_csv(data_dir / "orders" / f"dt={day}" / "part-1.csv", rows)
    load = {"mode": "merge", "primary_key": ["order_id"], "order_by": "ordered_at"}
    tables = []
    for index, order in enumerate((DEST_DAYS, list(reversed(DEST_DAYS)))):
        spec = store.spec(f"raw.merged_{index}", load=load)
        for day in order:
            load_days(spec, [day])
        merged = store.read(f"raw.merged_{index}").sort_by("order_id")
        tables.append(merged.select(["order_id", "amount", "ordered_at"]).to_pylist())
    assert tables[0] == tables[1] and len(tables[0]) == 10
    assert {row["ordered_at"].date().isoformat() for row in tables[0]} == {DEST_DAYS[-1]}

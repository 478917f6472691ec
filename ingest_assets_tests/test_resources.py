"""A database declared once as a Dagster resource, read by two datasets, swapped by its variable."""

from __future__ import annotations

from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import dagster as dg
import duckdb
import pytest
from dagster._core.remote_representation.external_data import (
    RepositorySnap,
    ResourceConfigEnvVarSnap,
)
from dagster_duckdb import DuckDBResource

from ingest_assets.components.assets import dataset_asset
from ingest_assets.resources.apis import RestApi
from ingest_assets.resources.databases import SqlDatabase
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.api_server import ApiState
from ingest_assets_tests.conftest import REST_DAY, REST_PER_DAY, step_failure
from ingest_assets_tests.postgres import Postgres

DAY = "2026-10-02"


def _shop(postgres: Postgres, database: str, orders: int, refunds: int) -> str:
    """A database with ``orders`` and ``refunds`` rows on DAY; its URL."""
    with pg.connect(postgres.url(), autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        cursor.execute(f"CREATE DATABASE {database}")
    server = Postgres(postgres.host, postgres.port, postgres.user, postgres.password, database)
    statements = []
    for table, rows in (("orders", orders), ("refunds", refunds)):
        statements += [
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, at timestamptz NOT NULL)",
            f"INSERT INTO {table} SELECT i, timestamptz '{DAY} 00:00:00+00' + i * interval "
            f"'1 minute' FROM generate_series(1, {rows}) AS i",
        ]
    server.execute(*statements)
    return server.url()


def _dataset(table: str) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": table,
            "source": {"kind": "sql", "resource": "shop_db", "table": table, "time_column": "at"},
            "partitioning": {"cadence": "daily", "start": "2026-10-01"},
            "schema": {"columns": {"id": {"dtype": "int64"}, "at": {"dtype": "timestamp"}}},
            "destination": {"table": f"raw.{table}"},
        }
    )


def test_two_datasets_read_one_declared_database_and_move_with_its_variable(
    postgres: Postgres, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _shop(postgres, "shop_first", orders=30, refunds=4)
    second = _shop(postgres, "shop_second", orders=50, refunds=7)
    assets = [dataset_asset(_dataset(t), origin="shop/defs.yaml") for t in ("orders", "refunds")]
    warehouse = data_dir / "warehouse.duckdb"
    defs = dg.Definitions(
        assets=assets,
        resources={
            "shop_db": SqlDatabase(url=dg.EnvVar("SHOP_DB_URL")),
            "duckdb": DuckDBResource(database=str(warehouse)),
        },
    )
    # What the UI's resources page shows: the variable, never the URL, and both assets.
    snap = RepositorySnap.from_def(defs.get_repository_def())
    (shop,) = [r for r in snap.resources if r.name == "shop_db"]
    assert shop.configured_values["url"] == ResourceConfigEnvVarSnap(name="SHOP_DB_URL")
    assert sorted(key.to_user_string() for key in shop.asset_keys_using) == ["orders", "refunds"]
    assert postgres.password not in repr(snap)

    counts = {}
    for url in (first, second):
        monkeypatch.setenv("SHOP_DB_URL", url)
        job = defs.resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(partition_key=DAY).success
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            counts[url] = [
                conn.execute(f"SELECT count(*) FROM raw.{t}").fetchone()
                for t in ("orders", "refunds")
            ]
    assert counts == {first: [(30,), (4,)], second: [(50,), (7,)]}


def test_a_dataset_naming_an_undeclared_resource_fails_naming_it(data_dir: Path) -> None:
    asset = dataset_asset(_dataset("orders"), origin="shop/defs.yaml")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="shop_db"):
        dg.materialize(
            [asset],
            partition_key=DAY,
            resources={"duckdb": DuckDBResource(database=str(data_dir / "w.duckdb"))},
        )


def _api_dataset(name: str, endpoint: str, paginator: str) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": name,
            "source": {
                "kind": "rest",
                "resource": "orders_api",
                "endpoint": endpoint,
                "params": {"start": "{start}", "end": "{end}"},
                "records_path": "data",
                "paginator": {"type": paginator},
            },
            "partitioning": {"cadence": "daily", "start": "2026-10-01"},
            "schema": {"columns": {"id": {"dtype": "string"}, "amount": {"dtype": "float64"}}},
            "destination": {"table": f"raw.{name}"},
        }
    )


def test_two_datasets_read_one_declared_api_whose_token_stays_secret(
    api: tuple[str, ApiState], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = api
    state.auth = "bearer"
    monkeypatch.setenv("ORDERS_API_TOKEN", state.secret)
    specs = [
        _api_dataset("paged", "/v1/page", "page_number"),
        _api_dataset("cursored", "/v1/cursor", "cursor"),
    ]
    warehouse = data_dir / "warehouse.duckdb"
    defs = dg.Definitions(
        assets=[dataset_asset(spec, origin="api/defs.yaml") for spec in specs],
        resources={
            "orders_api": RestApi(base_url=base + "/", token=dg.EnvVar("ORDERS_API_TOKEN")),
            "duckdb": DuckDBResource(database=str(warehouse)),
        },
    )
    snap = RepositorySnap.from_def(defs.get_repository_def())
    (orders_api,) = [r for r in snap.resources if r.name == "orders_api"]
    assert orders_api.configured_values["token"] == ResourceConfigEnvVarSnap(
        name="ORDERS_API_TOKEN"
    )
    assert sorted(k.to_user_string() for k in orders_api.asset_keys_using) == ["cursored", "paged"]
    assert state.secret not in repr(snap)

    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(partition_key=REST_DAY)
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for table in ("paged", "cursored"):
            assert conn.execute(f"SELECT count(*) FROM raw.{table}").fetchone() == (REST_PER_DAY,)

    monkeypatch.setenv("ORDERS_API_TOKEN", "not-the-token")
    failed = job.execute_in_process(partition_key=REST_DAY, raise_on_error=False)
    assert not failed.success
    message = step_failure(failed)
    assert "HTTP 401" in message and "not-the-token" not in message

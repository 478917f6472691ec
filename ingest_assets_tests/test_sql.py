"""SQL sources against a real PostgreSQL server and SQLite: windows, merge, snapshot, counts."""

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from ingest_assets.components.assets import dataset_asset
from ingest_assets.engine import RangeReader
from ingest_assets.sources.base import Chunk
from ingest_assets.sources.sql.reader import SqlReader
from ingest_assets.spec import DatasetSpec, SqlSource
from ingest_assets.windows import Window
from ingest_assets_tests.conftest import PG_PASSWORD, query, step_failure
from ingest_assets_tests.postgres import Postgres

ORDER_COLUMNS = {
    "id": {"dtype": "int64", "nullable": False, "unique": True},
    "amount": {"dtype": "float64", "checks": {"ge": 0}},
    "status": {"dtype": "string"},
    "created_at": {"dtype": "timestamp", "nullable": False},
}
CUSTOMER_COLUMNS = {
    "id": {"dtype": "int64", "nullable": False},
    "name": {"dtype": "string"},
    "updated_at": {"dtype": "timestamp", "nullable": False},
}


def sql_spec(
    name: str, source: dict[str, Any], columns: dict[str, Any], **load: Any
) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": name,
            "source": {"kind": "sql", "url_env": "APP_DB_URL", **source},
            "partitioning": {"cadence": "daily", "start": "2026-10-01"},
            "load": load or {"mode": "replace_window"},
            "schema": {"columns": columns},
            "destination": {"table": f"raw.{name}"},
            "retry": {"max_retries": 0},
        }
    )


def run(
    spec: DatasetSpec, partition: str, data_dir: Path, *, checks_only: bool = False
) -> dg.ExecuteInProcessResult:
    asset = dataset_asset(spec, origin="test")
    # With checks_only, the reconciliation check runs alone over every loaded window, as
    # "Execute check" in the UI runs it.
    return dg.materialize(
        [asset],
        partition_key=None if checks_only else partition,
        resources={"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))},
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(asset.key, "reconciliation"))
        if checks_only
        else None,
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


@pytest.fixture
def pg_orders(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """A fresh app schema with orders over three days; APP_DB_URL points at the server."""
    schema = "app_" + request.node.name.lower()[:40].replace("[", "_").replace("]", "_")
    postgres.execute(
        f"DROP SCHEMA IF EXISTS {schema} CASCADE",
        f"CREATE SCHEMA {schema}",
        f"CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, amount numeric(10, 2), "
        "status text, created_at timestamptz NOT NULL)",
        f"INSERT INTO {schema}.orders SELECT i, i * 1.25, "
        "CASE WHEN i % 2 = 0 THEN 'paid' ELSE 'new' END, "
        "timestamptz '2026-10-01 00:00:00+00' + (i * interval '37 minutes') "
        "FROM generate_series(1, 200) AS i",  # 200 x 37 min spans Oct 1 to Oct 6
    )
    monkeypatch.setenv("APP_DB_URL", postgres.url())
    return schema


def _pg_count(postgres: Postgres, sql: str) -> int:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(postgres.url()) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_postgres_day_loads_exactly_its_rows_rerun_is_idempotent_and_reconciles(
    postgres: Postgres, pg_orders: str, data_dir: Path
) -> None:
    spec = sql_spec(
        "orders", {"table": f"{pg_orders}.orders", "time_column": "created_at"}, ORDER_COLUMNS
    )
    expected = _pg_count(
        postgres,
        f"SELECT count(*) FROM {pg_orders}.orders WHERE created_at >= '2026-10-02 00:00:00+00' "
        "AND created_at < '2026-10-03 00:00:00+00'",
    )
    first = run(spec, "2026-10-02", data_dir)
    assert first.success, step_failure(first)
    rows = query(data_dir, "SELECT id, amount, status, created_at FROM raw.orders ORDER BY id")
    assert len(rows) == expected > 0
    assert {r[3].date().isoformat() for r in rows} == {"2026-10-02"}
    evaluations = checks(first)
    assert evaluations["schema"].passed
    reconciliation = evaluations["reconciliation"]
    assert reconciliation.passed
    assert reconciliation.metadata["source_rows"].value == expected
    assert reconciliation.metadata["loaded_rows"].value == expected

    assert run(spec, "2026-10-02", data_dir).success
    assert (
        query(data_dir, "SELECT id, amount, status, created_at FROM raw.orders ORDER BY id") == rows
    )


def test_reconciliation_fails_when_rows_are_deleted_behind_its_back(
    pg_orders: str, data_dir: Path
) -> None:
    spec = sql_spec(
        "orders", {"table": f"{pg_orders}.orders", "time_column": "created_at"}, ORDER_COLUMNS
    )
    assert run(spec, "2026-10-02", data_dir).success
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("DELETE FROM raw.orders WHERE id % 10 = 0")
    result = run(spec, "2026-10-02", data_dir, checks_only=True)
    reconciliation = checks(result)["reconciliation"]
    assert not reconciliation.passed
    source, loaded = (reconciliation.metadata[k].value for k in ("source_rows", "loaded_rows"))
    assert isinstance(source, int) and isinstance(loaded, int) and loaded < source


def test_query_source_with_columns(postgres: Postgres, pg_orders: str, data_dir: Path) -> None:
    spec = sql_spec(
        "paid_orders",
        {
            "query": f"SELECT id, amount, created_at FROM {pg_orders}.orders WHERE status = 'paid'",
            "time_column": "created_at",
        },
        {k: v for k, v in ORDER_COLUMNS.items() if k != "status"},
    )
    result = run(spec, "2026-10-03", data_dir)
    assert result.success, step_failure(result)
    ids = [r[0] for r in query(data_dir, "SELECT id FROM raw.paid_orders ORDER BY id")]
    assert ids and all(i % 2 == 0 for i in ids)


def _customers(postgres: Postgres, schema: str, rows: list[tuple[int, str, str]]) -> None:
    values = ", ".join(f"({i}, '{name}', timestamptz '{ts}')" for i, name, ts in rows)
    postgres.execute(
        f"INSERT INTO {schema}.customers VALUES {values} ON CONFLICT (id) DO UPDATE "
        "SET name = excluded.name, updated_at = excluded.updated_at"
    )


def test_merge_updates_changed_rows_and_inserts_new_ones_without_duplicates(
    postgres: Postgres, pg_orders: str, data_dir: Path
) -> None:
    schema = pg_orders
    postgres.execute(
        f"CREATE TABLE {schema}.customers "
        "(id bigint PRIMARY KEY, name text, updated_at timestamptz)"
    )
    _customers(postgres, schema, [(i, f"v1-{i}", "2026-10-01 10:00+00") for i in range(1, 6)])
    spec = sql_spec(
        "customers",
        {"table": f"{schema}.customers", "time_column": "updated_at"},
        CUSTOMER_COLUMNS,
        mode="merge",
        primary_key=["id"],
        order_by="updated_at",
    )
    assert run(spec, "2026-10-01", data_dir).success
    # Next day: two customers change, one is new.
    changes = [
        (2, "v2-2", "2026-10-02 09:00+00"),
        (4, "v2-4", "2026-10-02 11:00+00"),
        (6, "v1-6", "2026-10-02 12:00+00"),
    ]
    _customers(postgres, schema, changes)
    assert run(spec, "2026-10-02", data_dir).success
    expected = [(1, "v1-1"), (2, "v2-2"), (3, "v1-3"), (4, "v2-4"), (5, "v1-5"), (6, "v1-6")]
    names = "SELECT id, name FROM raw.customers ORDER BY id"
    assert query(data_dir, names) == expected

    # Rerunning the older day (say, in a backfill) must not bring old values back.
    result = run(spec, "2026-10-01", data_dir)
    assert result.success, step_failure(result)
    assert query(data_dir, names) == expected
    assert checks(result)["reconciliation"].passed


def _materialize_in_process(args: tuple[dict[str, Any], str, str, str]) -> bool:
    raw, partition, data_dir, url = args
    import os

    os.environ["APP_DB_URL"] = url
    return run(DatasetSpec.model_validate(raw), partition, Path(data_dir)).success


def test_two_partitions_backfilled_concurrently_both_end_correct(
    postgres: Postgres, pg_orders: str, data_dir: Path
) -> None:
    spec = sql_spec(
        "orders", {"table": f"{pg_orders}.orders", "time_column": "created_at"}, ORDER_COLUMNS
    )
    raw = spec.model_dump(by_alias=True)
    partitions = ["2026-10-02", "2026-10-03", "2026-10-04"]
    with ProcessPoolExecutor(max_workers=len(partitions)) as pool:
        outcomes = list(
            pool.map(
                _materialize_in_process,
                [(raw, p, str(data_dir), postgres.url()) for p in partitions],
            )
        )
    assert outcomes == [True, True, True]
    for partition in partitions:
        day = partition
        expected = _pg_count(
            postgres,
            f"SELECT count(*) FROM {pg_orders}.orders WHERE created_at >= '{day} 00:00:00+00' "
            f"AND created_at < timestamptz '{day} 00:00:00+00' + interval '1 day'",
        )
        loaded = query(
            data_dir,
            "SELECT count(*), count(DISTINCT id) FROM raw.orders "
            "WHERE created_at >= ?::TIMESTAMPTZ "
            "AND created_at < ?::TIMESTAMPTZ + INTERVAL 1 DAY",
            [f"{day} 00:00:00+00", f"{day} 00:00:00+00"],
        )
        assert loaded == [(expected, expected)]


def test_snapshot_copies_the_whole_table_for_the_partition(
    postgres: Postgres, pg_orders: str, data_dir: Path
) -> None:
    postgres.execute(
        f"CREATE TABLE {pg_orders}.countries (code text PRIMARY KEY, name text)",
        f"INSERT INTO {pg_orders}.countries "
        "VALUES ('DE', 'Germany'), ('FR', 'France'), ('US', 'USA')",
    )
    spec = sql_spec(
        "countries",
        {"table": f"{pg_orders}.countries"},
        {"code": {"dtype": "string", "unique": True}, "name": {"dtype": "string"}},
        mode="snapshot",
    )
    assert run(spec, "2026-10-02", data_dir).success
    postgres.execute(f"INSERT INTO {pg_orders}.countries VALUES ('NL', 'Netherlands')")
    result = run(spec, "2026-10-03", data_dir)
    assert result.success
    assert checks(result)["reconciliation"].passed
    per_day = query(
        data_dir,
        "SELECT _ingest_window_start::DATE::VARCHAR, count(*) FROM raw.countries "
        "GROUP BY 1 ORDER BY 1",
    )
    assert per_day == [("2026-10-02", 3), ("2026-10-03", 4)]


def test_wrong_password_names_dataset_and_host_and_never_the_password(
    postgres: Postgres, pg_orders: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-pa55word-x"
    monkeypatch.setenv("APP_DB_URL", postgres.url(password=wrong))
    spec = sql_spec(
        "orders", {"table": f"{pg_orders}.orders", "time_column": "created_at"}, ORDER_COLUMNS
    )
    result = run(spec, "2026-10-02", data_dir)
    message = step_failure(result)
    assert "Dataset 'orders'" in message
    assert f"127.0.0.1:{postgres.port}" in message
    assert "refused the login" in message and "APP_DB_URL" in message
    everything = message + "\n".join(str(event) for event in result.all_events)
    assert wrong not in everything and PG_PASSWORD not in everything


def test_missing_table_fails_at_once_with_a_clear_message(pg_orders: str, data_dir: Path) -> None:
    spec = sql_spec(
        "orders", {"table": f"{pg_orders}.nope", "time_column": "created_at"}, ORDER_COLUMNS
    )
    message = step_failure(run(spec, "2026-10-02", data_dir))
    assert f"{pg_orders}.nope or a column of it does not exist" in message
    assert "(after" not in message, "a missing table must not be retried"


def test_unreachable_server_is_retried_then_reported(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest_assets_tests.conftest import free_port

    port = free_port()  # nothing listens there
    monkeypatch.setenv("APP_DB_URL", f"postgresql://app:secret-x@127.0.0.1:{port}/app")
    spec = sql_spec(
        "orders",
        {"table": "orders", "time_column": "created_at",
         "retry": {"attempts": 2, "delay_seconds": 0.1}},
        ORDER_COLUMNS,
    )  # fmt: skip
    message = step_failure(run(spec, "2026-10-02", data_dir))
    assert f"127.0.0.1:{port}: cannot connect" in message and "(after 2 attempt(s))" in message
    assert "secret-x" not in message


def test_sqlite_source_through_sqlalchemy(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = data_dir / "app.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE orders "
            "(id INTEGER PRIMARY KEY, amount REAL, status TEXT, created_at TEXT)"
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [
                (1, 10.0, "new", "2026-10-01 23:59:59"),
                (2, 11.5, "paid", "2026-10-02 00:00:00"),
                (3, 12.0, "paid", "2026-10-02T13:30:00Z"),
                (4, 13.0, "new", "2026-10-02 23:59:59"),
                (5, 14.0, "new", "2026-10-03T00:00:00"),
            ],
        )
    monkeypatch.setenv("APP_DB_URL", f"sqlite:///{database}")
    spec = sql_spec("orders", {"table": "orders", "time_column": "created_at"}, ORDER_COLUMNS)
    result = run(spec, "2026-10-02", data_dir)
    assert result.success, step_failure(result)
    assert [r[0] for r in query(data_dir, "SELECT id FROM raw.orders ORDER BY id")] == [2, 3, 4]
    assert checks(result)["reconciliation"].passed


def test_sql_source_needs_a_time_column_unless_snapshot() -> None:
    with pytest.raises(ValueError, match=r"source\.time_column is required"):
        sql_spec("orders", {"table": "orders"}, ORDER_COLUMNS)
    with pytest.raises(ValueError, match="give exactly one of 'table' or 'query'"):
        sql_spec("orders", {"time_column": "created_at"}, ORDER_COLUMNS)
    with pytest.raises(ValueError, match="mode 'merge' needs primary_key"):
        sql_spec("orders", {"table": "o", "time_column": "created_at"}, ORDER_COLUMNS, mode="merge")


def test_duckdb_file_source(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source_db = data_dir / "app.duckdb"
    with duckdb.connect(str(source_db)) as conn:
        conn.execute(
            "CREATE TABLE orders AS SELECT i AS id, i * 2.0 AS amount, 'paid' AS status, "
            "TIMESTAMPTZ '2026-10-01 00:00:00+00' + i * INTERVAL 1 HOUR AS created_at "
            "FROM range(0, 72) t(i)"
        )
    monkeypatch.setenv("APP_DB_URL", f"duckdb:///{source_db}")
    spec = sql_spec("orders", {"table": "orders", "time_column": "created_at"}, ORDER_COLUMNS)
    result = run(spec, "2026-10-02", data_dir)
    assert result.success, step_failure(result)
    assert query(data_dir, "SELECT min(id), max(id), count(*) FROM raw.orders") == [(24, 47, 24)]


def test_large_postgres_window_streams_in_bounded_batches(
    postgres: Postgres, pg_orders: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from ingest_assets.sources.sql.reader import SqlReader
    from ingest_assets.spec import SqlSource
    from ingest_assets.windows import Window

    postgres.execute(
        f"CREATE TABLE {pg_orders}.events AS SELECT i AS id, repeat('x', 60) || i AS label, "
        "timestamptz '2026-10-02 00:00+00' + (i % 86400) * interval '1 second' AS at "
        "FROM generate_series(1, 400000) AS i"
    )
    spec = sql_spec(
        "events",
        {"table": f"{pg_orders}.events", "time_column": "at"},
        {"id": {"dtype": "int64"}, "label": {"dtype": "string"}, "at": {"dtype": "timestamp"}},
    )
    assert isinstance(spec.source, SqlSource)
    start = datetime(2026, 10, 2, tzinfo=UTC)
    reader = SqlReader(spec.source, postgres.url(), dataset="events")
    sizes = [
        chunk.batch.num_rows for chunk in reader.read(Window(start, start + timedelta(days=1)), {})
    ]
    assert sum(sizes) == 400_000
    assert len(sizes) > 1 and max(sizes) < 400_000, "the window must arrive in several batches"


def test_a_range_of_days_loads_through_one_connection_with_each_day_exactly(
    postgres: Postgres, pg_orders: str, data_dir: Path
) -> None:
    spec = sql_spec(
        "orders", {"table": f"{pg_orders}.orders", "time_column": "created_at"}, ORDER_COLUMNS
    )
    sessions = "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database"
    opened_before = _pg_count(postgres, sessions)
    per_connection = _pg_count(postgres, sessions) - opened_before  # what one look costs
    opened_before = _pg_count(postgres, sessions)
    result = dg.materialize(
        [dataset_asset(spec, origin="test")],
        resources={"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))},
        tags={
            "dagster/asset_partition_range_start": "2026-10-01",
            "dagster/asset_partition_range_end": "2026-10-05",
        },
        raise_on_error=False,
    )
    assert result.success, step_failure(result)
    opened = _pg_count(postgres, sessions) - opened_before
    per_day = query(
        data_dir,
        "SELECT created_at::DATE::VARCHAR, count(*), min(_ingest_window_start::DATE::VARCHAR) "
        "FROM raw.orders GROUP BY 1 ORDER BY 1",
    )
    expected = [
        (
            day,
            _pg_count(
                postgres,
                f"SELECT count(*) FROM {pg_orders}.orders WHERE created_at >= '{day} 00:00:00+00' "
                f"AND created_at < timestamptz '{day} 00:00:00+00' + interval '1 day'",
            ),
            day,
        )
        for day in ("2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04", "2026-10-05")
    ]
    assert per_day == expected, "each row belongs to the window of its own day"
    assert checks(result)["reconciliation"].passed
    # One connection read the five windows and one counted them for reconciliation, plus the
    # one this test opened to look: not one to read and one to count per window (11 in all).
    assert opened <= 3 * per_connection, (opened, per_connection)


@pytest.mark.parametrize(
    ("column_type", "selected"),
    [("timestamptz", None), ("timestamp", None), ("date", None), ("timestamptz", ["id"])],
)
def test_one_query_over_a_range_splits_rows_into_the_windows_a_query_per_window_gives(
    postgres: Postgres, pg_orders: str, column_type: str, selected: list[str] | None
) -> None:
    """The range read (one ordered query, split by each row's time: from the Arrow column, or
    the database's epoch when the time column is not selected) puts every row, midnight
    boundaries included, in the window a query per window puts it in."""
    table = f"{pg_orders}.events"
    postgres.execute(
        f"CREATE TABLE {table} (id bigint, at {column_type})",
        f"INSERT INTO {table} SELECT i, timestamp '2026-10-01 00:00:00' + (i * interval '3 hours')"
        " FROM generate_series(0, 40) AS i",  # 8 a day, one exactly at each midnight
    )
    columns = {"id": {"dtype": "int64"}}
    declared = {"table": table, "time_column": "at", "columns": selected}
    source = sql_spec("events", declared, columns).source
    assert isinstance(source, SqlSource)
    reader = SqlReader(source, postgres.url(), dataset="events")
    start = datetime(2026, 10, 1, tzinfo=UTC)
    windows = [Window(start + timedelta(days=d), start + timedelta(days=d + 1)) for d in range(4)]

    def ids(chunks: Iterator[Chunk]) -> list[int]:
        return sorted(i for chunk in chunks for i in chunk.batch.column("id").to_pylist())

    one_by_one = [ids(reader.read(window, {})) for window in windows]
    ranged = RangeReader(reader, windows)
    with reader.session():
        in_one_pass = [ids(ranged.read(window, {})) for window in windows]
    assert in_one_pass == one_by_one
    assert one_by_one[1] == list(range(8, 16)), "midnight belongs to the day it starts"
    assert sum(map(len, in_one_pass)) == 32

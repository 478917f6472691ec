"""The ingestion core without Dagster: windows, key templates, readers, validation, the load."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse, duckdb_connector
from ingest_assets.engine import load_window
from ingest_assets.errors import ValidationFailed
from ingest_assets.sources.object_store.reader import (
    LocalStore,
    ObjectStoreReader,
    objects_for_window,
)
from ingest_assets.spec import DatasetSpec, ObjectStoreSource
from ingest_assets.windows import Window
from ingest_assets_tests.conftest import order_rows, orders_spec, query, write_csv

BERLIN = ZoneInfo("Europe/Berlin")


def _day(day: int, month: int = 10, tz: ZoneInfo | None = None) -> Window:
    zone = tz or UTC
    start = datetime(2026, month, day, tzinfo=zone)
    end = datetime(2026, month, day + 1, tzinfo=zone)
    return Window(start, end)


def _reader(tmp_path: Path, spec: DatasetSpec | None = None) -> ObjectStoreReader:
    source = (spec or orders_spec("landing")).source
    assert isinstance(source, ObjectStoreSource)
    return ObjectStoreReader(LocalStore(tmp_path / "landing"), source, dataset="orders")


def test_hourly_template_in_a_local_day_with_a_daylight_saving_change(tmp_path: Path) -> None:
    # 2026-10-25 is 25 hours long in Berlin: the 02:00 hour happens twice.
    for hour in range(24):
        (tmp_path / "2026" / "10" / "25").mkdir(parents=True, exist_ok=True)
        (tmp_path / "2026" / "10" / "25" / f"{hour:02d}.jsonl").write_text("{}\n")
    (tmp_path / "2026" / "10" / "26").mkdir(parents=True)
    (tmp_path / "2026" / "10" / "26" / "00.jsonl").write_text("{}\n")
    source = orders_spec(
        "x", source={"location": "x", "key_template": "{year}/{month}/{day}/{hour}.jsonl"}
    ).source
    objects = objects_for_window(LocalStore(tmp_path), source, _day(25, tz=BERLIN))
    keys = [o.info.key for o in objects]
    assert keys == [f"2026/10/25/{h:02d}.jsonl" for h in range(24)]
    assert objects[0].period_start == datetime(2026, 10, 25, tzinfo=BERLIN)


def test_key_glob_star_stays_within_a_folder_and_globstar_crosses(tmp_path: Path) -> None:
    for key in ["dt=2026-10-02/a.csv", "dt=2026-10-02/sub/b.csv", "dt=2026-10-02x/c.csv"]:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_text("x\n")
    store = LocalStore(tmp_path)

    def keys(template: str) -> list[str]:
        source = orders_spec("x", source={"location": "x", "key_template": template}).source
        return [o.info.key for o in objects_for_window(store, source, _day(2))]

    assert keys("dt={date}/*.csv") == ["dt=2026-10-02/a.csv"]
    assert keys("dt={date}/**/*.csv") == ["dt=2026-10-02/a.csv", "dt=2026-10-02/sub/b.csv"]


def test_value_that_does_not_convert_deep_in_a_large_csv_is_reported_with_its_row(
    tmp_path: Path,
) -> None:
    # Larger than one parse block, so the typed fast path has already emitted batches.
    rows = order_rows("2026-10-02", 80_000)
    rows[70_000]["quantity"] = "seven"
    write_csv(tmp_path / "landing" / "dt=2026-10-02" / "big.csv", rows)
    spec = orders_spec("landing")
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "warehouse.duckdb"), "warehouse")
    with pytest.raises(ValidationFailed) as failed:
        load_window(spec, _day(2), _reader(tmp_path, spec), warehouse, run_id="r1")
    report = failed.value.report
    assert report.rows_read == 80_000, "the fallback must not read rows twice"
    assert report.validation.rows_failed == 1
    (failure,) = report.validation.sample
    # The 70,001st row, on line 70,002 of the file (after the header).
    assert (failure.column, failure.value, failure.row) == ("quantity", "seven", 70_002)


def test_load_window_runs_without_dagster_and_reports_what_it_did(tmp_path: Path) -> None:
    write_csv(tmp_path / "landing" / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 25))
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "warehouse.duckdb"), "warehouse")
    report = load_window(orders_spec("landing"), _day(2), _reader(tmp_path), warehouse, run_id="r1")
    assert (report.rows_read, report.rows_written) == (25, 25)
    assert report.validation.passed and report.validation.rows_checked == 25
    assert set(report.timings) == {"list", "read_validate", "unique", "dedup_checksum", "write"}
    assert report.schema.names == ["order_id", "amount", "quantity", "email", "ordered_at"]
    assert query(tmp_path, "SELECT DISTINCT _ingest_run_id FROM raw.orders") == [("r1",)]
    assert warehouse.count_window(orders_spec("landing").destination, _day(2)) == 25


def test_naive_and_offset_timestamps_are_stored_as_utc(tmp_path: Path) -> None:
    rows = order_rows("2026-10-02", 3)
    rows[0]["ordered_at"] = "2026-10-02 10:00:00"
    rows[1]["ordered_at"] = "2026-10-02T12:00:00+02:00"
    rows[2]["ordered_at"] = "2026-10-02T10:00:00Z"
    write_csv(tmp_path / "landing" / "dt=2026-10-02" / "a.csv", rows)
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "warehouse.duckdb"), "warehouse")
    load_window(orders_spec("landing"), _day(2), _reader(tmp_path), warehouse, run_id="r")
    stamps = query(tmp_path, "SELECT DISTINCT epoch(ordered_at) FROM raw.orders")
    assert stamps == [(datetime(2026, 10, 2, 10, tzinfo=UTC).timestamp(),)]

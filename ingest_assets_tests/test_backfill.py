"""Single-run range backfills: many partitions in one run, each replaced exactly and reported
as itself; a bad partition fails alone (or, with ``range_atomic``, the whole range)."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from ingest_assets import engine
from ingest_assets.components.assets import dataset_asset
from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse, duckdb_connector
from ingest_assets.engine import load_window, load_windows
from ingest_assets.sources.object_store.reader import LocalStore, ObjectStoreReader
from ingest_assets.spec import DatasetSpec, ObjectStoreSource
from ingest_assets.windows import Window
from ingest_assets_tests.conftest import (
    ORDER_COLUMNS,
    order_rows,
    orders_spec,
    query,
    step_failure,
    write_csv,
)

DAYS = [f"2026-10-{day:02d}" for day in range(1, 6)]
PER_WINDOW = (
    "SELECT _ingest_window_start::DATE::VARCHAR, count(*), count(DISTINCT _ingest_run_id) "
    "FROM raw.orders GROUP BY 1 ORDER BY 1"
)


def _land(data_dir: Path) -> None:
    for index, day in enumerate(DAYS, start=1):
        write_csv(data_dir / "landing/orders" / f"dt={day}" / "a.csv", order_rows(day, 10 * index))


def _run_range(
    spec: DatasetSpec, data_dir: Path, first: str, last: str
) -> dg.ExecuteInProcessResult:
    """Materialize a partition range in one run, as a single-run backfill launches it."""
    return dg.materialize(
        [dataset_asset(spec, origin="test")],
        resources={"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))},
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        raise_on_error=False,
    )


def test_a_backfill_is_one_run_per_thirty_one_partitions() -> None:
    spec = orders_spec("landing/orders")
    policy = dataset_asset(spec, origin="test").backfill_policy
    assert policy is not None and policy.max_partitions_per_run == 31
    single = orders_spec("landing/orders", load={"max_partitions_per_run": 1})
    assert dataset_asset(single, origin="test").backfill_policy.max_partitions_per_run == 1


def test_a_range_run_replaces_each_partition_exactly_and_reruns_are_idempotent(
    data_dir: Path,
) -> None:
    _land(data_dir)
    spec = orders_spec("landing/orders")
    result = _run_range(spec, data_dir, DAYS[0], DAYS[-1])
    assert result.success, step_failure(result)
    assert query(data_dir, PER_WINDOW) == [(day, 10 * i, 1) for i, day in enumerate(DAYS, 1)]
    # Each partition's materialization carries its own figures, and its own checks.
    materialized = result.asset_materializations_for_node("orders")
    counts = {m.partition: m.metadata["dagster/row_count"].value for m in materialized}
    assert counts == {day: 10 * i for i, day in enumerate(DAYS, 1)}
    reads = {m.partition: m.metadata["rows_read"].value for m in materialized}
    assert reads == counts
    assert len({m.metadata["checksum"].value for m in materialized}) == 5
    assert all("| schema | passed |" in str(m.metadata["checks"].value) for m in materialized)
    schema = [c for c in result.get_asset_check_evaluations() if c.check_name == "schema"]
    assert sorted((c.partition, c.passed) for c in schema) == [(day, True) for day in DAYS]
    audit = query(
        data_dir,
        "SELECT partition, status, rows_written FROM ingest_audit.loads ORDER BY partition",
    )
    assert audit == [(day, "success", 10 * i) for i, day in enumerate(DAYS, 1)]

    # Again, over an overlapping range: the same rows, each partition replaced once more.
    assert _run_range(spec, data_dir, DAYS[2], DAYS[4]).success
    assert query(data_dir, PER_WINDOW) == [(day, 10 * i, 1) for i, day in enumerate(DAYS, 1)]
    runs = query(data_dir, "SELECT count(DISTINCT _ingest_run_id) FROM raw.orders")
    assert runs == [(2,)]


def _break_day(data_dir: Path, day: str) -> None:
    bad = order_rows(day, 40)
    bad[5]["amount"] = "-1"
    write_csv(data_dir / "landing/orders" / f"dt={day}" / "a.csv", bad)


def test_one_bad_partition_fails_alone_and_the_others_are_written(data_dir: Path) -> None:
    _land(data_dir)
    spec = orders_spec("landing/orders")
    _break_day(data_dir, DAYS[3])
    (data_dir / "landing/orders" / f"dt={DAYS[1]}" / "a.csv").unlink()  # expected, not there
    result = _run_range(spec, data_dir, DAYS[0], DAYS[4])
    assert not result.success
    failure = step_failure(result)
    assert "2 of 5 partitions failed" in failure and "The other 3 were written" in failure
    assert "2026-10-04: Dataset 'orders', window [2026-10-04" in failure

    written = [(day, 10 * i, 1) for i, day in enumerate(DAYS, 1) if day not in DAYS[1:4:2]]
    assert query(data_dir, PER_WINDOW) == written
    materialized = result.asset_materializations_for_node("orders")
    assert {m.partition: m.metadata["dagster/row_count"].value for m in materialized} == {
        day: rows for day, rows, _ in written
    }
    schema = {c.partition: c.passed for c in result.get_asset_check_evaluations()
              if c.check_name == "schema"}  # fmt: skip
    assert schema == {DAYS[0]: True, DAYS[2]: True, DAYS[3]: False, DAYS[4]: True}
    verdicts = {m.partition: str(m.metadata["checks"].value) for m in materialized}
    assert all("| schema | passed |" in text for text in verdicts.values()), verdicts
    audit = query(
        data_dir, "SELECT partition, status, error FROM ingest_audit.loads ORDER BY partition"
    )
    assert [(day, status) for day, status, _ in audit] == [
        (DAYS[0], "success"), (DAYS[1], "failed"), (DAYS[2], "success"), (DAYS[3], "failed"),
        (DAYS[4], "success"),
    ]  # fmt: skip
    assert "no object" in audit[1][2].lower() or "nothing" in audit[1][2].lower(), audit[1][2]
    assert "1 of 40 rows failed validation" in audit[3][2]


def test_an_atomic_range_fails_whole_on_one_bad_partition_and_writes_nothing(
    data_dir: Path,
) -> None:
    _land(data_dir)
    spec = orders_spec("landing/orders", load={"range_atomic": True})
    assert _run_range(spec, data_dir, DAYS[0], DAYS[1]).success
    before = query(data_dir, PER_WINDOW)
    _break_day(data_dir, DAYS[3])
    result = _run_range(spec, data_dir, DAYS[0], DAYS[4])
    assert not result.success
    assert "window [2026-10-04" in step_failure(result)
    assert query(data_dir, PER_WINDOW) == before, "no partition of a failed range is written"
    reading = [thread for thread in threading.enumerate() if thread.name == "ingest-read-ahead"]
    assert not reading, "the read of the window after the bad one is called off"
    assert not result.asset_materializations_for_node("orders")
    failed = query(
        data_dir,
        "SELECT partition, error FROM ingest_audit.loads WHERE status = 'failed' ORDER BY 1",
    )
    assert [row[0] for row in failed] == DAYS, "every partition of the run leaves a failed row"
    assert failed[0][1].startswith("not written: partition 2026-10-04 of the same run failed")
    assert "1 of 40 rows failed validation" in failed[3][1]


def _landed_days(
    folder: Path, rows_per_index: int
) -> tuple[DatasetSpec, ObjectStoreReader, list[Window]]:
    """The days of DAYS landed as CSV files (day i with i times ``rows_per_index`` rows)."""
    for index, day in enumerate(DAYS, start=1):
        write_csv(folder / f"dt={day}" / "a.csv", order_rows(day, rows_per_index * index))
    spec = orders_spec("landing")
    assert isinstance(spec.source, ObjectStoreSource)
    reader = ObjectStoreReader(LocalStore(folder), spec.source, dataset="orders")
    start = datetime(2026, 10, 1, tzinfo=UTC)
    windows = [Window(start + timedelta(days=i), start + timedelta(days=i + 1)) for i in range(5)]
    return spec, reader, windows


def test_a_range_load_gives_the_same_rows_as_one_load_per_window(tmp_path: Path) -> None:
    spec, reader, windows = _landed_days(tmp_path / "landing", 100)
    one_by_one = DuckDBWarehouse(duckdb_connector(tmp_path / "a.duckdb"), "a")
    in_one_pass = DuckDBWarehouse(duckdb_connector(tmp_path / "b.duckdb"), "b")
    singles = [load_window(spec, w, reader, one_by_one, run_id="r") for w in windows]
    ranged = load_windows(spec, windows, reader, in_one_pass, run_id="r")
    assert [r.checksum for r in ranged] == [r.checksum for r in singles]
    assert [r.rows_written for r in ranged] == [100, 200, 300, 400, 500]
    rows = "SELECT * EXCLUDE (_ingest_loaded_at) FROM raw.orders ORDER BY order_id"
    with (
        one_by_one.connect() as first,
        in_one_pass.connect() as second,
    ):
        assert first.execute(rows).fetchall() == second.execute(rows).fetchall()


def test_gathering_small_files_into_one_batch_keeps_every_row_and_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small objects are validated as one batch; rows, quarantine and failure locations equal
    those of validating each object on its own."""
    landing = tmp_path / "landing"
    for part in range(6):
        rows = order_rows(DAYS[0], 30, start=30 * part)
        rows[part]["email"] = "not-an-email"  # a warn rule: quarantined with object and row
        write_csv(landing / f"dt={DAYS[0]}" / f"part-{part}.csv", rows)
    columns = {**ORDER_COLUMNS, "email": {**ORDER_COLUMNS["email"], "severity": "warn"}}
    spec = orders_spec("landing", schema={"columns": columns})
    assert isinstance(spec.source, ObjectStoreSource)
    reader = ObjectStoreReader(LocalStore(landing), spec.source, dataset="orders")
    day = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))
    results = []
    for rows_per_batch in (1, engine.GATHER_ROWS):
        monkeypatch.setattr(engine, "GATHER_ROWS", rows_per_batch)
        warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / f"{rows_per_batch}.duckdb"), "w")
        report = load_window(spec, day, reader, warehouse, run_id="r")
        with warehouse.connect() as conn:
            loaded = conn.execute(
                "SELECT * EXCLUDE (_ingest_loaded_at) FROM raw.orders ORDER BY order_id"
            ).fetchall()
            quarantined = conn.execute(
                "SELECT order_id, _ingest_object, _ingest_row FROM raw.orders__rejected "
                "ORDER BY order_id"
            ).fetchall()
        results.append((report.rows_written, report.checksum, loaded, quarantined))
    assert results[0] == results[1]
    written, _, loaded, quarantined = results[1]
    assert written == 174 and len(loaded) == 174
    assert [(Path(obj).name, row) for _, obj, row in quarantined] == [
        (f"part-{part}.csv", part + 2) for part in range(6)
    ]  # each file's line (after its header)
    with DuckDBWarehouse(
        duckdb_connector(tmp_path / f"{engine.GATHER_ROWS}.duckdb"), "w"
    ).connect() as conn:
        objects = conn.execute(
            "SELECT regexp_extract(_ingest_object, '[^/]+$'), count(*) FROM raw.orders "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert objects == [(f"part-{part}.csv", 29) for part in range(6)]


def test_cpu_time_of_a_range_read_ahead_is_counted_once_per_window(tmp_path: Path) -> None:
    """The next window is read on another thread while the current one is validated; each
    window's CPU figure counts its own read, and together they never exceed the process's."""
    spec, reader, windows = _landed_days(tmp_path / "landing", 3000)
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "w.duckdb"), "w")
    cpu_before = time.process_time()
    reports = load_windows(spec, windows, reader, warehouse, run_id="r")
    spent = time.process_time() - cpu_before
    assert [r.rows_written for r in reports] == [3000 * i for i in range(1, 6)]
    assert all(r.cpu_seconds > 0 for r in reports)
    assert sum(r.cpu_seconds for r in reports) <= spent + 0.01

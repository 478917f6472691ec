"""Side-by-side load benchmark: this project against dlt and DuckDB's own CSV/Parquet readers.

Usage (from the project root; the bench group installs dlt)::

    uv run --group bench python bench/run.py                 # 30 days x 20,000 rows
    uv run --group bench python bench/run.py --days 30 --rows-per-day 100000

Each case runs in a fresh process with a fresh DuckDB file, so wall time and peak memory (RSS) are
those of that case alone. The project runs through ``engine.load_window`` (the code path the
assets use, validation on, one window per day) and through ``engine.load_windows`` (the
single-run backfill path). dlt runs its filesystem source with Arrow readers and the parquet
loader file format, without validation; its telemetry is off.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

START = date(2026, 1, 1)
COLUMNS = {
    "event_id": {"dtype": "string", "nullable": False, "unique": True},
    "user_id": {"dtype": "int64", "nullable": False, "checks": {"ge": 0}},
    "quantity": {"dtype": "int32", "checks": {"ge": 0, "le": 1000}},
    "kind": {"dtype": "string", "checks": {"isin": ["view", "click", "cart", "buy"]}},
    "price": {"dtype": "float64", "checks": {"ge": 0}},
    "email": {"dtype": "string", "checks": {"str_length": {"max": 254}}},
    "country": {"dtype": "string", "checks": {"str_length": {"min": 2, "max": 2}}},
    "happened_at": {"dtype": "timestamp", "nullable": False},
    "payload": {"dtype": "string"},
}


def generate(folder: Path, days: int, rows_per_day: int) -> None:
    """Write deterministic event files: CSV and Parquet, one of each per day."""
    kinds = ["view", "click", "cart", "buy"]
    countries = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "BR"]
    for offset in range(days):
        day = START + timedelta(days=offset)
        rng = random.Random(day.toordinal())
        base = datetime(day.year, day.month, day.day, tzinfo=UTC)
        table = pa.table(
            {
                "event_id": [f"e{day:%Y%m%d}-{i:07d}" for i in range(rows_per_day)],
                "user_id": [rng.randrange(1_000_000) for _ in range(rows_per_day)],
                "quantity": pa.array(
                    [rng.randrange(1, 10) for _ in range(rows_per_day)], pa.int32()
                ),
                "kind": [rng.choice(kinds) for _ in range(rows_per_day)],
                "price": [
                    None if rng.random() < 0.05 else round(rng.uniform(0, 500), 2)
                    for _ in range(rows_per_day)
                ],
                "email": [
                    f"user{rng.randrange(10**6)}" + ("" if rng.random() < 0.01 else "@example.com")
                    for _ in range(rows_per_day)
                ],
                "country": [rng.choice(countries) for _ in range(rows_per_day)],
                "happened_at": pa.array(
                    [base + timedelta(seconds=rng.randrange(86_400)) for _ in range(rows_per_day)],
                    pa.timestamp("us", tz="UTC"),
                ),
                "payload": [
                    json.dumps({"ref": rng.randrange(1000), "ab": rng.random() < 0.5})
                    for _ in range(rows_per_day)
                ],
            }
        )
        for fmt in ("csv", "parquet"):
            target = folder / fmt / f"dt={day.isoformat()}" / f"events.{fmt}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "csv":
                pa_csv.write_csv(table, target)
            else:
                pq.write_table(table, target)


def run_case(tool: str, fmt: str, folder: Path, days: int) -> dict[str, float]:
    """Run one case in this process; return rows and seconds."""
    import duckdb

    from ingest_assets.destinations.duckdb import DuckDBWarehouse, duckdb_connector
    from ingest_assets.engine import load_window, load_windows
    from ingest_assets.sources.object_store import LocalStore, ObjectStoreReader
    from ingest_assets.spec import ObjectStoreSource
    from ingest_assets.windows import Window

    database = folder / f"{tool}-{fmt}-{days}.duckdb"
    database.unlink(missing_ok=True)
    if tool == "dagster":  # imported before the clock starts, like every tool's imports
        import dagster_duckdb  # noqa: F401

        import ingest_assets.components.assets  # noqa: F401
    if tool == "dlt":
        os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # no network beyond loopback
        import dlt
        import dlt.sources.filesystem  # noqa: F401
    started = time.perf_counter()  # imports are not timed: every tool pays them once per process
    if tool == "duckdb":
        files = [
            str(folder / fmt / f"dt={(START + timedelta(days=d)).isoformat()}" / f"events.{fmt}")
            for d in range(days)
        ]
        reader = "read_csv" if fmt == "csv" else "read_parquet"
        with duckdb.connect(str(database)) as conn:
            conn.execute(f"CREATE TABLE events AS SELECT * FROM {reader}(?)", [files])
            row = conn.execute("SELECT count(*) FROM events").fetchone()
        rows = int(row[0]) if row else 0
    elif tool == "dlt":
        rows = _run_dlt(fmt, folder, days, database)
    elif tool == "dagster":
        rows = _run_dagster_backfill(fmt, folder, days, database)
    else:
        spec = _spec(fmt, folder)
        warehouse = DuckDBWarehouse(duckdb_connector(database), str(database))
        source = spec.source
        assert isinstance(source, ObjectStoreSource)
        reader = ObjectStoreReader(LocalStore(folder / fmt), source, dataset="events")
        windows = []
        for offset in range(days):
            day = datetime.combine(START + timedelta(days=offset), datetime.min.time(), UTC)
            windows.append(Window(day, day + timedelta(days=1)))
        if tool == "ingest_range":  # a single-run backfill: one pass, one write transaction
            reports = load_windows(spec, windows, reader, warehouse, run_id="bench")
        else:  # a run per partition
            reports = [load_window(spec, w, reader, warehouse, run_id="bench") for w in windows]
        rows = sum(report.rows_written for report in reports)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _spec(fmt: str, folder: Path) -> Any:
    from ingest_assets.spec import DatasetSpec

    return DatasetSpec.model_validate(
        {
            "name": "events",
            "source": {"location": str(folder / fmt), "key_template": f"dt={{date}}/*.{fmt}"},
            "partitioning": {"cadence": "daily", "start": START.isoformat()},
            "schema": {"columns": COLUMNS},
            "destination": {"table": "events"},
        }
    )


def _run_dagster_backfill(fmt: str, folder: Path, days: int, database: Path) -> int:
    """A backfill of ``days`` partitions as Dagster runs it: one run over the range."""
    import dagster as dg
    import duckdb
    from dagster_duckdb import DuckDBResource

    from ingest_assets.components.assets import dataset_asset

    last = START + timedelta(days=days - 1)
    result = dg.materialize(
        [dataset_asset(_spec(fmt, folder), origin="bench")],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"duckdb": DuckDBResource(database=str(database))},
        tags={
            "dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    assert result.success
    with duckdb.connect(str(database)) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def _run_dlt(fmt: str, folder: Path, days: int, database: Path) -> int:
    """dlt in its best configuration for files: Arrow readers, the parquet loader file format."""
    import dlt
    import duckdb
    from dlt.sources.filesystem import filesystem, read_csv_duckdb, read_parquet

    glob = "dt=*" if days > 1 else f"dt={START.isoformat()}"
    files = filesystem(bucket_url=str(folder / fmt), file_glob=f"{glob}/events.{fmt}")
    reader = (
        read_csv_duckdb(chunk_size=100_000, use_pyarrow=True)
        if fmt == "csv"
        else read_parquet(chunksize=100_000, use_pyarrow=True)
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{fmt}_{days}",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="events",
        pipelines_dir=str(folder / "dlt" / f"{fmt}-{days}"),
    )
    pipeline.run((files | reader).with_name("events"), loader_file_format="parquet")
    with duckdb.connect(str(database)) as conn:
        row = conn.execute("SELECT count(*) FROM events.events").fetchone()
    return int(row[0]) if row else 0


def measure(tool: str, fmt: str, folder: Path, days: int) -> dict[str, float]:
    """Run a case in a child process; add its peak RSS."""
    child = subprocess.run(
        [sys.executable, __file__, "--case", tool, fmt, str(folder), str(days)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Generate the data, run every case, print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        tool, fmt, folder, days = args.case
        result = run_case(tool, fmt, Path(folder), int(days))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        folder = Path(tmp)
        generate(folder, args.days, args.rows_per_day)
        print(f"{args.days} days x {args.rows_per_day:,} rows; one process per case\n")
        header = (
            f"{'case':<18}{'tool':<15}{'rows':>11}{'seconds':>9}{'rows/s':>11}"
            f"{'RSS MB':>8}{'x raw':>8}{'x dlt':>8}"
        )
        print(header)
        print("-" * len(header))
        for fmt in ("csv", "parquet"):
            for days in (1, args.days):
                case = f"{fmt}, {days} day{'s' if days > 1 else ''}"
                raw = measure("duckdb", fmt, folder, days)
                results = [("duckdb native", raw)]
                results.append(("dlt", measure("dlt", fmt, folder, days)))
                results.append(("ingest_assets", measure("ingest_assets", fmt, folder, days)))
                if days > 1:
                    results.append(("  one run", measure("ingest_range", fmt, folder, days)))
                    results.append(("  via dagster", measure("dagster", fmt, folder, days)))
                dlt_seconds = results[1][1]["seconds"]
                for tool, result in results:
                    ours = tool not in ("duckdb native", "dlt")
                    vs_dlt = f"{result['seconds'] / dlt_seconds:>7.2f}x" if ours else f"{'':>8}"
                    print(
                        f"{case:<18}{tool:<15}{int(result['rows']):>11,}{result['seconds']:>9.2f}"
                        f"{result['rows'] / result['seconds']:>11,.0f}{result['peak_rss_mb']:>8.0f}"
                        f"{result['seconds'] / raw['seconds']:>7.2f}x{vs_dlt}"
                    )


if __name__ == "__main__":
    main()

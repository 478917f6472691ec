"""Side-by-side load benchmark: this project's load path against DuckDB's own CSV/Parquet readers.

Usage (from the project root)::

    uv run python bench/run.py                   # 30 days x 20,000 rows
    uv run python bench/run.py --days 30 --rows-per-day 100000

Each case runs in a fresh process with a fresh DuckDB file, so wall time and peak memory (RSS) are
those of that case alone. The project runs through ``engine.load_window`` (the code path the
assets use), with validation on, one window per day.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

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
    from ingest_assets.spec import DatasetSpec, ObjectStoreSource
    from ingest_assets.windows import Window

    database = folder / f"{tool}-{fmt}-{days}.duckdb"
    database.unlink(missing_ok=True)
    started = time.perf_counter()  # imports are not timed: both sides pay them once per process
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
    else:
        spec = DatasetSpec.model_validate(
            {
                "name": "events",
                "source": {"location": str(folder / fmt), "key_template": f"dt={{date}}/*.{fmt}"},
                "partitioning": {"cadence": "daily", "start": START.isoformat()},
                "schema": {"columns": COLUMNS},
                "destination": {"table": "events"},
            }
        )
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
            f"{'RSS MB':>8}{'ratio':>7}"
        )
        print(header)
        print("-" * len(header))
        for fmt in ("csv", "parquet"):
            for days in (1, args.days):
                case = f"{fmt}, {days} day{'s' if days > 1 else ''}"
                raw = measure("duckdb", fmt, folder, days)
                results = [("duckdb native", raw)]
                results.append(("ingest_assets", measure("ingest_assets", fmt, folder, days)))
                if days > 1:
                    results.append(("  one run", measure("ingest_range", fmt, folder, days)))
                for tool, result in results:
                    ratio = result["seconds"] / raw["seconds"]
                    print(
                        f"{case:<18}{tool:<15}{int(result['rows']):>11,}{result['seconds']:>9.2f}"
                        f"{result['rows'] / result['seconds']:>11,.0f}{result['peak_rss_mb']:>8.0f}"
                        f"{ratio:>6.2f}x"
                    )


if __name__ == "__main__":
    main()

"""Kill -9 at random points of a load, on every destination: the next load is exact.

A worker process loads three days again and again; the test kills it with SIGKILL at a random
moment (seeded), ``INGEST_KILL_ROUNDS`` times (20 by default) per destination. Then one clean load
must succeed and leave each window exactly its rows, with no duplicate and no orphan that breaks
it. Run it alone with ``uv run pytest ingest_assets_tests/test_kill.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import duckdb
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from ingest_assets.core import load_windows, open_destination, open_reader, windows_for
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.conftest import order_rows, orders_spec, write_csv
from ingest_assets_tests.postgres import Postgres

ROUNDS = int(os.environ.get("INGEST_KILL_ROUNDS", "20"))
DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]
PER_DAY = 2_000
DESTINATIONS = {
    "duckdb": {"table": "raw.orders"},
    "postgres": {"kind": "postgres", "url_env": "WAREHOUSE_URL", "table": "raw.orders"},
    "iceberg": {"kind": "iceberg", "table": "raw.orders", "warehouse": "lake"},
}
WORKER = """
import os, sys
from ingest_assets.core import load_windows, open_destination, open_reader, windows_for
from ingest_assets_tests.test_kill import spec

# A zygote: everything is imported once; each line on stdin forks a loader that loads the named
# days again and again until it is killed, and answers with its pid.
dataset = spec(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    child = os.fork()
    if child == 0:
        days = line.split()
        while True:
            load_windows(dataset, windows_for(dataset, days), open_reader(dataset),
                         open_destination(dataset), run_id="killed")
    print(child, flush=True)
    _, status = os.waitpid(child, 0)
    print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1, flush=True)
"""


def spec(destination: str) -> DatasetSpec:
    """The dataset of the test, into one destination."""
    return orders_spec("orders", destination=DESTINATIONS[destination])


def _rows_per_window(destination: str, data_dir: Path) -> list[tuple[Any, ...]]:
    """(day, rows, distinct ids) per window, as the destination holds them."""
    if destination == "duckdb":
        with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
            return conn.execute(
                "SELECT _ingest_window_start::date::text, count(*), count(DISTINCT order_id) "
                "FROM raw.orders GROUP BY 1 ORDER BY 1"
            ).fetchall()
    if destination == "postgres":
        with pg.connect(os.environ["WAREHOUSE_URL"]) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT _ingest_window_start::date::text, count(*), count(DISTINCT order_id) "
                "FROM raw.orders GROUP BY 1 ORDER BY 1"
            )
            return list(cursor.fetchall())
    catalog = SqlCatalog("ingest_assets", uri=f"sqlite:///{data_dir / 'iceberg_catalog.db'}",
                         warehouse=f"file://{data_dir / 'lake'}")  # fmt: skip
    table = catalog.load_table(("raw", "orders")).scan().to_arrow()
    with duckdb.connect() as conn:
        conn.register("orders", table)
        return conn.execute(
            "SELECT _ingest_window_start::date::text, count(*), count(DISTINCT order_id) "
            "FROM orders GROUP BY 1 ORDER BY 1"
        ).fetchall()


@pytest.mark.parametrize("destination", list(DESTINATIONS))
def test_loads_killed_at_random_points_leave_exact_windows_after_a_rerun(
    destination: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    if destination == "postgres":
        postgres: Postgres = request.getfixturevalue("postgres")
        name = "wh_killed"
        with pg.connect(postgres.url(), autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {name}")
        server = Postgres(postgres.host, postgres.port, postgres.user, postgres.password, name)
        monkeypatch.setenv("WAREHOUSE_URL", server.url())
    for day in DAYS:
        write_csv(data_dir / "orders" / f"dt={day}" / "part-1.csv", order_rows(day, PER_DAY))
    dataset = spec(destination)
    started = time.perf_counter()
    load_windows(dataset, windows_for(dataset, DAYS), open_reader(dataset),
                 open_destination(dataset), run_id="first")  # fmt: skip
    one_load = time.perf_counter() - started  # kills are spread over about two loads
    script = data_dir / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    chooser = random.Random(f"kill-{destination}")
    zygote = subprocess.Popen(
        [sys.executable, str(script), destination],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    try:
        assert zygote.stdout.readline().strip() == "ready"
        for _ in range(ROUNDS):
            zygote.stdin.write(" ".join(DAYS[: chooser.randint(1, 3)]) + "\n")
            zygote.stdin.flush()
            loader = int(zygote.stdout.readline())
            time.sleep(chooser.uniform(0, 2 * one_load))
            os.kill(loader, signal.SIGKILL)
            died_by = int(zygote.stdout.readline())
            assert died_by == signal.SIGKILL, "the loader must die by the kill, not fail"
    finally:
        zygote.kill()
        zygote.wait()
    load_windows(dataset, windows_for(dataset, DAYS), open_reader(dataset),
                 open_destination(dataset), run_id="rerun")  # fmt: skip
    assert _rows_per_window(destination, data_dir) == [(day, PER_DAY, PER_DAY) for day in DAYS]

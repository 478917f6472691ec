"""The core's public API loads a window from a plain script, without importing Dagster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingest_assets.core import windows_for
from ingest_assets.errors import SpecError
from ingest_assets.spec import DatasetSpec
from ingest_assets.triggers.partitions import partitions_def

DEFS = """type: ingest_assets.components.IngestDatasets
attributes:
  datasets:
    - name: orders
      source: {location: orders, key_template: "dt={date}/*.csv"}
      partitioning: {cadence: daily, start: "2026-11-01", timezone: Europe/Paris}
      schema:
        columns:
          id: {dtype: int64, nullable: false, unique: true}
          amount: {dtype: float64, checks: {ge: 0}}
      destination: {table: raw.orders}
"""

SCRIPT = """
import json, sys
from ingest_assets.core import load_dataset, load_windows, open_destination, open_reader
from ingest_assets.core import windows_for

spec = load_dataset(sys.argv[1], "orders")
windows = windows_for(spec, ["2026-11-02"])
reports = load_windows(spec, windows, open_reader(spec), open_destination(spec), run_id="script")
print(json.dumps({
    "written": [r.rows_written for r in reports],
    "window": str(windows[0]),
    "dagster": sorted(m for m in sys.modules if m.split(".")[0].startswith("dagster")),
}))
"""


def test_a_script_loads_a_window_through_the_public_api_without_dagster(tmp_path: Path) -> None:
    (tmp_path / "defs.yaml").write_text(DEFS)
    day = tmp_path / "data" / "orders" / "dt=2026-11-02"
    day.mkdir(parents=True)
    (day / "part-1.csv").write_text("id,amount\n1,2.5\n2,4.0\n3,0\n")
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {
        **os.environ,
        "INGEST_ASSETS_DATA_DIR": str(tmp_path / "data"),
        "INGEST_ASSETS_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "defs.yaml")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {
        "written": [3],
        "window": "[2026-11-02T00:00:00+01:00, 2026-11-03T00:00:00+01:00)",
        "dagster": [],
    }
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT sum(amount) FROM raw.orders").fetchone() == (6.5,)


@pytest.mark.parametrize("cadence", ["hourly", "daily", "weekly", "monthly"])
def test_windows_for_equal_dagsters_windows_across_daylight_saving_changes(cadence: str) -> None:
    spec = DatasetSpec.model_validate(
        {
            "name": "x",
            "source": {"location": "x", "key_template": "{date}/{hour}.csv"},
            "partitioning": {
                "cadence": cadence,
                "start": "2026-03-01",  # a Sunday: weekly partitions start on Sundays
                "timezone": "America/New_York",
            },
            "schema": {"columns": {"a": {"dtype": "string"}}},
            "destination": {"table": "x"},
        }
    )
    partitions = partitions_def(spec.partitioning)
    with dg.partition_loading_context(effective_dt=partitions.start.replace(year=2027)):
        keys = partitions.get_partition_keys()
    expected = [partitions.time_window_for_partition_key(key) for key in keys]
    assert [(w.start, w.end) for w in windows_for(spec, keys)] == [
        (w.start, w.end) for w in expected
    ]
    assert any(key.endswith("-0500") for key in keys) or cadence != "hourly"  # the repeated hour


def test_windows_for_refuses_a_key_of_another_cadence() -> None:
    spec = DatasetSpec.model_validate(
        {
            "name": "x",
            "source": {"location": "x", "key_template": "{date}.csv"},
            "partitioning": {"cadence": "weekly", "start": "2026-03-01"},
            "schema": {"columns": {"a": {"dtype": "string"}}},
            "destination": {"table": "x"},
        }
    )
    with pytest.raises(SpecError, match="'2026-03-02' does not start a weekly partition"):
        windows_for(spec, ["2026-03-02"])

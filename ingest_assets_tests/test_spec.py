"""Dataset declarations: the demo loads; a wrong one names its file, key and what is allowed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandera.pandas as pandera
import pytest
from pandera.typing import Series
from pydantic import ValidationError

from ingest_assets import definitions
from ingest_assets.paths import PROJECT_ROOT
from ingest_assets.spec import DatasetSpec, key_template_granularity
from ingest_assets.templates import render
from ingest_assets.triggers.partitions import partitions_def
from ingest_assets_tests.conftest import orders_spec

DG = str(Path(sys.executable).parent / "dg")


def test_demo_definitions_load_with_partitioned_assets_and_blocking_checks(data_dir: Path) -> None:
    defs = definitions.defs()
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "orders",
        "page_views",
        "fx_rates",
        "daily_revenue",
        "customers",
    }
    orders = defs.resolve_assets_def("orders")
    assert orders.partitions_def == dg.DailyPartitionsDefinition(start_date="2026-11-01")
    assert {(c.name, c.blocking) for c in orders.check_specs} == {
        ("schema", True),
        ("drift", True),
        ("volume", True),
        ("masking", True),
    }
    assert orders.owners_by_key[dg.AssetKey("orders")] == ["team:commerce"]
    assert set(orders.specs_by_key[dg.AssetKey("orders")].kinds) == {"file", "duckdb"}
    assert defs.resolve_schedule_def("orders_schedule").cron_schedule == "15 2 * * *"
    assert defs.resolve_schedule_def("customers_schedule").cron_schedule == "30 0 * * *"
    assert defs.resolve_schedule_def("orders_timeliness_schedule").job_name == (
        "orders_timeliness_job"
    )
    assert defs.resolve_sensor_def("page_views_landing_sensor").job_name == "page_views_job"
    customers = defs.resolve_assets_def("customers")
    assert {(c.name, c.blocking) for c in customers.check_specs} == {
        ("schema", True),
        ("drift", True),
        ("volume", True),
        ("masking", True),
        ("reconciliation", True),
    }
    assert set(customers.specs_by_key[dg.AssetKey("customers")].kinds) == {"sql", "duckdb"}


def _project_copy(tmp_path: Path, yaml_text: str) -> Path:
    """A copy of the project whose demo defs.yaml is replaced by ``yaml_text``."""
    project = tmp_path / "project"
    shutil.copytree(
        PROJECT_ROOT / "ingest_assets",
        project / "ingest_assets",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "ingest_assets" / "defs" / "demo" / "landing" / "defs.yaml").write_text(yaml_text)
    return project


def _dg(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
        "PYTHONPATH": str(project),  # the copy's package, not the installed one
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [DG, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


DEMO_YAML = (PROJECT_ROOT / "ingest_assets/defs/demo/landing/defs.yaml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "allowed"),
    [
        (
            "cadence: daily, start",
            "cadence: daylie, start",
            13,
            "attributes.datasets.0.partitioning.cadence",
            "is not one of ['hourly', 'daily', 'weekly', 'monthly']",
        ),
        (
            "amount: {dtype: float64",
            "amount: {dtype: money",
            24,
            "attributes.datasets.0.schema.columns.amount.dtype",
            "is not one of ['string', 'int32'",
        ),
        (
            "table: raw.orders",
            "tabel: raw.orders",
            32,
            "attributes.datasets.0.destination",
            "'table' is a required property",
        ),
    ],
)
def test_dg_check_yaml_names_file_line_key_and_allowed_values(
    tmp_path: Path, old: str, new: str, line: int, key: str, allowed: str
) -> None:
    project = _project_copy(tmp_path, DEMO_YAML.replace(old, new, 1))
    # dg 1.13 validates one defs.yaml per component type unless given the folder (its check
    # keys files by type); `dg check defs` below loads every file.
    result = _dg(project, "check", "yaml", "ingest_assets/defs/demo/landing")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"ingest_assets/defs/demo/landing/defs.yaml:{line}" in output
    assert key in output and allowed in output
    assert "Traceback" not in output


def test_dg_check_defs_reports_a_wrong_value_in_every_defs_file(tmp_path: Path) -> None:
    yaml_text = DEMO_YAML.replace("cadence: daily, start", "cadence: daylie, start", 1)
    result = _dg(_project_copy(tmp_path, yaml_text), "check", "defs")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "attributes.datasets.0.partitioning.cadence at" in output
    assert "defs/demo/landing/defs.yaml:13" in output
    assert "Input should be 'hourly', 'daily', 'weekly' or 'monthly'" in output


def test_dg_check_defs_reports_rules_beyond_the_json_schema(tmp_path: Path) -> None:
    # A monthly folder layout cannot select the files of one day: only loading can tell.
    yaml_text = DEMO_YAML.replace(
        'key_template: "dt={date}/*.csv"', 'key_template: "{year}/{month}/*.csv"', 1
    )
    result = _dg(_project_copy(tmp_path, yaml_text), "check", "defs")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "attributes.datasets.0 at" in output and "defs/demo/landing/defs.yaml:6" in output
    assert "only pins down monthly periods" in output


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("RAW.Customers", "its table raw.customers is the table of dataset 'customers'"),
        ("raw.customers__rejected", "is the quarantine table of dataset 'customers'"),
        ("ingest_audit.loads", "is the audit table of every load"),
        ("raw.page_views", "its table raw.page_views is the table of dataset 'orders'"),
    ],
)
def test_dg_check_defs_refuses_datasets_that_share_a_table(
    tmp_path: Path, table: str, expected: str
) -> None:
    yaml_text = DEMO_YAML.replace(
        "destination: {table: raw.orders}", f"destination: {{table: {table}}}", 1
    )
    result = _dg(_project_copy(tmp_path, yaml_text), "check", "defs")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "defs/demo/landing/defs.yaml:32" in output, output[-2000:]


class ReservedModel(pandera.DataFrameModel):
    """A model whose column is named like one the load adds."""

    window: Series[str] = pandera.Field(alias="_ingest_window_start")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": "Orders-2"}, "use lowercase letters, digits and underscores"),
        ({"destination": {"table": "raw.orders\n"}}, "is not a plain identifier"),
        (
            {"schema": {"model": "ingest_assets_tests.test_spec:ReservedModel"}},
            "column '_ingest_window_start': the prefix _ingest_ is reserved",
        ),
        ({"schema": {"columns": {"a\nb": {"dtype": "string"}}}}, "is not a plain identifier"),
        (
            {"source": {"location": "../outside", "key_template": "{date}.csv"}},
            "'..' would leave it",
        ),
        (
            {"source": {"location": "x", "key_template": "../{date}/*.csv"}},
            "may not start with '/' or contain '..'",
        ),
        (
            {"source": {"location": "x", "key_template": "a/../../{date}.csv"}},
            "may not start with '/' or contain '..'",
        ),
        (
            {
                "source": {
                    "location": "x",
                    "key_template": "{date}.csv",
                    "csv": {"encoding": "klingon"},
                }
            },
            "is not a known text encoding",
        ),
        ({"owners": ["bob"]}, "must be an email or 'team:<name>'"),
        ({"partitioning": {"cadence": "daily", "start": "yesterday"}}, "not an ISO date"),
        (
            {
                "partitioning": {
                    "cadence": "daily",
                    "start": "2026-01-01",
                    "timezone": "Mars/Olympus",
                }
            },
            "not an IANA time zone",
        ),
        ({"destination": {"table": "raw.orders; drop table x"}}, "is not a plain identifier"),
        (
            {
                "schema": {
                    "columns": {"a": {"dtype": "string"}},
                    "model": "ingest_assets.defs.demo.models:FxRate",
                }
            },
            "exactly one of",
        ),
        (
            {"schema": {"model": "ingest_assets.spec:DatasetSpec"}},
            "is not a pandera DataFrameModel",
        ),
        (
            {"schema": {"columns": {"a": {"dtype": "string", "checks": {"regex": "(["}}}}},
            "not a valid regular expression",
        ),
        (
            {"source": {"location": "ftp://host/x", "key_template": "{date}.csv"}},
            "only 's3://bucket",
        ),
        ({"source": {"location": "x", "key_template": "all.csv"}}, "has no time placeholder"),
        (
            {"source": {"location": "x", "key_template": "{date}.csv", "colour": "red"}},
            "Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_spec_values_are_explained(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        orders_spec("landing/orders", **override)
    assert message in str(error.value)


def test_key_template_granularity() -> None:
    assert key_template_granularity("dt={date}/*.csv") == "daily"
    assert key_template_granularity("{year}/{month}/{day}/{hour}.jsonl") == "hourly"
    assert key_template_granularity("{year}/{month}/") == "monthly"
    assert key_template_granularity("x/{start:%Y%m%dT%H}.csv") == "hourly"


@pytest.mark.parametrize(
    ("cadence", "cls"),
    [
        ("hourly", dg.HourlyPartitionsDefinition),
        ("daily", dg.DailyPartitionsDefinition),
        ("weekly", dg.WeeklyPartitionsDefinition),
        ("monthly", dg.MonthlyPartitionsDefinition),
    ],
)
def test_partitioning_maps_to_dagster_partitions(cadence: str, cls: type) -> None:
    spec = DatasetSpec.model_validate(
        {
            **orders_spec("x").model_dump(by_alias=True),
            "source": {"location": "x", "key_template": "{start:%Y%m%d%H}.csv"},
            "partitioning": {
                "cadence": cadence,
                "start": "2026-01-01",
                "timezone": "Europe/Berlin",
                "end_offset": 1,
            },
        }
    )
    partitions = partitions_def(spec.partitioning)
    assert isinstance(partitions, cls)
    assert partitions.timezone == "Europe/Berlin" and partitions.end_offset == 1


def test_a_typo_in_one_file_hides_no_other_dataset_when_served_but_fails_the_checks(
    tmp_path: Path,
) -> None:
    """Served (dg dev, a code server), the broken file is a failed placeholder asset naming the
    key it meant and the others load; `dg check defs` and `ingest-assets check` refuse it."""
    project = _project_copy(
        tmp_path, DEMO_YAML.replace('key_template: "dt={date}', 'key_templat: "dt={date}', 1)
    )
    draft = project / "ingest_assets/defs/orders_v2" / "defs.yaml.draft"
    draft.parent.mkdir()
    draft.write_text(render("object_store", "orders_v2"))  # what `ingest-assets new` writes
    env = {**os.environ, "PYTHONPATH": str(project), "NO_COLOR": "1"}
    served = subprocess.run(
        [sys.executable, "-c", SERVED],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr
    keys, description, failure = json.loads(served.stdout.splitlines()[-1])
    assert "invalid_declaration/landing" in keys and "customers" in keys
    assert "page_views" not in keys, "the broken file's datasets wait until it is fixed"
    assert not [key for key in keys if "orders_v2" in key], "a draft is not loaded"
    assert "key_templat at ingest_assets/defs/demo/landing/defs.yaml:12" in description
    assert "did you mean `key_template`?" in description
    assert "does not load" in failure

    checked = _dg(project, "check", "defs")
    assert checked.returncode != 0
    assert "key_templat" in checked.stdout + checked.stderr
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "ingest-assets"), "check"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cli.returncode == 2  # the draft's placeholders first, then the typo
    assert 'defs/orders_v2/defs.yaml.draft:14: fill in "<what the dataset holds' in cli.stderr
    draft.unlink()
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "ingest-assets"), "check"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cli.returncode == 2
    assert "key_templat at defs/demo/landing/defs.yaml:12" in cli.stderr
    assert "did you mean `key_template`?" in cli.stderr and "Traceback" not in cli.stderr


#: Loads the copied project's code location as a code server does, and materializes the
#: placeholder of its broken file.
SERVED = """
import json
import dagster as dg
from ingest_assets.definitions import defs
loaded = defs()
keys = sorted(key.to_user_string() for key in loaded.resolve_all_asset_keys())
placeholder = loaded.resolve_assets_def(dg.AssetKey(["invalid_declaration", "landing"]))
description = placeholder.specs_by_key[placeholder.key].description
result = dg.materialize([placeholder], raise_on_error=False)
failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
print(json.dumps([keys, description, failure]))
"""

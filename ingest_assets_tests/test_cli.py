"""The ``ingest-assets`` command line against real endpoints: a local folder, S3 on loopback,
PostgreSQL and a local HTTP API, healthy and broken."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
import yaml
from dagster_duckdb import DuckDBResource

from ingest_assets.cli import FAILED, INVALID, OK, main
from ingest_assets.components.assets import dataset_asset
from ingest_assets.declarations import COMPONENT_TYPE, load_declared
from ingest_assets.templates import render
from ingest_assets_tests.api_server import ApiState, api_server, make_records
from ingest_assets_tests.conftest import PG_PASSWORD, csv_bytes, free_port, query, write_csv
from ingest_assets_tests.postgres import Postgres
from ingest_assets_tests.test_spec import DEMO_YAML, _dg, _project_copy

YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
START = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in process; its exit code, stdout and stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fill(path: Path, values: dict[str, str]) -> None:
    """Replace the template's placeholders that contain each key by its value."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.lstrip().startswith("#"):
            for key, value in values.items():
                start = line.find('"<')
                if start >= 0 and key in line[start:]:
                    end = line.index('>"', start) + 2
                    line = line[:start] + value + line[end:]
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def new(capsys: pytest.CaptureFixture[str], defs: Path, kind: str, name: str) -> Path:
    code, out, _ = run(capsys, "new", kind, name, "--defs", str(defs))
    assert code == OK, out
    assert "a draft" in out
    return defs / name / "defs.yaml.draft"


COMMON = {
    "what the dataset holds": '"Orders"',
    "team:name": "team:data",
    "first partition": f'"{START}"',
    "<column>": "order_id",
    "schema.table in the warehouse": "raw.{name}",
}


def filled(path: Path, name: str, source: dict[str, str]) -> None:
    fill(path, {**{k: v.format(name=name) for k, v in COMMON.items()}, **source})


@pytest.fixture
def defs(tmp_path: Path) -> Path:
    folder = tmp_path / "defs"
    folder.mkdir()
    return folder


def checked(
    capsys: pytest.CaptureFixture[str], defs: Path, *names: str
) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, "check", *names, "--defs", str(defs), "--json")
    assert "Traceback" not in out + err
    assert out.startswith("["), err
    return code, {row["dataset"]: row for row in json.loads(out)}


def test_new_writes_a_documented_template_that_check_refuses_until_filled(
    capsys: pytest.CaptureFixture[str], defs: Path
) -> None:
    for kind in ("object_store", "sql", "rest"):
        path = new(capsys, defs, kind, f"from_{kind}")
        text = path.read_text()
        assert "# max_partitions_per_run: 31" in text, "every option is listed with its default"
        assert "# paginator:" in text if kind == "rest" else True
        assert "# url_env" not in text if kind == "sql" else True, "required keys are not comments"
    code, _, err = run(capsys, "new", "rest", "from_rest", "--defs", str(defs))
    assert code == FAILED and "exists already" in err and "--force" in err
    code, _, err = run(capsys, "new", "rest", "Bad-Name", "--defs", str(defs))
    assert code == INVALID and "lowercase letters" in err
    code, _, err = run(capsys, "check", "--defs", str(defs))
    assert code == INVALID
    assert 'defs/from_sql/defs.yaml.draft:21: fill in "<VARIABLE holding the database URL' in err


SECTION = re.compile(r"^(\s*)# (\w+):  # ")


def _enclosing_sections(lines: list[str], index: int, indent: int) -> list[int]:
    """The commented sections a section is nested in, up to the first uncommented parent."""
    found = []
    for i in range(index - 1, -1, -1):
        line = lines[i]
        depth = len(line) - len(line.lstrip())
        if not line.strip() or depth >= indent:
            continue
        if not line.lstrip().startswith("#"):
            break  # an uncommented parent: the section is in place under it
        match = SECTION.match(line)
        if match:
            found.append(i)
            indent = depth
    return found


@pytest.mark.parametrize("kind", ["object_store", "sql", "rest"])
def test_every_commented_section_of_a_template_uncomments_to_valid_yaml(kind: str) -> None:
    """Uncommenting a section line and the first option under it, as the template says, gives
    a file that parses, with the section in its place and every enum's values listed."""
    lines = render(kind, "orders").splitlines()
    sections = [i for i, line in enumerate(lines) if SECTION.match(line)]
    assert len(sections) >= 8
    for index in sections:
        indent = len(SECTION.match(lines[index]).group(1))  # type: ignore[union-attr]
        child = next(
            i for i in range(index + 1, len(lines))
            if lines[i].startswith(" " * (indent + 2) + "# ") and "(required)" not in lines[i]
        )  # fmt: skip
        parents = _enclosing_sections(lines, index, indent)
        edited = list(lines)
        for i in (*parents, index, child):
            edited[i] = edited[i].replace("# ", "", 1)
        document = yaml.safe_load("\n".join(edited))
        assert isinstance(document["attributes"]["datasets"][0], dict), lines[index]
    text = "\n".join(lines)
    assert "One of: string, int32, int64, float32, float64, boolean, date, timestamp." in text
    assert "One of: replace_window, append, merge, snapshot." in text
    assert "# group: ingest" in text


def test_object_store_templates_pass_check_and_load_and_a_wrong_template_or_bucket_fails(
    capsys: pytest.CaptureFixture[str], defs: Path, data_dir: Path, bucket: str
) -> None:
    write_csv(
        data_dir / "landing" / f"dt={YESTERDAY}" / "a.csv", [{"order_id": "a1"}, {"order_id": "a2"}]
    )
    boto3.client(
        "s3", endpoint_url=os.environ["INGEST_S3_ENDPOINT_URL"], region_name="us-east-1"
    ).put_object(
        Bucket=bucket, Key=f"orders/dt={YESTERDAY}/b.csv", Body=csv_bytes([{"order_id": "b1"}])
    )
    for name, location in (("local", "landing"), ("in_s3", f"s3://{bucket}/orders")):
        path = new(capsys, defs, "object_store", name)
        filled(path, name, {"s3://bucket": location, "keys of one period": '"dt={date}/*.csv"'})
    code, rows = checked(capsys, defs)
    assert code == OK, rows
    assert rows["local"]["status"] == "ok" and "1 object matches" in rows["local"]["detail"]
    assert (
        rows["in_s3"]["status"] == "ok"
        and f"s3://{bucket}/orders/dt={YESTERDAY}" in rows["in_s3"]["detail"]
    )
    assert all(isinstance(row["latency_ms"], int) for row in rows.values())
    # The drafts passed: each is now the defs.yaml the code location loads.
    assert sorted(p.relative_to(defs).as_posix() for p in defs.rglob("defs.yaml*")) == [
        "in_s3/defs.yaml", "local/defs.yaml",
    ]  # fmt: skip

    # The filled template loads.
    spec = next(d.spec for d in load_declared(defs) if d.spec.name == "local")
    result = dg.materialize(
        [dataset_asset(spec, origin="test")],
        partition_key=YESTERDAY,
        resources={"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))},
    )
    assert result.success
    assert query(data_dir, "SELECT order_id FROM raw.local ORDER BY 1") == [("a1",), ("a2",)]

    # A key template that matches nothing, and a bucket that does not exist.
    local = defs / "local" / "defs.yaml"
    local.write_text(local.read_text().replace('"dt={date}/*.csv"', '"day={date}/*.csv"'))
    wrong = defs / "in_s3" / "defs.yaml"
    wrong.write_text(wrong.read_text().replace(f"s3://{bucket}/", "s3://no-such-bucket-here/"))
    code, rows = checked(capsys, defs)
    assert code == FAILED
    assert rows["local"]["status"] == "failed"
    assert (
        "no object under" in rows["local"]["detail"]
        and "day={date}/*.csv" in rows["local"]["detail"]
    )
    assert rows["in_s3"]["status"] == "failed" and "no-such-bucket-here" in rows["in_s3"]["detail"]
    assert "NoSuchBucket" in rows["in_s3"]["detail"] or "does not exist" in rows["in_s3"]["detail"]
    code, rows = checked(capsys, defs, "local")
    assert list(rows) == ["local"], "named datasets only"

    # The file's header against the declared columns.
    local.write_text(local.read_text().replace('"day={date}/*.csv"', '"dt={date}/*.csv"'))
    assert "its columns match" in checked(capsys, defs, "local")[1]["local"]["detail"]
    local.write_text(local.read_text().replace("order_id:", "order_ref:"))
    code, rows = checked(capsys, defs, "local")
    detail = rows["local"]["detail"]
    assert code == FAILED and "has no column 'order_ref'" in detail, detail
    assert "(its columns: order_id)" in detail and f"dt={YESTERDAY}/a.csv" in detail


@pytest.fixture
def pg_table(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> str:
    postgres.execute(
        "DROP SCHEMA IF EXISTS cli CASCADE",
        "CREATE SCHEMA cli",
        "CREATE TABLE cli.orders (order_id text, created_at timestamptz)",
        f"INSERT INTO cli.orders VALUES ('p1', '{YESTERDAY} 10:00:00+00')",
    )
    monkeypatch.setenv("CLI_DB_URL", postgres.url())
    return "cli.orders"


def test_sql_template_checks_the_database_table_and_columns(
    capsys: pytest.CaptureFixture[str],
    defs: Path,
    data_dir: Path,
    postgres: Postgres,
    pg_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = new(capsys, defs, "sql", "from_pg")
    filled(
        path,
        "from_pg",
        {
            "VARIABLE holding": "CLI_DB_URL",
            '"<schema.table>"': pg_table,
            "timestamp column": "created_at",
        },
    )
    code, rows = checked(capsys, defs)
    assert code == OK and rows["from_pg"]["status"] == "ok", rows
    path = path.with_name("defs.yaml")  # the draft passed
    spec = load_declared(defs)[0].spec  # the filled template loads
    result = dg.materialize(
        [dataset_asset(spec, origin="test")],
        partition_key=YESTERDAY,
        resources={"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))},
    )
    assert result.success
    assert query(data_dir, "SELECT order_id FROM raw.from_pg") == [("p1",)]

    monkeypatch.setenv("CLI_DB_URL", postgres.url().replace(PG_PASSWORD, "wrong-password"))
    code, rows = checked(capsys, defs)
    detail = rows["from_pg"]["detail"]
    assert code == FAILED and "refused the login" in detail
    assert "wrong-password" not in detail and PG_PASSWORD not in detail

    monkeypatch.setenv("CLI_DB_URL", postgres.url())
    path.write_text(path.read_text().replace(pg_table, "cli.missing"))
    code, rows = checked(capsys, defs)
    assert code == FAILED and "does not exist" in rows["from_pg"]["detail"]

    monkeypatch.delenv("CLI_DB_URL")
    code, rows = checked(capsys, defs)
    assert code == FAILED and "CLI_DB_URL" in rows["from_pg"]["detail"]

    # The variable in a .env file where the command runs, as Dagster reads it.
    path.write_text(path.read_text().replace("cli.missing", pg_table))
    (data_dir / ".env").write_text(f"CLI_DB_URL={postgres.url()}\n")
    monkeypatch.chdir(data_dir)
    try:
        code, rows = checked(capsys, defs)
    finally:
        os.environ.pop("CLI_DB_URL", None)  # set by the command, not by this test
    assert code == OK and rows["from_pg"]["status"] == "ok", rows


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    with api_server(free_port()) as (base, state):
        state.records += make_records(YESTERDAY, 30)
        yield base, state


def test_rest_template_checks_the_first_page_with_the_declared_auth(
    capsys: pytest.CaptureFixture[str],
    defs: Path,
    api: tuple[str, ApiState],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, state = api
    state.auth = "bearer"
    path = new(capsys, defs, "rest", "from_api")
    filled(
        path,
        "from_api",
        {
            "https://api.example.com": f'"{base}"',
            "</orders>": '"/v1/page"',
            "path to the list": "data",
        },
    )
    text = path.read_text().replace(
        "        # auth:  # Authentication.\n          # type: none",
        "        auth:\n          type: bearer\n          token_env: CLI_API_TOKEN",
    )
    path.write_text(text)
    monkeypatch.setenv("CLI_API_TOKEN", state.secret)
    code, rows = checked(capsys, defs)
    assert code == OK and "HTTP 200" in rows["from_api"]["detail"], rows

    monkeypatch.setenv("CLI_API_TOKEN", "not-the-token")
    code, rows = checked(capsys, defs)
    detail = rows["from_api"]["detail"]
    assert code == FAILED and "HTTP 401" in detail and "not-the-token" not in detail


def test_bad_yaml_and_bad_values_fail_with_file_line_and_key_and_no_traceback(
    capsys: pytest.CaptureFixture[str], defs: Path, data_dir: Path
) -> None:
    path = new(capsys, defs, "object_store", "orders")
    filled(path, "orders", {"s3://bucket": "landing", "keys of one period": '"dt={date}/*.csv"'})
    good = path.read_text()
    path.write_text(good.replace("cadence: daily", "cadence: daylie"))
    code, out, err = run(capsys, "check", "--defs", str(defs))
    assert code == INVALID and "Traceback" not in out + err
    assert "attributes.datasets.0.partitioning.cadence at defs/orders/defs.yaml.draft:" in err
    assert "'hourly', 'daily', 'weekly' or 'monthly'" in err

    path.write_text(good.replace("    - name: orders", "    - name: orders\n   bad: [indent"))
    code, out, err = run(capsys, "check", "--defs", str(defs))
    assert code == INVALID and "not valid YAML" in err and "defs/orders/defs.yaml.draft" in err
    assert "Traceback" not in out + err
    code, out, err = run(capsys, "list", "--defs", str(defs))
    assert code == INVALID and "not valid YAML" in err


def test_list_shows_source_partitions_trigger_sla_and_owners(
    capsys: pytest.CaptureFixture[str], defs: Path
) -> None:
    path = new(capsys, defs, "object_store", "orders")
    filled(path, "orders", {"s3://bucket": "landing", "keys of one period": '"dt={date}/*.csv"'})
    path.write_text(
        path.read_text().replace(
            "      destination: {table: raw.orders}",
            '      destination: {table: raw.orders}\n      trigger: {delay: "02:00"}\n'
            '      sla: {deadline: "04:00"}',
        )
    )
    code, out, _ = run(capsys, "list", "--defs", str(defs), "--json")
    assert code == OK
    assert json.loads(out) == [
        {
            "dataset": "orders",
            "source": "files landing/dt={date}/*.csv",
            "partitions": f"daily from {START}",
            "trigger": "schedule +02:00",
            "sla": "by 04:00",
            "owners": "team:data",
            "file": "orders/defs.yaml.draft",
        }
    ]
    code, out, _ = run(capsys, "list", "--defs", str(defs))
    assert code == OK and "orders" in out and "schedule" in out and "team:data" in out
    assert "\x1b[" not in out, "no colours when the output is not a terminal"


def test_a_listing_piped_to_a_file_keeps_each_dataset_on_one_line(defs: Path) -> None:
    """The installed command with its output to a pipe (no terminal, no width to fit)."""
    script = Path(sys.executable).parent / "ingest-assets"
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [script, "list"], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ ")]
    names = sorted(row.split("│")[1].strip() for row in rows)
    assert names == ["customers", "fx_rates", "orders", "page_views"], done.stdout
    orders = next(row for row in rows if row.startswith("│ orders "))
    assert "files landing/orders/dt={date}/*.csv" in orders and "team:commerce" in orders


def test_console_script_exit_codes_and_debug_traceback(tmp_path: Path, defs: Path) -> None:
    """The installed command, as a user runs it: a failure exits non-zero without a traceback;
    --debug shows one."""
    (defs / "x").mkdir()
    (defs / "x" / "defs.yaml").write_text(
        "type: ingest_assets.components.IngestDatasets\nattributes: {datasets: [{name: x}]}\n"
    )
    script = Path(sys.executable).parent / "ingest-assets"
    env = {**os.environ, "NO_COLOR": "1"}
    plain = subprocess.run(
        [script, "check", "--defs", str(defs)], capture_output=True, text=True, env=env, timeout=120
    )
    assert plain.returncode == INVALID
    assert "attributes.datasets.0.source at" in plain.stderr and "Traceback" not in plain.stderr
    debug = subprocess.run(
        [script, "check", "--defs", str(defs), "--debug"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_dg_scaffold_writes_the_template_ingest_assets_new_writes(tmp_path: Path) -> None:
    project = _project_copy(tmp_path, DEMO_YAML)
    done = _dg(project, "scaffold", "defs", COMPONENT_TYPE, "shop_orders", "--kind", "sql")
    assert done.returncode == 0, done.stderr
    written = (project / "ingest_assets" / "defs" / "shop_orders" / "defs.yaml").read_text()
    assert written == render("sql", "shop_orders")
    assert "kind: sql" in written and 'url_env: "<VARIABLE' in written


def test_new_from_a_sample_file_declares_its_columns_and_types_and_the_draft_passes(
    capsys: pytest.CaptureFixture[str], defs: Path, data_dir: Path
) -> None:
    sample = data_dir / "landing" / f"dt={YESTERDAY}" / "a.csv"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "id,amount,paid,placed_at,note\n"
        "1,9.5,true,2026-11-01T10:00:00Z,first\n"
        "2,,false,2026-11-01T11:30:00Z,\n"
    )
    code, out, _ = run(
        capsys, "new", "object_store", "sampled", "--defs", str(defs), "--from-sample", str(sample)
    )
    assert code == OK, out
    path = defs / "sampled" / "defs.yaml.draft"
    fill(path, {k: v.format(name="sampled") for k, v in COMMON.items()})
    fill(path, {"s3://bucket": "landing", "keys of one period": '"dt={date}/*.csv"'})
    code, rows = checked(capsys, defs)
    assert code == OK and rows["sampled"]["detail"].count("its columns match"), rows
    (spec,) = [entry.spec for entry in load_declared(defs)]  # the draft passed: defs.yaml now
    columns = {n: (c.dtype, c.nullable) for n, c in (spec.table_schema.columns or {}).items()}
    assert columns == {
        "id": ("int64", False),
        "amount": ("float64", True),
        "paid": ("boolean", False),
        "placed_at": ("timestamp", False),
        "note": ("string", True),
    }

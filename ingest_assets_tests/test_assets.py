"""Materializing dataset partitions from a local folder and from S3 into DuckDB."""

from pathlib import Path

import boto3
import pytest

from ingest_assets_tests.conftest import (
    check_named,
    csv_bytes,
    free_port,
    materialize,
    order_rows,
    orders_spec,
    query,
    step_failure,
    write_csv,
)
from ingest_assets_tests.downstream import downstream_asset

WINDOW_ROWS = (
    "SELECT order_id, amount, quantity, email, ordered_at FROM raw.orders ORDER BY order_id"
)


def _seed_local(landing: Path) -> None:
    # The target day in two files, and its neighbours, which must not be read.
    write_csv(landing / "dt=2026-10-02" / "part-1.csv", order_rows("2026-10-02", 30))
    write_csv(landing / "dt=2026-10-02" / "part-2.csv", order_rows("2026-10-02", 20, start=30))
    write_csv(landing / "dt=2026-10-01" / "part-1.csv", order_rows("2026-10-01", 7))
    write_csv(landing / "dt=2026-10-03" / "part-1.csv", order_rows("2026-10-03", 9))
    (landing / "dt=2026-10-02" / "README.txt").write_text("not a csv: must not match *.csv")


def test_local_partition_loads_exactly_its_window_and_rerun_is_idempotent(data_dir: Path) -> None:
    _seed_local(data_dir / "landing" / "orders")
    spec = orders_spec("landing/orders")

    first = materialize(spec, "2026-10-02", data_dir)
    assert first.success
    rows = query(data_dir, WINDOW_ROWS)
    assert len(rows) == 50
    assert {r[0][:10] for r in rows} == {"2026-10-02"}

    materialization = first.asset_materializations_for_node("orders")[0]
    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == 50
    assert metadata["objects_read"].value == 2
    assert metadata["dagster/table_name"].value == "warehouse.raw.orders"
    assert metadata["bytes_read"].value > 0
    column_names = [c.name for c in metadata["dagster/column_schema"].value.columns]
    assert column_names == ["order_id", "amount", "quantity", "email", "ordered_at"]
    checks = first.get_asset_check_evaluations()
    assert {(c.check_name, c.passed) for c in checks} == {
        ("schema", True),
        ("drift", True),
        ("volume", True),
    }

    second = materialize(spec, "2026-10-02", data_dir)
    assert second.success
    assert query(data_dir, WINDOW_ROWS) == rows

    # Loading a neighbour adds its rows and leaves the first window alone.
    assert materialize(spec, "2026-10-03", data_dir).success
    counts = query(
        data_dir,
        "SELECT _ingest_window_start::DATE::VARCHAR, count(*) FROM raw.orders "
        "GROUP BY 1 ORDER BY 1",
    )
    assert counts == [("2026-10-02", 50), ("2026-10-03", 9)]


def test_s3_partition_loads_exactly_its_window_and_rerun_is_idempotent(
    data_dir: Path, bucket: str, s3_env: str
) -> None:
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    for day, count in (("2026-10-01", 5), ("2026-10-02", 40), ("2026-10-03", 6)):
        client.put_object(
            Bucket=bucket,
            Key=f"exports/orders/dt={day}/a.csv",
            Body=csv_bytes(order_rows(day, count)),
        )
    client.put_object(
        Bucket=bucket,
        Key="exports/orders/dt=2026-10-02/b.csv",
        Body=csv_bytes(order_rows("2026-10-02", 10, start=40)),
    )
    spec = orders_spec(f"s3://{bucket}/exports/orders")

    first = materialize(spec, "2026-10-02", data_dir, s3_endpoint=s3_env)
    assert first.success
    rows = query(data_dir, WINDOW_ROWS)
    assert len(rows) == 50 and {r[0][:10] for r in rows} == {"2026-10-02"}
    metadata = first.asset_materializations_for_node("orders")[0].metadata
    assert metadata["objects"].value == [
        f"s3://{bucket}/exports/orders/dt=2026-10-02/a.csv",
        f"s3://{bucket}/exports/orders/dt=2026-10-02/b.csv",
    ]

    assert materialize(spec, "2026-10-02", data_dir, s3_endpoint=s3_env).success
    assert query(data_dir, WINDOW_ROWS) == rows


def test_s3_ndjson_and_parquet_gzip_formats(data_dir: Path, bucket: str, s3_env: str) -> None:
    import gzip
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    rows = order_rows("2026-10-05", 12)
    lines = "\n".join(json.dumps({**r, "amount": float(r["amount"])}) for r in rows[:6]) + "\n"
    client.put_object(
        Bucket=bucket, Key="2026/10/05/part-a.jsonl.gz", Body=gzip.compress(lines.encode())
    )
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows[6:]), buffer)
    client.put_object(Bucket=bucket, Key="2026/10/05/part-b.parquet", Body=buffer.getvalue())
    spec = orders_spec(
        f"s3://{bucket}",
        source={"location": f"s3://{bucket}", "key_template": "{year}/{month}/{day}/*"},
    )
    result = materialize(spec, "2026-10-05", data_dir, s3_endpoint=s3_env)
    assert result.success, step_failure(result)
    assert query(data_dir, "SELECT count(*), sum(quantity) FROM raw.orders") == [
        (12, sum(int(r["quantity"]) for r in rows))
    ]


def test_bad_rows_fail_the_blocking_check_and_stop_downstream(data_dir: Path) -> None:
    landing = data_dir / "landing" / "orders"
    good = order_rows("2026-10-02", 20)
    write_csv(landing / "dt=2026-10-02" / "part-1.csv", good)
    spec = orders_spec("landing/orders")
    ran_downstream: list[str] = []
    orders_summary = downstream_asset(ran_downstream)

    assert materialize(spec, "2026-10-02", data_dir, extra_assets=[orders_summary]).success
    assert ran_downstream == ["2026-10-02"]
    before = query(data_dir, WINDOW_ROWS)

    bad = order_rows("2026-10-02", 20)
    bad[3]["amount"] = "-5"
    bad[4]["amount"] = "-7.5"
    bad[5]["quantity"] = "many"  # does not convert to int64
    bad[6]["email"] = "nobody"
    bad[7]["order_id"] = bad[8]["order_id"]  # duplicate key
    write_csv(landing / "dt=2026-10-02" / "part-1.csv", bad)
    result = materialize(spec, "2026-10-02", data_dir, extra_assets=[orders_summary])

    assert not result.success
    assert ran_downstream == ["2026-10-02"], "downstream must not run after a failed gate"
    check = check_named(result, "schema")
    assert not check.passed
    # The duplicate key is reported beside the other failures, not hidden by them.
    assert check.metadata["failures_by_column"].value == {
        "amount": 2,
        "email": 1,
        "order_id": 2,
        "quantity": 1,
    }
    assert check.metadata["failed.amount"].value == 2
    sample = check.metadata["sample"].value.records
    quantity = [r.data for r in sample if r.data["column"] == "quantity"]
    assert quantity == [
        {
            "column": "quantity",
            "rule": "dtype: int64",
            "severity": "error",
            "value": "many",
            "object": str(landing / "dt=2026-10-02" / "part-1.csv"),
            "line": 7,  # the file's line: the header is line 1
        }
    ]
    message = step_failure(result)
    assert "Dataset 'orders'" in message and "Nothing was written" in message
    assert query(data_dir, WINDOW_ROWS) == before, "a failed load must keep the previous rows"


def test_duplicate_keys_across_files_fail_the_check(data_dir: Path) -> None:
    landing = data_dir / "landing" / "orders"
    write_csv(landing / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 10))
    write_csv(landing / "dt=2026-10-02" / "b.csv", order_rows("2026-10-02", 3, start=8))
    result = materialize(orders_spec("landing/orders"), "2026-10-02", data_dir)
    assert not result.success
    check = check_named(result, "schema")
    assert check.metadata["failures_by_rule"].value == {"order_id: unique: true": 4}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "order_id,amount,quantity,email,ordered_at\nA,1,1,a@b.co,2026-10-02T00:00:00Z\n"
            "B,2,1,b@b.co,2026-10-02T00:00:00Z,EXTRA\n",
            "line 3 has 6 fields where the header has 5",
        ),
        (
            'order_id,amount,quantity,email,ordered_at\nA,1,1,"a@b.co,2026-10-02\n',
            "line 2 has 4 fields where the header has 5",
        ),
    ],
)
def test_unparseable_file_names_object_and_line_and_changes_nothing(
    data_dir: Path, content: str, expected: str
) -> None:
    landing = data_dir / "landing" / "orders"
    write_csv(landing / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 5))
    spec = orders_spec("landing/orders")
    assert materialize(spec, "2026-10-02", data_dir).success
    before = query(data_dir, WINDOW_ROWS)

    broken = landing / "dt=2026-10-02" / "b.csv"
    broken.write_text(content)
    result = materialize(spec, "2026-10-02", data_dir)
    assert not result.success
    message = step_failure(result)
    assert "Dataset 'orders'" in message
    assert str(broken) in message
    assert expected in message
    assert "Fix:" in message
    assert query(data_dir, WINDOW_ROWS) == before


def test_malformed_ndjson_line_is_named(data_dir: Path) -> None:
    folder = data_dir / "landing" / "events" / "dt=2026-10-02"
    folder.mkdir(parents=True)
    (folder / "e.jsonl").write_text(
        '{"order_id": "a", "amount": 1, "ordered_at": "2026-10-02T01:00:00Z"}\n'
        '{"order_id": "b", "amount": 2, "ordered_at": \n'
    )
    spec = orders_spec(
        "landing/events",
        source={"location": "landing/events", "key_template": "dt={date}/*.jsonl"},
    )
    result = materialize(spec, "2026-10-02", data_dir)
    message = step_failure(result)
    assert f"{folder / 'e.jsonl'}: line 2 is not valid JSON" in message


def test_missing_objects_fail_clearly_unless_empty_is_allowed(data_dir: Path) -> None:
    spec = orders_spec("landing/orders")
    message = step_failure(materialize(spec, "2026-10-02", data_dir))
    assert "no object matches" in message and "dt=2026-10-02/*.csv" in message

    lenient = orders_spec(
        "landing/orders",
        source={
            "location": "landing/orders",
            "key_template": "dt={date}/*.csv",
            "on_missing": "empty",
        },
    )
    result = materialize(lenient, "2026-10-02", data_dir)
    assert result.success
    assert (
        result.asset_materializations_for_node("orders")[0].metadata["dagster/row_count"].value == 0
    )


def test_append_mode_adds_rows_on_each_load(data_dir: Path) -> None:
    write_csv(
        data_dir / "landing" / "orders" / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 4)
    )
    spec = orders_spec("landing/orders", load={"mode": "append"})
    assert materialize(spec, "2026-10-02", data_dir).success
    assert materialize(spec, "2026-10-02", data_dir).success
    assert query(data_dir, "SELECT count(*), count(DISTINCT order_id) FROM raw.orders") == [(8, 4)]


def test_weekly_partition_reads_its_seven_daily_folders(data_dir: Path) -> None:
    landing = data_dir / "landing" / "orders"
    for day in range(1, 16):
        date = f"2026-11-{day:02d}"
        write_csv(landing / f"dt={date}" / "a.csv", order_rows(date, day))
    spec = orders_spec("landing/orders", partitioning={"cadence": "weekly", "start": "2026-11-01"})
    # Weekly partitions start on Sunday; 2026-11-01 is a Sunday, so this week is Nov 8-14.
    assert materialize(spec, "2026-11-08", data_dir).success
    assert query(data_dir, "SELECT count(*) FROM raw.orders") == [(sum(range(8, 15)),)]


def test_missing_bucket_is_a_clear_source_error_without_secrets(
    data_dir: Path, s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "do-not-print-this-secret"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    spec = orders_spec("s3://no-such-bucket/exports")
    result = materialize(spec, "2026-10-02", data_dir, s3_endpoint=s3_env)
    message = step_failure(result)
    assert "Dataset 'orders'" in message and "s3://no-such-bucket/exports" in message
    assert "NoSuchBucket" in message and "Check the bucket name" in message
    logs = "\n".join(str(event) for event in result.all_events)
    assert secret not in message and secret not in logs


def test_unreachable_endpoint_names_dataset_and_location(data_dir: Path, s3_env: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    spec = orders_spec("s3://landing/exports")
    message = step_failure(materialize(spec, "2026-10-02", data_dir, s3_endpoint=closed))
    assert "Dataset 'orders': the object store for s3://landing/exports did not answer" in message
    assert "safe to retry" in message

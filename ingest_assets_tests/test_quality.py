"""Quality gates and governance: the pure check functions on small frames, then whole loads.

The pure tests feed the validator and the check functions small clean and with-issues inputs.
The load tests run partitions through Dagster against local files and a real DuckDB warehouse,
and assert on the warehouse tables themselves (data, quarantine, audit).
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
from dagster_duckdb import DuckDBResource

from ingest_assets.components.assets import dataset_asset, schema_result
from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse, duckdb_connector
from ingest_assets.engine import LoadReport, load_window
from ingest_assets.quality.checks import (
    drift_outcome,
    key_outcome,
    masking_outcome,
    schema_outcome,
    volume_outcome,
)
from ingest_assets.quality.masking import REDACTED, mask_values
from ingest_assets.quality.schema import (
    BatchValidator,
    DriftReport,
    Failure,
    ValidationSummary,
    _parsed_stamps,  # pyright: ignore[reportPrivateUsage]
    coerce_column,
)
from ingest_assets.sources.base import Origins
from ingest_assets.sources.object_store.reader import LocalStore, ObjectStoreReader
from ingest_assets.spec import (
    ColumnSpec,
    DatasetSpec,
    ObjectStoreSource,
    QualitySpec,
    RowCountRule,
    SchemaSpec,
    VolumeRule,
)
from ingest_assets.windows import Window
from ingest_assets_tests.conftest import (
    ORDER_COLUMNS,
    check_named,
    materialize,
    order_rows,
    orders_spec,
    query,
    step_failure,
    write_csv,
)
from ingest_assets_tests.downstream import downstream_asset

# -- pure functions on small frames ---------------------------------------------------------

SCHEMA = SchemaSpec.model_validate(
    {
        "columns": {
            "id": {"dtype": "string", "nullable": False},
            "email": {
                "dtype": "string",
                "severity": "warn",
                "checks": {"email": True},
                "classification": "pii",
                "mask": "hash",
            },
            "amount": {"dtype": "float64", "checks": [{"ge": 0}, {"le": 100, "severity": "warn"}]},
        }
    }
)


def _validate(batch: pa.RecordBatch, quality: QualitySpec | None = None) -> Any:
    summary = ValidationSummary()
    validator = BatchValidator(SCHEMA, quality, salt="pepper")
    return validator.validate(
        batch, origins=Origins.single("f.csv", batch.num_rows), summary=summary
    ), summary


def test_a_clean_frame_passes_whole_and_masked() -> None:
    batch = pa.record_batch(
        {"id": ["a", "b"], "email": ["x@y.com", None], "amount": ["1.5", "100"]}
    )
    validated, summary = _validate(batch)
    assert summary.passed and summary.rows_rejected == 0 and validated.rejected is None
    good = validated.good.to_pylist()
    assert [row["id"] for row in good] == ["a", "b"]
    assert good[0]["email"] != "x@y.com" and len(good[0]["email"]) == 64
    assert good[1]["email"] is None, "nulls stay null when masked"
    assert validated.good.schema.field("amount").type == pa.float64()


def test_warn_rows_are_rejected_with_reasons_and_the_rest_pass() -> None:
    batch = pa.record_batch(
        {
            "id": ["a", "b", "c"],
            "email": ["x@y.com", "nobody", "z@y.com"],
            "amount": ["1", "2", "250"],
        }
    )
    validated, summary = _validate(batch)
    assert summary.passed, "warn rules do not fail the batch"
    assert summary.rows_rejected == 2 and summary.rows_failed == 0
    assert [row["id"] for row in validated.good.to_pylist()] == ["a"]
    reasons = {
        (r["id"], r["_ingest_column"], r["_ingest_rule"], r["_ingest_row"])
        for r in validated.rejected.to_pylist()
    }
    assert reasons == {
        ("b", "email", "email: true", 2),
        ("c", "amount", "le: 100", 3),
    }
    rejected_emails = [r["email"] for r in validated.rejected.to_pylist()]
    assert "nobody" not in rejected_emails, "quarantined values of masked columns are masked too"


def test_an_error_row_fails_the_batch_and_nothing_passes() -> None:
    batch = pa.record_batch(
        {"id": [None, "b"], "email": ["x@y.com", "y@y.com"], "amount": ["-1", "2"]}
    )
    validated, summary = _validate(batch)
    assert not summary.passed and summary.rows_failed == 1
    # Only the row that passed every rule is kept (for the window-wide checks); the window
    # fails, so nothing loads.
    assert validated.good is not None and validated.good.column("id").to_pylist() == ["b"]
    assert dict(summary.counts) == {
        ("id", "nullable: false"): 1,
        ("amount", "ge: 0"): 1,
    }


def test_drift_is_observed_per_batch() -> None:
    drift = DriftReport()
    declared: dict[str, str | None] = {
        "id": "string",
        "amount": "float64",
        "at": "timestamp",
        "flag": "boolean",
    }
    same = [("id", pa.string()), ("amount", pa.int64()), ("at", pa.string()), ("flag", pa.bool_())]
    drift.observe(pa.schema(same), declared)
    assert not drift.drifted, "int into float and text into anything are not drift"
    changed = [
        ("id", pa.int64()),
        ("amount", pa.string()),
        ("flag", pa.int64()),
        ("new", pa.bool_()),
    ]
    drift.observe(pa.schema(changed), declared)
    assert drift.added == {"new": "bool"}
    assert drift.removed == {"at"}
    assert drift.retyped == {"flag": ("boolean", "int64")}


def test_schema_outcome_threshold() -> None:
    quality = QualitySpec(max_rejected_fraction=0.01)
    summary = ValidationSummary(rows_checked=1000, rows_rejected=5)
    summary.warn_counts[("email", "email")] = 5
    within = schema_outcome(summary, 1000, quality, "raw.t__rejected")
    assert (within.passed, within.severity, within.blocks) == (True, "warn", False)
    assert "5 rows (0.50%) quarantined in raw.t__rejected" in (within.description or "")
    summary.rows_rejected = 50
    over = schema_outcome(summary, 1000, quality, "raw.t__rejected")
    assert over.blocks and "more than the 1.00% allowed" in (over.description or "")
    clean = schema_outcome(ValidationSummary(rows_checked=10), 10, quality, "x")
    assert clean.passed and not clean.blocks


def test_volume_outcome_warns_on_a_drop_against_the_trailing_week() -> None:
    rule = VolumeRule(trailing=7)
    week = [1000, 980, 1010, 1005, 990, 1000, 1020, 5]  # newest first; the 8th is beyond the week
    drop = volume_outcome(100, week, rule, None)
    assert (drop.passed, drop.severity) == (False, "warn")
    assert "90% below the median 1000" in (drop.description or "")
    assert drop.metadata["trailing_partitions"] == 7
    assert volume_outcome(950, week, rule, None).passed
    assert not volume_outcome(5000, week, rule, None).passed, "a 5x surge warns too"
    young = volume_outcome(1, [1000, 1000], rule, None)
    assert young.passed and "needs 3" in young.metadata["note"]
    bounded = volume_outcome(0, week, None, RowCountRule(min=1))
    assert bounded.blocks and "fewer than the minimum 1" in (bounded.description or "")


def test_drift_outcome_per_policy() -> None:
    added = DriftReport(added={"coupon": "string"})
    assert drift_outcome(DriftReport(), "block").passed
    assert drift_outcome(added, "block").blocks
    warned = drift_outcome(added, "warn")
    assert (warned.passed, warned.severity) == (False, "warn")
    assert "added coupon" in (warned.description or "")
    evolved = drift_outcome(added, "evolve")
    assert evolved.passed and "added to the table" in (evolved.description or "")
    assert not drift_outcome(DriftReport(removed={"amount"}), "evolve").passed


def test_key_and_masking_outcomes() -> None:
    assert key_outcome(["id"], 0, 0, 3, []).passed
    duplicated = key_outcome(["id"], 2, 5, 0, [{"id": "a", "rows": 4}])
    assert duplicated.blocks and "2 values of (id) occur more than once" in (
        duplicated.description or ""
    )
    columns = {
        "email": ColumnSpec(dtype="string", classification="pii", mask="hash"),
        "token": ColumnSpec(dtype="string", classification="secret"),
    }
    unmasked = masking_outcome(columns, QualitySpec())
    assert unmasked.blocks and "token would land unmasked" in (unmasked.description or "")
    assert masking_outcome(columns, QualitySpec(require_masking=["pii"])).passed


def test_masking_is_keyed_and_stable() -> None:
    values = pd.Series(["a@b.co", "a@b.co", None, "c@d.co"], dtype=pd.StringDtype())
    first = mask_values(values, "hash", "salt-1")
    assert first[0] == first[1] != first[3] and pd.isna(first[2])
    assert mask_values(values, "hash", "salt-2")[0] != first[0], "the salt keys the hash"
    assert list(mask_values(values, "redact", None).fillna("-")) == [
        REDACTED,
        REDACTED,
        "-",
        REDACTED,
    ]
    with pytest.raises(ValueError, match="salt"):
        mask_values(values, "hash", None)


def whole_cents(values: pd.Series) -> pd.Series:
    """A custom column rule by reference: amounts have at most two decimals."""
    return (values * 100).round(6) % 1 == 0


def total_is_amount_times_quantity(frame: pd.DataFrame) -> pd.Series:
    """A custom frame rule by reference: the row's total is amount x quantity."""
    return (frame["total"] - frame["amount"] * frame["quantity"]).abs() < 0.005


def test_a_frame_rule_counts_every_row_it_breaks_beside_a_value_that_does_not_convert() -> None:
    schema = SchemaSpec.model_validate(
        {"columns": {c: {"dtype": "float64"} for c in ("amount", "quantity", "total")}}
    )
    quality = QualitySpec(custom=[f"{__name__}:total_is_amount_times_quantity"])
    totals = [str(i * 2 + 1) for i in range(14)] + ["2", "not a number"]  # 14 wrong, 1 right
    batch = pa.record_batch({"amount": ["1"] * 16, "quantity": ["2"] * 16, "total": totals})
    summary = ValidationSummary()
    BatchValidator(schema, quality).validate(
        batch, origins=Origins.single("f", batch.num_rows), summary=summary
    )
    assert dict(summary.counts) == {
        ("<table>", "total_is_amount_times_quantity"): 14,
        ("total", "dtype: float64"): 1,
    }
    assert summary.rows_failed == 15


def test_failures_by_rule_counts_rows_quarantined_by_warn_rules() -> None:
    spec = orders_spec("landing")
    day = Window(datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC))
    report = LoadReport(spec.name, day, "raw.orders")
    report.validation.add(Failure("email", "str_matches", "x", "f", 3, "warn"), 2)
    report.validation.rows_rejected = 2
    report.rows_read = 100
    report.checks["schema"] = schema_outcome(report.validation, 100, spec.quality, "q")
    metadata = schema_result(spec, report).metadata
    assert metadata["failures_by_rule"].value == {"email: str_matches": 2}
    assert metadata["failures_by_column"].value == {"email": 2}
    assert metadata["rejections_by_rule"].value == {"email: str_matches": 2}


def test_custom_pandera_checks_by_reference_with_their_severity() -> None:
    schema = SchemaSpec.model_validate(
        {
            "columns": {
                "amount": {
                    "dtype": "float64",
                    "checks": {"custom": [f"{__name__}:whole_cents"], "severity": "warn"},
                },
                "quantity": {"dtype": "int64"},
                "total": {"dtype": "float64"},
            }
        }
    )
    quality = QualitySpec(custom=[f"{__name__}:total_is_amount_times_quantity"])
    batch = pa.record_batch(
        {"amount": [1.5, 2.125, 3.0], "quantity": [2, 1, 2], "total": [3.0, 2.125, 7.0]}
    )
    summary = ValidationSummary()
    validated = BatchValidator(schema, quality).validate(
        batch, origins=Origins.single("f", batch.num_rows), summary=summary
    )
    assert dict(summary.warn_counts) == {("amount", "whole_cents"): 1}
    assert dict(summary.counts) == {("<table>", "total_is_amount_times_quantity"): 1}
    assert summary.rows_failed == 1  # the window fails; only the first row passed every rule
    assert validated.good is not None and validated.good.column("total").to_pylist() == [3.0]
    with pytest.raises(ValueError, match="cannot import"):
        QualitySpec(custom=[f"{__name__}:no_such_rule"])


# -- whole loads ----------------------------------------------------------------------------

WARN_EMAIL = {
    **ORDER_COLUMNS,
    "email": {"dtype": "string", "severity": "warn", "checks": {"email": True}},
}
AUDIT = (
    "SELECT status, rows_read, rows_written, rows_rejected, rows_deduplicated, checksum, error "
    "FROM ingest_audit.loads WHERE dataset = 'orders' ORDER BY ended_at"
)


def _bad_emails(day: str, count: int, bad: int) -> list[dict[str, Any]]:
    rows = order_rows(day, count)
    for i in range(bad):
        rows[i * (count // bad)]["email"] = f"not-an-email-{i}"
    return rows


def test_half_a_percent_of_warn_rows_load_the_good_rows_and_quarantine_the_rest(
    data_dir: Path,
) -> None:
    landing = data_dir / "landing" / "orders"
    write_csv(landing / "dt=2026-10-02" / "a.csv", _bad_emails("2026-10-02", 1000, 5))
    spec = orders_spec(
        "landing/orders", schema={"columns": WARN_EMAIL}, quality={"max_rejected_fraction": 0.01}
    )
    ran: list[str] = []
    result = materialize(spec, "2026-10-02", data_dir, extra_assets=[downstream_asset(ran)])
    assert result.success, step_failure(result)
    assert ran == ["2026-10-02"], "a warning does not hold downstream back"
    check = check_named(result, "schema")  # a quarantine within bounds passes, with a warning
    assert check.passed and (check.description or "").startswith("Passed with a warning: 5 rows")
    assert check.metadata["rows_rejected"].value == 5
    assert check.metadata["quarantine_table"].value == "raw.orders__rejected"
    assert query(data_dir, "SELECT count(*) FROM raw.orders") == [(995,)]
    rejected = query(
        data_dir,
        "SELECT order_id, email, _ingest_column, _ingest_rule, _ingest_value, _ingest_row "
        "FROM raw.orders__rejected ORDER BY _ingest_row",
    )
    assert rejected[0] == (
        "2026-10-02-0000",
        "not-an-email-0",
        "email",
        "email: true",
        "not-an-email-0",
        2,  # line 2 of the file, after its header
    )
    assert len(rejected) == 5
    metadata = result.asset_materializations_for_node("orders")[0].metadata
    assert metadata["rows_rejected"].value == 5 and metadata["dagster/row_count"].value == 995
    # The partition's own page shows its checks' verdicts (the UI lists metadata there).
    assert "| schema | passed | Passed with a warning: 5 rows" in str(metadata["checks"].value)

    # The source is fixed: a rerun loads every row and empties the window's quarantine.
    write_csv(landing / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 1000))
    assert materialize(spec, "2026-10-02", data_dir).success
    assert query(data_dir, "SELECT count(*) FROM raw.orders") == [(1000,)]
    assert query(data_dir, "SELECT count(*) FROM raw.orders__rejected") == [(0,)]


def test_five_percent_over_a_one_percent_threshold_fails_and_stops_downstream(
    data_dir: Path,
) -> None:
    landing = data_dir / "landing" / "orders"
    spec = orders_spec(
        "landing/orders", schema={"columns": WARN_EMAIL}, quality={"max_rejected_fraction": 0.01}
    )
    write_csv(landing / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 1000))
    assert materialize(spec, "2026-10-02", data_dir).success
    write_csv(landing / "dt=2026-10-02" / "a.csv", _bad_emails("2026-10-02", 1000, 50))
    ran: list[str] = []
    result = materialize(spec, "2026-10-02", data_dir, extra_assets=[downstream_asset(ran)])
    assert not result.success and ran == []
    check = check_named(result, "schema")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "50 of 1000 rows (5.00%) broke warn rules" in step_failure(result)
    assert query(data_dir, "SELECT count(*) FROM raw.orders") == [(1000,)], "previous rows kept"
    audit = query(data_dir, AUDIT)
    assert [row[:5] for row in audit] == [
        ("success", 1000, 1000, 0, 0),
        ("failed", 1000, 0, 50, 0),
    ]
    assert "broke warn rules" in audit[1][6]


def test_a_ninety_percent_volume_drop_against_the_trailing_week_warns(data_dir: Path) -> None:
    landing = data_dir / "landing" / "orders"
    spec = orders_spec("landing/orders")
    warehouse = DuckDBWarehouse(duckdb_connector(data_dir / "warehouse.duckdb"), "warehouse")
    reader = ObjectStoreReader(LocalStore(landing), _source(spec), dataset="orders")
    for day in range(1, 8):  # a week of about 1,000 rows a day
        date = f"2026-10-{day:02d}"
        write_csv(landing / f"dt={date}" / "a.csv", order_rows(date, 1000 + day))
        load_window(spec, _day(day), reader, warehouse, run_id=f"r{day}")
    write_csv(landing / "dt=2026-10-08" / "a.csv", order_rows("2026-10-08", 100))
    result = materialize(spec, "2026-10-08", data_dir)
    assert result.success, "a volume anomaly warns, it does not block"
    check = check_named(result, "volume")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["trailing_partitions"].value == 7
    assert "90% below the median 1004" in (check.description or "")


@pytest.mark.parametrize("policy", ["warn", "block", "evolve"])
def test_a_new_source_column_is_reported_and_handled_per_policy(
    data_dir: Path, policy: str
) -> None:
    landing = data_dir / "landing" / "orders"
    spec = orders_spec("landing/orders", quality={"drift": policy})
    write_csv(landing / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 10))
    assert materialize(spec, "2026-10-02", data_dir).success
    rows = [{**row, "coupon": f"C{i}"} for i, row in enumerate(order_rows("2026-10-03", 10))]
    write_csv(landing / "dt=2026-10-03" / "a.csv", rows)
    result = materialize(spec, "2026-10-03", data_dir)
    check = check_named(result, "drift")
    assert check.metadata["added"].value == {"coupon": "string"}
    columns = [row[0] for row in query(data_dir, "DESCRIBE raw.orders")]
    if policy == "block":
        assert not result.success and check.severity == dg.AssetCheckSeverity.ERROR
        assert "quality.drift is 'block'" in step_failure(result)
        assert query(data_dir, "SELECT count(*) FROM raw.orders") == [(10,)]
    elif policy == "warn":
        assert result.success and not check.passed
        assert check.severity == dg.AssetCheckSeverity.WARN
        assert "coupon" not in columns
        assert query(data_dir, "SELECT count(*) FROM raw.orders") == [(20,)]
    else:
        assert result.success and check.passed
        assert "coupon" in columns
        assert query(data_dir, "SELECT count(coupon), count(*) FROM raw.orders") == [(10, 20)]


def test_masked_columns_never_hold_the_raw_value_in_the_warehouse(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_MASKING_SALT", "a-long-random-test-salt")
    landing = data_dir / "landing" / "orders"
    rows = order_rows("2026-10-02", 200)
    for i, row in enumerate(rows):
        row["card"] = f"4111-0000-0000-{i:04d}"
    rows[7]["email"] = rows[8]["email"]  # equal values hash equal: still countable and joinable
    rows[9]["email"] = "not-an-email"  # quarantined: its copy in the quarantine is masked too
    write_csv(landing / "dt=2026-10-02" / "a.csv", rows)
    columns = {
        **WARN_EMAIL,
        "email": {**WARN_EMAIL["email"], "classification": "pii", "mask": "hash"},
        "card": {"dtype": "string", "classification": "secret", "mask": "redact"},
    }
    spec = orders_spec("landing/orders", schema={"columns": columns})
    result = materialize(spec, "2026-10-02", data_dir)
    assert result.success, step_failure(result)
    assert check_named(result, "masking").passed
    raw_values = {row["email"] for row in rows} | {row["card"] for row in rows}
    for table in ("raw.orders", "raw.orders__rejected"):
        stored = query(data_dir, f"SELECT * FROM {table}")
        found = {str(value) for row in stored for value in row} & raw_values
        assert not found, f"raw classified values in {table}: {sorted(found)[:3]}"
    assert query(
        data_dir, "SELECT count(DISTINCT email), count(DISTINCT card) FROM raw.orders"
    ) == [(198, 1)]
    # Why the quarantined value failed shows without the value: its shape has no "@".
    assert query(data_dir, "SELECT _ingest_value FROM raw.orders__rejected") == [
        ("shape aaa-aa-aaaaa",)
    ]
    sample = check_named(result, "schema").metadata["sample"].value.records
    assert [r.data["value"] for r in sample] == ["shape aaa-aa-aaaaa"]
    schema = result.asset_materializations_for_node("orders")[0].metadata["dagster/column_schema"]
    tags = {c.name: dict(c.tags) for c in schema.value.columns if c.tags}
    assert tags == {
        "email": {"classification": "pii", "masking": "hash"},
        "card": {"classification": "secret", "masking": "redact"},
    }


def test_an_unmasked_classified_column_fails_the_masking_check_before_anything_lands(
    data_dir: Path,
) -> None:
    write_csv(data_dir / "landing/orders/dt=2026-10-02/a.csv", order_rows("2026-10-02", 5))
    columns = {**ORDER_COLUMNS, "email": {"dtype": "string", "classification": "pii"}}
    result = materialize(
        orders_spec("landing/orders", schema={"columns": columns}), "2026-10-02", data_dir
    )
    assert not result.success
    assert not check_named(result, "masking").passed
    assert "email would land unmasked" in step_failure(result)
    assert query(
        data_dir, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'"
    ) == [(0,)]


def test_hash_masking_without_its_salt_fails_naming_the_variable(data_dir: Path) -> None:
    write_csv(data_dir / "landing/orders/dt=2026-10-02/a.csv", order_rows("2026-10-02", 5))
    columns = {
        **ORDER_COLUMNS,
        "email": {"dtype": "string", "classification": "pii", "mask": "hash"},
    }
    result = materialize(
        orders_spec("landing/orders", schema={"columns": columns}), "2026-10-02", data_dir
    )
    assert not result.success
    assert "INGEST_MASKING_SALT is not set" in step_failure(result)
    assert query(data_dir, AUDIT)[0][0] == "failed"


def test_dedup_keeps_the_latest_row_per_key_and_counts_what_it_dropped(data_dir: Path) -> None:
    landing = data_dir / "landing" / "orders"
    first = order_rows("2026-10-02", 10)
    later = [
        {**row, "amount": "999.00", "ordered_at": "2026-10-02T23:00:00Z"}
        for row in order_rows("2026-10-02", 3)
    ]
    write_csv(landing / "dt=2026-10-02" / "a.csv", first)
    write_csv(landing / "dt=2026-10-02" / "b.csv", later)
    columns = {**ORDER_COLUMNS, "order_id": {"dtype": "string", "nullable": False}}
    spec = orders_spec(
        "landing/orders",
        schema={"columns": columns},
        dedup={"key": ["order_id"], "order_by": "ordered_at"},
    )
    result = materialize(spec, "2026-10-02", data_dir)
    assert result.success, step_failure(result)
    key = check_named(result, "key_unique")
    assert key.passed and key.metadata["rows_deduplicated"].value == 3
    assert query(data_dir, "SELECT count(*), count(*) FILTER (amount = 999) FROM raw.orders") == [
        (10, 3)
    ]
    metadata = result.asset_materializations_for_node("orders")[0].metadata
    assert metadata["rows_deduplicated"].value == 3

    # Without dedup, the same key declared unique fails the key check.
    strict = orders_spec(
        "landing/orders", schema={"columns": columns}, quality={"unique_key": ["order_id"]}
    )
    failed = materialize(strict, "2026-10-02", data_dir)
    assert not failed.success
    assert check_named(failed, "key_unique").metadata["duplicate_keys"].value == 3


def test_every_load_leaves_exactly_one_audit_row_with_its_counts(data_dir: Path) -> None:
    landing = data_dir / "landing" / "orders"
    write_csv(landing / "dt=2026-10-02" / "a.csv", _bad_emails("2026-10-02", 100, 1))
    spec = orders_spec("landing/orders", schema={"columns": WARN_EMAIL})
    assert materialize(spec, "2026-10-02", data_dir).success
    assert materialize(spec, "2026-10-02", data_dir).success  # an identical rerun
    bad = order_rows("2026-10-02", 100)
    bad[0]["amount"] = "-1"  # an error rule
    write_csv(landing / "dt=2026-10-02" / "a.csv", bad)
    assert not materialize(spec, "2026-10-02", data_dir).success
    assert not materialize(spec, "2026-10-03", data_dir).success  # no files for the day
    audit = query(data_dir, AUDIT)
    assert [row[:5] for row in audit] == [
        ("success", 100, 99, 1, 0),
        ("success", 100, 99, 1, 0),
        ("failed", 100, 0, 0, 0),
        ("failed", 0, 0, 0, 0),
    ]
    assert audit[0][5] == audit[1][5] is not None, "the same rows give the same checksum"
    assert audit[2][5] is None and "1 of 100 rows failed validation" in audit[2][6]
    assert "2026-10-03" in audit[3][6]
    details = query(
        data_dir,
        "SELECT count(DISTINCT run_id), min(cpu_seconds) FILTER (status = 'success'), "
        "min(peak_rss_bytes), "
        "min(ended_at >= started_at), count(DISTINCT load_id), min(partition) "
        "FROM ingest_audit.loads",
    )
    runs, cpu, rss, ordered, loads, partition = details[0]
    assert (runs, loads, ordered, partition) == (4, 4, True, "2026-10-02")
    assert cpu > 0 and rss > 10 * 2**20


def _source(spec: DatasetSpec) -> ObjectStoreSource:
    assert isinstance(spec.source, ObjectStoreSource)
    return spec.source


def _day(day: int) -> Window:
    return Window(datetime(2026, 10, day, tzinfo=UTC), datetime(2026, 10, day + 1, tzinfo=UTC))


def test_checks_run_alone_judge_the_partition_without_writing(data_dir: Path) -> None:
    landing = data_dir / "landing" / "orders"
    spec = orders_spec("landing/orders", schema={"columns": WARN_EMAIL})
    write_csv(landing / "dt=2026-10-02" / "a.csv", order_rows("2026-10-02", 100))
    assert materialize(spec, "2026-10-02", data_dir).success
    rows = [{**row, "coupon": "X"} for row in _bad_emails("2026-10-02", 100, 2)]
    write_csv(landing / "dt=2026-10-02" / "a.csv", rows)
    asset = dataset_asset(spec, origin="test")
    # As "Execute checks" in the UI: no partition given, so the latest loaded window is judged.
    result = dg.materialize(
        [asset],
        resources={"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))},
        selection=dg.AssetSelection.checks_for_assets(asset),
        raise_on_error=False,
    )
    assert result.success and not result.asset_materializations_for_node("orders")
    judged = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(judged) == {"schema", "drift", "volume"}
    assert judged["schema"].metadata["rows_rejected"].value == 2
    assert judged["drift"].metadata["added"].value == {"coupon": "string"}
    assert query(data_dir, "SELECT count(*) FROM raw.orders") == [(100,)]
    assert query(data_dir, "SELECT count(*) FROM ingest_audit.loads") == [(1,)], (
        "a check run is not a load"
    )


@pytest.mark.parametrize(
    ("values", "by_arrow"),
    [
        (["2026-01-01T05:00:00Z", "2026-01-01T05:00:00+02:00", None], True),
        (["2026-01-01T05:00:00", "2026-01-01 06:00:00.5"], True),
        (["2026-01-01", "2026-01-02T00:00:00.000001Z"], False),  # Arrow cannot mix these
        (["2026-01-01T05:00:00Z", "2026-01-01T05:00:00"], False),
        (["2026-01-01T05:00:00Z", "yesterday"], False),  # the pandas path reports it
    ],
)
def test_arrow_timestamp_parsing_gives_the_pandas_path_values(
    values: list[str | None], by_arrow: bool
) -> None:
    """Text timestamps are parsed by Arrow when all of them parse, to the pandas path's values;
    other columns take the pandas path, which reports each value that does not convert."""
    batch = pa.record_batch({"at": pa.array(values, pa.string())})
    fast = _parsed_stamps(batch, "at")
    slow = coerce_column(pd.Series(values, dtype=pd.StringDtype()), "timestamp")
    assert (fast is not None) == by_arrow
    if fast is not None:
        assert fast.tolist() == slow.tolist() and fast.dtype == slow.dtype
    schema = SchemaSpec.model_validate({"columns": {"at": {"dtype": "timestamp"}}})
    summary = ValidationSummary()
    validated = BatchValidator(schema).validate(
        batch, origins=Origins.single("f", batch.num_rows), summary=summary
    )
    assert summary.rows_failed == ("yesterday" in values)
    if validated.good is not None:  # the rows that passed, at the pandas path's values
        kept = range(len(slow)) if validated.kept is None else validated.kept.to_pylist()
        assert validated.good.column("at").to_pylist() == [
            None if pd.isna(slow[i]) else slow[i].to_pydatetime() for i in kept
        ]

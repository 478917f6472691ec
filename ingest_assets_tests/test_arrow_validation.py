"""The Arrow-native validator against the pandas/pandera one: the same outcome for every input.

Schemas are generated over every rule kind and severity (types, nulls, bounds, sets, regex,
email, lengths, masks, warn and error groups), batches over messy values of every kind (text
that does or does not convert, signed and spaced numbers, ``nan``/``inf`` as text, integers past
2**63, unicode, invalid UTF-8, booleans as words, timestamps with and without offsets, typed
columns of other widths and units, missing columns). Both validators judge the same batch; the
counts, the sample of failures (with their object, line and message), the rows loaded and the
rows quarantined must be equal.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_assets.quality.schema import BatchValidator, ValidationSummary
from ingest_assets.sources.base import Origins
from ingest_assets.spec import QualitySpec, SchemaSpec
from ingest_assets_tests import test_quality

DTYPES = ["string", "int32", "int64", "float32", "float64", "boolean", "date", "timestamp"]
TEXT = [
    "1", "-5", "+5", " 7 ", "007", "1.0", "1.5", "1e3", "-0", "abc", "", " ", "nan", "NaN",
    "inf", "-Infinity", "9223372036854775807", "9223372036854775808", "2147483648", "1e400",
    "true", "False", " yes", "N", "0", "t", "2026-10-02", "2026-10-02T10:00:00",
    "2026-10-02T10:00:00+02:00", "2026-10-02 10:00:00Z", "2026-02-30", "10/02/2026",
    "a@b.co", "jane.doe@example.com", "no-at-sign", "x@y", "a b@c.de", "a@b.c\u00a0d",
    "DE", "FR", "USA", "é", "日本語", "٣", "view", "click", "line\nbreak", "tab\tx", None,
]  # fmt: skip
PATTERNS = [r"^[A-Z]{2}$", r"[a-z]+", r"\d+", r"^.+@.+$", r"(?i)^(view|click)", r"x$", r"a(?=b)"]
ISIN = {
    "string": [["view", "click"], ["DE", "FR", "é"], [1, 2]],
    "int32": [[1, 7, 0], [1.0, 2], [2**40]],
    "int64": [[1, -5, 7], ["1"]],
    "float32": [[1.5, 0]],
    "float64": [[1, 1.5, 1000.0], [True]],
    "boolean": [[True], [1]],
    "date": [["2026-10-02"]],
    "timestamp": [["2026-10-02"]],
}


@st.composite
def rule_group(draw: st.DrawFn, dtype: str) -> dict[str, Any]:
    """One group of rules that the declaration accepts for ``dtype``."""
    group: dict[str, Any] = {}
    if draw(st.booleans()):
        group["severity"] = draw(st.sampled_from(["error", "warn"]))
    if draw(st.integers(0, 4)) == 0:
        group["not_null"] = True
    if dtype not in ("string", "boolean"):
        for key in ("ge", "gt", "le", "lt"):
            if draw(st.integers(0, 3)) == 0:
                group[key] = draw(st.sampled_from([0, 1, -1.5, 7, 1000, 2.5]))
    if draw(st.integers(0, 2)) == 0:
        group[draw(st.sampled_from(["isin", "notin"]))] = draw(st.sampled_from(ISIN[dtype]))
    if dtype == "string":
        if draw(st.integers(0, 2)) == 0:
            group["regex"] = draw(st.sampled_from(PATTERNS))
        if draw(st.integers(0, 2)) == 0:
            group["email"] = True
        if draw(st.integers(0, 2)) == 0:
            low = draw(st.sampled_from([None, 1, 2]))
            high = draw(st.sampled_from([None, 2, 5] if low is not None else [2, 5]))
            group["str_length"] = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    return group


@st.composite
def column_spec(draw: st.DrawFn) -> dict[str, Any]:
    """A declared column: type, nullability, severity, rule groups, maybe a mask."""
    dtype = draw(st.sampled_from(DTYPES))
    column: dict[str, Any] = {"dtype": dtype, "nullable": draw(st.booleans())}
    if draw(st.booleans()):
        column["severity"] = "warn"
    groups = draw(st.lists(rule_group(dtype), min_size=0, max_size=2))
    if groups:
        column["checks"] = groups if len(groups) > 1 else groups[0]
    if draw(st.integers(0, 5)) == 0:
        column["classification"] = "pii"
        column["mask"] = draw(st.sampled_from(["hash", "redact"]))
    return column


def typed_values(draw: st.DrawFn, dtype: str, rows: int) -> pa.Array:
    """A column of another Arrow type than text, as Parquet, SQL or JSON would give."""
    kind = draw(st.sampled_from(["int64", "int32", "uint64", "float64", "bool", "ts", "date"]))
    nulls = st.none() | st.just(None)
    if kind in ("int64", "int32", "uint64"):
        low = 0 if kind == "uint64" else -(2**31) if kind == "int32" else -(2**63)
        high = 2**64 - 1 if kind == "uint64" else 2**31 - 1 if kind == "int32" else 2**63 - 1
        edge = st.sampled_from([low, high, 0, 1, 7, -5]).filter(lambda v: low <= v <= high)
        values = draw(st.lists(edge | nulls, min_size=rows, max_size=rows))
        return pa.array(values, getattr(pa, kind)())
    if kind == "float64":
        pool = st.sampled_from([0.0, 1.0, 1.5, -2.0, 1e18, 2.0**63, float("nan"), float("inf")])
        return pa.array(draw(st.lists(pool | nulls, min_size=rows, max_size=rows)), pa.float64())
    if kind == "bool":
        return pa.array(draw(st.lists(st.booleans() | nulls, min_size=rows, max_size=rows)))
    if kind == "date":
        pool = st.sampled_from([date(2026, 10, 2), date(1969, 12, 31)])
        return pa.array(draw(st.lists(pool | nulls, min_size=rows, max_size=rows)), pa.date32())
    unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
    zone = draw(st.sampled_from([None, "UTC", "Europe/Berlin"]))
    stamps = st.sampled_from(
        [datetime(2026, 10, 2, 10, 30, 15, 123456), datetime(1969, 12, 31, 23, 59, 59, 999999)]
    )
    values = draw(st.lists(stamps | nulls, min_size=rows, max_size=rows))
    if zone:
        values = [None if v is None else v.replace(tzinfo=UTC) for v in values]
    arrow_type = pa.timestamp(unit, tz=zone)
    return pa.array(values, pa.timestamp("us", tz=zone)).cast(arrow_type, safe=False)


@st.composite
def case(draw: st.DrawFn) -> tuple[dict[str, Any], pa.RecordBatch]:
    """A schema and a batch to judge against it."""
    names = draw(st.lists(st.sampled_from(list("abcdef")), min_size=1, max_size=4, unique=True))
    columns = {name: draw(column_spec()) for name in names}
    rows = draw(st.integers(1, 12))
    arrays: dict[str, pa.Array] = {}
    for name, column in columns.items():
        form = draw(st.sampled_from(["text", "text", "typed", "missing", "null", "binary"]))
        if form == "missing":
            continue
        if form == "null":
            arrays[name] = pa.nulls(rows)
        elif form == "typed":
            arrays[name] = typed_values(draw, column["dtype"], rows)
        else:
            text = draw(st.lists(st.sampled_from(TEXT), min_size=rows, max_size=rows))
            if form == "binary":  # undecodable bytes among text (a Parquet binary column)
                raw = [None if v is None else v.encode() for v in text]
                raw[draw(st.integers(0, rows - 1))] = b"\xff\xfe"
                arrays[name] = pa.array(raw, pa.binary())
            else:
                arrays[name] = pa.array(text, pa.string())
    if draw(st.booleans()):
        arrays["extra"] = pa.array(["x"] * rows)
    batch = pa.RecordBatch.from_pydict(arrays) if arrays else None
    if batch is None:
        batch = pa.RecordBatch.from_pydict({"extra": pa.array(["x"] * rows)})
    return {"columns": columns}, batch


def _outcome(declaration: dict[str, Any], batch: pa.RecordBatch, arrow: bool) -> dict[str, Any]:
    schema = SchemaSpec.model_validate(declaration)
    quality = QualitySpec.model_validate({"drift": "evolve"})
    validator = BatchValidator(schema, quality, salt="pepper", in_arrow=arrow)
    summary = ValidationSummary()
    validated = validator.validate(
        batch,
        origins=Origins([0, 2], ["s3://b/one.csv", "s3://b/two.csv"], [2, 5], batch.num_rows)
        if batch.num_rows > 2
        else Origins.single("s3://b/one.csv", batch.num_rows, 2),
        summary=summary,
    )
    return {
        "rows": (summary.rows_checked, summary.rows_failed, summary.rows_rejected),
        "counts": dict(summary.counts),
        "warn_counts": dict(summary.warn_counts),
        "describe": summary.describe(),
        "sample": [
            (f.column, f.check, _shown(f.value), f.object, f.row, f.severity)
            for f in summary.sample
        ],
        "good": None if validated.good is None else validated.good.to_pylist(),
        "good_schema": None if validated.good is None else validated.good.schema,
        "rejected": None if validated.rejected is None else validated.rejected.to_pylist(),
        "kept": None if validated.kept is None else validated.kept.to_pylist(),
    }


def _shown(value: object) -> str | None:
    """A failing value as shown, numbers as numbers: pandera gathers the failing values of a
    batch in one pandas column, so an integer beside a float there reads ``1.0``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


@settings(
    max_examples=int(os.environ.get("ARROW_EQUIVALENCE_EXAMPLES", "400")),
    deadline=None,
    derandomize="ARROW_EQUIVALENCE_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case())
def test_the_arrow_validator_agrees_with_pandera_on_every_rule_and_input(
    generated: tuple[dict[str, Any], pa.RecordBatch],
) -> None:
    declaration, batch = generated
    by_pandas = _outcome(declaration, batch, arrow=False)
    by_arrow = _outcome(declaration, batch, arrow=True)
    for part, expected in by_pandas.items():
        assert by_arrow[part] == expected, (part, declaration, batch.to_pydict())


def test_built_in_rules_are_judged_in_arrow_and_custom_ones_by_pandera() -> None:
    built_in = SchemaSpec.model_validate(
        {"columns": {"e": {"dtype": "string", "checks": {"email": True, "regex": r"\d"}}}}
    )
    assert BatchValidator(built_in, QualitySpec()).compiled is not None
    custom = SchemaSpec.model_validate(
        {
            "columns": {
                "e": {
                    "dtype": "float64",
                    "checks": {"custom": [f"{test_quality.__name__}:whole_cents"]},
                }
            }
        }
    )
    assert BatchValidator(custom, QualitySpec()).compiled is None

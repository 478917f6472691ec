"""Staging's shortcuts against the queries they stand in for: the same figures on any input.

A window's unique columns are checked from the hashes kept while its batches were staged; only
a repeated hash (or a type whose equal values may hash apart, such as floats) groups the staged
files. Generated windows of several batches (repeats within and across batches, nulls, unicode,
extremes, ``-0.0`` and ``NaN``) must report the same repeated values, counts and objects as the
grouping query over every column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_assets.quality.schema import Validated, ValidationSummary
from ingest_assets.sources.base import Origins
from ingest_assets.staging import Stage

VALUES: dict[str, tuple[pa.DataType, Any]] = {
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3)),
    "string": (pa.string(), st.text(max_size=3) | st.sampled_from(["é", "e\u0301", "日本", ""])),
    "float64": (
        pa.float64(),
        st.floats(allow_nan=True) | st.sampled_from([0.0, -0.0, float("nan"), 1.5]),
    ),
    "boolean": (pa.bool_(), st.booleans()),
    "date": (pa.date32(), st.dates(date(1900, 1, 1), date(2100, 1, 1))),
    "timestamp": (
        pa.timestamp("us", tz="UTC"),
        st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    ),
}


@st.composite
def window(draw: st.DrawFn) -> tuple[pa.DataType, list[list[Any]]]:
    """A column type and the column's values in one to four batches, with repeats and nulls."""
    kind, values = VALUES[draw(st.sampled_from(sorted(VALUES)))]
    pool = draw(st.lists(values, min_size=1, max_size=6))
    cell = st.sampled_from(pool) | st.none() | values
    return kind, draw(st.lists(st.lists(cell, max_size=12), min_size=1, max_size=4))


def _repeated(tmp: Path, kind: pa.DataType, batches: list[list[Any]], *, kept: bool) -> list[Any]:
    """What check_unique reports for the column: from kept hashes, or from the query alone."""
    schema = pa.schema([pa.field("key", kind)])
    summary = ValidationSummary()
    with duckdb.connect() as scratch:
        stage = Stage(tmp, schema, pa.schema([]), scratch, unique=["key"] if kept else None)
        with stage:
            for number, values in enumerate(batches):
                batch = pa.RecordBatch.from_arrays([pa.array(values, kind)], schema=schema)
                origins = Origins.single(f"s3://bucket/part-{number}.csv", batch.num_rows)
                stage.write(Validated(batch, None), origins, datetime(2026, 10, 2, tzinfo=UTC))
        stage.check_unique(["key"], summary)
    return [(f.column, f.check, repr(f.value), f.object) for f in summary.sample] + [
        dict(summary.counts),
        summary.rows_failed,
    ]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(window())
def test_unique_columns_judged_from_staged_hashes_agree_with_grouping_the_files(
    tmp_path_factory: Any, generated: tuple[pa.DataType, list[list[Any]]]
) -> None:
    kind, batches = generated
    shortcut = _repeated(tmp_path_factory.mktemp("kept"), kind, batches, kept=True)
    grouped = _repeated(tmp_path_factory.mktemp("grouped"), kind, batches, kept=False)
    assert shortcut == grouped

"""Files that used to crash the process or raise a raw exception: each gives a clear error or a
validation failure naming the object and row, and the window keeps its previous rows."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse, duckdb_connector
from ingest_assets.engine import load_window
from ingest_assets.errors import IngestError, ParseError, ValidationFailed
from ingest_assets.sources.object_store.reader import LocalStore, ObjectStoreReader
from ingest_assets.spec import DatasetSpec
from ingest_assets.windows import Window

WINDOW = Window(datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC))
COLUMNS: dict[str, Any] = {"id": {"dtype": "string", "nullable": False}, "n": {"dtype": "int64"}}


def _spec(fmt: str, columns: dict[str, Any] | None = None, **source: Any) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "bad",
            "source": {"location": "in", "key_template": "dt={date}/*." + fmt, **source},
            "partitioning": {"cadence": "daily", "start": "2026-10-01"},
            "schema": {"columns": columns or COLUMNS},
            "destination": {"table": "raw.bad"},
        }
    )


def _load(tmp_path: Path, content: bytes, fmt: str, spec: DatasetSpec | None = None) -> Any:
    """Load a good window first, then the given content over it; return the second outcome."""
    spec = spec or _spec(fmt)
    folder = tmp_path / "in" / "dt=2026-10-02"
    folder.mkdir(parents=True, exist_ok=True)
    warehouse = DuckDBWarehouse(duckdb_connector(tmp_path / "w.duckdb"), "w")
    good = _good(fmt.removesuffix(".gz"), spec.source.csv.encoding)  # type: ignore[union-attr]
    (folder / f"a.{fmt}").write_bytes(gzip.compress(good) if fmt.endswith(".gz") else good)

    def load() -> Any:
        reader = ObjectStoreReader(LocalStore(tmp_path / "in"), spec.source, dataset="bad")  # type: ignore[arg-type]
        return load_window(spec, WINDOW, reader, warehouse, run_id="r")

    first = load()
    assert first.rows_written == 2
    (folder / f"a.{fmt}").write_bytes(content)
    try:
        outcome: Any = load()
    except IngestError as exc:
        outcome = exc
    with warehouse.connect() as conn:
        kept = conn.execute("SELECT id FROM raw.bad ORDER BY id").fetchall()
    if isinstance(outcome, IngestError):
        assert kept == [("g1",), ("g2",)], "a failed load must keep the previous rows"
    return outcome


def _good(fmt: str, encoding: str) -> bytes:
    if fmt == "csv":
        return "id,n\ng1,1\ng2,2\n".encode(encoding)
    if fmt == "ndjson":
        return b'{"id":"g1","n":1}\n{"id":"g2","n":2}\n'
    return _parquet(pa.table({"id": ["g1", "g2"], "n": [1, 2]}))


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _deep(levels: int, key: bytes = b"x") -> bytes:
    value = b"[" * levels + b"]" * levels
    return b'{"id":"a","n":1,"' + key + b'":' + value + b"}\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_deep(5_000), "line 1 is not valid JSON (depth limit exceeded at column"),
        (_deep(30_000), "line 1 is not valid JSON (depth limit exceeded at column"),
        (_deep(600, b"n"), "line 1 nests values more than 200 levels deep"),
        (b'null\n{"id":"a","n":1}\n', "line 1 is a JSON null, not an object"),
        (b'{"id":"a","n":1}\n5\n', "line 2 is a JSON number, not an object"),
        (b'{"id":"a","n":1}\n[1]\n', "line 2 is a JSON array, not an object"),
        (b'{"id":"a","n":1}\n{"id": \n', "line 2 is not valid JSON"),
    ],
)
def test_ndjson_that_crashed_the_parser_is_refused_with_its_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    outcome = _load(tmp_path, content, "ndjson")
    assert isinstance(outcome, ParseError)
    assert expected in str(outcome) and "a.ndjson" in str(outcome)


def test_ndjson_brackets_inside_strings_still_take_the_fast_path(tmp_path: Path) -> None:
    lines = b"".join(b'{"id":"b%d","n":%d,"s":"[[{{[["}\n' % (i, i) for i in range(300))
    report = _load(tmp_path, lines, "ndjson")
    assert report.rows_written == 300


def test_text_that_is_not_utf8_fails_validation_with_object_and_row(tmp_path: Path) -> None:
    for fmt, content in (
        ("csv", b"id,n\nok,1\nb\xff\xfe,2\n"),
        ("ndjson", b'{"id":"ok","n":1}\n{"id":"b\xff","n":2}\n'),
        ("parquet", _parquet(pa.table({"id": pa.array([b"ok", b"\xff\xfe"]), "n": [1, 2]}))),
    ):
        outcome = _load(tmp_path / fmt, content, fmt)
        assert isinstance(outcome, ValidationFailed), fmt
        (failure,) = outcome.report.validation.sample
        line = {"csv": 3, "ndjson": 2, "parquet": 2}[fmt]  # a CSV's header is line 1
        assert (failure.column, failure.check, failure.row) == ("id", "encoding: utf-8", line)
        assert failure.object.endswith(f"a.{fmt}") and "\\xff" in failure.value


def test_text_that_is_not_utf8_is_quarantined_under_a_warn_rule(tmp_path: Path) -> None:
    columns = {**COLUMNS, "id": {"dtype": "string", "severity": "warn", "nullable": False}}
    spec = _spec("ndjson", columns).model_copy(
        update={"quality": _spec("ndjson").quality.model_copy(update={"max_rejected_fraction": 1})}
    )
    lines = b'{"id":"ok","n":1}\n{"id":"b\xff","n":2}\n'
    report = _load(tmp_path, lines, "ndjson", spec)
    assert (report.rows_written, report.rows_rejected) == (1, 1)


def test_utf16_csv_names_the_encoding_to_set_and_loads_once_set(tmp_path: Path) -> None:
    content = "id,n\nu1,1\n".encode("utf-16")
    outcome = _load(tmp_path / "a", content, "csv")
    assert isinstance(outcome, ParseError) and "source.csv.encoding: utf-16" in str(outcome)
    report = _load(tmp_path / "b", content, "csv", _spec("csv", csv={"encoding": "utf-16"}))
    assert report.rows_written == 1


def test_latin1_csv_loads_with_its_encoding(tmp_path: Path) -> None:
    content = "id,n\nMüller,1\n".encode("latin-1")
    report = _load(tmp_path, content, "csv", _spec("csv", csv={"encoding": "latin-1"}))
    assert report.rows_written == 1


@pytest.mark.parametrize(
    ("fmt", "content"),
    [
        ("csv", b"id,n,n\na,1,2\n"),
        (
            "parquet",
            _parquet(
                pa.Table.from_arrays(
                    [pa.array(["a"]), pa.array([1]), pa.array([2])], names=["id", "n", "n"]
                )
            ),
        ),
    ],
)
def test_a_duplicated_column_is_refused_naming_it(tmp_path: Path, fmt: str, content: bytes) -> None:
    outcome = _load(tmp_path, content, fmt)
    assert isinstance(outcome, ParseError)
    assert "the column 'n' appears twice (columns 2 and 3)" in str(outcome)


def test_a_parquet_boolean_where_an_integer_is_declared_fails_validation(tmp_path: Path) -> None:
    outcome = _load(tmp_path, _parquet(pa.table({"id": ["a"], "n": [True]})), "parquet")
    assert isinstance(outcome, ValidationFailed)
    assert dict(outcome.report.validation.counts) == {("n", "dtype: int64"): 1}


def test_extreme_integers_stay_exact_and_out_of_range_ones_fail(tmp_path: Path) -> None:
    content = b"id,n\na,9223372036854775807\nb,-9223372036854775808\nc,9007199254740993\nd,x\n"
    outcome = _load(tmp_path, content, "csv")
    assert isinstance(outcome, ValidationFailed)
    assert dict(outcome.report.validation.counts) == {("n", "dtype: int64"): 1}
    content = b"id,n\na,9223372036854775807\nb,-9223372036854775808\nc,9007199254740993\n"
    report = _load(tmp_path / "ok", content, "csv")
    assert report.rows_written == 3
    with duckdb_connector(tmp_path / "ok" / "w.duckdb")() as conn:
        values = sorted(row[0] for row in conn.execute("SELECT n FROM raw.bad").fetchall())
    assert values == [-(2**63), 9007199254740993, 2**63 - 1]


def test_ndjson_null_markers_count_as_null_like_csv(tmp_path: Path) -> None:
    columns = {
        "id": {"dtype": "string", "nullable": False, "severity": "warn"},
        "n": {"dtype": "int64"},
    }
    spec = _spec("ndjson", columns)
    spec = spec.model_copy(
        update={"quality": spec.quality.model_copy(update={"max_rejected_fraction": 1})}
    )
    lines = b'{"id":"","n":1}\n{"id":"NULL","n":2}\n{"id":"x","n":3}\n'
    report = _load(tmp_path, lines, "ndjson", spec)
    assert (report.rows_written, report.rows_rejected) == (1, 2)


def test_gzip_ndjson_with_a_bad_line_names_it(tmp_path: Path) -> None:
    outcome = _load(tmp_path, gzip.compress(b'{"id":"a","n":1}\nnull\n'), "ndjson.gz")
    assert isinstance(outcome, ParseError) and "line 2 is a JSON null" in str(outcome)


def test_ndjson_with_a_utf8_byte_order_mark_loads(tmp_path: Path) -> None:
    report = _load(tmp_path, b'\xef\xbb\xbf{"id":"a","n":1}\n{"id":"b","n":2}\n', "ndjson")
    assert report.rows_written == 2

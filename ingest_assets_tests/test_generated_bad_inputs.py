"""Generated bad inputs for every format and source kind, each checked for three invariants.

Every case loads a good window first, then a bad input into the same window, and asserts:

1. the bad load ends in the project's own error (naming the dataset, with a fix) or in a load
   whose figures add up (rows read = written + quarantined + deduplicated): never a raw
   exception, never a dead process;
2. after an error the window keeps exactly its previous rows;
3. the audit row of the load agrees with what happened (status, counts, checksum, error text).

Inputs come from seeded generators (encodings, shapes, nesting, types, extreme values, hostile
names), so a failure names a case that reproduces.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse
from ingest_assets.engine import LoadReport, load_window
from ingest_assets.errors import IngestError
from ingest_assets.sources.base import SourceReader
from ingest_assets.sources.object_store.reader import LocalStore, ObjectStoreReader
from ingest_assets.sources.rest.reader import RestReader
from ingest_assets.sources.sql.reader import SqlReader
from ingest_assets.spec import DatasetSpec
from ingest_assets.windows import Window
from ingest_assets_tests.api_server import ApiState, api_server
from ingest_assets_tests.conftest import free_port

WINDOW = Window(datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC))
NAMES = ["id", "amount", "qty", "flag", "at"]
HOSTILE = [
    "_ingest_window_start",
    "_ingest_object",
    "filename",
    "file_row_number",
    'a"; DROP TABLE x; --',
    "Ümlaut spalte",
    "x" * 300,
    "",
    " id",
    "ID",
    "a.b",
    "1st",
    "rowid",
    "__index_level_0__",
]
EXTREME_INTS = [
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "0x1F",
    "1_000",
    "+7",
    " 7 ",
    "007",
    "٣",
]
EXTREME_FLOATS = [
    "inf",
    "-inf",
    "nan",
    "NaN",
    "1e400",
    "-0",
    "1e-400",
    "1,5",
    "$3",
    "\u0661\u066b\u0665",
]
EXTREME_TIMES = [
    "2026-10-02T25:00:00Z",
    "2026-02-30",
    "0000-01-01",
    "9999-12-31T23:59:59Z",
    "2026-10-02T12:00:00+14:00",
    "2026-10-02T12:00:00-12:00",
    "1700000000",
    "yesterday",
    "2026-10-02T12:00:00.123456789Z",
    "2026-10-02 12:00",
]
TEXT = ["", "NULL", "\x00", "\u202e", "\ud7ff", "🦆" * 50, "a\nb", '"', "\\", "x" * 100_000]


def good_rows(count: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "id": f"g{i:03d}",
            "amount": i * 1.5,
            "qty": i,
            "flag": i % 2 == 0,
            "at": f"2026-10-02T{i % 24:02d}:{i % 60:02d}:00Z",
        }
        for i in range(count)
    ]


@dataclass
class Case:
    """One generated input: its kind, the mutation and its seed."""

    kind: str
    mutation: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.mutation}-{self.seed}"


# -- mutations: each takes the good rows and a seeded generator, and gives the bad input ------


def _pick_row(rows: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    return rows[rng.randrange(len(rows))]


def _rows_mutation(rng: random.Random, mutation: str) -> list[dict[str, Any]]:
    """Rows with values a type or rule will not take (the same for every row-based kind)."""
    rows = good_rows(rng.randint(1, 40))
    for _ in range(rng.randint(1, 4)):
        row = _pick_row(rows, rng)
        if mutation == "bad_int":
            row["qty"] = rng.choice(EXTREME_INTS)
        elif mutation == "bad_float":
            row["amount"] = rng.choice(EXTREME_FLOATS)
        elif mutation == "bad_time":
            row["at"] = rng.choice(EXTREME_TIMES)
        elif mutation == "bad_bool":
            row["flag"] = rng.choice(["yes please", "2", "", "TRUE", "nein", 3])
        elif mutation == "bad_text":
            row["id"] = rng.choice(TEXT)
        elif mutation == "nulls":
            row[rng.choice(NAMES)] = None
        elif mutation == "negative":
            row["amount"] = -rng.random() * 100
        elif mutation == "duplicate_key":
            row["id"] = rows[0]["id"]
        elif mutation == "missing_column":
            row.pop(rng.choice(NAMES))
        elif mutation == "extra_column":
            row[rng.choice(HOSTILE) or "blank"] = rng.choice(TEXT[:6])
        elif mutation == "mixed_types":
            row[rng.choice(NAMES)] = rng.choice([[1, 2], {"a": 1}, 1.5, True, "x", 10**30])
    return rows


ROW_MUTATIONS = [
    "bad_int",
    "bad_float",
    "bad_time",
    "bad_bool",
    "bad_text",
    "nulls",
    "negative",
    "duplicate_key",
    "missing_column",
    "extra_column",
    "mixed_types",
]


def _csv_text(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    import csv

    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def csv_input(case: Case) -> bytes:
    rng = random.Random(case.seed)
    m = case.mutation
    if m in ROW_MUTATIONS:
        return _csv_text(_rows_mutation(rng, m)).encode("utf-8", "surrogatepass")
    text = _csv_text(good_rows(rng.randint(1, 30)))
    lines = text.splitlines(keepends=True)
    where = rng.randrange(1, len(lines))
    if m == "invalid_utf8":
        data = text.encode()
        cut = rng.randrange(len(data))
        return data[:cut] + bytes([rng.choice([0xFF, 0xC3, 0xE2, 0x80])]) + data[cut:]
    if m == "utf16":
        return text.encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be"]))
    if m == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if m == "nul_bytes":
        return text.replace(",", ",\x00", rng.randint(1, 5)).encode()
    if m == "ragged":
        lines[where] = lines[where].rstrip("\n") + rng.choice([",x", ",x,y", ""]) + "\n"
        if rng.random() < 0.5:
            lines[where] = lines[where].split(",")[0] + "\n"
        return "".join(lines).encode()
    if m == "unclosed_quote":
        lines[where] = '"' + lines[where]
        return "".join(lines).encode()
    if m == "empty":
        return rng.choice([b"", b"\n", b"\n\n\n", b" "])
    if m == "header_only":
        return lines[0].encode()
    if m == "duplicate_header":
        header = lines[0].rstrip("\n").split(",")
        header[rng.randrange(1, len(header))] = header[0]
        return (",".join(header) + "\n" + "".join(lines[1:])).encode()
    if m == "hostile_header":
        header = lines[0].rstrip("\n").split(",")
        header[rng.randrange(len(header))] = '"' + rng.choice(HOSTILE).replace('"', '""') + '"'
        return (",".join(header) + "\n" + "".join(lines[1:])).encode()
    if m == "crlf":
        return text.replace("\n", "\r\n").encode()
    if m == "long_field":
        rows = good_rows(3)
        rows[1]["id"] = "z" * rng.choice([10_000, 1_000_000])
        return _csv_text(rows).encode()
    if m == "binary_garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000)))
    raise AssertionError(m)


CSV_MUTATIONS = [
    *ROW_MUTATIONS,
    "invalid_utf8",
    "utf16",
    "bom",
    "nul_bytes",
    "ragged",
    "unclosed_quote",
    "empty",
    "header_only",
    "duplicate_header",
    "hostile_header",
    "crlf",
    "long_field",
    "binary_garbage",
]


def _dumps(value: Any) -> bytes:
    """JSON of any value the generators make (integers beyond 64 bits included)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _json_lines(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(_dumps(row) + b"\n" for row in rows)


def ndjson_input(case: Case) -> bytes:
    rng = random.Random(case.seed)
    m = case.mutation
    if m in ROW_MUTATIONS:
        return _json_lines(_rows_mutation(rng, m))
    lines = _json_lines(good_rows(rng.randint(1, 30))).splitlines(keepends=True)
    where = rng.randrange(len(lines))
    if m == "not_an_object":
        lines[where] = rng.choice([b"null", b"5", b"[]", b'"x"', b"true", b"[1,{}]"]) + b"\n"
    elif m == "deep":
        depth = rng.choice([150, 300, 1_000, 5_000, 30_000])
        key = rng.choice([b"extra", b"id", b"qty"])
        lines[where] = b'{"' + key + b'":' + b"[" * depth + b"]" * depth + b"}\n"
    elif m == "truncated":
        lines[where] = lines[where][: rng.randrange(1, len(lines[where]) - 1)] + b"\n"
    elif m == "invalid_utf8":
        line = lines[where]
        cut = rng.randrange(2, len(line) - 2)
        lines[where] = line[:cut] + bytes([rng.choice([0xFF, 0xC3, 0x80])]) + line[cut:]
    elif m == "bom":
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    elif m == "duplicate_keys":
        lines[where] = lines[where].replace(b"{", b'{"id":"dup",', 1)
    elif m == "big_numbers":
        lines[where] = lines[where].replace(
            b'"qty":', b'"qty":1' + b"0" * rng.randint(19, 400) + b',"q":', 1
        )
    elif m == "nan_literal":
        lines[where] = lines[where].replace(b'"amount":', b'"amount":NaN,"a":', 1)
    elif m == "empty":
        return rng.choice([b"", b"\n", b"\n \n"])
    elif m == "garbage_after":
        lines[where] = lines[where].rstrip(b"\n") + b" trailing\n"
    elif m == "hostile_keys":
        row = orjson.loads(lines[where])
        row[rng.choice(HOSTILE)] = rng.choice(TEXT[:6])
        lines[where] = orjson.dumps(row) + b"\n"
    elif m == "nested_in_scalar":
        row = orjson.loads(lines[where])
        row[rng.choice(NAMES)] = {"nested": [1, {"x": None}]}
        lines[where] = orjson.dumps(row) + b"\n"
    else:
        raise AssertionError(m)
    return b"".join(lines)


NDJSON_MUTATIONS = [
    *ROW_MUTATIONS,
    "not_an_object",
    "deep",
    "truncated",
    "invalid_utf8",
    "bom",
    "duplicate_keys",
    "big_numbers",
    "nan_literal",
    "empty",
    "garbage_after",
    "hostile_keys",
    "nested_in_scalar",
]


def parquet_input(case: Case) -> bytes:
    rng = random.Random(case.seed)
    m = case.mutation
    rows = good_rows(rng.randint(1, 30))
    columns: dict[str, pa.Array] = {
        "id": pa.array([r["id"] for r in rows]),
        "amount": pa.array([r["amount"] for r in rows]),
        "qty": pa.array([r["qty"] for r in rows], pa.int64()),
        "flag": pa.array([r["flag"] for r in rows]),
        "at": pa.array([r["at"] for r in rows]),
    }
    n = len(rows)
    name = rng.choice(NAMES)
    if m == "retyped":
        columns[name] = rng.choice(
            [
                pa.array([True] * n),
                pa.array([1] * n, pa.uint64()),
                pa.array([2.5] * n),
                pa.array([b"\xff\xfe"] * n, pa.binary()),
                pa.array([[1, 2]] * n),
                pa.array([{"a": 1}] * n),
                pa.array([datetime(2026, 10, 2)] * n, pa.timestamp("ns")),
                pa.array(["x"] * n).dictionary_encode(),
                pa.array([None] * n, pa.null()),
                pa.array(["9" * 40] * n),
                pa.array([2**64 - 1] * n, pa.uint64()),
                pa.array([float("nan")] * n),
                pa.array(["2026-10-02"] * n, pa.large_string()),
            ]
        )
    elif m == "duplicate_column":
        table = pa.Table.from_arrays([*columns.values(), columns[name]], [*columns, name])
        return _parquet(table)
    elif m == "hostile_name":
        columns[rng.choice(HOSTILE) or "blank"] = pa.array(["v"] * n)
    elif m == "missing_column":
        columns.pop(name)
    elif m == "empty_table":
        return _parquet(pa.table({k: v.slice(0, 0) for k, v in columns.items()}))
    elif m == "truncated":
        data = _parquet(pa.table(columns))
        return data[: rng.randrange(1, len(data) - 1)]
    elif m == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000)))
    elif m == "nulls":
        columns[name] = pa.array(
            [None if rng.random() < 0.5 else v for v in columns[name].to_pylist()],
            columns[name].type,
        )
    else:
        raise AssertionError(m)
    return _parquet(pa.table(columns))


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


PARQUET_MUTATIONS = [
    "retyped",
    "duplicate_column",
    "hostile_name",
    "missing_column",
    "empty_table",
    "truncated",
    "garbage",
    "nulls",
]


def rest_input(case: Case) -> bytes:
    rng = random.Random(case.seed)
    m = case.mutation
    if m in ROW_MUTATIONS:
        return _dumps({"data": _rows_mutation(rng, m)})
    records = good_rows(rng.randint(1, 20))
    if m == "not_records":
        return rng.choice(
            [
                b"null",
                b"42",
                b'"text"',
                b"true",
                b"[]",
                b'{"error": "quota"}',
                b'{"data": null}',
                b'{"data": {"id": 1}}',
                b'{"data": [1, "a"]}',
                b'{"other": []}',
                b'[{"id": "x"}]',
            ]
        )
    if m == "not_json":
        return rng.choice([b"<html>oops</html>", b"", b'{"data": [', b"\xff\xfe\x00", b"{}}"])
    if m == "deep":
        depth = rng.choice([150, 300, 1_000, 2_000, 20_000])
        return b'{"data": [{"id": "d", "x": ' + b"[" * depth + b"]" * depth + b"}]}"
    if m == "invalid_utf8":
        body = orjson.dumps({"data": records})
        cut = rng.randrange(10, len(body) - 10)
        return body[:cut] + b"\xff" + body[cut:]
    if m == "hostile_keys":
        records[0][rng.choice(HOSTILE)] = rng.choice(TEXT[:6])
        return orjson.dumps({"data": records})
    if m == "surrogates":
        return b'{"data": [{"id": "\\ud800", "amount": 1}]}'
    raise AssertionError(m)


REST_MUTATIONS = [
    *ROW_MUTATIONS,
    "not_records",
    "not_json",
    "deep",
    "invalid_utf8",
    "hostile_keys",
    "surrogates",
]


def sql_rows(case: Case) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and rows of a SQLite table (SQLite keeps any value in any column)."""
    rng = random.Random(case.seed)
    m = case.mutation
    rows = _rows_mutation(rng, m) if m in ROW_MUTATIONS else good_rows(rng.randint(1, 20))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if "at" not in columns:
        columns.append("at")
    values = [tuple(_sqlite_value(row.get(c)) for c in columns) for row in rows]
    if m == "blobs":
        index = rng.randrange(len(values))
        column = rng.randrange(len(columns))
        values[index] = tuple(
            rng.choice([b"\xff\xfe", b"ok", b""]) if i == column else v
            for i, v in enumerate(values[index])
        )
    elif m == "huge_ints":
        values = [(*v[:2], rng.choice([2**63 - 1, -(2**63)]), *v[3:]) for v in values]
    return columns, values


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


SQL_MUTATIONS = [m for m in ROW_MUTATIONS if m != "missing_column"] + ["blobs", "huge_ints"]

SEEDS = {"csv": 6, "ndjson": 6, "parquet": 10, "rest": 6, "sql": 5}
MUTATIONS = {
    "csv": CSV_MUTATIONS,
    "ndjson": NDJSON_MUTATIONS,
    "parquet": PARQUET_MUTATIONS,
    "rest": REST_MUTATIONS,
    "sql": SQL_MUTATIONS,
}
CASES = [
    Case(kind, mutation, seed)
    for kind, mutations in MUTATIONS.items()
    for mutation in mutations
    for seed in range(SEEDS[kind])
]


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 500


# -- running a case ---------------------------------------------------------------------------


def _spec(case: Case, index: int, source: dict[str, Any]) -> DatasetSpec:
    rng = random.Random(case.seed)
    warn = rng.random() < 0.4  # some cases quarantine instead of failing
    columns: dict[str, Any] = {
        "id": {"dtype": "string", "nullable": False},
        "amount": {
            "dtype": "float64",
            "checks": {"ge": 0},
            **({"severity": "warn"} if warn else {}),
        },
        "qty": {"dtype": "int64"},
        "flag": {"dtype": "boolean"},
        "at": {"dtype": "timestamp"},
    }
    extra: dict[str, Any] = {}
    if rng.random() < 0.3:
        extra["dedup"] = {"key": ["id"]}
    return DatasetSpec.model_validate(
        {
            "name": f"case_{index}",
            "source": source,
            "partitioning": {"cadence": "daily", "start": "2026-10-01"},
            "schema": {"columns": columns},
            "destination": {"table": f"raw.case_{index}"},
            "quality": {
                "max_rejected_fraction": 0.5,
                "volume": None,
                "drift": rng.choice(["warn", "evolve", "block"]),
            },
            **extra,
        }
    )


@dataclass
class World:
    """What the cases share: a folder, an API server and a SQLite database.

    Each case has a warehouse of its own, in memory (transactions and rollbacks as in a file;
    what a crash leaves is tested elsewhere): the cases stay independent and cheap.
    """

    root: Path
    api: tuple[str, ApiState]
    sqlite: Path
    warehouse: DuckDBWarehouse | None = None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("generated")
    with api_server(free_port()) as api:
        yield World(root, api, root / "app.sqlite")


FILE_INPUTS: dict[str, Callable[[Case], bytes]] = {
    "csv": csv_input,
    "ndjson": ndjson_input,
    "parquet": parquet_input,
}


def _file_reader(
    world: World, case: Case, index: int
) -> tuple[DatasetSpec, Callable[[bytes], SourceReader]]:
    folder = world.root / f"files-{index}"
    extension = {"csv": "csv", "ndjson": "ndjson", "parquet": "parquet"}[case.kind]
    spec = _spec(case, index, {"location": str(folder), "key_template": "dt={date}/*." + extension})

    def reader(content: bytes) -> SourceReader:
        target = folder / "dt=2026-10-02" / f"part.{extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return ObjectStoreReader(LocalStore(folder), spec.source, dataset=spec.name)  # type: ignore[arg-type]

    return spec, reader


def _good_file(kind: str) -> bytes:
    rows = good_rows()
    if kind == "csv":
        return _csv_text(rows).encode()
    if kind == "ndjson":
        return _json_lines(rows)
    return _parquet(pa.Table.from_pylist(rows))


def _rest_reader(
    world: World, case: Case, index: int
) -> tuple[DatasetSpec, Callable[[bytes], SourceReader]]:
    base, state = world.api
    spec = _spec(
        case,
        index,
        {
            "kind": "rest",
            "base_url": base,
            "endpoint": "/v1/all",
            "records_path": "data",
            "retry": {"attempts": 2, "backoff_seconds": 0.01},
        },
    )

    def reader(content: bytes) -> SourceReader:
        state.body = content
        return RestReader(spec.source, dataset=spec.name)  # type: ignore[arg-type]

    return spec, reader


def _sql_reader(
    world: World, case: Case, index: int
) -> tuple[DatasetSpec, Callable[[bytes], SourceReader]]:
    table = f"case_{index}"
    spec = _spec(
        case, index, {"kind": "sql", "url_env": "UNUSED", "table": table, "time_column": "at"}
    )

    def reader(content: bytes) -> SourceReader:
        columns, values = orjson.loads(content) if content else sql_rows(case)
        with sqlite3.connect(world.sqlite) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
            conn.execute(f'CREATE TABLE "{table}" ({quoted})')
            marks = ", ".join("?" for _ in columns)
            conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)
        return SqlReader(spec.source, f"sqlite:///{world.sqlite}", dataset=spec.name)  # type: ignore[arg-type]

    return spec, reader


def _window_rows(world: World, table: str) -> list[tuple[Any, ...]]:
    assert world.warehouse is not None
    with world.warehouse.session("reading") as conn:
        return conn.execute(
            f'SELECT * EXCLUDE (_ingest_run_id, _ingest_loaded_at) FROM raw."{table}" ORDER BY ALL'
        ).fetchall()


def _last_audit(world: World, dataset: str) -> dict[str, Any]:
    assert world.warehouse is not None
    with world.warehouse.session("reading") as conn:
        cursor = conn.execute(
            "SELECT * FROM ingest_audit.loads WHERE dataset = ? ORDER BY ended_at DESC, "
            "started_at DESC LIMIT 1",
            [dataset],
        )
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_generated_bad_input_keeps_the_three_invariants(world: World, case: Case) -> None:
    index = CASES.index(case)
    database = duckdb.connect(":memory:")
    world.warehouse = DuckDBWarehouse(lambda: contextlib.closing(database.cursor()), "memory")
    if case.kind in FILE_INPUTS:
        spec, reader = _file_reader(world, case, index)
        good, bad = _good_file(case.kind), FILE_INPUTS[case.kind](case)
    elif case.kind == "rest":
        spec, reader = _rest_reader(world, case, index)
        good, bad = orjson.dumps({"data": good_rows()}), rest_input(case)
    else:
        spec, reader = _sql_reader(world, case, index)
        columns = NAMES
        good = orjson.dumps([columns, [[r[c] for c in columns] for r in good_rows()]])
        bad = b""
    first = load_window(spec, WINDOW, reader(good), world.warehouse, run_id="good")
    assert first.rows_written == 20
    before = _window_rows(world, spec.name)

    try:
        outcome: LoadReport | IngestError = load_window(
            spec, WINDOW, reader(bad), world.warehouse, run_id="bad"
        )
    except IngestError as exc:  # anything else is a raw exception: the test fails on it
        outcome = exc

    audit = _last_audit(world, spec.name)
    assert audit["run_id"] == "bad"
    if isinstance(outcome, IngestError):
        message = str(outcome)
        assert f"Dataset '{spec.name}'" in message and "\nFix: " in message, message
        assert "Traceback" not in message, message
        assert _window_rows(world, spec.name) == before, "the previous rows must stay"
        assert (audit["status"], audit["rows_written"], audit["error"]) == ("failed", 0, message)
    else:
        report = outcome
        written = report.rows_written
        assert report.rows_read == written + report.rows_rejected + report.rows_deduplicated
        assert len(_window_rows(world, spec.name)) == written
        assert (audit["status"], audit["rows_read"], audit["rows_written"]) == (
            "success",
            report.rows_read,
            written,
        )
        assert audit["rows_rejected"] == report.rows_rejected
        assert audit["checksum"] == report.checksum

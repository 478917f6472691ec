"""File format readers: one object's bytes in, Arrow record batches out.

Each reader streams: memory is bounded by the block size, not by the object's size. Declared
column types are applied while parsing (the fast path). When a value cannot be converted, the
object is read again from the failing batch on with those columns as text, so that validation
can report every offending value with its row instead of the load crashing on the first one.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError

from ingest_assets.errors import ParseError
from ingest_assets.spec import CsvOptions, FileFormat

#: Bytes parsed per block by the CSV and NDJSON readers (and so the rough size of a batch).
BLOCK_BYTES = 4 * 2**20
#: Rows per batch read from Parquet.
PARQUET_BATCH_ROWS = 65_536
_TEXT_ROWS_PER_BATCH = 10_000

Opener = Callable[[bool], AbstractContextManager[IO[bytes]]]


class _ConversionFailed(Exception):
    """A declared type could not be applied while parsing; read the rest as text."""


def read_object(
    open_object: Opener,
    fmt: FileFormat,
    *,
    compressed: bool,
    arrow_types: dict[str, pa.DataType],
    csv: CsvOptions,
    where: str,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Stream one object's rows as ``(first_row_number, batch)``.

    Args:
        open_object: Called with ``seekable`` to open the object as a binary file.
        fmt: The object's format.
        compressed: Whether the object is gzip-compressed.
        arrow_types: Declared Arrow type per column (columns missing here are inferred).
        csv: CSV parsing options.
        where: Names the dataset and object in error messages.

    Raises:
        ParseError: the object is not valid in its format; names the object and the row.
    """
    if fmt == "parquet":
        yield from _read_parquet(open_object, where)
        return
    reader = _read_csv if fmt == "csv" else _read_ndjson
    emitted = 0
    try:
        for batch in reader(open_object, compressed, _parse_types(arrow_types), csv, where, 0):
            yield emitted + 1, batch
            emitted += batch.num_rows
    except _ConversionFailed:
        text_types = {name: pa.string() for name in arrow_types}
        for batch in reader(open_object, compressed, text_types, csv, where, emitted):
            yield emitted + 1, batch
            emitted += batch.num_rows


def _parse_types(arrow_types: dict[str, pa.DataType]) -> dict[str, pa.DataType]:
    # Timestamps are parsed during coercion, which accepts naive values as UTC and any offset;
    # the Arrow parsers reject one or the other.
    return {
        name: pa.string() if pa.types.is_timestamp(dtype) else dtype
        for name, dtype in arrow_types.items()
    }


def _input(handle: IO[bytes], compressed: bool) -> IO[bytes]:
    return gzip.GzipFile(fileobj=handle) if compressed else handle  # type: ignore[return-value]


def _read_csv(
    open_object: Opener,
    compressed: bool,
    types: dict[str, pa.DataType],
    options: CsvOptions,
    where: str,
    skip: int,
) -> Iterator[pa.RecordBatch]:
    bad_rows: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    read_options = pa_csv.ReadOptions(
        block_size=BLOCK_BYTES,
        skip_rows=options.skip_rows,
        autogenerate_column_names=not options.header,
        use_threads=False,
    )
    parse_options = pa_csv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote_char,
        invalid_row_handler=on_invalid_row,
    )
    convert_options = pa_csv.ConvertOptions(
        column_types=types,
        null_values=options.null_values,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    with open_object(False) as raw:
        try:
            reader = pa_csv.open_csv(
                _input(raw, compressed),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            yield from _skip_rows(reader, skip)
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            if isinstance(exc, BotoCoreError):
                raise  # a network fault while streaming, not a parse error
            if bad_rows:
                row = bad_rows[0]
                line = f"line {row.number}" if row.number else "a line"
                raise ParseError(
                    f"{where}: {line} has {row.actual_columns} fields where the header has "
                    f"{row.expected_columns}: {row.text[:200]!r}",
                    fix="Repair or remove that line (check delimiters and quoting), then rerun.",
                ) from None
            if "conversion error" in str(exc) and skip == 0:
                raise _ConversionFailed() from None
            raise ParseError(
                f"{where}: not readable as CSV: {exc}",
                fix="Check source.format and source.csv (delimiter, header, encoding UTF-8).",
            ) from None


def _skip_rows(batches: Any, skip: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0


def _read_ndjson(
    open_object: Opener,
    compressed: bool,
    types: dict[str, pa.DataType],
    options: CsvOptions,
    where: str,
    skip: int,
) -> Iterator[pa.RecordBatch]:
    if skip or (all(pa.types.is_string(t) for t in types.values()) and types):
        yield from _read_ndjson_as_text(open_object, compressed, list(types), where, skip)
        return
    with open_object(False) as raw:
        try:
            reader = pa_json.open_json(
                _input(raw, compressed),
                read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                parse_options=pa_json.ParseOptions(
                    explicit_schema=pa.schema(list(types.items())) if types else None,
                    unexpected_field_behavior="infer",
                    newlines_in_values=False,
                ),
            )
            yield from reader
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            if isinstance(exc, BotoCoreError):
                raise
            # Conversion or syntax: the line-by-line reader tells which, and where.
            raise _ConversionFailed() from None


def _read_ndjson_as_text(
    open_object: Opener, compressed: bool, columns: list[str], where: str, skip: int
) -> Iterator[pa.RecordBatch]:
    """Parse NDJSON line by line, keeping declared columns as text for coercion to report."""
    rows: list[dict[str, str | None]] = []
    with open_object(False) as raw:
        text = io.TextIOWrapper(_input(raw, compressed), encoding="utf-8")
        record_number = 0
        try:
            for line_number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                record_number += 1
                if record_number <= skip:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ParseError(
                        f"{where}: line {line_number} is not valid JSON ({exc.msg} at column "
                        f"{exc.colno}): {line[:200]!r}",
                        fix="Repair or remove that line, then rerun.",
                    ) from None
                if not isinstance(record, dict):
                    raise ParseError(
                        f"{where}: line {line_number} is a JSON {type(record).__name__}, "
                        "not an object",
                        fix="Each line must be one JSON object.",
                    )
                rows.append({name: _as_text(record.get(name)) for name in columns})
                if len(rows) == _TEXT_ROWS_PER_BATCH:
                    yield _text_batch(rows, columns)
                    rows = []
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"{where}: not UTF-8 text ({exc.reason})", fix="Write the file as UTF-8."
            ) from None
    if rows:
        yield _text_batch(rows, columns)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text_batch(rows: list[dict[str, str | None]], columns: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=pa.schema([(c, pa.string()) for c in columns]))


def _read_parquet(open_object: Opener, where: str) -> Iterator[tuple[int, pa.RecordBatch]]:
    with open_object(True) as handle:
        try:
            parquet = pq.ParquetFile(handle)
            emitted = 0
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                yield emitted + 1, batch
                emitted += batch.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, BotoCoreError):
                raise
            raise ParseError(
                f"{where}: not a readable Parquet file: {exc}",
                fix="Check source.format; re-export the file if it is truncated.",
            ) from None

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
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

import numpy
import orjson
import pyarrow as pa
import pyarrow.compute
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError

from ingest_assets.errors import ParseError
from ingest_assets.sources.object_store.spec import CsvOptions, FileFormat

#: Bytes parsed per block by the CSV and NDJSON readers (and so the rough size of a batch).
#: The streaming CSV reader's memory is about fifty blocks: 2 MiB keeps it near 100 MB and
#: parses as fast as larger blocks.
BLOCK_BYTES = 2 * 2**20
#: Rows per batch read from Parquet.
PARQUET_BATCH_ROWS = 65_536
#: Bytes read at a time from a Parquet column chunk.
PARQUET_BUFFER_BYTES = 2**20
_TEXT_ROWS_PER_BATCH = 10_000
#: Arrow's compute functions (generated when the module loads, so unknown to type checkers).
pc: Any = pyarrow.compute
#: How deep JSON values may nest. Deeper values are refused with the line that holds them (the
#: Arrow parser would overflow its stack; orjson refuses 1,024 levels and writes 254).
MAX_JSON_DEPTH = 200
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_RAGGED = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+): (.*)", re.DOTALL)

Opener = Callable[[bool], AbstractContextManager[IO[bytes]]]


class _ConversionFailed(Exception):
    """A declared type could not be applied while parsing; read the rest as text."""


class _NotPlain(Exception):
    """NDJSON the Arrow parser must not see (a line that is no object, deep nesting)."""


class _GuardedLines(io.RawIOBase):
    """NDJSON bytes on their way to Arrow's parser, checked block by block.

    Arrow's JSON reader crashes the process on a line that is not an object (``null``, a
    number) and on values nested thousands of levels deep. Each block read is checked with numpy
    first: every line must start with ``{`` and brackets may nest at most ``MAX_JSON_DEPTH``
    levels (counted over the raw bytes, strings included, so the count can only be too high).
    Otherwise :class:`_NotPlain` is raised before Arrow sees the block, and the object is read
    by the line-by-line reader, which reports the offending line.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._depth = 0
        self._line_start = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        if not data:
            return 0
        self._check(data)
        buffer[: len(data)] = data
        return len(data)

    def _check(self, data: bytes) -> None:
        raw = numpy.frombuffer(data, numpy.uint8)
        starts = numpy.flatnonzero(raw[:-1] == 0x0A) + 1
        heads = raw[starts]
        ok_heads = (heads == 0x7B) | (heads == 0x0A) | (heads == 0x0D)
        if not ok_heads.all() or (self._line_start and raw[0] not in (0x7B, 0x0A, 0x0D)):
            raise _NotPlain()
        self._line_start = bool(raw[-1] == 0x0A)
        # Nesting depth within each line: brackets step it up and down, a newline resets it.
        folded = raw & 0xDF  # '{' and '[' fold to 0x5B, '}' and ']' to 0x5D
        opens = folded == 0x5B
        closes = folded == 0x5D
        newlines = raw == 0x0A
        events = numpy.flatnonzero(opens | closes | newlines)
        if not len(events):
            return
        steps = opens[events].astype(numpy.int32) - closes[events].astype(numpy.int32)
        level = numpy.cumsum(steps)
        breaks = newlines[events]
        base = numpy.concatenate(([-self._depth], level[breaks]))
        depth = level - base[numpy.cumsum(breaks)]
        if int(depth.max()) > MAX_JSON_DEPTH:
            raise _NotPlain()
        self._depth = int(depth[-1])


def read_object(
    open_object: Opener,
    fmt: FileFormat,
    *,
    compressed: bool,
    arrow_types: dict[str, pa.DataType],
    csv: CsvOptions,
    where: str,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Stream one object's rows as ``(first_line, batch)``.

    Rows are numbered by their line in the file (CSV, NDJSON; a CSV's header and skipped lines
    count) or their row in it (Parquet), the same numbers parse errors give.

    Args:
        open_object: Called with ``seekable`` to open the object as a binary file.
        fmt: The object's format.
        compressed: Whether the object is gzip-compressed.
        arrow_types: Declared Arrow type per column (columns missing here are inferred).
        csv: CSV parsing options (its ``null_values`` also apply to NDJSON strings).
        where: Names the dataset and object in error messages.

    Raises:
        ParseError: the object is not valid in its format; names the object and the row.
    """
    if fmt == "parquet":
        batches = _read_parquet(open_object, where)
    else:
        batches = _read_text(open_object, fmt, compressed, arrow_types, csv, where)
    checked = False
    for first_row, batch in batches:
        if not checked:
            _check_names(batch.schema.names, where)
            checked = True
        yield first_row, batch


def _read_text(
    open_object: Opener,
    fmt: FileFormat,
    compressed: bool,
    arrow_types: dict[str, pa.DataType],
    csv: CsvOptions,
    where: str,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """CSV or NDJSON: typed while parsing, or from the failing batch on as text (or bytes)."""
    reader = _read_csv if fmt == "csv" else _read_ndjson
    types = _parse_types(arrow_types)
    # Rows are numbered by their line in the file, as parse errors are: a CSV's first row
    # follows its skipped lines and its header.
    lines_before = csv.skip_rows + int(csv.header) if fmt == "csv" else 0
    emitted = 0
    while True:
        try:
            for batch in reader(open_object, compressed, types, csv, where, emitted):
                yield lines_before + emitted + 1, batch
                emitted += batch.num_rows
            return
        except _ConversionFailed as failed:
            # Typed first; from the failing batch on as text, or as bytes where the text is not
            # UTF-8, so that validation reports each value that does not convert.
            kind = pa.binary() if failed.args[:1] == ("utf8",) else pa.string()
            if not types or all(t == kind or t == pa.binary() for t in types.values()):
                place = failed.args[1] if len(failed.args) > 1 else f"after row {emitted}"
                raise ParseError(
                    f"{where}: a column that is not declared holds text that is not "
                    f"{csv.encoding} ({place}).",
                    fix="Write the file in the declared encoding (source.csv.encoding), or "
                    "declare the column.",
                ) from None
            types = {name: kind for name in arrow_types}


def _check_names(names: list[str], where: str) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise ParseError(
                f"{where}: the column {name!r} appears twice (columns {seen[name]} and "
                f"{position}), so its values cannot be told apart.",
                fix="Rename or remove one of the two columns in the file, then rerun.",
            )
        seen[name] = position


def _parse_types(arrow_types: dict[str, pa.DataType]) -> dict[str, pa.DataType]:
    # Timestamps are parsed during coercion, which accepts naive values as UTC and any offset;
    # the Arrow parsers reject one or the other.
    return {
        name: pa.string() if pa.types.is_timestamp(dtype) else dtype
        for name, dtype in arrow_types.items()
    }


def _input(handle: IO[bytes], compressed: bool) -> IO[bytes]:
    return gzip.GzipFile(fileobj=handle) if compressed else handle  # type: ignore[return-value]


class _Peeked(io.RawIOBase):
    """A stream whose first bytes were read ahead (to look for a byte-order mark)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _csv_input(raw: IO[bytes], compressed: bool, options: CsvOptions, where: str) -> IO[bytes]:
    """The object's bytes, refused when a UTF-16 byte-order mark contradicts the encoding."""
    stream = _input(raw, compressed)
    head = stream.read(2)
    if head in _UTF16_BOMS and not options.encoding.lower().replace("-", "").startswith("utf16"):
        raise ParseError(
            f"{where}: the file is UTF-16 text (it starts with a UTF-16 byte-order mark), "
            f"but source.csv.encoding is {options.encoding!r}.",
            fix="Set source.csv.encoding: utf-16 in the dataset's defs.yaml, or export the file "
            "as UTF-8.",
        )
    return io.BufferedReader(_Peeked(head, stream), 2**20)  # type: ignore[return-value]


def _read_csv(
    open_object: Opener,
    compressed: bool,
    types: dict[str, pa.DataType],
    options: CsvOptions,
    where: str,
    skip: int,
) -> Iterator[pa.RecordBatch]:
    read_options = pa_csv.ReadOptions(
        block_size=BLOCK_BYTES,
        skip_rows=options.skip_rows,
        autogenerate_column_names=not options.header,
        use_threads=False,
        encoding=options.encoding,
    )
    parse_options = pa_csv.ParseOptions(delimiter=options.delimiter, quote_char=options.quote_char)
    convert_options = pa_csv.ConvertOptions(
        column_types=types,
        null_values=options.null_values,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    with open_object(False) as raw:
        try:
            reader = pa_csv.open_csv(
                _csv_input(raw, compressed, options, where),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            yield from _skip_rows(reader, skip)
        except (pa.ArrowInvalid, OSError, EOFError, UnicodeError) as exc:
            if isinstance(exc, BotoCoreError):
                raise  # a network fault while streaming, not a parse error
            _csv_failure(exc, skip, options, where)


def _csv_failure(exc: Exception, skip: int, options: CsvOptions, where: str) -> None:
    """Explain why a CSV object did not parse (or ask for a typed-as-text read again)."""
    # Read on one thread, Arrow numbers the line of a row with the wrong number of fields.
    ragged = _RAGGED.search(str(exc))
    if ragged:
        line, expected, actual, text = ragged.groups()
        raise ParseError(
            f"{where}: line {line} has {actual} fields where the header has {expected}: "
            f"{text[:200]!r}",
            fix="Repair or remove that line (check delimiters and quoting), then rerun.",
        ) from None
    if isinstance(exc, UnicodeError):
        raise ParseError(
            f"{where}: not {options.encoding} text ({exc}).",
            fix="Set source.csv.encoding to the file's encoding (e.g. utf-16, latin-1), or "
            "export the file as UTF-8.",
        ) from None
    message = str(exc)
    if "invalid UTF8" in message:
        raise _ConversionFailed("utf8", message.partition(":")[0]) from None
    if "conversion error" in message and skip == 0:
        raise _ConversionFailed() from None
    raise ParseError(
        f"{where}: not readable as CSV: {message}",
        fix="Check source.format and source.csv (delimiter, header, encoding).",
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
        yield from _read_ndjson_as_text(open_object, compressed, types, options, where, skip)
        return
    nulls = pa.array(options.null_values, pa.string())
    with open_object(False) as raw:
        try:
            reader = pa_json.open_json(
                io.BufferedReader(_GuardedLines(_input(raw, compressed)), BLOCK_BYTES),
                read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                parse_options=pa_json.ParseOptions(
                    explicit_schema=pa.schema(list(types.items())) if types else None,
                    unexpected_field_behavior="infer",
                    newlines_in_values=False,
                ),
            )
            for batch in reader:
                yield _null_markers(batch, types, nulls)
        except (pa.ArrowInvalid, OSError, EOFError, _NotPlain) as exc:
            if isinstance(exc, BotoCoreError):
                raise
            # Conversion, syntax or shape: the line-by-line reader tells which, and where.
            raise _ConversionFailed() from None


def _null_markers(
    batch: pa.RecordBatch, types: dict[str, pa.DataType], nulls: pa.Array
) -> pa.RecordBatch:
    """Declared text columns with the null markers (``csv.null_values``) as nulls, as in CSV."""
    if not len(nulls):
        return batch
    for name, dtype in types.items():
        if pa.types.is_string(dtype) and name in batch.schema.names:
            index = batch.schema.get_field_index(name)
            column = batch.column(index)
            marked = pc.is_in(column, value_set=nulls)
            if pc.any(marked).as_py():
                batch = batch.set_column(
                    index, name, pc.if_else(marked, pa.scalar(None, column.type), column)
                )
    return batch


def _read_ndjson_as_text(
    open_object: Opener,
    compressed: bool,
    types: dict[str, pa.DataType],
    options: CsvOptions,
    where: str,
    skip: int,
) -> Iterator[pa.RecordBatch]:
    """Parse NDJSON line by line, keeping declared columns as text (or bytes) for coercion."""
    columns = list(types)
    as_bytes = bool(types) and all(pa.types.is_binary(t) for t in types.values())
    nulls = set(options.null_values)
    rows: list[dict[str, Any]] = []
    with open_object(False) as raw:
        record_number = 0
        lines = io.BufferedReader(_Peeked(b"", _input(raw, compressed)), 2**20)
        for line_number, line in enumerate(lines, start=1):
            if line_number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            if not line.strip():
                continue
            record_number += 1
            if record_number <= skip:
                continue
            record = _json_line(line, line_number, where, as_bytes)
            rows.append(
                {name: _as_text(record.get(name), nulls, line_number, where) for name in columns}
            )
            if len(rows) == _TEXT_ROWS_PER_BATCH:
                yield _text_batch(rows, columns, as_bytes)
                rows = []
    if rows:
        yield _text_batch(rows, columns, as_bytes)


def _json_line(line: bytes, line_number: int, where: str, as_bytes: bool) -> dict[str, Any]:
    """One NDJSON line as an object, or a ParseError naming the line."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if "utf-8" not in str(exc).lower():
            raise ParseError(
                f"{where}: line {line_number} is not valid JSON ({exc.msg} at column "
                f"{exc.pos + 1}): {line[:200]!r}",
                fix="Repair or remove that line, then rerun.",
            ) from None
        if not as_bytes:
            raise _ConversionFailed("utf8") from None
        record = _lenient_json(line, line_number, where)
    if not isinstance(record, dict):
        raise ParseError(
            f"{where}: line {line_number} is a JSON {json_kind(record)}, not an object: "
            f"{line[:200]!r}",
            fix="Each line must be one JSON object; repair or remove that line, then rerun.",
        )
    return record


def _lenient_json(line: bytes, line_number: int, where: str) -> Any:
    """A line with bytes that are not UTF-8: strings keep them as surrogate escapes."""
    try:
        return json.loads(line.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError) as exc:
        raise ParseError(
            f"{where}: line {line_number} is not valid JSON ({exc}): {line[:200]!r}",
            fix="Repair or remove that line, then rerun.",
        ) from None


def json_kind(value: Any) -> str:
    """A JSON value's type, as JSON names it (null, boolean, number, string, array, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _as_text(value: Any, nulls: set[str], line_number: int, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if value in nulls:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8, kept as surrogate escapes
            return value.encode("utf-8", "surrogateescape")
        return value
    if isinstance(value, dict | list):
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            raise ParseError(
                f"{where}: line {line_number} nests values more than {MAX_JSON_DEPTH} levels deep.",
                fix="Flatten the value at the source, or remove that line, then rerun.",
            ) from None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text_batch(rows: list[dict[str, Any]], columns: list[str], as_bytes: bool) -> pa.RecordBatch:
    kind = pa.binary() if as_bytes else pa.string()
    arrays = []
    for name in columns:
        values = [row[name] for row in rows]
        if as_bytes:
            values = [v.encode() if isinstance(v, str) else v for v in values]
        arrays.append(pa.array(values, kind))
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def _read_parquet(open_object: Opener, where: str) -> Iterator[tuple[int, pa.RecordBatch]]:
    with open_object(True) as handle:
        try:
            # Column chunks are read through a buffer rather than whole, so a file written
            # as one large row group does not cost its size in memory.
            parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
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

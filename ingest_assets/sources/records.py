"""JSON records (an API's page, a pushed request) as Arrow columns, for validation.

Declared columns come first, in declared order, then any others (so drift is seen). Nested
objects and lists become JSON text, or ``parent_child`` columns when flattened; a field whose
values mix types (an API drifting) is kept as text, and validation reports the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pyarrow as pa


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested objects into ``parent_child`` keys (lists stay as they are)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def json_text(value: Any) -> str:
    """A nested value as JSON text (a RecursionError when it nests beyond 254 levels)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise RecursionError(str(exc)) from None


def _column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed types in one field (API drift): keep the text, validation reports the values.
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _as_sent(declared: pa.DataType) -> pa.DataType:
    """The type a JSON value of a declared column arrives as: dates and times are text."""
    if pa.types.is_timestamp(declared) or pa.types.is_date(declared):
        return pa.string()
    return declared


def records_batch(
    records: list[Any], types: dict[str, pa.DataType], *, flat: bool = False
) -> pa.RecordBatch:
    """The records as columns: the declared ones, then any others (for drift).

    Args:
        records: The records, JSON objects.
        types: The declared columns' Arrow types.
        flat: Flatten nested objects into ``parent_child`` columns instead of JSON text.

    Arrow converts plain records in C++: straight to the declared types when the
    records have only declared fields and they convert, else with inferred types, nested values
    becoming JSON text (or flattened) column by column. A page whose fields mix types (an
    API drifting) takes the slower per-value path that keeps such a field as text.
    """
    declared = list(types)
    rows = [flatten(r) if isinstance(r, Mapping) else r for r in records] if flat else records
    keys: set[str] = set()
    for row in rows:
        if not isinstance(row, dict):
            break
        keys.update(row)
    else:
        if keys <= types.keys():
            struct = pa.struct([pa.field(name, _as_sent(types[name])) for name in declared])
            try:
                return pa.RecordBatch.from_struct_array(pa.array(rows, struct))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass  # a value of another type: infer, then validation reports it
    try:
        table = pa.array(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return batch_by_value(rows, declared)
    if not pa.types.is_struct(table.type):
        return batch_by_value(rows, declared)
    batch = pa.RecordBatch.from_struct_array(table)
    arrays: list[pa.Array] = []
    names = [*declared, *(name for name in batch.schema.names if name not in declared)]
    for name in names:
        if name not in batch.schema.names:
            arrays.append(pa.nulls(len(rows)))
            continue
        column = batch.column(name)
        if pa.types.is_nested(column.type):  # objects and lists: JSON text, as they came
            values = [r.get(name) if isinstance(r, Mapping) else None for r in rows]
            column = pa.array([None if v is None else json_text(v) for v in values], pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def batch_by_value(rows: list[Any], declared: list[str]) -> pa.RecordBatch:
    """The records as columns value by value: a field whose values mix types becomes text."""
    seen = dict.fromkeys(declared)
    for row in rows:
        if isinstance(row, Mapping):
            seen.update(dict.fromkeys(row))
    columns = list(seen)
    arrays = []
    for name in columns:
        values = [row.get(name) if isinstance(row, Mapping) else None for row in rows]
        values = [json_text(v) if isinstance(v, dict | list) else v for v in values]
        arrays.append(_column(values))
    return pa.RecordBatch.from_arrays(arrays, names=columns)

"""Validation of record batches against a dataset's declared schema, with pandera.

A dataset's schema is declared inline in YAML or given as a pandera ``DataFrameModel``; both end
up as one ``pandera.DataFrameSchema``. Each batch is first coerced to the declared types with
vectorised pandas conversions (values that do not convert are failures of the ``coerce_dtype``
rule, like any other rule), then validated lazily, so that every failure of the batch is
collected. Uniqueness is checked over the whole window after staging, not per batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
from pandera.errors import SchemaError, SchemaErrors

from ingest_assets.spec import ColumnSpec, SchemaSpec, load_model

#: How many offending values a validation summary keeps as a sample.
SAMPLE_SIZE = 20

_PANDAS_DTYPES: dict[str, Any] = {
    "string": pd.StringDtype(),
    "int32": "Int32",
    "int64": "Int64",
    "float32": "float32",
    "float64": "float64",
    "boolean": "boolean",
    "date": pd.ArrowDtype(arrow.date32()),
    "timestamp": pd.DatetimeTZDtype("us", "UTC"),
}
ARROW_TYPES: dict[str, arrow.DataType] = {
    "string": arrow.string(),
    "int32": arrow.int32(),
    "int64": arrow.int64(),
    "float32": arrow.float32(),
    "float64": arrow.float64(),
    "boolean": arrow.bool_(),
    "date": arrow.date32(),
    "timestamp": arrow.timestamp("us", tz="UTC"),
}
# pandera dtype names (as str()) of DataFrameModel columns -> the logical types above.
_LOGICAL_FROM_PANDERA = {
    "str": "string",
    "string": "string",
    "string[pyarrow]": "string",
    "string[python]": "string",
    "int32": "int32",
    "Int32": "int32",
    "int64": "int64",
    "Int64": "int64",
    "float32": "float32",
    "float64": "float64",
    "Float64": "float64",
    "bool": "boolean",
    "boolean": "boolean",
    "date": "date",
    "date32[day][pyarrow]": "date",
}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _checks(column: ColumnSpec) -> list[pa.Check]:
    rules = column.checks
    checks: list[pa.Check] = []
    for name, value in (("ge", rules.ge), ("gt", rules.gt), ("le", rules.le), ("lt", rules.lt)):
        if value is not None:
            checks.append(getattr(pa.Check, name)(value))
    if rules.isin is not None:
        checks.append(pa.Check.isin(rules.isin))
    if rules.notin is not None:
        checks.append(pa.Check.notin(rules.notin))
    if rules.regex is not None:
        checks.append(pa.Check.str_matches(rules.regex))
    if rules.str_length is not None:
        checks.append(pa.Check.str_length(rules.str_length.min, rules.str_length.max))
    return checks


def build_schema(spec: SchemaSpec) -> pa.DataFrameSchema:
    """Build the pandera schema of a dataset (extra columns are dropped, not failed)."""
    if spec.model is not None:
        return load_model(spec.model).to_schema()
    assert spec.columns is not None
    return pa.DataFrameSchema(
        {
            name: pa.Column(
                _PANDAS_DTYPES[column.dtype],
                checks=_checks(column),
                nullable=column.nullable,
                unique=column.unique,
                description=column.description,
                required=True,
            )
            for name, column in spec.columns.items()
        },
        strict="filter",
        ordered=False,
    )


def logical_types(schema: pa.DataFrameSchema) -> dict[str, str | None]:
    """Each column's logical type ('int64', 'timestamp', ...), or None where it is not known."""
    result: dict[str, str | None] = {}
    for name, column in schema.columns.items():
        dtype = str(column.dtype)
        result[name] = (
            "timestamp" if dtype.startswith("datetime64") else _LOGICAL_FROM_PANDERA.get(dtype)
        )
    return result


def coerce_column(values: pd.Series, logical: str) -> pd.Series:
    """Convert a column to a logical type; values that do not convert become null."""
    if logical == "string":
        return values.astype(pd.StringDtype())
    if logical in ("int32", "int64", "float32", "float64"):
        numbers = pd.Series(pd.to_numeric(values, errors="coerce"), index=values.index)
        if logical.startswith("float"):
            return numbers.astype(logical)
        whole = numbers.where(numbers.isna() | (numbers % 1 == 0))
        limit = 2**31 if logical == "int32" else 2**63
        whole = whole.where(whole.isna() | ((whole >= -limit) & (whole < limit)))
        return whole.astype("Int32" if logical == "int32" else "Int64")
    if logical == "boolean":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("boolean")
        text = values.astype("string").str.strip().str.lower()
        result = pd.Series(pd.NA, index=values.index, dtype="boolean")
        result[text.isin(_TRUE).fillna(False).astype(bool)] = True
        result[text.isin(_FALSE).fillna(False).astype(bool)] = False
        return result
    if logical in ("timestamp", "date"):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            stamps = values.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(values.dtype) or isinstance(
            values.dtype, pd.ArrowDtype
        ):
            stamps = pd.to_datetime(values, utc=True, errors="coerce")
        else:
            stamps = pd.to_datetime(
                values.astype("string"), utc=True, errors="coerce", format="ISO8601"
            )
        if logical == "date":
            return stamps.dt.date.astype(pd.ArrowDtype(arrow.date32()))
        return stamps.astype(pd.DatetimeTZDtype("us", "UTC"))
    raise ValueError(f"unknown logical type {logical!r}")


@dataclass
class Failure:
    """One offending value: which rule, which column, where."""

    column: str
    check: str
    value: Any
    object: str
    row: int | None


@dataclass
class ValidationSummary:
    """Failures of a whole window, counted per column and rule, with a sample."""

    rows_checked: int = 0
    rows_failed: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    sample: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every row passed every rule."""
        return not self.counts

    def add(self, failure: Failure, count: int = 1) -> None:
        """Record ``count`` failures of one rule; keep the first ones as a sample."""
        self.counts[(failure.column, failure.check)] += count
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(failure)

    def per_column(self) -> dict[str, int]:
        """Failures per column (a row failing two rules of a column counts twice)."""
        totals: Counter[str] = Counter()
        for (column, _), count in self.counts.items():
            totals[column] += count
        return dict(sorted(totals.items()))

    def describe(self, limit: int = 5) -> str:
        """A short human summary: the most frequent failures first."""
        parts = [
            f"{column}: {count} x {check}"
            for (column, check), count in self.counts.most_common(limit)
        ]
        more = len(self.counts) - limit
        return "; ".join(parts) + (f"; and {more} more rules" if more > 0 else "")


class BatchValidator:
    """Coerces and validates batches against a dataset's schema.

    Args:
        schema: The dataset's pandera schema.
    """

    def __init__(self, schema: pa.DataFrameSchema) -> None:
        self.unique_columns = [name for name, col in schema.columns.items() if col.unique]
        # Uniqueness is checked over the whole window; coercion to the schema's own dtypes is a
        # no-op for inline schemas and maps a model's dtypes (e.g. pa.Date) after ours.
        self.schema = schema.update_columns(
            {name: {"unique": False, "coerce": True} for name in schema.columns}
        )
        self.logical = logical_types(schema)
        self.arrow_schema = arrow.schema(
            [
                arrow.field(name, ARROW_TYPES[logical] if logical else arrow.null())
                for name, logical in self.logical.items()
            ]
        )

    def validate(
        self,
        batch: arrow.RecordBatch,
        *,
        object_uri: str,
        first_row: int,
        summary: ValidationSummary,
    ) -> arrow.RecordBatch | None:
        """Validate one batch; record failures in ``summary``.

        Returns:
            The batch coerced to the declared types (declared columns only, in declared order),
            or None when any row failed.
        """
        frame = batch.to_pandas(types_mapper=_string_mapper)
        summary.rows_checked += len(frame)
        failed_rows: set[int] = set()
        coerced_away: set[tuple[str, int]] = set()
        for name, logical in self.logical.items():
            if logical is None or name not in frame.columns:
                continue
            original = frame[name]
            converted = coerce_column(original, logical)
            lost = converted.isna() & original.notna()
            for index in lost[lost].index:
                coerced_away.add((name, int(index)))
                failed_rows.add(int(index))
                summary.add(
                    Failure(
                        name,
                        f"coerce_dtype('{logical}')",
                        original[index],
                        object_uri,
                        first_row + int(index),
                    ),
                )
            frame[name] = converted
        try:
            frame = self.schema.validate(frame, lazy=True)
        except SchemaErrors as errors:
            self._record(
                errors.failure_cases,
                coerced_away,
                failed_rows,
                len(frame),
                object_uri,
                first_row,
                summary,
            )
        except SchemaError as error:  # a schema-level problem, e.g. a dataframe check
            summary.add(Failure("<table>", str(error.check), None, object_uri, None))
            failed_rows.update(range(len(frame)))
        summary.rows_failed += len(failed_rows)
        if failed_rows or not summary.passed:
            return None
        return arrow.RecordBatch.from_pandas(
            frame[list(self.logical)], schema=self._output_schema(frame), preserve_index=False
        )

    def _output_schema(self, frame: pd.DataFrame) -> arrow.Schema:
        return arrow.schema(
            [
                arrow.field(name, ARROW_TYPES[logical])
                if logical
                else arrow.field(name, arrow.Array.from_pandas(frame[name]).type)
                for name, logical in self.logical.items()
            ]
        )

    @staticmethod
    def _record(
        cases: pd.DataFrame,
        coerced_away: set[tuple[str, int]],
        failed_rows: set[int],
        batch_rows: int,
        object_uri: str,
        first_row: int,
        summary: ValidationSummary,
    ) -> None:
        for case in cases.to_dict("records"):
            column = "<table>" if case["column"] is None else str(case["column"])
            index = None if case["index"] is None or pd.isna(case["index"]) else int(case["index"])
            if index is not None and (column, index) in coerced_away:
                continue  # already reported as a value that does not convert
            check = str(case["check"])
            if check == "column_in_dataframe":
                column = str(case["failure_case"])
                check = "column missing"
            if index is None:
                failed_rows.update(range(batch_rows))
            else:
                failed_rows.add(index)
            summary.add(
                Failure(
                    column,
                    check,
                    _plain(case["failure_case"]),
                    object_uri,
                    None if index is None else first_row + index,
                )
            )


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _string_mapper(dtype: arrow.DataType) -> Any:
    return (
        pd.StringDtype()
        if arrow.types.is_string(dtype) or arrow.types.is_large_string(dtype)
        else None
    )

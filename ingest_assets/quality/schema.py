"""Validation of record batches against a dataset's declared schema.

An inline schema whose rules are all built in is judged in Arrow (``arrow_rules``), on the batch
as read. Otherwise (custom rules, a pandera ``DataFrameModel``) the schema becomes one
``pandera.DataFrameSchema``: each batch is coerced to the declared types with vectorised pandas
conversions, then validated lazily, so that every failure of the batch is collected. Both paths
give the same outcome: values that do not convert fail the ``dtype`` rule like any other rule,
each failure names its rule as the YAML declares it (``ge: 0``, ``dtype: int64``), and rows
carry their file line. Uniqueness is checked over the whole window after staging, not per batch.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.compute as arrow_compute
import yaml
from pandera.errors import SchemaError, SchemaErrors

from ingest_assets.quality.arrow_rules import as_series, compile_rules, judge, parse_stamps
from ingest_assets.quality.masking import mask_values, value_shape
from ingest_assets.sources.base import Origins
from ingest_assets.spec import (
    RESERVED_PREFIX,
    ColumnChecks,
    Mask,
    QualitySpec,
    SchemaSpec,
    Severity,
    load_check,
    load_model,
)

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


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"


def custom_check(reference: str) -> pa.Check:
    """A custom rule by reference, as a pandera Check (a function is wrapped in one)."""
    obj = load_check(reference)
    if isinstance(obj, pa.Check):
        return obj
    return pa.Check(obj, name=reference.partition(":")[2])


def _checks(group: ColumnChecks) -> list[pa.Check]:
    """A column's rule group as pandera checks, each failing under its YAML name (``ge: 0``)."""
    checks: list[pa.Check] = []
    builtin = {
        "ge": pa.Check.ge, "gt": pa.Check.gt, "le": pa.Check.le, "lt": pa.Check.lt,
        "isin": pa.Check.isin, "notin": pa.Check.notin, "regex": pa.Check.str_matches,
    }  # fmt: skip
    for name, make in builtin.items():
        value = getattr(group, name)
        if value is not None:
            checks.append(make(value, name=name, error=rule_name(name, value)))
    if group.email:
        checks.append(
            pa.Check(
                lambda values: values.str.fullmatch(EMAIL_PATTERN),
                name="email",
                error=rule_name("email", True),
            )
        )
    if group.str_length is not None:
        bounds = group.str_length.model_dump(exclude_none=True)
        checks.append(
            pa.Check.str_length(
                group.str_length.min,
                group.str_length.max,
                name="str_length",
                error=rule_name("str_length", bounds),
            )
        )
    checks.extend(custom_check(reference) for reference in group.custom)
    return checks


def rule_name(key: str, value: Any) -> str:
    """A rule as the YAML declares it: ``ge: 0``, ``isin: [EUR, USD]``, ``dtype: int64``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    shown = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    shown = shown.removesuffix("...").strip()
    return f"{key}: {shown if len(shown) <= 80 else shown[:77] + '...'}"


#: pandera's names of the rules it checks itself, as the YAML declares them.
_PANDERA_RULES = {"not_nullable": "nullable: false", "field_uniqueness": "unique: true"}


def build_rule_schemas(
    spec: SchemaSpec, quality: QualitySpec | None = None
) -> dict[Severity, pa.DataFrameSchema | None]:
    """The pandera schemas of a dataset, one per severity (None where it has no rules).

    The ``error`` schema carries the declared types; the ``warn`` schema only rules. Extra columns
    are dropped, not failed (drift is judged separately).
    """
    frame_checks: dict[Severity, list[pa.Check]] = {"error": [], "warn": []}
    if quality is not None:
        frame_checks[quality.custom_severity] = [custom_check(r) for r in quality.custom]
    if spec.model is not None:
        model_schema = load_model(spec.model).to_schema()
        model_schema = copy.copy(model_schema)
        model_schema.checks = [*model_schema.checks, *frame_checks["error"]]
        warn = frame_checks["warn"]
        return {
            "error": model_schema,
            "warn": pa.DataFrameSchema({}, checks=warn) if warn else None,
        }
    assert spec.columns is not None
    columns: dict[Severity, dict[str, pa.Column]] = {"error": {}, "warn": {}}
    for name, column in spec.columns.items():
        for severity in ("error", "warn"):
            groups = [g for g in column.rule_groups if (g.severity or column.severity) == severity]
            not_null = any(g.not_null for g in groups) or (
                not column.nullable and column.severity == severity
            )
            checks = [check for group in groups for check in _checks(group)]
            if severity == "warn" and not (checks or not_null):
                continue
            columns[severity][name] = pa.Column(
                _PANDAS_DTYPES[column.dtype] if severity == "error" else None,
                checks=checks,
                nullable=not not_null,
                unique=column.unique if severity == "error" else False,
                description=column.description,
                required=severity == "error",
            )
    return {
        "error": pa.DataFrameSchema(
            columns["error"], checks=frame_checks["error"], strict="filter", ordered=False
        ),
        "warn": pa.DataFrameSchema(columns["warn"], checks=frame_checks["warn"], ordered=False)
        if columns["warn"] or frame_checks["warn"]
        else None,
    }


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
        if pd.api.types.is_bool_dtype(values.dtype):  # true/false is not a number
            missing = numpy.nan if logical.startswith("float") else pd.NA
            return pd.Series(missing, index=values.index, dtype=_PANDAS_DTYPES[logical])
        numbers = pd.Series(pd.to_numeric(values, errors="coerce"), index=values.index)
        if logical.startswith("float"):
            return numbers.astype(logical)
        return _whole(values, numbers, 32 if logical == "int32" else 64)
    if logical == "boolean":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("boolean")
        text = values.astype("string").str.strip().str.lower()
        result = pd.Series(pd.NA, index=values.index, dtype="boolean")
        result[text.isin(_TRUE).fillna(False).astype(bool)] = True
        result[text.isin(_FALSE).fillna(False).astype(bool)] = False
        return result
    if logical in ("timestamp", "date"):
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            # A number is not a moment (pandas would read it as nanoseconds since 1970).
            return pd.Series(pd.NA, index=values.index, dtype=_PANDAS_DTYPES[logical])
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
        # Years 1 to 9999 only (ISO 8601's "-5" or "+12026" parse as years, but no warehouse
        # or Python datetime holds them).
        years = stamps.dt.year
        stamps = stamps.where((years >= 1) & (years <= 9999))
        if logical == "date":  # by Arrow: it knows years before 1 and after 9999
            days = arrow.Array.from_pandas(stamps).cast(arrow.date32())
            return pd.Series(pd.arrays.ArrowExtensionArray(days), index=values.index)
        return stamps.astype(pd.DatetimeTZDtype("us", "UTC"))
    raise ValueError(f"unknown logical type {logical!r}")


def _whole(values: pd.Series, numbers: pd.Series, bits: int) -> pd.Series:
    """Numbers as nullable integers of ``bits``; fractions and values out of range become null.

    Integers stay exact: text beyond 2**53 (where floats lose digits) is parsed as an integer.
    """
    dtype = "Int32" if bits == 32 else "Int64"
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if pd.api.types.is_integer_dtype(numbers.dtype):
        unsigned = pd.api.types.is_unsigned_integer_dtype(numbers.dtype)
        inside = numbers <= numpy.uint64(high) if unsigned else (numbers >= low) & (numbers <= high)
        if bool(inside.all()):
            return numbers.astype(dtype)
        return numbers.astype("UInt64" if unsigned else "Int64").where(inside).astype(dtype)
    floats = numbers.astype("float64")
    whole = floats.notna() & (floats % 1 == 0) & (floats >= float(low))
    # Below 2**53 a float holds every integer exactly; above it the text is parsed again.
    small = whole & (floats.abs() < 2.0**53) & (floats <= float(high))
    result = floats.where(small).astype("Float64").astype("Int64")
    big = whole & ~small & (floats <= 2.0**63)
    for position in numpy.flatnonzero(big.to_numpy(dtype=bool)).tolist():
        try:
            exact = int(str(values.iloc[position]).strip())
        except ValueError:  # e.g. '1e18': the float's value is the value
            exact = int(float(floats.iloc[position]))
        if low <= exact <= high:
            result.iloc[position] = exact
    return result.astype(dtype)


@dataclass
class Failure:
    """One offending value: which rule, which column, where, and how severe."""

    column: str
    check: str
    value: Any
    object: str
    row: int | None
    severity: Severity = "error"


@dataclass
class DriftReport:
    """How the source's columns differ from the declared ones, over a whole window.

    Attributes:
        added: Columns the source has and the schema does not, with their source type.
        removed: Declared columns missing from at least one batch of the source.
        retyped: Declared columns whose source type cannot hold the declared type's values,
            as ``(declared, found)``.
        reserved: Source columns named with the prefix of the columns the load adds
            (``_ingest_``); they are never loaded, whatever the policy.
    """

    added: dict[str, str] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    retyped: dict[str, tuple[str, str]] = field(default_factory=dict)
    reserved: set[str] = field(default_factory=set)

    @property
    def drifted(self) -> bool:
        """Whether the source differs from the declaration at all."""
        return bool(self.added or self.removed or self.retyped or self.reserved)

    def observe(self, schema: arrow.Schema, declared: dict[str, str | None]) -> None:
        """Compare one batch's Arrow schema with the declared logical types."""
        names = set(schema.names)
        for name in declared:
            if name not in names:
                self.removed.add(name)
        for source_field in schema:
            logical = declared.get(source_field.name, "")
            if source_field.name.startswith(RESERVED_PREFIX):
                self.reserved.add(source_field.name)
            elif source_field.name not in declared:
                if self.added.get(source_field.name, "null") == "null":
                    self.added[source_field.name] = str(source_field.type)
            elif logical and not _compatible(logical, source_field.type):
                self.retyped[source_field.name] = (logical, str(source_field.type))


def type_family(dtype: arrow.DataType) -> str | None:
    """The family of a source's Arrow type: integer, float, boolean, timestamp or date.

    None for text or nulls, which any declared type may be parsed from.
    """
    if (
        arrow.types.is_null(dtype)
        or arrow.types.is_string(dtype)
        or arrow.types.is_large_string(dtype)
    ):
        return None  # text or nothing: any declared type may be parsed from it
    if arrow.types.is_integer(dtype):
        return "integer"
    if arrow.types.is_floating(dtype) or arrow.types.is_decimal(dtype):
        return "float"
    if arrow.types.is_boolean(dtype):
        return "boolean"
    if arrow.types.is_timestamp(dtype):
        return "timestamp"
    if arrow.types.is_date(dtype):
        return "date"
    return str(dtype)


_ACCEPTS = {
    "string": {"integer", "float", "boolean", "timestamp", "date"},
    "int32": {"integer"},
    "int64": {"integer"},
    "float32": {"integer", "float"},
    "float64": {"integer", "float"},
    "boolean": {"boolean"},
    "date": {"date", "timestamp"},
    "timestamp": {"timestamp", "date"},
}


def _compatible(logical: str, dtype: arrow.DataType) -> bool:
    family = type_family(dtype)
    return family is None or family in _ACCEPTS.get(logical, {family})


@dataclass
class ValidationSummary:
    """Failures of a whole window, counted per column and rule, with a sample.

    Attributes:
        rows_checked: Rows validated.
        rows_failed: Rows that broke an error rule (any of them fails the window).
        rows_rejected: Rows that broke only warn rules: quarantined, not loaded.
        counts: Error failures per (column, rule).
        warn_counts: Warn failures per (column, rule).
        sample: The first failures, error and warn.
        drift: The source's columns against the declared ones.
        every: When a list is given, every failure with the index of its row in the batch (-1:
            the whole batch), for callers that answer per row (the ingest API).
    """

    rows_checked: int = 0
    rows_failed: int = 0
    rows_rejected: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    warn_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    sample: list[Failure] = field(default_factory=list)
    drift: DriftReport = field(default_factory=DriftReport)
    every: list[tuple[int, Failure]] | None = None

    @property
    def passed(self) -> bool:
        """Whether no row broke an error rule."""
        return not self.counts

    def add(self, failure: Failure, count: int = 1) -> None:
        """Record ``count`` failures of one rule; keep the first ones as a sample."""
        counts = self.counts if failure.severity == "error" else self.warn_counts
        counts[(failure.column, failure.check)] += count
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(failure)

    def by_rule(self, severity: Severity | None = "error") -> Counter[tuple[str, str]]:
        """Failures per (column, rule) of one severity, or of both (``None``)."""
        if severity is None:
            return self.counts + self.warn_counts
        return self.counts if severity == "error" else self.warn_counts

    def per_column(self, severity: Severity | None = "error") -> dict[str, int]:
        """Failures per column (a row failing two rules of a column counts twice)."""
        totals: Counter[str] = Counter()
        for (column, _), count in self.by_rule(severity).items():
            totals[column] += count
        return dict(sorted(totals.items()))

    def describe(self, limit: int = 5, severity: Severity = "error") -> str:
        """A short human summary: the most frequent failures first."""
        counts = self.by_rule(severity)
        parts = [
            f"{column} ({check}) x {count}" for (column, check), count in counts.most_common(limit)
        ]
        more = len(counts) - limit
        return "; ".join(parts) + (f"; and {more} more rules" if more > 0 else "")


#: Columns of the quarantine table besides the declared ones (which are kept as text).
REJECT_COLUMNS = [
    "_ingest_column",
    "_ingest_rule",
    "_ingest_value",
    "_ingest_object",
    "_ingest_row",
]


@dataclass
class Validated:
    """One batch after validation.

    Attributes:
        good: Rows that passed every rule, coerced and masked (None when none did). When other
            rows broke an error rule the window will not load; its good rows are still staged
            for the window-wide checks.
        rejected: One row per warn failure of a quarantined row: the row's declared columns as
            text (masked), then the column, rule, value, object and row number.
        kept: The positions in the batch of the good rows, when some rows were rejected
            (None: every row is good).
    """

    good: arrow.RecordBatch | None
    rejected: arrow.RecordBatch | None
    kept: arrow.Array | None = None


class BatchValidator:
    """Coerces, validates and masks batches against a dataset's rules.

    Args:
        schema: The dataset's schema declaration.
        quality: Its dataset-wide rules (drift policy, custom rules); default: the defaults.
        salt: The salt of hash masking (needed when a column is masked with ``hash``).
        in_arrow: Judge built-in rules in Arrow (default); False keeps every rule with pandera,
            the reference the Arrow path is tested against.
    """

    def __init__(
        self,
        schema: SchemaSpec,
        quality: QualitySpec | None = None,
        *,
        salt: str | None = None,
        in_arrow: bool = True,
    ) -> None:
        self.quality = quality or QualitySpec()
        schemas = build_rule_schemas(schema, self.quality)
        error_schema = schemas["error"]
        assert error_schema is not None
        self.unique_columns = [name for name, col in error_schema.columns.items() if col.unique]
        self.logical = logical_types(error_schema)
        # Uniqueness is checked over the whole window. Inline columns are already coerced to
        # their declared types (failures reported per value), so pandera need not check or
        # coerce dtypes again; a model's own dtypes (e.g. pa.Date) are applied after ours.
        inline = self.inline = schema.columns is not None
        self.error_schema = error_schema.update_columns(
            {
                name: {"unique": False, "coerce": not inline, **({"dtype": None} if inline else {})}
                for name in error_schema.columns
            }
        )
        self.warn_schema = schemas["warn"]
        declared = schema.columns or {}
        self.severity: dict[str, Severity] = {
            name: declared[name].severity if name in declared else "error" for name in self.logical
        }
        self.masks: dict[str, Mask] = {
            name: column.mask for name, column in declared.items() if column.mask is not None
        }
        self.salt = salt
        self.arrow_schema = arrow.schema(
            [
                arrow.field(
                    name,
                    arrow.string()
                    if name in self.masks
                    else ARROW_TYPES[logical]
                    if logical
                    else arrow.null(),
                )
                for name, logical in self.logical.items()
            ]
        )
        # Inline rules that are all built in are judged in Arrow; the rest by pandera.
        self.compiled = (
            compile_rules(schema, self.quality, rule_name) if inline and in_arrow else None
        )
        self.targets: dict[str, tuple[str, arrow.DataType, Severity]] = {
            name: (logical, ARROW_TYPES[logical], self.severity[name])
            for name, logical in self.logical.items()
            if logical is not None
        }
        self.rejected_schema = arrow.schema(
            [arrow.field(name, arrow.string()) for name in self.logical]
            + [arrow.field(name, arrow.string()) for name in REJECT_COLUMNS[:-1]]
            + [arrow.field("_ingest_row", arrow.int64())]
        )

    def validate(
        self, batch: arrow.RecordBatch, *, origins: Origins, summary: ValidationSummary
    ) -> Validated:
        """Validate one batch; record failures and drift in ``summary``.

        Args:
            batch: The rows, as read.
            origins: Where each row came from (object and row number, for failures).
            summary: The window's summary, which gathers the failures of all its batches.

        Returns:
            The good rows, coerced to the declared types (declared columns in declared order,
            then the source's new columns when the drift policy is ``evolve``), and the rows
            warn rules rejected.
        """
        batch, undecodable = _decoded(batch)
        summary.drift.observe(batch.schema, self.logical)
        if self.compiled is not None:
            return self._validate_in_arrow(batch, undecodable, origins, summary)
        frame = batch.to_pandas(types_mapper=_string_mapper)
        summary.rows_checked += len(frame)
        present = set(batch.schema.names)
        for name in self.logical:
            if name not in present:
                frame[name] = pd.Series(pd.NA, index=frame.index, dtype=pd.StringDtype())
        raw = frame[list(self.logical)].copy()
        failures = self._encoding_failures(undecodable, origins)
        coerced_away = {(name, index) for name, index, _ in undecodable}
        self._coerce(frame, batch, origins, failures, coerced_away)
        # Rules run on the rows whose values all converted: a value that did not convert is
        # already a failure, and a frame-level rule would see a null where the row had a value.
        # (A model's schema coerces the frame it returns, so it sees every row.)
        unconverted = sorted({index for _, index in coerced_away})
        checked = frame.drop(index=unconverted) if unconverted and self.inline else frame
        validated = self._run(self.error_schema, checked, "error", coerced_away, failures, origins)
        if checked is frame:
            frame = validated
        if self.warn_schema is not None:
            self._run(self.warn_schema, checked, "warn", coerced_away, failures, origins)
        failures, error_rows, rejected_rows = self._tally(failures, len(frame), summary)
        rejected = self._rejected(
            lambda indices: {name: _text(raw[name].iloc[indices]) for name in raw.columns},
            failures,
            rejected_rows,
            origins,
        )
        # Rows that passed are staged even when others broke an error rule (the window will not
        # load), so that the window's uniqueness and key checks still report what they find.
        return self._good(batch, frame, rejected_rows | error_rows, rejected, summary)

    def _tally(
        self, failures: list[tuple[int, Failure]], rows: int, summary: ValidationSummary
    ) -> tuple[list[tuple[int, Failure]], set[int], set[int]]:
        """Record a batch's failures in ``summary``.

        Returns:
            The failures (masked), the rows that broke an error rule, and the rows only warn
            rules rejected.
        """
        error_rows = {row for row, failure in failures if failure.severity == "error"}
        if -1 in error_rows:
            error_rows = set(range(rows))
        warn_rows = {row for row, failure in failures if failure.severity == "warn"}
        if -1 in warn_rows:
            warn_rows = set(range(rows))
        rejected_rows = warn_rows - error_rows
        # Values of masked columns are masked once, before any of them is kept anywhere.
        failures = [(row, self._masked_failure(failure)) for row, failure in failures]
        for _, failure in failures:
            summary.add(failure)
        if summary.every is not None:
            summary.every.extend(failures)
        summary.rows_failed += len(error_rows)
        summary.rows_rejected += len(rejected_rows)
        return failures, error_rows, rejected_rows

    def _validate_in_arrow(
        self,
        batch: arrow.RecordBatch,
        undecodable: list[tuple[str, int, str]],
        origins: Origins,
        summary: ValidationSummary,
    ) -> Validated:
        """Validate a batch with the rules compiled to Arrow (no pandas round trip)."""
        assert self.compiled is not None
        rows = batch.num_rows
        summary.rows_checked += rows
        present = set(batch.schema.names)
        columns = {
            name: batch.column(name) if name in present else arrow.nulls(rows, arrow.string())
            for name in self.logical
        }
        failures = self._encoding_failures(undecodable, origins)
        unreadable = numpy.zeros(rows, dtype=bool)
        unreadable[[index for _, index, _ in undecodable]] = True
        judged = judge(
            columns,
            self.targets,
            self.compiled,
            unreadable,
            _pandas_conversion,
            lambda logical: rule_name("dtype", logical),
        )
        for index, column, rule, value, severity in judged.failures:
            obj, row = origins.locate(index)
            failures.append((index, Failure(column, rule, value, obj, row, severity)))
        failures, error_rows, rejected_rows = self._tally(failures, rows, summary)
        rejected = self._rejected(
            lambda indices: _texts(columns, indices), failures, rejected_rows, origins
        )
        kept = _kept(rows, error_rows | rejected_rows)
        if kept is not None and not len(kept):
            return Validated(None, rejected)
        good = arrow.RecordBatch.from_arrays(
            [
                self._masked_column(name, values if kept is None else values.take(kept))
                for name, values in judged.values.items()
            ],
            schema=self.arrow_schema,
        )
        return Validated(self._evolved(batch, good, kept, summary), rejected, kept)

    def _encoding_failures(
        self, undecodable: list[tuple[str, int, str]], origins: Origins
    ) -> list[tuple[int, Failure]]:
        """A failure of ``encoding: utf-8`` per value that is not UTF-8."""
        failures: list[tuple[int, Failure]] = []
        for name, index, shown in undecodable:
            obj, row = origins.locate(index)
            severity = self.severity.get(name, "error")
            failures.append(
                (index, Failure(name, rule_name("encoding", "utf-8"), shown, obj, row, severity))
            )
        return failures

    def _masked_column(self, name: str, values: arrow.Array) -> arrow.Array:
        """A converted column, masked as text when the declaration masks it."""
        if name not in self.masks:
            return values
        logical = self.logical[name]
        assert logical is not None
        masked = self._masked_series(name, as_series(values, _PANDAS_DTYPES[logical]))
        return arrow.array(masked, arrow.string(), from_pandas=True)

    def _evolved(
        self,
        batch: arrow.RecordBatch,
        good: arrow.RecordBatch,
        kept: arrow.Array | None,
        summary: ValidationSummary,
    ) -> arrow.RecordBatch:
        """The good rows with the source's new columns, when the drift policy is ``evolve``."""
        if self.quality.drift == "evolve":
            for name in summary.drift.added:
                if name in batch.schema.names and name not in self.logical:
                    column = batch.column(name)
                    good = good.append_column(name, column if kept is None else column.take(kept))
        return good

    def _coerce(
        self,
        frame: pd.DataFrame,
        batch: arrow.RecordBatch,
        origins: Origins,
        failures: list[tuple[int, Failure]],
        coerced_away: set[tuple[str, int]],
    ) -> None:
        """Convert ``frame``'s columns to the declared types; values that do not convert fail."""
        for name, logical in self.logical.items():
            if logical is None:
                continue
            original = cast(pd.Series, frame[name])
            parsed = _parsed_stamps(batch, name) if logical == "timestamp" else None
            if parsed is not None:  # every value parsed: nothing to report
                frame[name] = parsed
                continue
            converted = coerce_column(original, logical)
            lost = (converted.isna() & original.notna()).to_numpy(dtype=bool)
            for index in original.index[lost]:
                coerced_away.add((name, int(index)))
                obj, row = origins.locate(int(index))
                failure = Failure(
                    name,
                    rule_name("dtype", logical),
                    _plain(original[index]),
                    obj,
                    row,
                    self.severity[name],
                )
                failures.append((int(index), failure))
            frame[name] = converted

    def _good(
        self,
        batch: arrow.RecordBatch,
        frame: pd.DataFrame,
        dropped: set[int],
        rejected: arrow.RecordBatch | None,
        summary: ValidationSummary,
    ) -> Validated:
        """The rows not dropped, masked, as Arrow (with new columns under ``evolve``)."""
        kept = _kept(len(frame), dropped)
        if kept is not None and not len(kept):
            return Validated(None, rejected)
        good_frame = frame if kept is None else frame.iloc[kept.to_numpy()]
        good = arrow.RecordBatch.from_pandas(
            self._mask(cast(pd.DataFrame, good_frame[list(self.logical)])),
            schema=self._output_schema(good_frame),
            preserve_index=False,
        )
        return Validated(self._evolved(batch, good, kept, summary), rejected, kept)

    def _run(
        self,
        schema: pa.DataFrameSchema,
        frame: pd.DataFrame,
        severity: Severity,
        coerced_away: set[tuple[str, int]],
        failures: list[tuple[int, Failure]],
        origins: Origins,
    ) -> pd.DataFrame:
        try:
            return schema.validate(frame, lazy=True)
        except SchemaErrors as errors:
            cases = errors.failure_cases
        except SchemaError as error:  # a schema-level problem, e.g. a dataframe check
            failure = Failure("<table>", str(error.check), None, origins.names, None, severity)
            failures.append((-1, failure))
            return frame
        table_rows: set[tuple[int | None, str]] = set()
        for case in cases.to_dict("records"):
            column = "<table>" if case["column"] is None else str(case["column"])
            index = None if case["index"] is None or pd.isna(case["index"]) else int(case["index"])
            if (
                case["schema_context"] == "DataFrameSchema"
                and case["check"] != "column_in_dataframe"
            ):
                # A frame-level rule: pandera lists each column of a failing row; report the row.
                if (index, str(case["check"])) in table_rows:
                    continue
                table_rows.add((index, str(case["check"])))
                column, case["failure_case"] = "<table>", None
            if index is not None and (column, index) in coerced_away:
                continue  # already reported as a value that does not convert
            check = _PANDERA_RULES.get(str(case["check"]), str(case["check"]))
            if check == "column_in_dataframe":
                column = str(case["failure_case"])
                check = "column missing"
            obj, row = (origins.names, None) if index is None else origins.locate(index)
            failure = Failure(column, check, _plain(case["failure_case"]), obj, row, severity)
            failures.append((-1 if index is None else index, failure))
        return frame

    def _masked_failure(self, failure: Failure) -> Failure:
        """A failure of a masked column shows the value's shape, never the value."""
        if failure.column in self.masks and failure.value is not None:
            return dataclasses.replace(failure, value=value_shape(str(failure.value)))
        return failure

    def _mask(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not self.masks:
            return frame
        frame = frame.copy()
        for name in self.masks:
            frame[name] = self._masked_series(name, cast(pd.Series, frame[name]))
        return frame

    def _masked_series(self, name: str, values: pd.Series) -> pd.Series:
        """A converted column's values masked, as text."""
        text = values if self.logical[name] == "string" else _as_text(values)
        return mask_values(text, self.masks[name], self.salt)

    def _rejected(
        self,
        text_of: Callable[[list[int]], dict[str, arrow.Array]],
        failures: list[tuple[int, Failure]],
        rows: set[int],
        origins: Origins,
    ) -> arrow.RecordBatch | None:
        """One quarantine row per warn failure of a rejected row (failures already masked).

        ``text_of`` gives the declared columns of rows (by position) as read, as text.
        """
        if not rows:
            return None
        picked = [
            (row, failure)
            for row, failure in failures
            if failure.severity == "warn" and (row in rows or row == -1)
        ]
        expanded = [
            (row, failure)
            for position, failure in picked
            for row in (sorted(rows) if position == -1 else [position])
        ]
        indices = [row for row, _ in expanded]
        text = text_of(indices)
        located = [origins.locate(row) for row in indices]
        columns = [
            *(self._masked_text(name, text[name]) for name in self.logical),
            arrow.array([failure.column for _, failure in expanded], arrow.string()),
            arrow.array([failure.check for _, failure in expanded], arrow.string()),
            arrow.array(
                [None if f.value is None else str(f.value) for _, f in expanded], arrow.string()
            ),
            arrow.array([obj for obj, _ in located], arrow.string()),
            arrow.array([row for _, row in located], arrow.int64()),
        ]
        return arrow.RecordBatch.from_arrays(columns, schema=self.rejected_schema)

    def _masked_text(self, name: str, text: arrow.Array) -> arrow.Array:
        """A column of text, masked when the declaration masks it."""
        if name not in self.masks:
            return text
        series = text.to_pandas(types_mapper=_string_mapper)
        return arrow.array(
            mask_values(series, self.masks[name], self.salt), arrow.string(), from_pandas=True
        )

    def _output_schema(self, frame: pd.DataFrame) -> arrow.Schema:
        return arrow.schema(
            [
                arrow.field(name, arrow.string())
                if name in self.masks
                else arrow.field(name, ARROW_TYPES[logical])
                if logical
                else arrow.field(name, arrow.Array.from_pandas(frame[name]).type)
                for name, logical in self.logical.items()
            ]
        )


def _decoded(batch: arrow.RecordBatch) -> tuple[arrow.RecordBatch, list[tuple[str, int, str]]]:
    """Text columns as valid UTF-8 strings; values that are not UTF-8 become null.

    Binary columns (a Parquet file's unannotated strings, text read as bytes because it is not
    UTF-8) are decoded; string columns are checked (a JSON parser may let bytes through that
    are not UTF-8). Returns the batch and, per value that is not UTF-8, its column, position and
    an escaped rendering to show.
    """
    failed: list[tuple[str, int, str]] = []
    for position, column in enumerate(batch.columns):
        kind = column.type
        if arrow.types.is_binary(kind) or arrow.types.is_large_binary(kind):
            binary = column
        elif arrow.types.is_string(kind) or arrow.types.is_large_string(kind):
            try:
                column.validate(full=True)
                continue
            except arrow.ArrowInvalid:
                binary = column.view(
                    arrow.binary() if arrow.types.is_string(kind) else arrow.large_binary()
                )
        else:
            continue
        try:
            text = binary.cast(arrow.string())
        except arrow.ArrowInvalid:
            values = []
            for index, value in enumerate(binary.to_pylist()):
                try:
                    values.append(None if value is None else value.decode("utf-8"))
                except UnicodeDecodeError:
                    values.append(None)
                    failed.append((batch.schema.names[position], index, repr(value)[2:-1]))
            text = arrow.array(values, arrow.string())
        batch = batch.set_column(position, batch.schema.names[position], text)
    return batch, failed


def _pandas_conversion(values: arrow.Array, logical: str) -> tuple[arrow.Array, numpy.ndarray]:
    """A column converted by pandas (where Arrow cannot tell): values and a mask of those lost."""
    original = values.to_pandas(types_mapper=_string_mapper)
    converted = coerce_column(original, logical)
    lost = (converted.isna() & original.notna()).to_numpy(dtype=bool)
    return arrow.Array.from_pandas(converted, type=ARROW_TYPES[logical]), lost


def _parsed_stamps(batch: arrow.RecordBatch, name: str) -> pd.Series | None:
    """A text column of ISO 8601 timestamps parsed by Arrow, when every value parses.

    Arrow parses in C++ an order of magnitude faster than pandas. Values with an offset are
    converted to UTC, values without one are taken as UTC (as the pandas path does). When any
    value does not parse (or offsets and no offsets are mixed), None: the pandas path then
    reports each value that does not convert.
    """
    if name not in batch.schema.names:
        return None
    column = batch.column(name)
    if not (arrow.types.is_string(column.type) or arrow.types.is_large_string(column.type)):
        return None
    parsed = parse_stamps(column)
    if parsed is None or parsed[1].any():  # some value did not parse, or is out of range
        return None
    return parsed[0].to_pandas().astype(pd.DatetimeTZDtype("us", "UTC"))


def _kept(rows: int, dropped: set[int]) -> arrow.Array | None:
    """Positions of the rows that stay when some were dropped (None: every row stays)."""
    if not dropped:
        return None
    keep = numpy.setdiff1d(numpy.arange(rows), numpy.fromiter(dropped, int))
    return arrow.array(keep, arrow.int64())


def _text(values: pd.Series) -> arrow.Array:
    """A column of the pandas path as read, as text (Arrow)."""
    text = values if isinstance(values.dtype, pd.StringDtype) else _as_text(values)
    return arrow.array(text, arrow.string(), from_pandas=True)


def _texts(columns: dict[str, arrow.Array], indices: list[int]) -> dict[str, arrow.Array]:
    """Rows of columns as read, as text: as the pandas path shows them, text kept as it is."""
    positions = arrow.array(indices, arrow.int64())
    texts: dict[str, arrow.Array] = {}
    for name, column in columns.items():
        taken = column.take(positions)
        texts[name] = _arrow_text(taken)
        if texts[name] is None:
            texts[name] = _text(taken.to_pandas(types_mapper=_string_mapper))
    return texts


def _arrow_text(values: arrow.Array) -> arrow.Array | None:
    """Values rendered in Arrow exactly as the pandas path shows them; None where it differs."""
    kind = values.type
    if (
        arrow.types.is_string(kind)
        or arrow.types.is_large_string(kind)
        or arrow.types.is_integer(kind)
        or arrow.types.is_date32(kind)
    ):
        return values.cast(arrow.string())
    if arrow.types.is_boolean(kind):
        return _compute.if_else(values, "True", "False")
    if kind == _UTC_MICROS:
        years = _compute.min(_compute.year(values)).as_py()
        if years is None or years >= 1000:  # pandas writes years before 1000 unpadded
            return _compute.strftime(values, format="%Y-%m-%dT%H:%M:%S%z")
    return None


#: Arrow's compute functions (generated at import, so typed loosely).
_compute: Any = arrow_compute
_UTC_MICROS = arrow.timestamp("us", tz="UTC")


def _as_text(values: pd.Series) -> pd.Series:
    """Values as text, as they would be shown (nulls stay null)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        text = values.dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
        return text.astype(pd.StringDtype())
    return values.astype(pd.StringDtype())


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value


_NULLABLE_INTEGERS = {
    arrow.int8(): pd.Int8Dtype(),
    arrow.int16(): pd.Int16Dtype(),
    arrow.int32(): pd.Int32Dtype(),
    arrow.int64(): pd.Int64Dtype(),
    arrow.uint8(): pd.UInt8Dtype(),
    arrow.uint16(): pd.UInt16Dtype(),
    arrow.uint32(): pd.UInt32Dtype(),
    arrow.uint64(): pd.UInt64Dtype(),
}


def _string_mapper(dtype: arrow.DataType) -> Any:
    """The dtypes that keep values as read: text as strings, integers exact beside nulls."""
    if arrow.types.is_string(dtype) or arrow.types.is_large_string(dtype):
        return pd.StringDtype()
    return _NULLABLE_INTEGERS.get(dtype)

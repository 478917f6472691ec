"""Declared rules compiled to Arrow compute: coercion and value rules without pandas.

An inline schema whose rules are all built in (types, nulls, bounds, sets, lengths, regex, email)
is validated here, on the batch's own Arrow arrays. The outcome is the pandas path's, value for
value: the same conversions (a value that does not convert fails ``dtype: ...``), the same rows
judged (a row with a value that did not convert is not judged by the other rules), the same
failures in the same order. Where Arrow would judge a value differently from pandas (text with
spaces around a number, a signed ``+5``, ``nan`` spelled as text, a source type Arrow would cast
where pandas would not), the column falls back to the pandas conversion, so equal inputs always
give equal outcomes. Schemas with custom rules or a ``DataFrameModel`` keep the pandas path.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy
import pandas as pd
import pyarrow as pa
import pyarrow.compute

from ingest_assets.spec import ColumnChecks, ColumnSpec, QualitySpec, SchemaSpec, Severity

#: Arrow's compute functions (generated at import, so unknown to a type checker).
pc: Any = pyarrow.compute
#: A rule over a column's converted values: a mask of the non-null values that break it.
Rule = Callable[[pa.Array], numpy.ndarray]

_BOUNDS = {
    "ge": pc.greater_equal,
    "gt": pc.greater,
    "le": pc.less_equal,
    "lt": pc.less,
}
_NUMERIC = {"int32", "int64", "float32", "float64"}
_TRUE = pa.array(["true", "t", "yes", "y", "1"])
_FALSE = pa.array(["false", "f", "no", "n", "0"])


def _python_whitespace() -> str:
    r"""Python's ``\s`` (what ``str`` patterns match) as an RE2 class body: RE2's is ASCII."""
    spaces = [c for c in range(sys.maxunicode + 1) if re.match(r"\s", chr(c))]
    return "".join(f"\\x{{{c:x}}}" for c in spaces)


_SPACE = _python_whitespace()
#: The email rule's pattern for RE2, matching what Python's ``fullmatch`` of EMAIL_PATTERN does.
EMAIL_RE2 = f"^[^@{_SPACE}]+@[^@{_SPACE}]+\\.[^@{_SPACE}.]{{2,}}$"
# Constructs whose meaning differs between Python's re and RE2 (Unicode classes, ``$`` before a
# final newline, lookarounds, backreferences): patterns using them are matched by Python's re.
_NOT_RE2 = re.compile(r"\\[dDwWsSbBZ0-9]|\$|\(\?[=!<]|\(\?P[=>]")


@dataclass(frozen=True)
class ColumnRules:
    """One column's rules of one severity, in the order the pandas path reports them.

    Attributes:
        name: The column.
        not_null: Whether nulls break a rule (``nullable: false``).
        rules: Each value rule's YAML name and its test.
    """

    name: str
    not_null: bool
    rules: list[tuple[str, Rule]]


def compile_rules(
    schema: SchemaSpec, quality: QualitySpec, rule_name: Callable[[str, object], str]
) -> dict[Severity, list[ColumnRules]] | None:
    """The schema's rules as Arrow tests per severity, or None when pandas must judge them.

    Args:
        schema: The declaration.
        quality: Its dataset-wide rules (custom ones keep the pandas path).
        rule_name: How a rule is named (``ge: 0``).
    """
    if schema.columns is None or quality.custom:
        return None
    compiled: dict[Severity, list[ColumnRules]] = {"error": [], "warn": []}
    for name, column in schema.columns.items():
        for severity in ("error", "warn"):
            groups = [g for g in column.rule_groups if (g.severity or column.severity) == severity]
            not_null = any(g.not_null for g in groups) or (
                not column.nullable and column.severity == severity
            )
            rules: list[tuple[str, Rule]] = []
            for group in groups:
                group_rules = _group_rules(group, column, rule_name)
                if group_rules is None:
                    return None
                rules.extend(group_rules)
            if rules or not_null:
                compiled[severity].append(ColumnRules(name, not_null, rules))
    return compiled


def _group_rules(
    group: ColumnChecks, column: ColumnSpec, rule_name: Callable[[str, object], str]
) -> list[tuple[str, Rule]] | None:
    """A rule group's tests, in the pandas path's order; None if one cannot be compiled."""
    if group.custom:
        return None
    rules: list[tuple[str, Rule]] = []
    for key, compare in _BOUNDS.items():
        bound = getattr(group, key)
        if bound is not None:
            if column.dtype not in _NUMERIC or column.dtype == "float32":
                return None  # numpy compares float32 in float32, Arrow in float64
            test = _integer_bound(key, bound) if column.dtype in ("int32", "int64") else None
            test = test or (lambda v, c=compare, b=bound: c(v, b))
            rules.append((rule_name(key, bound), _holds(test)))
    for key in ("isin", "notin"):
        values = getattr(group, key)
        if values is not None:
            value_set = _value_set(values, column.dtype)
            if value_set is None:
                return None
            rules.append((rule_name(key, values), _membership(value_set, key == "isin")))
    if group.regex is not None:
        rules.append((rule_name("regex", group.regex), _regex(group.regex)))
    if group.email:
        rules.append(
            (rule_name("email", True), _holds(lambda v: pc.match_substring_regex(v, EMAIL_RE2)))
        )
    if group.str_length is not None:
        low, high = group.str_length.min, group.str_length.max
        bounds = group.str_length.model_dump(exclude_none=True)
        rules.append((rule_name("str_length", bounds), _length(low, high)))
    return rules


def _integer_bound(key: str, bound: float) -> Callable[[pa.Array], pa.Array]:
    """A bound on integers compared as integers (Arrow refuses int64 beyond 2**53 as float).

    ``v >= 2.5`` is ``v >= 3`` for an integer, and so on; a bound past int64's range holds for
    every value or for none.
    """
    low, high = -(2**63), 2**63 - 1
    if key in ("ge", "gt"):
        least = math.floor(bound) + 1 if key == "gt" else math.ceil(bound)
        if least > high:
            return lambda v: pc.is_null(v)  # no value is that large: every value breaks it
        return lambda v: pc.greater_equal(v, pa.scalar(max(least, low), pa.int64()))
    most = math.ceil(bound) - 1 if key == "lt" else math.floor(bound)
    if most < low:
        return lambda v: pc.is_null(v)
    return lambda v: pc.less_equal(v, pa.scalar(min(most, high), pa.int64()))


def _holds(test: Callable[[pa.Array], pa.Array]) -> Rule:
    """A rule from a test that is true where a value holds (null where the value is null)."""

    def failing(values: pa.Array) -> numpy.ndarray:
        held = pc.fill_null(test(values), True)
        return pc.invert(held).to_numpy(zero_copy_only=False)

    return failing


def _membership(value_set: pa.Array, inside: bool) -> Rule:
    def failing(values: pa.Array) -> numpy.ndarray:
        found = pc.is_in(values, value_set=value_set)
        broken = pc.invert(found) if inside else found
        return pc.and_(broken, pc.is_valid(values)).to_numpy(zero_copy_only=False)

    return failing


def _value_set(values: list[str | int | float | bool], dtype: str) -> pa.Array | None:
    """The allowed (or forbidden) values as an array of the column's type.

    None when pandas would not compare them as equal values of that type (pandas then judges).
    """
    kinds = {type(value) for value in values}
    fits = {
        "string": {str},
        "int32": {int},
        "int64": {int},
        "float64": {int, float},
        "boolean": {bool},
    }.get(dtype)
    if fits is None or not kinds <= fits:
        return None
    arrow_type = {
        "string": pa.string(),
        "boolean": pa.bool_(),
        "int32": pa.int32(),
        "int64": pa.int64(),
    }.get(dtype, pa.float64())
    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, OverflowError):  # e.g. a value beyond int32: never equal
        return None


def _regex(pattern: str) -> Rule:
    """``regex``: each value matches from its start (Python's ``re.match``, as pandera does)."""
    if pattern.isascii() and not _NOT_RE2.search(pattern):
        try:
            anchored = f"^(?:{pattern})"
            pc.match_substring_regex(pa.array(["probe"]), anchored)
            return _holds(lambda v: pc.match_substring_regex(v, anchored))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # a construct RE2 does not know: Python's re judges
    compiled = re.compile(pattern)

    def failing(values: pa.Array) -> numpy.ndarray:
        return numpy.array(
            [value is not None and compiled.match(value) is None for value in values.to_pylist()],
            dtype=bool,
        )

    return failing


def _length(low: int | None, high: int | None) -> Rule:
    def test(values: pa.Array) -> pa.Array:
        lengths = pc.utf8_length(values)
        held = pa.array(numpy.ones(len(values), dtype=bool))
        if low is not None:
            held = pc.and_kleene(held, pc.greater_equal(lengths, low))
        if high is not None:
            held = pc.and_kleene(held, pc.less_equal(lengths, high))
        return held

    return _holds(test)


def null_mask(values: pa.Array) -> numpy.ndarray:
    """Where a column's values are null."""
    return pc.is_null(values).to_numpy(zero_copy_only=False)


def coerce_arrow(
    values: pa.Array, logical: str, target: pa.DataType
) -> tuple[pa.Array, numpy.ndarray] | None:
    """Convert a column to its declared type in Arrow, as the pandas conversion would.

    Returns the converted values and a mask of the values that did not convert (now null), or
    None when Arrow cannot tell (some value it would parse differently, a source type pandas
    treats otherwise): the pandas conversion then decides for this column.
    """
    source = values.type
    if pa.types.is_null(source):
        return pa.nulls(len(values), target), numpy.zeros(len(values), dtype=bool)
    text = pa.types.is_string(source) or pa.types.is_large_string(source)
    if logical == "boolean":
        return _booleans(values, text)
    if logical == "timestamp" and text:
        return parse_stamps(values)
    if not _arrow_converts(logical, source, text):
        return None
    try:
        converted = values.cast(target) if source != target else values
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if pa.types.is_timestamp(target) or pa.types.is_date(target):
        return _in_years(converted, target)
    if pa.types.is_floating(target):
        nan = pc.is_nan(converted)
        if text and pc.any(pc.invert(pc.is_finite(converted))).as_py():
            return None  # nan/inf spelled as text: pandas says which are numbers
        if pc.any(nan).as_py():  # a float source's NaN is a null, as pandas reads it
            converted = pc.if_else(nan, pa.scalar(None, target), converted)
    return converted, numpy.zeros(len(values), dtype=bool)


def _arrow_converts(logical: str, source: pa.DataType, text: bool) -> bool:
    """Whether Arrow's cast from ``source`` to ``logical`` matches the pandas conversion."""
    if logical == "string":
        return text
    if logical in ("int32", "int64"):
        return text or pa.types.is_integer(source) or pa.types.is_floating(source)
    if logical in ("float32", "float64"):
        return text or pa.types.is_integer(source) or pa.types.is_floating(source)
    if logical == "timestamp":
        return pa.types.is_timestamp(source) and source.unit != "ns"
    if logical == "date":
        return text or pa.types.is_date32(source)
    return False


def parse_stamps(values: pa.Array) -> tuple[pa.Array, numpy.ndarray] | None:
    """ISO 8601 text as UTC timestamps (no offset: taken as UTC), when every value parses."""
    utc = pa.timestamp("us", tz="UTC")
    for target in (utc, pa.timestamp("us")):
        try:
            stamps = values.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return _in_years(stamps.cast(utc), utc)
    return None


#: The moments a load keeps: years 1 to 9999, as Python's datetime and the warehouses hold.
_FIRST = datetime(1, 1, 1, tzinfo=UTC)
_END = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _in_years(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, numpy.ndarray]:
    """Moments outside years 1 to 9999 do not convert (they become null, and fail)."""
    if pa.types.is_date(target):
        first, end = pa.scalar(date(1, 1, 1), target), pa.scalar(date(9999, 12, 31), target)
    else:
        first, end = pa.scalar(_FIRST, target), pa.scalar(_END, target)
    outside = pc.fill_null(pc.or_(pc.less(values, first), pc.greater(values, end)), False)
    if not pc.any(outside).as_py():
        return values, numpy.zeros(len(values), dtype=bool)
    kept = pc.if_else(outside, pa.scalar(None, target), values)
    return kept, outside.to_numpy(zero_copy_only=False)


def _booleans(values: pa.Array, text: bool) -> tuple[pa.Array, numpy.ndarray] | None:
    """true/false words (any case, spaces around them) as booleans; others do not convert."""
    if pa.types.is_boolean(values.type):
        return values, numpy.zeros(len(values), dtype=bool)
    if not text:
        return None
    words = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    truth = pc.if_else(
        pc.is_in(words, value_set=_TRUE),
        True,
        pc.if_else(pc.is_in(words, value_set=_FALSE), False, pa.scalar(None, pa.bool_())),
    )
    lost = pc.and_(pc.is_null(truth), pc.is_valid(values))
    return truth, lost.to_numpy(zero_copy_only=False)


def as_series(values: pa.Array, dtype: Any) -> pd.Series:
    """Arrow values as the pandas Series the pandas path would hold (for masking)."""
    return pd.Series(values.to_pandas(types_mapper=lambda _: dtype), dtype=dtype)


#: How pandas converts a column when Arrow cannot tell: values and a mask of those lost.
Fallback = Callable[[pa.Array, str], tuple[pa.Array, numpy.ndarray]]


@dataclass
class Judged:
    """A batch converted and judged by its compiled rules.

    Attributes:
        values: Each declared column, converted to its declared type (nulls where a value did
            not convert).
        failures: Each broken rule: row position, column, rule, the value, severity; in the
            order the pandas path reports them (conversions by column, then error rules, then
            warn rules, each by column, rule and row).
    """

    values: dict[str, pa.Array]
    failures: list[tuple[int, str, str, object, Severity]]


def judge(
    columns: dict[str, pa.Array],
    targets: dict[str, tuple[str, pa.DataType, Severity]],
    compiled: dict[Severity, list[ColumnRules]],
    unreadable: numpy.ndarray,
    fallback: Fallback,
    dtype_rule: Callable[[str], str],
) -> Judged:
    """Convert and judge one batch's declared columns.

    Args:
        columns: Each declared column as read (an all-null column where the source lacks it).
        targets: Each declared column's logical type, Arrow type and severity.
        compiled: The rules, per severity.
        unreadable: Rows with a value that could not even be decoded (already reported).
        fallback: The pandas conversion, for columns Arrow cannot convert alike.
        dtype_rule: The name of the type rule of a logical type (``dtype: int64``).
    """
    failures: list[tuple[int, str, str, object, Severity]] = []
    values: dict[str, pa.Array] = {}
    unconverted = unreadable.copy()
    for name, (logical, target, severity) in targets.items():
        raw = columns[name]
        done = coerce_arrow(raw, logical, target)
        converted, lost = done if done is not None else fallback(raw, logical)
        if lost.any():
            positions = numpy.flatnonzero(lost)
            shown = raw.take(pa.array(positions)).to_pylist()
            failures.extend(
                (int(p), name, dtype_rule(logical), v, severity)
                for p, v in zip(positions, shown, strict=True)
            )
            unconverted |= lost
        values[name] = converted
    judged = ~unconverted  # rows with a value that did not convert are not judged further
    for severity in ("error", "warn"):
        for column in compiled[severity]:
            column_values = values[column.name]
            tests: list[tuple[str, numpy.ndarray]] = []
            if column.not_null:
                tests.append(("nullable: false", null_mask(column_values)))
            tests.extend((rule, test(column_values)) for rule, test in column.rules)
            for rule, broken in tests:
                broken = broken & judged
                if broken.any():
                    positions = numpy.flatnonzero(broken)
                    shown = column_values.take(pa.array(positions)).to_pylist()
                    failures.extend(
                        (int(p), column.name, rule, v, severity)
                        for p, v in zip(positions, shown, strict=True)
                    )
    return Judged(values, failures)

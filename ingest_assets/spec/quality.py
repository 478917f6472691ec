"""A dataset's declared columns and its quality gates."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from ingest_assets.spec.base import RESERVED_PREFIX, DType, Strict, check_identifier
from ingest_assets.spec.refs import import_reference, load_check


class StrLength(Strict):
    """Bounds on a string's length."""

    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _bounded(self) -> StrLength:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


Severity = Literal["error", "warn"]
Classification = Literal["pii", "secret"]
Mask = Literal["hash", "redact"]


def _check_references(value: list[str]) -> list[str]:
    for reference in value:
        load_check(reference)
    return value


#: Custom rules by reference, each imported when the declaration is validated.
CheckReferences = Annotated[list[str], AfterValidator(_check_references)]


class ColumnChecks(Strict):
    """A group of value rules for one column, all of one severity.

    Every rule given must hold for every non-null value. A rule of severity ``error`` fails the
    partition's schema check (nothing is written); a rule of severity ``warn`` moves the rows that
    break it to the quarantine table ``<table>__rejected`` and lets the other rows load.
    """

    severity: Severity | None = Field(
        default=None, description="error or warn (default: the column's severity)."
    )
    not_null: bool = Field(default=False, description="Values must not be null.")
    ge: float | None = Field(default=None, description="Greater than or equal to.")
    gt: float | None = Field(default=None, description="Greater than.")
    le: float | None = Field(default=None, description="Less than or equal to.")
    lt: float | None = Field(default=None, description="Less than.")
    isin: list[str | int | float | bool] | None = Field(default=None, description="Allowed values.")
    notin: list[str | int | float | bool] | None = Field(
        default=None, description="Forbidden values."
    )
    regex: str | None = Field(
        default=None, description="Regular expression every value must match."
    )
    email: bool = Field(default=False, description="Values must be email addresses.")
    str_length: StrLength | None = Field(default=None, description="Bounds on the string length.")
    custom: CheckReferences = Field(
        default_factory=list,
        description="Custom rules as 'package.module:name': a pandera Check, or a function "
        "taking the column (a pandas Series) and returning a boolean Series or bool.",
    )

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ColumnSpec(Strict):
    """One declared column."""

    dtype: DType = Field(description="Logical type; values are coerced to it.")
    nullable: bool = Field(default=True, description="Whether nulls are allowed.")
    unique: bool = Field(
        default=False, description="Whether values must be unique within a partition."
    )
    description: str | None = Field(default=None, description="What the column means.")
    severity: Severity = Field(
        default="error",
        description="Severity of the column's type and null rules, and the default of its "
        "checks: error fails the partition, warn quarantines the offending rows.",
    )
    checks: ColumnChecks | list[ColumnChecks] = Field(
        default_factory=lambda: ColumnChecks(),
        description="Value rules: one group, or a list of groups with their own severity.",
    )
    classification: Classification | None = Field(
        default=None, description="pii or secret: tagged in the column schema, maskable."
    )
    mask: Mask | None = Field(
        default=None,
        description="How the value is masked on load: hash (salted SHA-256, salt from "
        "quality.salt_env) or redact. Masked columns are stored as text.",
    )

    @property
    def rule_groups(self) -> list[ColumnChecks]:
        """The column's rule groups, as a list."""
        return self.checks if isinstance(self.checks, list) else [self.checks]

    @model_validator(mode="after")
    def _rules_fit(self) -> ColumnSpec:
        for group in self.rule_groups:
            text_rules = group.regex or group.email or group.str_length
            if text_rules and self.dtype != "string":
                raise ValueError("regex, email and str_length apply to string columns only")
            bounds = [group.ge, group.gt, group.le, group.lt]
            if any(b is not None for b in bounds) and self.dtype in ("string", "boolean"):
                raise ValueError(f"ge/gt/le/lt do not apply to a {self.dtype} column")
        if self.mask and not self.classification:
            raise ValueError("mask applies to a classified column: set classification too")
        return self


#: Validation context key: False skips importing DataFrameModels (and pandera) to check their
#: columns, for a quick listing; every load and check validates with it on.
IMPORT_MODELS = "import_models"


class SchemaSpec(Strict):
    """The columns a dataset must have: inline, or a pandera DataFrameModel by reference."""

    columns: dict[str, ColumnSpec] | None = Field(
        default=None, description="Inline column declarations, in load order."
    )
    model: str | None = Field(
        default=None, description="A pandera DataFrameModel as 'package.module:ClassName'."
    )

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, ColumnSpec] | None) -> dict[str, ColumnSpec] | None:
        if value is not None:
            if not value:
                raise ValueError("declare at least one column")
            for name in value:
                check_identifier(name, "column name")
                if name.startswith(RESERVED_PREFIX):
                    raise ValueError(f"column name {name!r}: the prefix _ingest_ is reserved")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (info.context or {}).get(IMPORT_MODELS, True):
            for name in load_model(value).to_schema().columns:
                check_identifier(str(name), f"{value}: column name")
                if str(name).startswith(RESERVED_PREFIX):
                    raise ValueError(f"{value}: column {name!r}: the prefix _ingest_ is reserved")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> SchemaSpec:
        if (self.columns is None) == (self.model is None):
            raise ValueError("give exactly one of 'columns' or 'model'")
        return self


def load_model(reference: str) -> Any:
    """Import a pandera DataFrameModel given as 'package.module:ClassName'.

    Raises:
        ValueError: the reference does not name an importable DataFrameModel.
    """
    from pandera.api.dataframe.model import DataFrameModel

    obj = import_reference(reference, "ClassName")
    if not (isinstance(obj, type) and issubclass(obj, DataFrameModel)):
        raise ValueError(f"{reference!r} is not a pandera DataFrameModel class")
    return obj


class RowCountRule(Strict):
    """Bounds on the rows a partition loads."""

    min: int | None = Field(default=None, description="Fewest rows a partition may load.")
    max: int | None = Field(default=None, description="Most rows a partition may load.")
    severity: Severity = Field(default="error", description="error blocks the load; warn reports.")


class VolumeRule(Strict):
    """The volume anomaly check: rows read against the trailing partitions (severity warn)."""

    trailing: int = Field(default=7, ge=1, description="How many earlier partitions to compare to.")
    min_history: int = Field(
        default=3, ge=1, description="Earlier loaded partitions needed before it judges."
    )
    min_ratio: float = Field(
        default=0.5, ge=0, description="Warn when rows read fall below this share of the median."
    )
    max_ratio: float | None = Field(
        default=3.0, description="Warn when rows read exceed this multiple of the median."
    )


class DedupSpec(Strict):
    """Drop duplicate rows of a key within a partition before loading, keeping the latest."""

    key: list[str] = Field(min_length=1, description="Columns that identify a row.")
    order_by: str | None = Field(
        default=None,
        description="The column whose highest value is kept (ties and no column: the row read "
        "last).",
    )


class QualitySpec(Strict):
    """Dataset-wide quality gates and governance."""

    max_rejected_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of rows warn rules may reject before the partition fails "
        "(e.g. 0.01 for 1%).",
    )
    row_count: RowCountRule | None = Field(default=None, description="Bounds on rows loaded.")
    volume: VolumeRule | None = Field(
        default_factory=lambda: VolumeRule(),
        description="Volume anomaly against trailing partitions (null: off).",
    )
    unique_key: list[str] | None = Field(
        default=None,
        description="Columns that must be unique together within a partition (default: the "
        "dedup key).",
    )
    drift: Literal["warn", "block", "evolve"] = Field(
        default="warn",
        description="Columns added, removed or retyped at the source: warn (load the declared "
        "columns), block (fail), evolve (also add new columns to the table).",
    )
    custom: CheckReferences = Field(
        default_factory=list,
        description="Row rules over the whole frame as 'package.module:name': a pandera Check "
        "or a function taking the DataFrame and returning a boolean Series.",
    )
    custom_severity: Severity = Field(default="error", description="Severity of custom rules.")
    require_masking: list[Classification] = Field(
        default_factory=lambda: ["pii", "secret"],
        description="Classifications that must be masked on load; the masking check fails "
        "when such a column has no mask.",
    )
    salt_env: str = Field(
        default="INGEST_MASKING_SALT",
        description="Environment variable holding the salt of hash masking.",
    )

"""The dataset contract: what a YAML declaration under ``ingest_assets/defs/`` may say.

These pydantic models are the single source of truth for a dataset. They import nothing from
Dagster, so the ingestion core can be used, tested and benchmarked on its own. Every rule that can
be checked without touching the source is checked here, so a bad declaration fails when definitions
load, with the YAML key that is wrong and what is allowed.
"""

from __future__ import annotations

import codecs
import importlib
import re
import string
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

Cadence = Literal["hourly", "daily", "weekly", "monthly"]
DType = Literal["string", "int32", "int64", "float32", "float64", "boolean", "date", "timestamp"]
FileFormat = Literal["csv", "ndjson", "parquet"]

#: The prefix of the columns a load adds to each row: no declared or loaded column may use it.
RESERVED_PREFIX = "_ingest_"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OWNER = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")

#: Time placeholders a key template may use, with the granularity each one pins down.
KEY_FIELDS: dict[str, str] = {
    "year": "yearly",
    "month": "monthly",
    "day": "daily",
    "date": "daily",
    "hour": "hourly",
}
# The placeholder rule as a JSON-schema pattern, so that `dg check yaml` flags the key too.
_KEY_TEMPLATE_PATTERN = (
    r"^(?=.*\{(year|month|day|date|hour|start:[^{}]*)\})"
    r"([^{}]|\{(year|month|day|date|hour|start:[^{}]*)\})*$"
)
_GRANULARITY_RANK = {"hourly": 0, "daily": 1, "weekly": 2, "monthly": 3, "yearly": 4}
_STRFTIME_GRANULARITY = {
    "%H": "hourly",
    "%d": "daily",
    "%j": "daily",
    "%m": "monthly",
    "%Y": "yearly",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a plain identifier: use letters, digits and underscores, "
            "starting with a letter or underscore"
        )
    return value


def _check_table_name(value: str) -> str:
    parts = value.split(".")
    if len(parts) > 2:
        raise ValueError(f"{value!r}: give 'schema.table' or 'table'")
    for part in parts:
        _check_identifier(part, "table name part")
    return value


class CsvOptions(_Strict):
    """How CSV files are parsed."""

    delimiter: str = Field(default=",", description="Field separator, one character.")
    quote_char: str = Field(default='"', description="Quote character, one character.")
    header: bool = Field(default=True, description="Whether the first line names the columns.")
    null_values: list[str] = Field(
        default_factory=lambda: ["", "NULL", "null", "NA", "N/A"],
        description="Strings read as null.",
    )
    skip_rows: int = Field(default=0, description="Lines to skip before the header.")
    encoding: str = Field(
        default="utf-8",
        description="Text encoding of CSV files, e.g. utf-8, utf-16, latin-1 (NDJSON is always "
        "UTF-8).",
    )

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"{value!r} is not a known text encoding such as 'utf-8'") from None
        return value

    @field_validator("delimiter", "quote_char")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be exactly one character")
        return value


class ObjectStoreSource(_Strict):
    """Files in S3 (or an S3-compatible store) or a local folder, mapped to partitions by key."""

    kind: Literal["object_store"] = "object_store"
    location: str = Field(
        description=(
            "Where the objects live: 's3://bucket/prefix' or a folder path. A relative folder is "
            "resolved against the data directory (INGEST_ASSETS_DATA_DIR, default ./data)."
        )
    )
    key_template: str = Field(
        json_schema_extra={"pattern": _KEY_TEMPLATE_PATTERN},
        description=(
            "Object keys below the location, with time placeholders {year} {month} {day} {date} "
            "{hour} or {start:<strftime>}, and glob wildcards; e.g. 'dt={date}/*.csv'."
        ),
    )
    format: FileFormat | None = Field(
        default=None,
        description="csv, ndjson or parquet; by default taken from the key's extension.",
    )
    csv: CsvOptions = Field(
        default_factory=lambda: CsvOptions(), description="CSV parsing options."
    )
    resource: str = Field(
        default="s3", description="Key of the S3Resource that reaches an s3:// location."
    )
    on_missing: Literal["fail", "empty"] = Field(
        default="fail",
        description="When no object matches a window: fail the run, or load an empty window.",
    )

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        if "://" in value and not value.startswith("s3://"):
            raise ValueError("only 's3://bucket/prefix' URLs or folder paths are supported")
        if value.startswith("s3://") and not value[5:].split("/", 1)[0]:
            raise ValueError("an s3:// location needs a bucket: 's3://bucket/prefix'")
        if not value.startswith(("s3://", "/")) and ".." in re.split(r"[/\\]", value):
            raise ValueError(
                f"{value!r}: a relative location stays inside the data directory; '..' would "
                "leave it. Give an absolute path to read a folder elsewhere"
            )
        return value

    @field_validator("key_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if ".." in re.split(r"[/\\]", value) or value.startswith("/"):
            raise ValueError(
                f"{value!r}: keys are relative to source.location; a key template may not start "
                "with '/' or contain '..' segments"
            )
        key_template_granularity(value)
        return value

    @property
    def is_s3(self) -> bool:
        """Whether the location is an S3 URL."""
        return self.location.startswith("s3://")

    def format_for(self, key: str) -> FileFormat:
        """The file format of one object: the declared one, else the key's extension."""
        if self.format:
            return self.format
        name = key.lower().removesuffix(".gz")
        for suffix, fmt in ((".csv", "csv"), (".jsonl", "ndjson"), (".ndjson", "ndjson")):
            if name.endswith(suffix):
                return fmt  # type: ignore[return-value]
        if name.endswith((".parquet", ".pq")):
            return "parquet"
        raise ValueError(f"cannot tell the format of {key!r}; set source.format")


def key_template_granularity(template: str) -> str:
    """Return the finest time unit a key template pins down ('hourly' ... 'yearly').

    Raises:
        ValueError: the template has no time placeholder, or an unknown one.
    """
    found: list[str] = []
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if field == "start":
            found += [g for code, g in _STRFTIME_GRANULARITY.items() if code in (spec or "")]
        elif field in KEY_FIELDS:
            if spec:
                raise ValueError(f"placeholder {{{field}}} takes no format; use {{start:{spec}}}")
            found.append(KEY_FIELDS[field])
        else:
            allowed = ", ".join(f"{{{k}}}" for k in [*KEY_FIELDS, "start:%Y%m%d"])
            raise ValueError(f"unknown placeholder {{{field}}}; allowed: {allowed}")
    if not found:
        raise ValueError(
            "the key template has no time placeholder, so objects cannot be mapped to partitions; "
            "add one such as {date} or {year}/{month}/{day}"
        )
    return min(found, key=_GRANULARITY_RANK.__getitem__)


#: The ``{start:...}`` directives a key can be read back from (by the landing sensor).
READABLE_STRFTIME = {"Y": "year", "m": "month", "d": "day", "H": "hour", "j": "yday", "M": "minute"}


def _check_readable_template(template: str) -> None:
    for _, field, spec, _ in string.Formatter().parse(template):
        if field != "start":
            continue
        for part in (spec or "").split("%")[1:]:
            if not part or part[0] not in READABLE_STRFTIME:
                allowed = " ".join("%" + code for code in READABLE_STRFTIME)
                raise ValueError(
                    f"source.key_template {{start:{spec}}}: the landing sensor reads partitions "
                    f"back from keys, which works with {allowed} only"
                )


class Partitioning(_Strict):
    """How the dataset is cut into time partitions. Windows are half-open [start, end)."""

    cadence: Cadence = Field(description="hourly, daily, weekly or monthly.")
    start: str = Field(description="First partition, ISO date or datetime, e.g. '2026-01-01'.")
    timezone: str = Field(
        default="UTC", description="IANA time zone the partition boundaries follow."
    )
    end_offset: int = Field(
        default=0,
        description="Partitions to extend past the last closed one (1 = include the open one).",
    )

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO date or datetime such as '2026-01-01'"
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as 'UTC'") from None
        return value

    @property
    def start_datetime(self) -> datetime:
        """The first partition's start as a naive datetime in the partition time zone."""
        return datetime.fromisoformat(self.start).replace(tzinfo=None)


class StrLength(_Strict):
    """Bounds on a string's length."""

    min: int | None = None
    max: int | None = None


Severity = Literal["error", "warn"]
Classification = Literal["pii", "secret"]
Mask = Literal["hash", "redact"]


def _check_references(value: list[str]) -> list[str]:
    for reference in value:
        load_check(reference)
    return value


#: Custom rules by reference, each imported when the declaration is validated.
CheckReferences = Annotated[list[str], AfterValidator(_check_references)]


class ColumnChecks(_Strict):
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


class ColumnSpec(_Strict):
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


def _import(reference: str, what: str) -> Any:
    """Import the object a 'package.module:<what>' reference names (ValueError if it cannot)."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{reference!r} is not of the form 'package.module:{what}'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {reference!r}: {exc}") from None


def load_check(reference: str) -> Any:
    """Import a custom rule given as 'package.module:name' (a pandera Check or a function).

    Raises:
        ValueError: the reference does not name a pandera Check or a callable.
    """
    obj = _import(reference, "name")
    if not callable(obj):
        raise ValueError(f"{reference!r} is neither a pandera Check nor a function")
    return obj


class SchemaSpec(_Strict):
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
                _check_identifier(name, "column name")
                if name.startswith(RESERVED_PREFIX):
                    raise ValueError(f"column name {name!r}: the prefix _ingest_ is reserved")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None:
            for name in load_model(value).to_schema().columns:
                _check_identifier(str(name), f"{value}: column name")
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

    obj = _import(reference, "ClassName")
    if not (isinstance(obj, type) and issubclass(obj, DataFrameModel)):
        raise ValueError(f"{reference!r} is not a pandera DataFrameModel class")
    return obj


class SqlRetry(_Strict):
    """Retries of connection failures (authentication and missing tables are never retried)."""

    attempts: int = Field(default=3, description="Tries in all, the first included.")
    delay_seconds: float = Field(default=1.0, description="Wait before the second try.")
    backoff: float = Field(default=2.0, description="Factor the wait grows by per try.")
    max_delay_seconds: float = Field(default=30.0, description="Longest wait between tries.")

    @field_validator("attempts")
    @classmethod
    def _attempts(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value


class SqlSource(_Strict):
    """A table or query in a SQL database, cut into windows by a timestamp column."""

    kind: Literal["sql"] = Field(description="'sql'.")
    url_env: str = Field(
        json_schema_extra={"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
        description=(
            "Name of the environment variable holding the database URL, e.g. "
            "'postgresql://user:pass@host:5432/db', 'sqlite:///path.db', 'duckdb:///path.duckdb' "
            "or any SQLAlchemy URL. The URL itself never goes in YAML."
        ),
    )
    table: str | None = Field(default=None, description="'schema.table' or 'table' to read.")
    query: str | None = Field(
        default=None, description="A SELECT to read instead of a table; the window filter wraps it."
    )
    columns: list[str] | None = Field(default=None, description="Columns to read (default: all).")
    time_column: str | None = Field(
        default=None,
        description=(
            "Timestamp column that places rows in windows (ts >= start AND ts < end). For tables "
            "without reliable event time, an updated_at-style column with load mode 'merge'."
        ),
    )
    batch_rows: int = Field(default=100_000, description="Rows per Arrow batch read.")
    retry: SqlRetry = Field(
        default_factory=lambda: SqlRetry(), description="Retries of connection failures."
    )

    @field_validator("table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        return None if value is None else _check_table_name(value)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None) -> list[str] | None:
        for column in value or []:
            _check_identifier(column, "column name")
        return value

    @field_validator("time_column")
    @classmethod
    def _time_column(cls, value: str | None) -> str | None:
        return None if value is None else _check_identifier(value, "time_column")

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class RestAuth(_Strict):
    """How requests authenticate. Secrets are named by environment variable, never written here."""

    type: Literal["none", "bearer", "api_key", "basic", "oauth2_client_credentials"] = Field(
        default="none", description="The scheme."
    )
    token_env: str | None = Field(default=None, description="bearer: variable holding the token.")
    name: str | None = Field(default=None, description="api_key: header or query parameter name.")
    location: Literal["header", "query"] = Field(
        default="header", description="api_key: sent as a header or a query parameter."
    )
    key_env: str | None = Field(default=None, description="api_key: variable holding the key.")
    username_env: str | None = Field(default=None, description="basic: variable, user name.")
    password_env: str | None = Field(default=None, description="basic: variable, password.")
    token_url: str | None = Field(default=None, description="oauth2: the token endpoint.")
    client_id_env: str | None = Field(default=None, description="oauth2: variable, client id.")
    client_secret_env: str | None = Field(
        default=None, description="oauth2: variable, client secret."
    )
    scope: str | None = Field(default=None, description="oauth2: requested scope.")

    @model_validator(mode="after")
    def _complete(self) -> RestAuth:
        needed = {
            "none": [],
            "bearer": ["token_env"],
            "api_key": ["name", "key_env"],
            "basic": ["username_env", "password_env"],
            "oauth2_client_credentials": ["token_url", "client_id_env", "client_secret_env"],
        }[self.type]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f"auth type {self.type!r} needs {', '.join(missing)}")
        return self


class RestPaginator(_Strict):
    """How the pages of a window are walked, and when to stop."""

    type: Literal["none", "page_number", "offset", "cursor", "next_url", "link_header"] = Field(
        default="none", description="The pagination style."
    )
    page_param: str = Field(default="page", description="page_number: the page parameter.")
    first_page: int = Field(default=1, description="page_number: the first page's number.")
    offset_param: str = Field(default="offset", description="offset: the offset parameter.")
    limit_param: str = Field(default="limit", description="offset: the page-size parameter.")
    limit: int = Field(default=100, description="offset: records per page.")
    total_path: str | None = Field(
        default=None,
        description="page_number/offset: path to the total (records, or pages for page_number) "
        "in the body; with it, pages are fetched concurrently.",
    )
    total_is_pages: bool = Field(
        default=False, description="page_number: whether total_path counts pages, not records."
    )
    cursor_path: str = Field(default="next_cursor", description="cursor: path to the next token.")
    cursor_param: str = Field(default="cursor", description="cursor: the parameter it goes in.")
    next_url_path: str = Field(default="next", description="next_url: path to the next URL.")
    max_pages: int = Field(default=100_000, description="A safety stop for runaway pagination.")


class RestRetry(_Strict):
    """Retries of 429, 5xx, timeouts and connection errors, with backoff and jitter."""

    attempts: int = Field(default=5, description="Tries per page, the first included.")
    backoff_seconds: float = Field(default=0.5, description="First wait; it doubles per try.")
    max_backoff_seconds: float = Field(default=30.0, description="Longest wait between tries.")
    retry_after_floor_seconds: float = Field(
        default=0.5, description="Shortest wait on a Retry-After answer (so 0 is no hot loop)."
    )
    retry_after_cap_seconds: float = Field(
        default=60.0, description="Longest wait a Retry-After answer may ask for."
    )


class RestSource(_Strict):
    """A JSON HTTP API, read page by page for a window."""

    kind: Literal["rest"] = Field(description="'rest'.")
    base_url: str = Field(
        description="Scheme, host and base path, e.g. https://api.example.com/v1."
    )
    endpoint: str = Field(default="", description="Path below base_url, e.g. /orders.")
    method: Literal["GET", "POST"] = Field(default="GET", description="HTTP method.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Query parameters; strings may use {start} and {end}, the window's bounds "
        "(other braces are kept as they are, e.g. a JSON filter).",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    time_format: str = Field(
        default="iso",
        description="How {start}/{end} render: 'iso', 'epoch', 'epoch_ms' or a strftime pattern.",
    )
    records_path: str = Field(
        default="", description="Dotted path to the list of records in the body ('' = the body)."
    )
    nested: Literal["json", "flatten"] = Field(
        default="json",
        description="Nested objects: kept as JSON text, or flattened to parent_child columns.",
    )
    auth: RestAuth = Field(default_factory=lambda: RestAuth(), description="Authentication.")
    paginator: RestPaginator = Field(
        default_factory=lambda: RestPaginator(), description="Pagination."
    )
    requests_per_second: float | None = Field(
        default=None, description="Rate limit shared by every request of this source."
    )
    concurrency: int = Field(default=4, description="Pages fetched at once when addressable.")
    timeout_seconds: float = Field(default=30.0, description="Per request.")
    retry: RestRetry = Field(default_factory=lambda: RestRetry(), description="Retries.")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("params")
    @classmethod
    def _placeholders(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        for key, text in value.items():
            if not isinstance(text, str):
                continue
            unknown = [
                name for name in PARAM_PLACEHOLDER.findall(text) if name not in WINDOW_BOUNDS
            ]
            if unknown:
                raise ValueError(
                    f"params.{key}: unknown placeholder {{{unknown[0]}}}; the window's bounds "
                    "are {start} and {end}"
                )
        return value


#: A placeholder in a REST parameter: an identifier in braces. Other braces are literal text.
PARAM_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: The placeholders a REST parameter may use.
WINDOW_BOUNDS = ("start", "end")


def _source_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "object_store"))
    return str(getattr(value, "kind", "object_store"))


#: A dataset's source; ``kind`` picks the type and defaults to ``object_store``.
Source = Annotated[
    Annotated[ObjectStoreSource, Tag("object_store")]
    | Annotated[SqlSource, Tag("sql")]
    | Annotated[RestSource, Tag("rest")],
    Discriminator(_source_kind),
]


class LoadSpec(_Strict):
    """How a window's rows reach the destination."""

    mode: Literal["replace_window", "append", "merge", "snapshot"] = Field(
        default="replace_window",
        description=(
            "replace_window: the window's rows are replaced in one transaction (idempotent); "
            "append: rows are added; merge: rows are upserted by primary_key, the latest by "
            "order_by winning; snapshot: the whole source table is copied for each partition."
        ),
    )
    max_partitions_per_run: int = Field(
        default=31,
        ge=1,
        description="Partitions a backfill loads in one run (one read pass and one write "
        "transaction, each partition replaced exactly); 1 gives a run per partition.",
    )
    primary_key: list[str] | None = Field(default=None, description="Key columns for 'merge'.")
    order_by: str | None = Field(
        default=None,
        description="For 'merge': the column whose highest value wins among rows of one key.",
    )

    @model_validator(mode="after")
    def _merge_needs_key(self) -> LoadSpec:
        if self.mode == "merge" and not self.primary_key:
            raise ValueError("mode 'merge' needs primary_key")
        if self.mode != "merge" and (self.primary_key or self.order_by):
            raise ValueError("primary_key and order_by apply to mode 'merge' only")
        return self


class RowCountRule(_Strict):
    """Bounds on the rows a partition loads."""

    min: int | None = Field(default=None, description="Fewest rows a partition may load.")
    max: int | None = Field(default=None, description="Most rows a partition may load.")
    severity: Severity = Field(default="error", description="error blocks the load; warn reports.")


class VolumeRule(_Strict):
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


class DedupSpec(_Strict):
    """Drop duplicate rows of a key within a partition before loading, keeping the latest."""

    key: list[str] = Field(min_length=1, description="Columns that identify a row.")
    order_by: str | None = Field(
        default=None,
        description="The column whose highest value is kept (ties and no column: the row read "
        "last).",
    )


class QualitySpec(_Strict):
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


class DestinationSpec(_Strict):
    """Where the dataset lands in the warehouse."""

    table: str = Field(
        json_schema_extra={"pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"},
        description="'schema.table' or 'table' (schema 'main').",
    )

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return _check_table_name(value)

    @property
    def schema_name(self) -> str:
        """The warehouse schema ('main' when none is given)."""
        return self.table.split(".")[0] if "." in self.table else "main"

    @property
    def table_name(self) -> str:
        """The table name without its schema."""
        return self.table.split(".")[-1]


def _hh_mm(value: str) -> tuple[int, int] | None:
    """Parse 'HH:MM' (any number of hours, minutes under 60), or None if it is not that."""
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(minutes) < 60):
        return None
    return int(hours), int(minutes)


def _minutes(value: str) -> int:
    """A validated 'HH:MM' as minutes."""
    parsed = _hh_mm(value)
    assert parsed is not None
    return parsed[0] * 60 + parsed[1]


def _check_cron(value: str) -> str:
    if len(value.split()) != 5:
        raise ValueError(f"{value!r} is not a five-field cron expression such as '15 2 * * *'")
    return value


class ScheduleTrigger(_Strict):
    """Load each partition on a schedule, a fixed delay after its window closes."""

    type: Literal["schedule"] = Field(default="schedule", description="'schedule'.")
    delay: str = Field(
        default="00:00",
        json_schema_extra={"pattern": r"^\d{1,2}:\d{2}$"},
        description="How long after a partition's window closes its run starts, as HH:MM "
        "(e.g. '02:15': a daily partition loads at 02:15 the next day).",
    )
    cron: str | None = Field(
        default=None,
        description="An explicit cron schedule instead; each tick loads the latest closed "
        "partition.",
    )
    running: bool = Field(
        default=False, description="Whether the schedule starts running when deployed."
    )

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str) -> str:
        parsed = _hh_mm(value)
        if parsed is None or parsed[0] >= 24:
            raise ValueError(f"{value!r} is not a time of day such as '02:15'")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)

    @property
    def delay_minutes(self) -> int:
        """The delay in minutes."""
        return _minutes(self.delay)


class LandingTrigger(_Strict):
    """Load partitions as their objects land: a sensor watches the object store.

    Every new object, and every object overwritten with new content, requests one run of the
    partition its key maps to; objects of one partition found in one tick share a run.
    """

    type: Literal["landing"] = Field(description="'landing'.")
    settle_seconds: float = Field(
        default=60,
        ge=0,
        description="An object is picked up only once it has not changed for this long, so "
        "files still being written are left for a later tick.",
    )
    lookback_seconds: float = Field(
        default=900,
        ge=1,
        description="Safety margin for objects that become visible after their modification "
        "time (slow uploads, clock skew between the store and the code location).",
    )
    interval_seconds: int = Field(
        default=30, ge=5, description="Minimum time between two sensor ticks."
    )
    max_keys_per_tick: int = Field(
        default=100_000,
        ge=1,
        description="Keys listed per tick at most; a longer listing continues next tick.",
    )
    max_seconds_per_tick: float = Field(
        default=8,
        gt=0,
        le=50,
        description="Time spent listing per tick at most (sensor ticks time out at 60 s); "
        "the listing continues next tick.",
    )
    running: bool = Field(
        default=False, description="Whether the sensor starts running when deployed."
    )


def _trigger_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "schedule"))
    return str(getattr(value, "type", "schedule"))


#: A dataset's trigger; ``type`` picks it and defaults to ``schedule``.
Trigger = Annotated[
    Annotated[ScheduleTrigger, Tag("schedule")] | Annotated[LandingTrigger, Tag("landing")],
    Discriminator(_trigger_type),
]


class SlaSpec(_Strict):
    """When each partition must have landed, counted from the moment its window closes."""

    deadline: str = Field(
        json_schema_extra={"pattern": r"^\d{1,3}:[0-5]\d$"},
        description="How long after a partition closes it must have landed, as HH:MM; hours may "
        "exceed 24 ('26:00': by 02:00 on the second day).",
    )
    warn_after: str | None = Field(
        default=None,
        json_schema_extra={"pattern": r"^\d{1,3}:[0-5]\d$"},
        description="The early-warning point, as HH:MM after the partition closes (before the "
        "deadline).",
    )
    check_cron: str = Field(
        default="*/15 * * * *",
        description="When the timeliness check runs (cron, in the partitioning's time zone).",
    )
    running: bool = Field(
        default=False, description="Whether the check's schedule runs as soon as it is deployed."
    )

    @field_validator("deadline", "warn_after")
    @classmethod
    def _offset(cls, value: str | None) -> str | None:
        if value is not None and _hh_mm(value) is None:
            raise ValueError(f"{value!r} is not a duration as HH:MM such as '02:00'")
        return value

    @field_validator("check_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @model_validator(mode="after")
    def _order(self) -> SlaSpec:
        warn = self.warn_minutes
        if warn is not None and warn >= self.deadline_minutes:
            raise ValueError(
                f"warn_after {self.warn_after!r} must come before deadline {self.deadline!r}"
            )
        return self

    @property
    def deadline_minutes(self) -> int:
        """The deadline in minutes after the partition closes."""
        return _minutes(self.deadline)

    @property
    def warn_minutes(self) -> int | None:
        """The warning point in minutes after the partition closes, if any."""
        return None if self.warn_after is None else _minutes(self.warn_after)


class RetrySpec(_Strict):
    """Retries of a failed load (a run step); only transient faults are retried."""

    max_retries: int = Field(default=2, description="Retries after the first try.")
    delay_seconds: float = Field(default=30.0, description="Wait before the first retry.")
    backoff: Literal["exponential", "linear"] = Field(
        default="exponential", description="How the wait grows between retries."
    )
    jitter: Literal["none", "full", "plus_minus"] = Field(
        default="plus_minus", description="Randomness added to each wait."
    )


#: What a dataset name may look like (it becomes an asset name and a folder).
NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"


class DatasetSpec(_Strict):
    """One dataset: where it comes from, how it is partitioned, validated and loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(
        json_schema_extra={"pattern": NAME_PATTERN},
        description="Asset name: lowercase letters, digits and underscores.",
    )
    description: str = Field(default="", description="What the dataset holds, shown in the UI.")
    owners: list[str] = Field(default_factory=list, description="Emails or 'team:name' entries.")
    group: str = Field(default="ingest", description="Asset group in the UI.")
    source: Source = Field(
        description="Where the data comes from: files (the default kind) or a SQL database.",
    )
    partitioning: Partitioning = Field(description="How the dataset is cut in time.")
    load: LoadSpec = Field(
        default_factory=lambda: LoadSpec(), description="How windows are written."
    )
    table_schema: SchemaSpec = Field(alias="schema", description="Declared columns and rules.")
    quality: QualitySpec = Field(
        default_factory=lambda: QualitySpec(),
        description="Dataset-wide gates: rejection threshold, row counts, volume, key, drift, "
        "custom rules, masking.",
    )
    dedup: DedupSpec | None = Field(
        default=None, description="Drop duplicates of a key within a partition, keeping the latest."
    )
    destination: DestinationSpec = Field(description="Where the dataset lands.")
    trigger: Trigger | None = Field(
        default=None,
        description="When partitions load in production: on a schedule, or as objects land "
        "(none: on demand).",
    )
    sla: SlaSpec | None = Field(
        default=None,
        description="When each partition must have landed: a freshness policy and a "
        "timeliness check (pass, warn, fail) on its own schedule.",
    )
    retry: RetrySpec = Field(
        default_factory=lambda: RetrySpec(),
        description="Retries of transient failures (network, 5xx, locks); validation failures "
        "and bad configuration are never retried.",
    )
    priority: int = Field(
        default=0, description="Run priority (dagster/priority): higher runs are launched first."
    )
    pool: str | None = Field(
        default=None,
        description="Concurrency pool the load runs in (default: one per source, e.g. "
        "'sql_APP_DB_URL'); limits are set in dagster.yaml.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(
                f"{value!r}: use lowercase letters, digits and underscores, starting with a letter"
            )
        return value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        return _check_identifier(value, "group")

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: list[str]) -> list[str]:
        for owner in value:
            if not _OWNER.fullmatch(owner):
                raise ValueError(f"owner {owner!r} must be an email or 'team:<name>'")
        return value

    @model_validator(mode="after")
    def _source_fits(self) -> DatasetSpec:
        trigger = self.trigger
        if (
            isinstance(trigger, ScheduleTrigger)
            and self.partitioning.cadence == "hourly"
            and trigger.delay_minutes >= 60
        ):
            raise ValueError("trigger.delay of an hourly dataset must be under an hour ('00:MM')")
        if isinstance(trigger, LandingTrigger):
            if not isinstance(self.source, ObjectStoreSource):
                raise ValueError(
                    "trigger type 'landing' watches an object store; a SQL or REST source "
                    "needs trigger type 'schedule'"
                )
            _check_readable_template(self.source.key_template)
        load = self.load
        declared = self.table_schema.columns
        for where, columns in (
            ("load", [*(load.primary_key or []), *([load.order_by] if load.order_by else [])]),
            ("dedup", [*self.dedup.key, *([self.dedup.order_by] if self.dedup.order_by else [])]
             if self.dedup else []),
            ("quality.unique_key", self.quality.unique_key or []),
        ):  # fmt: skip
            for column in columns:
                if declared is not None and column not in declared:
                    raise ValueError(
                        f"{where}: column {column!r} is not declared in schema.columns"
                    )
        if isinstance(self.source, RestSource):
            if load.mode == "snapshot":
                raise ValueError("load.mode 'snapshot' applies to SQL sources only")
            return self
        if isinstance(self.source, SqlSource):
            if self.source.time_column is None and load.mode != "snapshot":
                raise ValueError(
                    "source.time_column is required to cut a SQL source into windows (or use "
                    "load.mode: snapshot to copy the whole table each partition)"
                )
            return self
        if load.mode == "snapshot":
            raise ValueError("load.mode 'snapshot' applies to SQL sources only")
        granularity = key_template_granularity(self.source.key_template)
        cadence = self.partitioning.cadence
        if _GRANULARITY_RANK[granularity] > _GRANULARITY_RANK[cadence]:
            raise ValueError(
                f"source.key_template {self.source.key_template!r} only pins down {granularity} "
                f"periods, so it cannot select the objects of one {cadence} partition; add a finer "
                "placeholder (e.g. {day} or {hour}) or use a coarser cadence"
            )
        return self

"""The object-store source kind's declaration: files in S3 or a local folder, by key template."""

from __future__ import annotations

import codecs
import re
import string
from typing import Literal

from pydantic import Field, field_validator

from ingest_assets.spec.base import Strict

#: The file formats an object store source reads.
FileFormat = Literal["csv", "ndjson", "parquet"]

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
GRANULARITY_RANK = {"hourly": 0, "daily": 1, "weekly": 2, "monthly": 3, "yearly": 4}
_STRFTIME_GRANULARITY = {
    "%H": "hourly",
    "%d": "daily",
    "%j": "daily",
    "%m": "monthly",
    "%Y": "yearly",
}


class CsvOptions(Strict):
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


class ObjectStoreSource(Strict):
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
    return min(found, key=GRANULARITY_RANK.__getitem__)


#: The ``{start:...}`` directives a key can be read back from (by the landing sensor).
READABLE_STRFTIME = {"Y": "year", "m": "month", "d": "day", "H": "hour", "j": "yday", "M": "minute"}


def check_readable_template(template: str) -> None:
    """Raise ValueError if a landing sensor could not read partitions back from the keys."""
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

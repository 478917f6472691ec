"""The SQL source kind's declaration: a table or query cut into windows by a timestamp column."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ingest_assets.spec.base import NAME_KEY, Strict, check_identifier, check_table_name


class SqlRetry(Strict):
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


class SqlSource(Strict):
    """A table or query in a SQL database, cut into windows by a timestamp column."""

    kind: Literal["sql"] = Field(description="'sql'.")
    url_env: str | None = Field(
        default=None,
        json_schema_extra=NAME_KEY,
        description=(
            "Name of the environment variable holding the database URL, e.g. "
            "'postgresql://user:pass@host:5432/db', 'sqlite:///path.db', 'duckdb:///path.duckdb' "
            "or any SQLAlchemy URL. The URL itself never goes in YAML. Give this or 'resource'."
        ),
    )
    resource: str | None = Field(
        default=None,
        json_schema_extra=NAME_KEY,
        description="Key of a declared SqlDatabase resource to read through (shared by every "
        "dataset of that database, its URL swapped per environment). Give this or 'url_env'.",
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
        return None if value is None else check_table_name(value)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None) -> list[str] | None:
        for column in value or []:
            check_identifier(column, "column name")
        return value

    @field_validator("time_column")
    @classmethod
    def _time_column(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, "time_column")

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if (self.url_env is None) == (self.resource is None):
            raise ValueError(
                "give exactly one of 'url_env' (a variable holding the URL) or 'resource' (a "
                "declared SqlDatabase resource)"
            )
        return self

    @property
    def connection(self) -> str:
        """Where the URL comes from, for messages and pools: '$VARIABLE' or 'resource KEY'."""
        return f"${self.url_env}" if self.url_env else f"resource {self.resource}"

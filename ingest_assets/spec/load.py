"""How a window's rows are written, where they land, and how failed loads are retried."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ingest_assets.spec.base import Strict, check_table_name


class LoadSpec(Strict):
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
    range_atomic: bool = Field(
        default=False,
        description="A run over several partitions writes all of them or none. By default the "
        "good partitions are written and only the failing ones fail, each with its reason.",
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


class DestinationSpec(Strict):
    """Where the dataset lands in the warehouse."""

    table: str = Field(
        json_schema_extra={"pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"},
        description="'schema.table' or 'table' (schema 'main').",
    )

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return check_table_name(value)

    @property
    def schema_name(self) -> str:
        """The warehouse schema ('main' when none is given)."""
        return self.table.split(".")[0] if "." in self.table else "main"

    @property
    def table_name(self) -> str:
        """The table name without its schema."""
        return self.table.split(".")[-1]


class RetrySpec(Strict):
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

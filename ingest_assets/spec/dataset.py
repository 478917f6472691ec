"""One dataset: where it comes from, how it is partitioned, validated and loaded."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from ingest_assets.destinations.registry import DESTINATION_KINDS
from ingest_assets.push.spec import IngestApiSpec
from ingest_assets.push.target import TakesPushes
from ingest_assets.sources.arrivals import Arrives
from ingest_assets.sources.object_store.landing import Lands
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec.base import Strict, check_identifier
from ingest_assets.spec.load import DestinationSpec, LoadSpec, RetrySpec
from ingest_assets.spec.partitioning import Partitioning
from ingest_assets.spec.quality import DedupSpec, QualitySpec, SchemaSpec
from ingest_assets.spec.triggers import (
    ArrivalTrigger,
    LandingTrigger,
    ScheduleTrigger,
    SlaSpec,
    Trigger,
)

_OWNER = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")

if TYPE_CHECKING:
    Source: TypeAlias = BaseModel
    Destination: TypeAlias = DestinationSpec
else:
    #: A dataset's source: one of the registered source kinds, picked by ``kind`` (default
    #: ``object_store``). Widened when a kind registers.
    Source = SOURCE_KINDS.union()
    #: A dataset's destination: one of the registered destination kinds (default ``duckdb``).
    Destination = DESTINATION_KINDS.union()

#: What a dataset name may look like (it becomes an asset name and a folder).
NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"


class DatasetSpec(Strict):
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
    destination: Destination = Field(
        description="Where the dataset lands: a table of a warehouse (kind duckdb by default)."
    )
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
    ingest_api: IngestApiSpec | None = Field(
        default=None,
        description="Accept records pushed to POST /ingest/<dataset> (`ingest-assets serve`): "
        "true, or the API's settings. They land as files under source.key_template.",
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

    @field_validator("ingest_api", mode="before")
    @classmethod
    def _ingest_api(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        return check_identifier(value, "group")

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
        kind = SOURCE_KINDS.of(self.source)
        if isinstance(trigger, ArrivalTrigger) and not isinstance(kind, Arrives):
            raise ValueError(
                f"trigger type 'arrival' follows a stream's entries as they arrive; a "
                f"{kind.name} source needs trigger type "
                f"{'landing' if isinstance(kind, Lands) else 'schedule'}"
            )
        if isinstance(trigger, LandingTrigger) and not isinstance(kind, Lands):
            raise ValueError(
                f"trigger type 'landing' watches an object store for objects that land; a "
                f"{kind.name} source needs trigger type 'schedule'"
            )
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
        kind.check(self, self.source)
        if self.ingest_api is not None:
            self._check_ingest_api(self.ingest_api)
        return self

    def _check_ingest_api(self, api: IngestApiSpec) -> None:
        kind = SOURCE_KINDS.of(self.source)
        if not isinstance(kind, TakesPushes):
            raise ValueError(
                f"ingest_api: pushed records land as files; a {kind.name} source cannot take "
                "them (use an object_store source: a folder or s3:// location)"
            )
        kind.push_target(self, self.source)
        declared = self.table_schema.columns
        if declared is None:
            raise ValueError("ingest_api needs the columns declared inline under schema.columns")
        for key, column in (
            ("time_field", api.time_field),
            ("idempotency_field", api.idempotency_field),
        ):
            if column is not None and column not in declared:
                raise ValueError(
                    f"ingest_api.{key}: column {column!r} is not declared in schema.columns"
                )
        if api.time_field is not None and declared[api.time_field].dtype not in (
            "timestamp",
            "date",
        ):
            raise ValueError(
                f"ingest_api.time_field: column {api.time_field!r} is a "
                f"{declared[api.time_field].dtype}; it must be a timestamp or a date"
            )


def _rebuild() -> None:
    """Widen the ``source`` and ``destination`` unions to the kinds registered now."""
    fields = DatasetSpec.__pydantic_fields__
    unions = {"source": SOURCE_KINDS.union(), "destination": DESTINATION_KINDS.union()}
    for name, union in unions.items():
        old = fields[name]
        fields[name] = FieldInfo.from_annotated_attribute(union, Field(description=old.description))
    DatasetSpec.model_rebuild(force=True)
    for listener in _dependents:
        listener()


_dependents: list[Any] = []
SOURCE_KINDS.on_change(_rebuild)
DESTINATION_KINDS.on_change(_rebuild)


def on_rebuild(listener: Any) -> None:
    """Call ``listener`` after :class:`DatasetSpec` learned a new kind (models that embed it)."""
    _dependents.append(listener)

"""The PostgreSQL destination kind, registered: ``destination: {kind: postgres, ...}``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field, model_validator

from ingest_assets.destinations.registry import DESTINATION_KINDS, DestinationKind
from ingest_assets.errors import ConfigError
from ingest_assets.spec.base import NAME_KEY
from ingest_assets.spec.load import DestinationSpec

if TYPE_CHECKING:
    from ingest_assets.destinations.postgres.warehouse import PostgresWarehouse


class PostgresDestination(DestinationSpec):
    """A table of a PostgreSQL warehouse ('schema.table'; 'table' lands in schema public)."""

    kind: Literal["postgres"] = Field(description="'postgres'.")
    url_env: str | None = Field(
        default=None,
        json_schema_extra=NAME_KEY,
        description="Variable holding the warehouse's URL, e.g. WAREHOUSE_URL "
        "(postgresql://user:password@host:5432/db). Give this or 'resource'.",
    )
    resource: str | None = Field(
        default=None,
        json_schema_extra=NAME_KEY,
        description="Key of a declared SqlDatabase resource holding the warehouse's URL. Give "
        "this or 'url_env'.",
    )

    @model_validator(mode="after")
    def _one_url(self) -> PostgresDestination:
        if (self.url_env is None) == (self.resource is None):
            raise ValueError("give exactly one of 'url_env' or 'resource'")
        return self


class _Database(Protocol):
    url: str


class _FromVariable:
    """The warehouse's URL from its variable, read when a load opens it."""

    def __init__(self, variable: str) -> None:
        url = os.environ.get(variable, "")
        if not url:
            raise ConfigError(
                f"The variable {variable}, which holds the PostgreSQL warehouse's URL, is not set.",
                fix=f"Set {variable} for the code location, e.g. "
                "postgresql://user:password@host:5432/warehouse.",
            )
        self.url = url


class PostgresKind(DestinationKind[PostgresDestination]):
    """PostgreSQL: binary COPY in, each write one transaction, writers of a table take turns."""

    name = "postgres"
    model = PostgresDestination
    tag = "postgres"

    def resource_key(self, destination: PostgresDestination) -> str | None:
        """The declared SqlDatabase resource, if any."""
        return destination.resource

    def default_resource(self, destination: PostgresDestination) -> _Database:
        """The URL from ``url_env``."""
        if destination.url_env is None:
            raise KeyError(destination.resource)
        return _FromVariable(destination.url_env)

    def open(self, destination: PostgresDestination, resource: Any) -> PostgresWarehouse:
        """The warehouse at the resource's URL."""
        from ingest_assets.destinations.postgres.warehouse import PostgresWarehouse

        database: _Database = resource
        return PostgresWarehouse(database.url)


DESTINATION_KINDS.register(PostgresKind())

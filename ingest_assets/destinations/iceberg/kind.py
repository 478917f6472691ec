"""The Iceberg destination kind, registered: ``destination: {kind: iceberg, ...}``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from ingest_assets.destinations.registry import DESTINATION_KINDS, DestinationKind
from ingest_assets.errors import ConfigError
from ingest_assets.paths import data_dir
from ingest_assets.spec.base import NAME_KEY
from ingest_assets.spec.load import DestinationSpec

if TYPE_CHECKING:
    from ingest_assets.destinations.iceberg.warehouse import IcebergLake


class IcebergDestination(DestinationSpec):
    """A table of an Iceberg lake ('namespace.table')."""

    kind: Literal["iceberg"] = Field(description="'iceberg'.")
    warehouse: str = Field(
        default="iceberg",
        description="Where table files go: 's3://bucket/prefix' (S3 settings as for S3 sources: "
        "INGEST_S3_ENDPOINT_URL, AWS_*), or a folder (relative: under INGEST_ASSETS_DATA_DIR).",
    )
    catalog_url_env: str | None = Field(
        default=None,
        json_schema_extra=NAME_KEY,
        description="Variable holding the SQL catalog's SQLAlchemy URL (e.g. PostgreSQL in "
        "production); by default a SQLite file next to a local warehouse, or under the data "
        "directory for S3.",
    )


class _Lake(Protocol):
    catalog_uri: str
    warehouse: str


@dataclass(frozen=True)
class IcebergSettings:
    """Where an Iceberg lake is: its catalog's URL and its warehouse location."""

    catalog_uri: str
    warehouse: str


class IcebergKind(DestinationKind[IcebergDestination]):
    """Iceberg tables through pyiceberg; each write one snapshot, commits retried on conflict."""

    name = "iceberg"
    model = IcebergDestination
    tag = "iceberg"

    def resource_key(self, destination: IcebergDestination) -> str | None:
        """None: the declaration says where the lake is."""
        return None

    def default_resource(self, destination: IcebergDestination) -> IcebergSettings:
        """The lake of the declaration, its catalog from the variable or a local SQLite file."""
        warehouse = destination.warehouse
        local = not warehouse.startswith("s3://")
        if local:
            folder = Path(warehouse) if Path(warehouse).is_absolute() else data_dir() / warehouse
            folder.mkdir(parents=True, exist_ok=True)
            warehouse = f"file://{folder}"
        if destination.catalog_url_env:
            uri = os.environ.get(destination.catalog_url_env, "")
            if not uri:
                raise ConfigError(
                    f"The variable {destination.catalog_url_env}, which holds the Iceberg "
                    "catalog's URL, is not set.",
                    fix=f"Set {destination.catalog_url_env} (a SQLAlchemy URL).",
                )
        else:
            catalog = data_dir() / "iceberg_catalog.db"
            catalog.parent.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{catalog}"
        return IcebergSettings(uri, warehouse)

    def open(self, destination: IcebergDestination, resource: Any) -> IcebergLake:
        """The lake."""
        from ingest_assets.destinations.iceberg.warehouse import IcebergLake

        lake: _Lake = resource
        return IcebergLake(lake.catalog_uri, lake.warehouse)


DESTINATION_KINDS.register(IcebergKind())

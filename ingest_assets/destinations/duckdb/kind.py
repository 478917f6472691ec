"""The DuckDB destination kind, registered: ``destination: {kind: duckdb, table: ...}``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import duckdb
from pydantic import Field

from ingest_assets.destinations.registry import DESTINATION_KINDS, DestinationKind
from ingest_assets.paths import duckdb_path
from ingest_assets.spec.base import NAME_KEY
from ingest_assets.spec.load import DestinationSpec

if TYPE_CHECKING:
    from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse


class DuckDBDestination(DestinationSpec):
    """A table of the DuckDB warehouse (the embedded default)."""

    kind: Literal["duckdb"] = Field(default="duckdb", description="'duckdb' (the default).")
    resource: str = Field(
        default="duckdb",
        json_schema_extra=NAME_KEY,
        description="Key of the DuckDBResource holding the warehouse file.",
    )


class DuckDBDatabase(Protocol):
    """What the warehouse needs of its resource (Dagster's ``DuckDBResource`` has it)."""

    database: str

    def get_connection(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection to the database file."""
        ...


@dataclass(frozen=True)
class DuckDBFile:
    """A DuckDB warehouse file, for loads without Dagster (scripts, tests, benchmarks).

    Attributes:
        database: The file's path.
    """

    database: str

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the file, closed when the block ends."""
        with duckdb.connect(self.database) as conn:
            yield conn


class DuckDBKind(DestinationKind[DuckDBDestination]):
    """One DuckDB file: one writer at a time, each write a short transaction."""

    name = "duckdb"
    model = DuckDBDestination
    tag = "duckdb"

    def resource_key(self, destination: DuckDBDestination) -> str:
        """The declared resource key ('duckdb')."""
        return destination.resource

    def open(self, destination: DuckDBDestination, resource: Any) -> DuckDBWarehouse:
        """The warehouse in the resource's file."""
        from ingest_assets.destinations.duckdb.warehouse import DuckDBWarehouse

        database: DuckDBDatabase = resource
        Path(database.database).parent.mkdir(parents=True, exist_ok=True)
        return DuckDBWarehouse(database.get_connection, database.database)

    def default_resource(self, destination: DuckDBDestination) -> DuckDBFile:
        """The warehouse file of this machine (``INGEST_ASSETS_DUCKDB_PATH``)."""
        path = duckdb_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return DuckDBFile(str(path))


DESTINATION_KINDS.register(DuckDBKind())

"""Destination kinds: the stores datasets load into, registered in one place.

A destination kind (DuckDB, or a project's own) is one folder under ``destinations/`` with a
:class:`DestinationKind` that builds its :class:`~ingest_assets.destinations.base.Destination` from
a Dagster resource (or any object with the same settings, outside Dagster). A dataset names its
kind in YAML (``destination: {kind: duckdb, table: raw.orders}``; ``duckdb`` is the default).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from ingest_assets.destinations.base import Destination
from ingest_assets.registry import Registry

D = TypeVar("D", bound=BaseModel)


class DestinationKind(ABC, Generic[D]):
    """One kind of destination. Subclass it in the kind's folder and register an instance.

    Attributes:
        name: The ``kind:`` a destination declaration writes.
        model: The pydantic model of the declaration (``table`` and the kind's own settings).
        tag: The Dagster kind shown on the asset.
    """

    name: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    tag: ClassVar[str]

    @abstractmethod
    def resource_key(self, destination: D) -> str | None:
        """The Dagster resource the destination is built from (shared by its datasets).

        None when the declaration alone says where the store is (``default_resource``).
        """

    @abstractmethod
    def open(self, destination: D, resource: Any) -> Destination:
        """The destination, built from its resource."""

    def default_resource(self, destination: D) -> Any:
        """The resource to use when none is given (a script, or a declaration without one).

        Raises:
            KeyError: the kind has no default; pass its resource.
        """
        raise KeyError(self.resource_key(destination) or self.name)


#: Every destination kind, by name. The default kind is ``duckdb``.
DESTINATION_KINDS: Registry[DestinationKind[Any]] = Registry(
    "destination",
    default="duckdb",
    builtin=(
        "ingest_assets.destinations.duckdb.kind",
        "ingest_assets.destinations.postgres.kind",
        "ingest_assets.destinations.iceberg.kind",
    ),
)

"""Source kinds: what each kind of source tells the rest of the project, registered in one place.

A source kind (files in an object store, a SQL table, a REST API, or a project's own) is one
folder under ``sources/`` with a :class:`SourceKind` that says, for a declared source: how to open
its reader, how to probe it, how the UI labels it, which pool and resources it uses, and what a
new declaration of it looks like. Nothing outside a kind's folder branches on which kind a source
is: it asks the kind. A project adds a kind with ``SOURCE_KINDS.register(MyKind())``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from ingest_assets.registry import Registry
from ingest_assets.sources.base import SourceReader
from ingest_assets.windows import Window

if TYPE_CHECKING:
    from ingest_assets.spec.dataset import DatasetSpec

S = TypeVar("S", bound=BaseModel)


def resource(resources: Any, key: str) -> Any:
    """The resource ``key`` of a run (Dagster's ``context.resources``) or of a plain mapping.

    Raises:
        KeyError: there is no such resource.
    """
    if isinstance(resources, Mapping):
        return resources[key]
    try:
        return getattr(resources, key)
    except AttributeError:
        raise KeyError(key) from None


class SourceKind(ABC, Generic[S]):
    """One kind of source. Subclass it in the kind's folder and register an instance.

    Attributes:
        name: The ``kind:`` a declaration writes (``object_store`` needs none: it is the default).
        model: The pydantic model of a declaration; its ``kind`` field is ``Literal[name]``.
        template: The required keys of a new declaration, as YAML lines indented by 8 spaces,
            with ``"<placeholder>"`` values (``ingest-assets new`` writes them).
    """

    name: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    template: ClassVar[str] = ""

    @abstractmethod
    def open(self, dataset: DatasetSpec, source: S, resources: Any) -> SourceReader:
        """The dataset's reader, built from the run's resources (or the declaration alone).

        Raises:
            SourceError: a setting the source needs is missing (a variable, a resource).
        """

    @abstractmethod
    def label(self, source: S) -> str:
        """The source as people name it (``ingest-assets list``), without secrets."""

    def tag(self, source: S) -> str:
        """The Dagster kind shown on the asset (its icon), e.g. 'sql', 's3'."""
        return self.name

    def metadata(self, source: S) -> dict[str, Any]:
        """What the UI shows about the source, without secrets."""
        return {"source": self.label(source)}

    def pool_key(self, source: S) -> str:
        """What datasets sharing a concurrency pool share (a database, a bucket, a host)."""
        return self.name

    def resource_keys(self, source: S) -> set[str]:
        """The Dagster resources the reader is built from."""
        return set()

    def check(self, dataset: DatasetSpec, source: S) -> None:
        """Rules across the dataset that this kind imposes (load modes, cadence).

        Raises:
            ValueError: the dataset cannot work with this source as declared.
        """

    def reconciles(self, dataset: DatasetSpec, source: S) -> bool:
        """Whether the dataset gets a reconciliation check (its reader implements ``Counts``)."""
        return False

    def probe(self, dataset: DatasetSpec, source: S, resources: Any, window: Window) -> str:
        """Test that the source answers as declared, reading as little as it can.

        The default plans the latest window's read.

        Returns:
            What answered, in a few words.
        """
        plan = self.open(dataset, source, resources).plan(window)
        return f"{len(plan.origins)} origin(s) for {window}"


#: Every source kind, by name. The default kind is ``object_store``.
SOURCE_KINDS: Registry[SourceKind[Any]] = Registry(
    "source",
    default="object_store",
    builtin=(
        "ingest_assets.sources.object_store.kind",
        "ingest_assets.sources.sql.kind",
        "ingest_assets.sources.rest.kind",
        "ingest_assets.sources.stream.kind",
    ),
)

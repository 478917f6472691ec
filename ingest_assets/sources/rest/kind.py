"""The REST source kind: a JSON HTTP API, read page by page for each window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_assets.errors import SourceError
from ingest_assets.sources.registry import SOURCE_KINDS, SourceKind, resource
from ingest_assets.sources.rest.auth import RestApiSettings
from ingest_assets.sources.rest.spec import RestSource
from ingest_assets.windows import Window

if TYPE_CHECKING:
    from ingest_assets.sources.rest.reader import RestReader
    from ingest_assets.spec.dataset import DatasetSpec


class RestKind(SourceKind[RestSource]):
    """Records of a JSON API, with its pagination, auth, rate limit and retries."""

    name = "rest"
    model = RestSource
    template = """        kind: rest
        base_url: "<https://api.example.com/v1>"
        endpoint: "</orders>"
        params: {start: "{start}", end: "{end}"}
        records_path: "<path to the list of records in the body, e.g. data>"
"""

    def open(self, dataset: DatasetSpec, source: RestSource, resources: Any) -> RestReader:
        """A reader of the API: through its declared resource, or as declared inline.

        Inline, secrets come from the variables the auth names.
        """
        from ingest_assets.sources.rest.reader import RestReader

        if source.resource is None:
            return RestReader(source, dataset=dataset.name)
        try:
            api: RestApiSettings = resource(resources, source.resource)
        except KeyError:
            raise SourceError(
                f"Dataset '{dataset.name}': source.resource {source.resource!r} is not a "
                "resource of this code location.",
                fix=f"Declare a RestApi resource under the key {source.resource!r} (in a "
                "definitions file of defs/), or give source.base_url.",
            ) from None
        return RestReader(source, dataset=dataset.name, api=api)

    def label(self, source: RestSource) -> str:
        """'rest https://api.example.com/v1/orders' (or the resource it goes through)."""
        return f"rest {source.api}{source.endpoint}"

    def tag(self, source: RestSource) -> str:
        """'api'."""
        return "api"

    def metadata(self, source: RestSource) -> dict[str, Any]:
        """The endpoint and how it is paginated."""
        return {"source": source.api + source.endpoint, "paginator": source.paginator.type}

    def pool_key(self, source: RestSource) -> str:
        """One pool per API host (or per API resource)."""
        if source.base_url is None:
            return f"api_{source.resource}"
        return "api_" + source.base_url.split("://", 1)[1].split("/", 1)[0]

    def resource_keys(self, source: RestSource) -> set[str]:
        """The declared API resource, if the source goes through one."""
        return {source.resource} if source.resource else set()

    def check(self, dataset: DatasetSpec, source: RestSource) -> None:
        """An API is read window by window: it has no whole-table snapshot."""
        if dataset.load.mode == "snapshot":
            raise ValueError("load.mode 'snapshot' applies to SQL sources only")

    def probe(
        self, dataset: DatasetSpec, source: RestSource, resources: Any, window: Window
    ) -> str:
        """The first page of the latest window, with the declared auth."""
        return self.open(dataset, source, resources).probe(window)


SOURCE_KINDS.register(RestKind())

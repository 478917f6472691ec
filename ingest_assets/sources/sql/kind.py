"""The SQL source kind: a table or query in a database, cut into windows by a timestamp column."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

from ingest_assets.errors import SourceError
from ingest_assets.sources.registry import SOURCE_KINDS, SourceKind, resource
from ingest_assets.sources.sql.spec import SqlSource
from ingest_assets.windows import Window

if TYPE_CHECKING:
    from ingest_assets.sources.sql.reader import SqlReader
    from ingest_assets.spec.dataset import DatasetSpec


class Database(Protocol):
    """What the reader needs of a database resource: its URL (a secret)."""

    url: str


class SqlKind(SourceKind[SqlSource]):
    """Tables and queries of a SQL database (PostgreSQL, DuckDB, SQLite, any SQLAlchemy URL)."""

    name = "sql"
    model = SqlSource
    template = """        kind: sql
        url_env: "<VARIABLE holding the database URL, e.g. APP_DB_URL>"
        table: "<schema.table>"
        time_column: "<timestamp column that places a row in its partition>"
"""

    def open(self, dataset: DatasetSpec, source: SqlSource, resources: Any) -> SqlReader:
        """A reader on the database's URL: the declared resource's, or the variable's."""
        if source.resource is not None:
            try:
                url = _database(resources, source.resource).url
            except KeyError:
                raise SourceError(
                    f"Dataset '{dataset.name}': source.resource {source.resource!r} is not a "
                    "resource of this code location.",
                    fix=f"Declare a SqlDatabase resource under the key {source.resource!r} "
                    "(in a definitions file of defs/), or use source.url_env.",
                ) from None
        else:
            url = os.environ.get(source.url_env or "", "")
        if not url:
            raise SourceError(
                f"Dataset '{dataset.name}': {source.connection}, which holds the database URL, "
                "is not set.",
                fix="Set the variable for the code location, e.g. in the deployment's "
                "environment or a .env file next to workspace.yaml.",
            )
        from ingest_assets.sources.sql.reader import SqlReader

        snapshot = dataset.load.mode == "snapshot"
        return SqlReader(source, url, dataset=dataset.name, snapshot=snapshot)

    def label(self, source: SqlSource) -> str:
        """'sql $APP_DB_URL raw.orders' (or the resource it reads through)."""
        return f"sql {source.connection} {source.table or 'query'}"

    def tag(self, source: SqlSource) -> str:
        """'sql'."""
        return "sql"

    def metadata(self, source: SqlSource) -> dict[str, Any]:
        """The table, where its URL comes from, and its time column."""
        where = {"url_env": source.url_env} if source.url_env else {"resource": source.resource}
        return {
            "source": source.table or "query",
            **where,
            "time_column": source.time_column or "(whole table)",
        }

    def pool_key(self, source: SqlSource) -> str:
        """One pool per database: its variable or its resource."""
        return f"sql_{source.url_env or source.resource}"

    def resource_keys(self, source: SqlSource) -> set[str]:
        """The declared database resource, if the source reads through one."""
        return {source.resource} if source.resource else set()

    def check(self, dataset: DatasetSpec, source: SqlSource) -> None:
        """A time column cuts the table into windows, unless every partition copies it whole."""
        if source.time_column is None and dataset.load.mode != "snapshot":
            raise ValueError(
                "source.time_column is required to cut a SQL source into windows (or use "
                "load.mode: snapshot to copy the whole table each partition)"
            )

    def reconciles(self, dataset: DatasetSpec, source: SqlSource) -> bool:
        """Replaced and merged windows are counted against the source (appends are not)."""
        return dataset.load.mode != "append"

    def probe(self, dataset: DatasetSpec, source: SqlSource, resources: Any, window: Window) -> str:
        """The database answers for the declared columns with no rows."""
        reader = self.open(dataset, source, resources)
        return reader.probe(source.columns or list(dataset.table_schema.columns or {}))


def _database(resources: Any, key: str) -> Database:
    return resource(resources, key)


SOURCE_KINDS.register(SqlKind())

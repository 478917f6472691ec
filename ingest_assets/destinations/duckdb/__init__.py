"""The DuckDB destination kind: the embedded default warehouse, one file on local disk."""

from ingest_assets.destinations.base import AUDIT, WINDOW_COLUMN, WindowWrite, quarantine_table
from ingest_assets.destinations.duckdb.warehouse import (
    DuckDBWarehouse,
    duckdb_connector,
    qualified,
)
from ingest_assets.staging import quote, staged_rows

__all__ = [
    "AUDIT",
    "WINDOW_COLUMN",
    "DuckDBWarehouse",
    "WindowWrite",
    "duckdb_connector",
    "qualified",
    "quarantine_table",
    "quote",
    "staged_rows",
]

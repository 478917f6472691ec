"""The metadata of a materialization: one partition's own figures."""

from __future__ import annotations

from typing import Any

import dagster as dg

from ingest_assets.components.translator import table_schema
from ingest_assets.report import LoadReport
from ingest_assets.spec import DatasetSpec


def materialization_metadata(
    spec: DatasetSpec, report: LoadReport, table_name: str, uri: str | None = None
) -> dict[str, Any]:
    """Metadata recorded with every materialization (numbers chart over time in the UI).

    Args:
        spec: The dataset.
        report: The load of its one partition.
        table_name: The table's full name in its store.
        uri: Where the table lives (``dagster/uri``), if the store says.
    """
    return {
        **({"dagster/uri": uri} if uri else {}),
        "dagster/row_count": report.rows_written,
        "dagster/column_schema": table_schema(report.schema, spec),
        "dagster/table_name": table_name,
        "rows_read": report.rows_read,
        "rows_rejected": report.rows_rejected,
        "rows_deduplicated": report.rows_deduplicated,
        "checksum": report.checksum or "",
        "load_id": report.load_id,
        "objects_read": len(report.objects),
        "objects": dg.MetadataValue.json(report.objects[:100]),
        "bytes_read": report.bytes_read,
        "duration_seconds": round(report.duration_seconds, 3),
        "phase_seconds": dg.MetadataValue.json(
            {phase: round(seconds, 3) for phase, seconds in report.timings.items()}
        ),
        "cpu_seconds": round(report.cpu_seconds, 3),
        "peak_rss_mb": round(report.peak_rss_bytes / 2**20, 1),
        "window": str(report.window),
    }

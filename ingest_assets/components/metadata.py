"""The metadata of a materialization: one partition's figures, or a run's totals by partition."""

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


def range_metadata(
    spec: DatasetSpec,
    keys: list[str],
    reports: list[LoadReport],
    table_name: str,
    uri: str | None = None,
) -> dict[str, Any]:
    """Metadata of a run that loaded several partitions at once.

    Dagster records one materialization per partition with the same metadata, so per-partition
    figures (``dagster/row_count``, ``rows_read``, ...) would repeat the run's totals on every
    partition. They are left out: the run's totals carry a ``run_`` prefix, the per-partition
    figures are in ``rows_by_partition`` and in the audit table.
    """
    return {
        **({"dagster/uri": uri} if uri else {}),
        "dagster/column_schema": table_schema(reports[0].schema, spec),
        "dagster/table_name": table_name,
        "partitions_in_run": len(reports),
        "run_rows_read": sum(r.rows_read for r in reports),
        "run_rows_written": sum(r.rows_written for r in reports),
        "run_rows_rejected": sum(r.rows_rejected for r in reports),
        "run_rows_deduplicated": sum(r.rows_deduplicated for r in reports),
        "run_bytes_read": sum(r.bytes_read for r in reports),
        "run_cpu_seconds": round(sum(r.cpu_seconds for r in reports), 3),
        "run_peak_rss_mb": round(max(r.peak_rss_bytes for r in reports) / 2**20, 1),
        "run_duration_seconds": round(sum(r.duration_seconds for r in reports), 3),
        "rows_by_partition": dg.MetadataValue.json(
            {
                key: {
                    "read": r.rows_read,
                    "written": r.rows_written,
                    "rejected": r.rows_rejected,
                    "deduplicated": r.rows_deduplicated,
                    "checksum": r.checksum,
                    "load_id": r.load_id,
                }
                for key, r in zip(keys, reports, strict=True)
            }
        ),
    }

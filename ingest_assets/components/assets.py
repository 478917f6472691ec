"""The Dagster shell around the ingestion core: a partitioned asset, with checks, per dataset."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from ingest_assets.destinations.duckdb import DuckDBWarehouse, quarantine_table
from ingest_assets.engine import LoadReport, load_window, load_windows, record_failure
from ingest_assets.environment import open_store
from ingest_assets.errors import IngestError, SourceError, ValidationFailed
from ingest_assets.quality.checks import (
    DRIFT,
    KEY_UNIQUE,
    MASKING,
    SCHEMA,
    VOLUME,
    CheckOutcome,
    combine,
    volume_outcome,
)
from ingest_assets.quality.schema import BatchValidator
from ingest_assets.sources.base import SourceReader
from ingest_assets.sources.object_store import (
    ObjectStoreReader,
    split_s3_location,
)
from ingest_assets.sources.rest import RestReader
from ingest_assets.sources.sql import SqlReader
from ingest_assets.spec import DatasetSpec, ObjectStoreSource, RestSource, SqlSource
from ingest_assets.triggers.freshness import freshness_policy
from ingest_assets.triggers.partitions import partitions_def
from ingest_assets.windows import Window

RECONCILIATION = "reconciliation"


def table_schema(schema: pa.Schema, spec: DatasetSpec) -> dg.TableSchema:
    """The declared columns as Dagster's column schema (shown in the UI's Columns tab).

    Classified columns carry the tags ``classification`` (pii, secret) and ``masking``.
    """
    declared = spec.table_schema.columns or {}
    columns = []
    for field in schema:
        column = declared.get(field.name)
        tags = {}
        if column is not None and column.classification:
            tags = {"classification": column.classification, "masking": column.mask or "none"}
        columns.append(
            dg.TableColumn(
                name=field.name,
                type=str(field.type),
                description=column.description if column else None,
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable if column else True,
                    unique=column.unique if column else False,
                ),
                tags=tags,
            )
        )
    return dg.TableSchema(columns=columns)


def open_reader(spec: DatasetSpec, resources: Any) -> SourceReader:
    """Open a dataset's source: a SQL database, S3 through its S3Resource, or a local folder."""
    source = spec.source
    if isinstance(source, SqlSource):
        url = dg.EnvVar(source.url_env).get_value()
        if not url:
            raise SourceError(
                f"Dataset '{spec.name}': the environment variable {source.url_env} that holds "
                "the database URL is not set.",
                fix=f"Set {source.url_env} for the code location, e.g. in the deployment's "
                "environment or a .env file next to workspace.yaml.",
            )
        return SqlReader(source, url, dataset=spec.name, snapshot=spec.load.mode == "snapshot")
    if isinstance(source, RestSource):
        return RestReader(source, dataset=spec.name)
    return ObjectStoreReader(open_store(source, resources), source, dataset=spec.name)


def source_kind(spec: DatasetSpec) -> str:
    """The kind tag of a dataset's source: 'sql', 's3' or 'file'."""
    if isinstance(spec.source, SqlSource):
        return "sql"
    if isinstance(spec.source, RestSource):
        return "api"
    return "s3" if spec.source.is_s3 else "file"


def source_metadata(spec: DatasetSpec) -> dict[str, Any]:
    """What the UI shows about where a dataset comes from (no secrets)."""
    source = spec.source
    if isinstance(source, SqlSource):
        return {
            "source": source.table or "query",
            "url_env": source.url_env,
            "time_column": source.time_column or "(whole table)",
        }
    if isinstance(source, RestSource):
        return {"source": source.base_url + source.endpoint, "paginator": source.paginator.type}
    return {"source": source.location, "key_template": source.key_template}


def source_pool(spec: DatasetSpec) -> str:
    """The concurrency pool of a dataset: declared, or one per source (database, bucket, API)."""
    if spec.pool:
        return spec.pool
    source = spec.source
    if isinstance(source, SqlSource):
        key = f"sql_{source.url_env}"
    elif isinstance(source, RestSource):
        key = "api_" + source.base_url.split("://", 1)[1].split("/", 1)[0]
    elif source.is_s3:
        key = "s3_" + split_s3_location(source.location)[0]
    else:
        key = "files"
    return "ingest_" + "".join(ch if ch.isalnum() else "_" for ch in key).lower()


def retry_policy(spec: DatasetSpec) -> dg.RetryPolicy | None:
    """The dataset's retry policy for its load step.

    Only transient errors reach it: every other failure is raised as
    ``dg.Failure(allow_retries=False)``.
    """
    retry = spec.retry
    if retry.max_retries == 0:
        return None
    return dg.RetryPolicy(
        max_retries=retry.max_retries,
        delay=retry.delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL if retry.backoff == "exponential" else dg.Backoff.LINEAR,
        jitter=None
        if retry.jitter == "none"
        else dg.Jitter.FULL
        if retry.jitter == "full"
        else dg.Jitter.PLUS_MINUS,
    )


def _table_name(spec: DatasetSpec, database: str) -> str:
    return f"{Path(database).stem}.{spec.destination.schema_name}.{spec.destination.table_name}"


def check_result(
    spec: DatasetSpec, outcome: CheckOutcome, extra: dict[str, Any] | None = None
) -> dg.AssetCheckResult:
    """A check outcome of the core as Dagster's asset check result (plus ``extra`` metadata)."""
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=dg.AssetKey(spec.name),
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR
        if outcome.severity == "error"
        else dg.AssetCheckSeverity.WARN,
        metadata={
            **{
                key: dg.MetadataValue.json(value) if isinstance(value, dict | list) else value
                for key, value in outcome.metadata.items()
                if value is not None
            },
            **(extra or {}),
        },
        description=outcome.description,
    )


def check_results(
    spec: DatasetSpec, report: LoadReport, wanted: set[str]
) -> list[dg.AssetCheckResult]:
    """The results of the wanted checks the load judged (the schema check with its sample)."""
    return [
        schema_result(spec, report) if name == SCHEMA else check_result(spec, outcome)
        for name, outcome in report.checks.items()
        if name in wanted
    ]


def schema_result(spec: DatasetSpec, report: LoadReport) -> dg.AssetCheckResult:
    """The schema check's result: counts per column and rule, and a sample of offending values."""
    summary = report.validation
    # Failures of error and warn rules alike; rejections_by_rule below has the warn ones alone.
    metadata: dict[str, Any] = {
        "failures_by_column": dg.MetadataValue.json(summary.per_column(None)),
        "failures_by_rule": dg.MetadataValue.json(
            {f"{column}: {check}": n for (column, check), n in summary.by_rule(None).most_common()}
        ),
    }
    if summary.rows_rejected:
        metadata["quarantine_table"] = quarantine_table(spec.destination).table
        metadata["rejections_by_rule"] = dg.MetadataValue.json(
            {f"{column}: {check}": n for (column, check), n in summary.warn_counts.most_common()}
        )
    for column, count in summary.per_column().items():
        metadata[f"failed.{column}"] = count
    if summary.sample:
        metadata["sample"] = dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "column": failure.column,
                        "rule": failure.check,
                        "severity": failure.severity,
                        "value": None if failure.value is None else str(failure.value)[:200],
                        "object": failure.object,
                        "row": failure.row,
                    }
                )
                for failure in summary.sample
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("column", "string"),
                    dg.TableColumn("rule", "string"),
                    dg.TableColumn("severity", "string"),
                    dg.TableColumn("value", "string"),
                    dg.TableColumn("object", "string"),
                    dg.TableColumn("row", "int"),
                ]
            ),
        )
    return check_result(spec, report.checks[SCHEMA], metadata)


def materialization_metadata(
    spec: DatasetSpec, report: LoadReport, database: str
) -> dict[str, Any]:
    """Metadata recorded with every materialization (numbers chart over time in the UI)."""
    return {
        "dagster/row_count": report.rows_written,
        "dagster/column_schema": table_schema(report.schema, spec),
        "dagster/table_name": _table_name(spec, database),
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
    spec: DatasetSpec, keys: list[str], reports: list[LoadReport], database: str
) -> dict[str, Any]:
    """Metadata of a run that loaded several partitions at once.

    Dagster records one materialization per partition with the same metadata, so per-partition
    figures (``dagster/row_count``, ``rows_read``, ...) would repeat the run's totals on every
    partition. They are left out: the run's totals carry a ``run_`` prefix, the per-partition
    figures are in ``rows_by_partition`` and in the audit table.
    """
    return {
        "dagster/column_schema": table_schema(reports[0].schema, spec),
        "dagster/table_name": _table_name(spec, database),
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


def _reconciliation_applies(spec: DatasetSpec) -> bool:
    return isinstance(spec.source, SqlSource) and spec.load.mode != "append"


def reconcile(
    spec: DatasetSpec,
    reader: SourceReader,
    warehouse: DuckDBWarehouse,
    windows: list[Window],
    reports: list[LoadReport] | None = None,
) -> dg.AssetCheckResult:
    """Compare, window by window, the rows the source holds with the rows loaded.

    Rows a load set aside on purpose (quarantined by warn rules, duplicates dropped by
    ``dedup``) are accounted for: they come from this run's reports, or from the audit rows of
    the windows' latest loads when the check runs alone. For ``merge`` loads rows are counted
    by the source's time column on both sides (a window's rows may since have been superseded
    by newer versions of the same keys, which moves them).
    """
    assert isinstance(reader, SqlReader) and isinstance(spec.source, SqlSource)
    by_column = spec.source.time_column if spec.load.mode == "merge" else None
    if reports is not None:
        aside = {r.window.start: r.rows_rejected + r.rows_deduplicated for r in reports}
    else:
        aside = warehouse.rows_set_aside(spec.name, windows)
    with reader.session():  # one source connection for every window
        counts = {
            str(window): (
                reader.count(window),
                warehouse.count_window(spec.destination, window, column=by_column),
                aside.get(window.start, 0),
            )
            for window in windows
        }
    off = {window: c for window, c in counts.items() if c[0] != c[1] + c[2]}
    source_rows = sum(c[0] for c in counts.values())
    loaded_rows = sum(c[1] for c in counts.values())
    set_aside = sum(c[2] for c in counts.values())
    return dg.AssetCheckResult(
        check_name=RECONCILIATION,
        asset_key=dg.AssetKey(spec.name),
        passed=not off,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "windows_checked": len(counts),
            "source_rows": source_rows,
            "loaded_rows": loaded_rows,
            "rows_set_aside": set_aside,
            "difference": loaded_rows + set_aside - source_rows,
            "windows_off": dg.MetadataValue.json(
                {
                    window: {"source": s, "loaded": w, "set_aside": a}
                    for window, (s, w, a) in off.items()
                }
            ),
        },
        description=None
        if not off
        else f"{spec.destination.table} differs from the source in {len(off)} window(s), "
        f"e.g. {next(iter(off))} (rows quarantined or deduplicated by the load count as "
        "accounted for): rerun those partitions to restore them.",
    )


def dataset_asset(spec: DatasetSpec, *, origin: str) -> dg.AssetsDefinition:
    """Build the partitioned asset of one dataset, with its blocking checks.

    The schema check gates every load. SQL datasets also get a blocking reconciliation check
    (source rows vs loaded rows for the window). Either check can be run on its own for a
    partition ("Execute check" in the UI): the schema check then reads and validates the window
    without writing, the reconciliation check compares counts.

    Args:
        spec: The dataset.
        origin: The YAML file that declares it (shown in the UI).
    """
    key = dg.AssetKey(spec.name)
    declared_schema = BatchValidator(spec.table_schema, spec.quality).arrow_schema
    source = spec.source
    resource_keys = {"duckdb"}
    if isinstance(source, ObjectStoreSource) and source.is_s3:
        resource_keys.add(source.resource)
    check_specs = [
        dg.AssetCheckSpec(name, asset=key, blocking=True, description=text)
        for name, text in quality_checks(spec).items()
    ]
    if _reconciliation_applies(spec):
        check_specs.append(
            dg.AssetCheckSpec(
                RECONCILIATION,
                asset=key,
                blocking=True,
                description="Rows in the source for the partition's window equal the rows "
                "loaded for it.",
            )
        )

    def _checks_alone(
        context: dg.AssetExecutionContext,
        reader: SourceReader,
        warehouse: DuckDBWarehouse,
        wants: set[str],
        salt: str | None,
    ) -> Iterator[dg.AssetCheckResult]:
        """Checks run without the load: for the run's partition, or every loaded window."""
        if context.has_partition_key or context.has_partition_key_range:
            windows = [Window(*context.partition_time_window)]
        else:
            windows = sorted(
                {
                    Window(
                        *partitions.time_window_for_partition_key(
                            partitions.get_partition_key_for_timestamp(moment.timestamp())
                        )
                    )
                    for moment in warehouse.loaded_windows(spec.destination)
                },
                key=lambda window: window.start,
            )
        quality = wants - {RECONCILIATION}
        if quality and windows:  # read and judge the latest window again, no write
            window = windows[-1]
            try:
                report = load_window(
                    spec, window, reader, None, run_id=context.run.run_id, salt=salt
                )
            except ValidationFailed as exc:
                report = exc.report
            if VOLUME in quality:
                history = warehouse.load_history(
                    spec.name,
                    window.start,
                    spec.quality.volume.trailing if spec.quality.volume else 1,
                )
                report.checks[VOLUME] = volume_outcome(
                    report.rows_read, history, spec.quality.volume, spec.quality.row_count
                )
            yield from check_results(spec, report, quality)
        if RECONCILIATION in wants:
            yield reconcile(spec, reader, warehouse, windows)

    partitions = partitions_def(spec.partitioning)

    @dg.multi_asset(
        name=spec.name,
        specs=[
            dg.AssetSpec(
                key,
                description=spec.description or None,
                group_name=spec.group,
                owners=spec.owners,
                kinds={source_kind(spec), "duckdb"},
                metadata={
                    "dagster/column_schema": table_schema(declared_schema, spec),
                    **source_metadata(spec),
                    "load_mode": spec.load.mode,
                    "declared_in": origin,
                },
                tags={"ingest/source": source_kind(spec)},
                skippable=True,
                freshness_policy=freshness_policy(spec),
            )
        ],
        check_specs=check_specs,
        partitions_def=partitions,
        required_resource_keys=resource_keys,
        can_subset=True,
        retry_policy=retry_policy(spec),
        pool=source_pool(spec),
        backfill_policy=dg.BackfillPolicy.multi_run(spec.load.max_partitions_per_run),
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[Any]:
        duckdb_resource = context.resources.duckdb
        warehouse = DuckDBWarehouse(duckdb_resource.get_connection, duckdb_resource.database)
        wants = {check.name for check in context.selected_asset_check_keys}
        loading = key in context.selected_asset_keys
        # One partition, or a range of them (a single-run backfill): one window per partition.
        ranged = context.has_partition_key or context.has_partition_key_range
        keys = list(context.partition_keys) if ranged else []
        windows = [Window(*partitions.time_window_for_partition_key(k)) for k in keys]
        try:
            try:
                salt = _salt(spec)
                reader = open_reader(spec, context.resources)
            except IngestError as exc:
                for partition_key, window in zip(keys, windows, strict=True) if loading else []:
                    # A load that failed still leaves its audit row.
                    record_failure(
                        warehouse,
                        spec,
                        window,
                        run_id=context.run.run_id,
                        partition=partition_key,
                        error=exc,
                    )
                raise
            if not loading:
                yield from _checks_alone(context, reader, warehouse, wants, salt)
                return
            reports = load_windows(
                spec,
                windows,
                reader,
                warehouse,
                run_id=context.run.run_id,
                partitions=keys,
                salt=salt,
                log=context.log,
            )
        except ValidationFailed as exc:
            yield from check_results(spec, exc.report, wants)
            raise dg.Failure(
                description=str(exc),
                metadata={
                    "rows_read": exc.report.rows_read,
                    "rows_failed": exc.report.validation.rows_failed,
                    "rows_rejected": exc.report.rows_rejected,
                },
                allow_retries=False,
            ) from None
        except IngestError as exc:
            raise dg.Failure(description=str(exc), allow_retries=exc.transient) from None
        except Exception as exc:
            # Anything unforeseen is a defect, not a transient fault: do not retry it.
            raise dg.Failure(
                description=f"Dataset '{spec.name}': unexpected {type(exc).__name__}: {exc}",
                allow_retries=False,
            ) from exc
        if len(reports) == 1:
            results = check_results(spec, reports[0], wants)
            metadata = materialization_metadata(spec, reports[0], duckdb_resource.database)
        else:
            results = [
                check_result(
                    spec,
                    combine(
                        name, [(k, r.checks[name]) for k, r in zip(keys, reports, strict=True)]
                    ),
                )
                for name in reports[0].checks
                if name in wants
            ]
            metadata = range_metadata(spec, keys, reports, duckdb_resource.database)
        if RECONCILIATION in wants:
            try:
                results.append(reconcile(spec, reader, warehouse, windows, reports))
            except IngestError as exc:
                raise dg.Failure(description=str(exc), allow_retries=exc.transient) from None
        yield dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=results)

    return _load


def quality_checks(spec: DatasetSpec) -> dict[str, str]:
    """The quality checks a dataset gets, with their descriptions (all blocking on ERROR)."""
    checks = {
        SCHEMA: "Every row has the declared columns, types and values. Rows breaking error rules "
        "fail the partition; rows breaking warn rules are quarantined in "
        f"{quarantine_table(spec.destination).table} (a warning), unless more than "
        f"{spec.quality.max_rejected_fraction:.2%} of rows are, which fails it.",
        DRIFT: "The source's columns against the declared ones (added, removed, retyped); "
        f"policy: {spec.quality.drift}.",
    }
    if spec.quality.unique_key or spec.dedup:
        key = spec.quality.unique_key or (spec.dedup.key if spec.dedup else [])
        checks[KEY_UNIQUE] = f"({', '.join(key)}) is unique across the partition" + (
            " after dropping duplicates (the latest row per key is kept)." if spec.dedup else "."
        )
    if spec.quality.volume or spec.quality.row_count:
        checks[VOLUME] = "Rows read against fixed bounds (if any) and against the median of the "
        "trailing partitions (a warning when it breaks the trend)."
    if any(c.classification for c in (spec.table_schema.columns or {}).values()):
        checks[MASKING] = "Classified columns (pii, secret) that must be masked are masked on "
        "load; fails before anything lands unmasked."
    return checks


def _salt(spec: DatasetSpec) -> str | None:
    """The hash-masking salt from the environment, when a column needs it."""
    if not any(c.mask == "hash" for c in (spec.table_schema.columns or {}).values()):
        return None
    return dg.EnvVar(spec.quality.salt_env).get_value() or None

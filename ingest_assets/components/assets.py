"""The Dagster shell around the ingestion core: a partitioned asset, with checks, per dataset.

Building the asset (:func:`dataset_asset`: its spec from a translator, its checks, its policies)
is separate from running it (:class:`DatasetLoad`: open the source and the destination from the
run's resources, load the partitions' windows, report).
"""

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import dagster as dg

from ingest_assets.components.checks import (
    RECONCILIATION,
    check_results,
    check_specs,
    check_summary,
    reconcile,
    schema_result,
)
from ingest_assets.components.metadata import materialization_metadata
from ingest_assets.components.translator import DatasetTranslator, source_kind, source_pool
from ingest_assets.destinations.base import Destination, ProbesTables
from ingest_assets.destinations.registry import DESTINATION_KINDS
from ingest_assets.engine import load_window, load_windows, record_failure
from ingest_assets.errors import IngestError, PartitionsFailed, ValidationFailed
from ingest_assets.quality.checks import VOLUME, volume_outcome
from ingest_assets.report import LoadReport
from ingest_assets.sources.base import Counts, Sessions, SourceReader
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec
from ingest_assets.triggers.partitions import partitions_def
from ingest_assets.windows import Window

__all__ = ["DatasetLoad", "dataset_asset", "retry_policy", "schema_result", "source_kind"]


def retry_policy(spec: DatasetSpec) -> dg.RetryPolicy | None:
    """The dataset's retry policy for its load step.

    Only transient errors reach it: every other failure is raised as
    ``dg.Failure(allow_retries=False)``.
    """
    retry = spec.retry
    if retry.max_retries == 0:
        return None
    jitter = {"none": None, "full": dg.Jitter.FULL}.get(retry.jitter, dg.Jitter.PLUS_MINUS)
    return dg.RetryPolicy(
        max_retries=retry.max_retries,
        delay=retry.delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL if retry.backoff == "exponential" else dg.Backoff.LINEAR,
        jitter=jitter,
    )


def dataset_asset(
    spec: DatasetSpec, *, origin: str, translator: DatasetTranslator | None = None
) -> dg.AssetsDefinition:
    """Build the partitioned asset of one dataset, with its blocking checks.

    The schema check gates every load. Datasets whose source can count a window (SQL) also get
    a blocking reconciliation check (source rows vs loaded rows for the window). Either check
    can be run on its own for a partition ("Execute check" in the UI): the schema check then
    reads and validates the window without writing, the reconciliation check compares counts.

    Args:
        spec: The dataset.
        origin: The YAML file that declares it (shown in the UI).
        translator: How the dataset appears in Dagster (default: :class:`DatasetTranslator`).
    """
    translator = translator or DatasetTranslator()
    key = translator.asset_key(spec)
    load = DatasetLoad(spec, key)

    @dg.multi_asset(
        name=spec.name,
        specs=[translator.asset_spec(spec, origin)],
        check_specs=check_specs(spec, key),
        partitions_def=load.partitions,
        required_resource_keys=load.resource_keys,
        can_subset=True,
        retry_policy=retry_policy(spec),
        pool=source_pool(spec),
        backfill_policy=dg.BackfillPolicy.multi_run(spec.load.max_partitions_per_run),
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[Any]:
        yield from load.execute(context)

    return _load


class DatasetLoad:
    """What a dataset's asset does when it runs: load the run's partitions, or run its checks.

    Args:
        spec: The dataset.
        key: Its asset key.
    """

    def __init__(self, spec: DatasetSpec, key: dg.AssetKey) -> None:
        self.spec = spec
        self.key = key
        self.partitions = partitions_def(spec.partitioning)
        self._source_kind = SOURCE_KINDS.of(spec.source)
        self._destination_kind = DESTINATION_KINDS.of(spec.destination)
        self._warehouse_key = self._destination_kind.resource_key(spec.destination)

    @property
    def resource_keys(self) -> set[str]:
        """The resources a run needs: the source's and the destination's."""
        warehouse = {self._warehouse_key} if self._warehouse_key else set()
        return self._source_kind.resource_keys(self.spec.source) | warehouse

    def execute(self, context: dg.AssetExecutionContext) -> Iterator[Any]:
        """Load the run's partitions (one window each) and report them, or run checks alone."""
        spec = self.spec
        kind, key = self._destination_kind, self._warehouse_key
        try:
            resource = (
                getattr(context.resources, key) if key else kind.default_resource(spec.destination)
            )
            warehouse = kind.open(spec.destination, resource)
        except IngestError as exc:  # e.g. the variable holding the warehouse's URL is not set
            raise _failure(spec, exc) from None
        wants = {check.name for check in context.selected_asset_check_keys}
        loading = self.key in context.selected_asset_keys
        # One partition, or a range of them (a single-run backfill): one window per partition.
        ranged = context.has_partition_key or context.has_partition_key_range
        keys = list(context.partition_keys) if ranged else []
        windows = [Window(*self.partitions.time_window_for_partition_key(k)) for k in keys]
        try:
            reader = self._open(context, warehouse, keys if loading else [], windows)
            if loading:
                yield from self._load(context, reader, warehouse, keys, windows, wants)
            else:
                yield from self._checks_alone(context, reader, warehouse, wants)
        except IngestError as exc:
            raise _failure(spec, exc) from None
        except Exception as exc:
            raise _failure(spec, exc) from exc

    def _load(
        self,
        context: dg.AssetExecutionContext,
        reader: SourceReader,
        warehouse: Destination,
        keys: list[str],
        windows: list[Window],
        wants: set[str],
    ) -> Iterator[Any]:
        """Load the run's windows; report each partition, the failed ones with their checks."""
        try:
            reports = load_windows(
                self.spec,
                windows,
                reader,
                warehouse,
                run_id=context.run.run_id,
                partitions=keys,
                salt=_salt(self.spec),
                log=context.log,
            )
        except PartitionsFailed as exc:  # the good partitions of the range were written
            yield from self._partitions(context, reader, warehouse, keys, exc.reports, wants)
            raise
        except ValidationFailed as exc:  # nothing was written
            results = check_results(self.spec, exc.report, wants, key=self.key)
            if len(keys) > 1:  # an atomic range: the checks are the failed partition's
                partition = keys[[w.start for w in windows].index(exc.report.window.start)]
                yield from (_evaluation(result, self.key, partition) for result in results)
            else:
                yield from results
            raise
        if len(reports) == 1:
            yield self._result(reader, warehouse, reports[0], wants)
        else:
            yield from self._partitions(context, reader, warehouse, keys, reports, wants)

    def _open(
        self,
        context: dg.AssetExecutionContext,
        warehouse: Destination,
        keys: list[str],
        windows: list[Window],
    ) -> SourceReader:
        """The source's reader; if it cannot open, each partition to load gets a failed audit."""
        try:
            return self._source_kind.open(self.spec, self.spec.source, context.resources)
        except IngestError as exc:
            for partition_key, window in zip(keys, windows, strict=False):
                record_failure(
                    warehouse,
                    self.spec,
                    window,
                    run_id=context.run.run_id,
                    partition=partition_key,
                    error=exc,
                )
            raise

    def _result(
        self, reader: SourceReader, warehouse: Destination, report: LoadReport, wants: set[str]
    ) -> dg.MaterializeResult:
        """The materialization of the run's one partition, with its checks' results."""
        results = self._checks(reader, warehouse, report, wants)
        return dg.MaterializeResult(
            asset_key=self.key,
            metadata=check_summary(results) | self._metadata(warehouse, report),
            check_results=results,
        )

    def _metadata(self, warehouse: Destination, report: LoadReport) -> dict[str, Any]:
        """One written partition's figures, with where its table lives."""
        destination = self.spec.destination
        uri = warehouse.uri(destination) if isinstance(warehouse, ProbesTables) else None
        return materialization_metadata(self.spec, report, warehouse.describe(destination), uri)

    def _checks(
        self, reader: SourceReader, warehouse: Destination, report: LoadReport, wants: set[str]
    ) -> list[dg.AssetCheckResult]:
        """The wanted checks' results for one window (reconciled when it was written)."""
        results = check_results(self.spec, report, wants, key=self.key)
        if RECONCILIATION in wants and isinstance(reader, Counts) and report.error is None:
            windows = [report.window]
            results.append(reconcile(self.spec, reader, warehouse, windows, [report], key=self.key))
        return results

    def _partitions(
        self,
        context: dg.AssetExecutionContext,
        reader: SourceReader,
        warehouse: Destination,
        keys: list[str],
        reports: list[LoadReport],
        wants: set[str],
    ) -> Iterator[Any]:
        """A range run's partitions, each with its own materialization and check evaluations.

        A partition's figures and checks are its own, whatever the others of the run did.

        When every partition was written, Dagster records one materialization per partition
        from the run's result, each with its partition's own figures; when some failed, the
        written ones are recorded one by one and the step then fails for the others.
        """
        key = self.key
        # One source connection for every partition's reconciliation.
        with reader.session() if isinstance(reader, Sessions) else nullcontext():
            results = {
                partition: self._checks(reader, warehouse, report, wants)
                for partition, report in zip(keys, reports, strict=True)
            }
        loaded = [(k, r) for k, r in zip(keys, reports, strict=True) if r.error is None]
        for partition, report in loaded:
            metadata = check_summary(results[partition]) | self._metadata(warehouse, report)
            if len(loaded) < len(reports):
                yield dg.AssetMaterialization(key, partition=partition, metadata=metadata)
            else:
                context.add_asset_metadata(metadata, asset_key=key, partition_key=partition)
        if len(loaded) == len(reports):
            yield dg.MaterializeResult(asset_key=key, metadata={"partitions_in_run": len(keys)})
            for name in sorted(wants):  # each check's output, once for the run
                check_key = dg.AssetCheckKey(key, name)
                yield dg.Output(
                    None, context.assets_def.get_output_name_for_asset_check_key(check_key)
                )
        for partition, partition_results in results.items():
            yield from (_evaluation(result, key, partition) for result in partition_results)

    def _checks_alone(
        self,
        context: dg.AssetExecutionContext,
        reader: SourceReader,
        warehouse: Destination,
        wants: set[str],
    ) -> Iterator[dg.AssetCheckResult]:
        """Checks run without the load: for the run's partition, or every loaded window."""
        spec = self.spec
        windows = self._checked_windows(context, warehouse)
        quality = wants - {RECONCILIATION}
        if quality and windows:  # read and judge the latest window again, no write
            window = windows[-1]
            try:
                report = load_window(
                    spec, window, reader, None, run_id=context.run.run_id, salt=_salt(spec)
                )
            except ValidationFailed as exc:
                report = exc.report
            if VOLUME in quality:
                volume = spec.quality.volume
                history = warehouse.load_history(
                    spec.name, window.start, volume.trailing if volume else 1
                )
                report.checks[VOLUME] = volume_outcome(
                    report.rows_read, history, volume, spec.quality.row_count
                )
            yield from check_results(spec, report, quality, key=self.key)
        if RECONCILIATION in wants and isinstance(reader, Counts):
            yield reconcile(spec, reader, warehouse, windows, key=self.key)

    def _checked_windows(
        self, context: dg.AssetExecutionContext, warehouse: Destination
    ) -> list[Window]:
        """The run's partition's window, or (no partition) every window the table holds."""
        if context.has_partition_key or context.has_partition_key_range:
            return [Window(*context.partition_time_window)]
        partitions = self.partitions
        keys = {
            partitions.get_partition_key_for_timestamp(moment.timestamp())
            for moment in warehouse.loaded_windows(self.spec.destination)
        }
        windows = [Window(*partitions.time_window_for_partition_key(k)) for k in keys]
        return sorted(windows, key=lambda window: window.start)


def _failure(spec: DatasetSpec, exc: Exception) -> dg.Failure:
    """A failed load as Dagster's failure: retried only when the error is transient.

    The fix is also a metadata entry of its own, shown beside the message in the run's log
    rather than after the stack trace Dagster attaches.
    """
    if not isinstance(exc, IngestError):  # a defect, not a transient fault: not retried
        return dg.Failure(
            description=f"Dataset '{spec.name}': unexpected {type(exc).__name__}: {exc}",
            allow_retries=False,
        )
    metadata: dict[str, Any] = {"error": exc.message, **({"fix": exc.fix} if exc.fix else {})}
    if isinstance(exc, PartitionsFailed):
        failed = [r for r in exc.reports if r.error is not None]
        metadata |= {
            "partitions_failed": len(failed),
            "partitions_written": len(exc.reports) - len(failed),
        }
    elif isinstance(exc, ValidationFailed):
        metadata |= {
            "rows_read": exc.report.rows_read,
            "rows_failed": exc.report.validation.rows_failed,
            "rows_rejected": exc.report.rows_rejected,
        }
    return dg.Failure(description=str(exc), metadata=metadata, allow_retries=exc.transient)


def _evaluation(
    result: dg.AssetCheckResult, key: dg.AssetKey, partition: str
) -> dg.AssetCheckEvaluation:
    """A check's result as the evaluation of one partition (of a run over several)."""
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=result.check_name or "",
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
        description=result.description,
        blocking=True,
        partition=partition,
    )


def _salt(spec: DatasetSpec) -> str | None:
    """The hash-masking salt from the environment, when a column needs it."""
    if not any(c.mask == "hash" for c in (spec.table_schema.columns or {}).values()):
        return None
    return dg.EnvVar(spec.quality.salt_env).get_value() or None

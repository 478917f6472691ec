"""The asset checks of a dataset: their specs, and the core's outcomes as Dagster results."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg

from ingest_assets.destinations.base import Destination, quarantine_table
from ingest_assets.quality.checks import DRIFT, KEY_UNIQUE, MASKING, SCHEMA, VOLUME, CheckOutcome
from ingest_assets.report import LoadReport
from ingest_assets.sources.base import Counts, Sessions
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec
from ingest_assets.triggers.partitions import partitions_def
from ingest_assets.windows import Window

RECONCILIATION = "reconciliation"
_SAMPLE_COLUMNS = [
    dg.TableColumn("column", "string"),
    dg.TableColumn("rule", "string"),
    dg.TableColumn("severity", "string"),
    dg.TableColumn("value", "string"),
    dg.TableColumn("object", "string"),
    dg.TableColumn("line", "int"),
]


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


def reconciles(spec: DatasetSpec) -> bool:
    """Whether the dataset gets a reconciliation check (its source kind can count windows)."""
    return SOURCE_KINDS.of(spec.source).reconciles(spec, spec.source)


def check_specs(spec: DatasetSpec, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The blocking checks of a dataset's asset, partitioned like it.

    Each partition has its own evaluations (a partition's page shows its checks, and a run over
    several partitions evaluates each). Dagster 1.13 marks partitioned checks as a preview; its
    warning is silenced here, where the choice is made, and nowhere else.
    """
    described = dict(quality_checks(spec))
    if reconciles(spec):
        described[RECONCILIATION] = (
            "Rows in the source for the partition's window equal the rows loaded for it."
        )
    partitions = partitions_def(spec.partitioning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                name, asset=key, blocking=True, description=text, partitions_def=partitions
            )
            for name, text in described.items()
        ]


def check_result(
    spec: DatasetSpec,
    outcome: CheckOutcome,
    extra: dict[str, Any] | None = None,
    *,
    key: dg.AssetKey | None = None,
) -> dg.AssetCheckResult:
    """A check outcome of the core as Dagster's asset check result (plus ``extra`` metadata)."""
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=key or dg.AssetKey(spec.name),
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR
        if outcome.severity == "error"
        else dg.AssetCheckSeverity.WARN,
        metadata={
            **{
                name: dg.MetadataValue.json(value) if isinstance(value, dict | list) else value
                for name, value in outcome.metadata.items()
                if value is not None
            },
            **(extra or {}),
        },
        description=outcome.description,
    )


def check_results(
    spec: DatasetSpec, report: LoadReport, wanted: set[str], *, key: dg.AssetKey | None = None
) -> list[dg.AssetCheckResult]:
    """The results of the wanted checks the load judged (the schema check with its sample)."""
    return [
        schema_result(spec, report, key=key)
        if name == SCHEMA
        else check_result(spec, outcome, key=key)
        for name, outcome in report.checks.items()
        if name in wanted
    ]


def check_summary(results: list[dg.AssetCheckResult]) -> dict[str, dg.MetadataValue]:
    """The ``checks`` entry of a partition's materialization: each check's verdict on it.

    A partition's page in the UI shows its materialization's metadata but not its check
    evaluations; this table puts them there (the checks' own pages hold the details).
    """
    if not results:
        return {}
    rows = ["| check | result | detail |", "| --- | --- | --- |"]
    for result in sorted(results, key=lambda r: r.check_name or ""):
        warned = result.severity == dg.AssetCheckSeverity.WARN
        verdict = "passed" if result.passed else ("warned" if warned else "failed")
        detail = (result.description or "").splitlines()[0] if result.description else ""
        rows.append(f"| {result.check_name} | {verdict} | {detail.replace('|', '/')[:160]} |")
    return {"checks": dg.MetadataValue.md("\n".join(rows))}


def schema_result(
    spec: DatasetSpec, report: LoadReport, *, key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
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
                        "line": failure.row,
                    }
                )
                for failure in summary.sample
            ],
            schema=dg.TableSchema(columns=_SAMPLE_COLUMNS),
        )
    return check_result(spec, report.checks[SCHEMA], metadata, key=key)


def reconcile(
    spec: DatasetSpec,
    reader: Counts,
    warehouse: Destination,
    windows: list[Window],
    reports: list[LoadReport] | None = None,
    *,
    key: dg.AssetKey | None = None,
) -> dg.AssetCheckResult:
    """Compare, window by window, the rows the source holds with the rows loaded.

    Rows a load set aside on purpose (quarantined by warn rules, duplicates dropped by
    ``dedup``) are accounted for: they come from this run's reports, or from the audit rows of
    the windows' latest loads when the check runs alone. For ``merge`` loads rows are counted
    by the source's time column on both sides (a window's rows may since have been superseded
    by newer versions of the same keys, which moves them).
    """
    counts = _counts(spec, reader, warehouse, windows, reports)
    off = {window: c for window, c in counts.items() if c[0] != c[1] + c[2]}
    source_rows = sum(c[0] for c in counts.values())
    loaded_rows = sum(c[1] for c in counts.values())
    set_aside = sum(c[2] for c in counts.values())
    return dg.AssetCheckResult(
        check_name=RECONCILIATION,
        asset_key=key or dg.AssetKey(spec.name),
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


def _counts(
    spec: DatasetSpec,
    reader: Counts,
    warehouse: Destination,
    windows: list[Window],
    reports: list[LoadReport] | None,
) -> dict[str, tuple[int, int, int]]:
    """Per window: rows at the source, rows loaded, rows the load set aside."""
    by_column = reader.placing_column() if spec.load.mode == "merge" else None
    if reports is not None:
        aside = {r.window.start: r.rows_rejected + r.rows_deduplicated for r in reports}
    else:
        aside = warehouse.rows_set_aside(spec.name, windows)

    def count_all() -> dict[str, tuple[int, int, int]]:
        return {
            str(window): (
                reader.count(window),
                warehouse.count_window(spec.destination, window, column=by_column),
                aside.get(window.start, 0),
            )
            for window in windows
        }

    if isinstance(reader, Sessions):
        with reader.session():  # one source connection for every window
            return count_all()
    return count_all()

"""The per-partition quality checks of a load, as pure functions of what the load found.

Each function judges one check from plain values (counts, a drift report, the loaded history) and
returns a :class:`CheckOutcome`; nothing here reads data or talks to a service. The engine feeds
them, the Dagster layer turns outcomes into asset check results.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ingest_assets.quality.schema import DriftReport, ValidationSummary
from ingest_assets.spec import ColumnSpec, QualitySpec, RowCountRule, Severity, VolumeRule

SCHEMA = "schema"
KEY_UNIQUE = "key_unique"
VOLUME = "volume"
DRIFT = "drift"
MASKING = "masking"


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of one check on one partition.

    Attributes:
        name: The check's name (the asset check's name in Dagster).
        passed: Whether it passed.
        severity: How much a failure weighs: ``error`` blocks the load and everything downstream,
            ``warn`` is reported and lets the load through.
        description: One line for people; None when it passed without remark.
        metadata: Plain values (numbers, strings, lists, dicts) shown with the result.
    """

    name: str
    passed: bool
    severity: Severity = "error"
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        """Whether this outcome stops the load."""
        return not self.passed and self.severity == "error"


def schema_outcome(
    summary: ValidationSummary, rows_read: int, quality: QualitySpec, quarantine: str
) -> CheckOutcome:
    """Judge the rules: error failures or too many rejected rows fail; rejected rows warn.

    Args:
        summary: The window's validation summary.
        rows_read: Rows read from the source.
        quality: The dataset's quality settings (the rejection threshold).
        quarantine: The quarantine table's name, for the description.
    """
    rejected = summary.rows_rejected
    fraction = rejected / rows_read if rows_read else 0.0
    metadata: dict[str, Any] = {
        "rows_checked": summary.rows_checked,
        "rows_failed": summary.rows_failed,
        "rows_rejected": rejected,
        "rejected_fraction": round(fraction, 6),
        "max_rejected_fraction": quality.max_rejected_fraction,
    }
    if not summary.passed:
        return CheckOutcome(
            SCHEMA,
            False,
            "error",
            f"{summary.rows_failed} of {rows_read} rows failed validation ({summary.describe()})",
            metadata,
        )
    if fraction > quality.max_rejected_fraction:
        return CheckOutcome(
            SCHEMA,
            False,
            "error",
            f"{rejected} of {rows_read} rows ({fraction:.2%}) broke warn rules, more than the "
            f"{quality.max_rejected_fraction:.2%} allowed ({summary.describe(severity='warn')})",
            metadata,
        )
    if rejected:  # within the threshold: the check passes, with its warning on view
        return CheckOutcome(
            SCHEMA,
            True,
            "warn",
            f"Passed with a warning: {rejected} rows ({fraction:.2%}) quarantined in "
            f"{quarantine}, within the {quality.max_rejected_fraction:.2%} allowed "
            f"({summary.describe(severity='warn')})",
            metadata,
        )
    return CheckOutcome(SCHEMA, True, "error", None, metadata)


def key_outcome(
    key: list[str],
    duplicate_keys: int,
    duplicate_rows: int,
    deduplicated: int,
    sample: list[dict[str, Any]],
) -> CheckOutcome:
    """Judge key uniqueness across the partition (after deduplication).

    Args:
        key: The key's columns.
        duplicate_keys: Key values held by more than one row.
        duplicate_rows: Rows beyond the first of each such key.
        deduplicated: Rows dropped by deduplication before the check.
        sample: A few duplicated keys as ``{column: value, ..., "rows": n}``.
    """
    metadata: dict[str, Any] = {
        "key": ", ".join(key),
        "duplicate_keys": duplicate_keys,
        "duplicate_rows": duplicate_rows,
        "rows_deduplicated": deduplicated,
        "sample": sample,
    }
    if duplicate_keys:
        return CheckOutcome(
            KEY_UNIQUE,
            False,
            "error",
            f"{duplicate_keys} values of ({', '.join(key)}) occur more than once "
            f"({duplicate_rows} extra rows); declare dedup to keep the latest row per key, or "
            "fix the source",
            metadata,
        )
    return CheckOutcome(KEY_UNIQUE, True, "error", None, metadata)


def volume_outcome(
    rows: int,
    history: list[int],
    rule: VolumeRule | None,
    bounds: RowCountRule | None,
) -> CheckOutcome:
    """Judge the partition's row count against fixed bounds and against its trailing partitions.

    Args:
        rows: Rows read for this partition.
        history: Rows read by the latest successful load of each earlier partition, newest first.
        rule: The anomaly rule (None: no anomaly check); anomalies are warnings.
        bounds: Fixed bounds (None: none), with their own severity.
    """
    metadata: dict[str, Any] = {"rows": rows}
    problems: list[tuple[Severity, str]] = []
    if bounds is not None:
        metadata.update({"min_rows": bounds.min, "max_rows": bounds.max})
        if bounds.min is not None and rows < bounds.min:
            problems.append((bounds.severity, f"{rows} rows, fewer than the minimum {bounds.min}"))
        if bounds.max is not None and rows > bounds.max:
            problems.append((bounds.severity, f"{rows} rows, more than the maximum {bounds.max}"))
    if rule is not None:
        trailing = history[: rule.trailing]
        metadata["trailing_partitions"] = len(trailing)
        if len(trailing) >= rule.min_history:
            median = statistics.median(trailing)
            ratio = rows / median if median else (1.0 if rows == 0 else float("inf"))
            metadata.update({"trailing_median": median, "ratio_to_median": round(ratio, 4)})
            if ratio < rule.min_ratio:
                problems.append(
                    (
                        "warn",
                        f"{rows} rows, {1 - ratio:.0%} below the median "
                        f"{median:g} of the last {len(trailing)} partitions",
                    )
                )
            elif rule.max_ratio is not None and ratio > rule.max_ratio:
                problems.append(
                    (
                        "warn",
                        f"{rows} rows, {ratio:.1f}x the median {median:g} of "
                        f"the last {len(trailing)} partitions",
                    )
                )
        else:
            metadata["note"] = (
                f"{len(trailing)} earlier partitions loaded; the anomaly check needs "
                f"{rule.min_history}"
            )
    if not problems:
        return CheckOutcome(VOLUME, True, "warn", None, metadata)
    severity: Severity = "error" if any(s == "error" for s, _ in problems) else "warn"
    return CheckOutcome(VOLUME, False, severity, "; ".join(text for _, text in problems), metadata)


def drift_outcome(drift: DriftReport, policy: str) -> CheckOutcome:
    """Judge schema drift under the dataset's policy (warn, block or evolve).

    ``block`` fails on any drift. ``warn`` warns on any drift. ``evolve`` passes when only
    columns were added (they are added to the table) and warns on removed or retyped ones.
    """
    metadata: dict[str, Any] = {
        "policy": policy,
        "added": dict(sorted(drift.added.items())),
        "removed": sorted(drift.removed),
        "retyped": {
            name: {"declared": d, "found": f} for name, (d, f) in sorted(drift.retyped.items())
        },
        "reserved": sorted(drift.reserved),
    }
    if not drift.drifted:
        return CheckOutcome(DRIFT, True, "warn", None, metadata)
    parts = []
    if drift.added:
        parts.append("added " + ", ".join(sorted(drift.added)))
    if drift.removed:
        parts.append("removed " + ", ".join(sorted(drift.removed)))
    if drift.retyped:
        parts.append(
            "retyped "
            + ", ".join(f"{n} ({d} -> {f})" for n, (d, f) in sorted(drift.retyped.items()))
        )
    if drift.reserved:
        parts.append(
            f"sent {', '.join(sorted(drift.reserved))}, named with the reserved prefix _ingest_ "
            "(never loaded: rename at the source)"
        )
    text = "the source " + "; ".join(parts)
    if policy == "block":
        return CheckOutcome(
            DRIFT,
            False,
            "error",
            f"{text}; quality.drift is 'block', so nothing was loaded. Declare the change in "
            "the schema, or set quality.drift to warn or evolve",
            metadata,
        )
    if policy == "evolve" and not (drift.removed or drift.retyped or drift.reserved):
        return CheckOutcome(
            DRIFT,
            True,
            "warn",
            f"{text}; the new columns were added to the table (quality.drift: evolve)",
            metadata,
        )
    handled = (
        "new columns are added to the table" if policy == "evolve" else "new columns are not loaded"
    )
    return CheckOutcome(
        DRIFT, False, "warn", f"{text}; {handled}, missing ones load as null", metadata
    )


def masking_outcome(columns: dict[str, ColumnSpec], quality: QualitySpec) -> CheckOutcome:
    """Fail when a column of a classification that must be masked would land unmasked."""
    classified = {name: c for name, c in columns.items() if c.classification}
    unmasked = sorted(
        name
        for name, column in classified.items()
        if column.classification in quality.require_masking and column.mask is None
    )
    metadata: dict[str, Any] = {
        "classified": {name: c.classification for name, c in classified.items()},
        "masked": {name: c.mask for name, c in classified.items() if c.mask},
        "require_masking": list(quality.require_masking),
    }
    if unmasked:
        return CheckOutcome(
            MASKING,
            False,
            "error",
            f"classified column(s) {', '.join(unmasked)} would land unmasked; set mask: hash or "
            "redact on them (or drop their classification from quality.require_masking)",
            metadata,
        )
    return CheckOutcome(MASKING, True, "error", None, metadata)

"""Onboarding: whether the declared datasets' sources and destinations answer.

Behind the ``ingest-assets check`` command (the declarations themselves are read by
:mod:`ingest_assets.declarations`). Each source is probed without reading data: an
object store is listed under the key template's prefix, a database answers a query for the
declared columns that returns no rows, and an API answers the first page of the latest
partition with the declared auth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import dagster as dg

from ingest_assets.declarations import source_label
from ingest_assets.destinations.base import ProbesTables
from ingest_assets.destinations.registry import DESTINATION_KINDS
from ingest_assets.environment import resources as environment_resources
from ingest_assets.errors import DestinationError, IngestError, SourceError
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec
from ingest_assets.triggers.partitions import latest_closed_partition, partitions_def
from ingest_assets.windows import Window


@dataclass(frozen=True)
class Probe:
    """The answer of one dataset's source.

    Attributes:
        dataset: The dataset.
        source: What was probed (no secrets).
        ok: Whether the source answered as declared.
        detail: What answered, or what failed and the fix.
        seconds: How long the probe took.
    """

    dataset: str
    source: str
    ok: bool
    detail: str
    seconds: float

    @property
    def status(self) -> Literal["ok", "failed"]:
        """'ok' or 'failed'."""
        return "ok" if self.ok else "failed"


def probe(spec: DatasetSpec, *, now: datetime | None = None) -> Probe:
    """Test that a dataset's source answers as declared, without loading anything."""
    started = time.perf_counter()
    try:
        detail = _probe(spec, now or datetime.now(UTC))
        ok = True
    except IngestError as exc:
        detail, ok = str(exc), False
    return Probe(spec.name, source_label(spec), ok, detail, time.perf_counter() - started)


def _probe(spec: DatasetSpec, now: datetime) -> str:
    """Probe the source, then the destination, with the resources a run would have."""
    return f"{_probe_source(spec, now)}; {_probe_destination(spec)}"


def available_resources(wanted: set[str]) -> dict[str, Any]:
    """The resources a run would have: this environment's, then the project's declared ones."""
    available = environment_resources()
    if not wanted <= available.keys():
        available = {**available, **_declared_resources()}
    return available


def _probe_destination(spec: DatasetSpec) -> str:
    """Ask the destination whether the table can be loaded (and how many rows it holds)."""
    kind = DESTINATION_KINDS.of(spec.destination)
    key = kind.resource_key(spec.destination)
    if key is None:
        warehouse = kind.open(spec.destination, kind.default_resource(spec.destination))
    else:
        available = available_resources({key})
        if key not in available:
            raise DestinationError(
                f"Dataset '{spec.name}': the resource {key!r} of its destination is not declared.",
                fix="Declare it in a definitions file under defs/ (see the README's resources).",
            )
        with dg.build_resources({key: available[key]}) as built:
            warehouse = kind.open(spec.destination, getattr(built, key))
    if isinstance(warehouse, ProbesTables):
        return warehouse.probe(spec.destination)
    return f"{kind.name} {warehouse.describe(spec.destination)} opens"


def _probe_source(spec: DatasetSpec, now: datetime) -> str:
    """Ask the source's kind to probe it, with the resources a run would have."""
    kind = SOURCE_KINDS.of(spec.source)
    wanted = kind.resource_keys(spec.source)
    available = available_resources(wanted)
    missing = wanted - available.keys()
    if missing:
        raise SourceError(
            f"Dataset '{spec.name}': the resource {sorted(missing)[0]!r} its source reads "
            "through is not declared.",
            fix="Declare it in a definitions file under defs/ (see the README's resources).",
        )
    # As a run would: EnvVar settings resolved by Dagster, never read into messages.
    with dg.build_resources({key: available[key] for key in wanted}) as built:
        return kind.probe(spec, spec.source, built, latest_window(spec, now))


@cache
def _declared_resources() -> dict[str, Any]:
    """The resources the project's definitions declare (loaded once per command)."""
    from ingest_assets.definitions import defs

    return dict(defs().resources or {})


def latest_window(spec: DatasetSpec, now: datetime) -> Window:
    """The window of the latest closed partition (the first partition if none has closed)."""
    partitions = partitions_def(spec.partitioning)
    key = latest_closed_partition(partitions, now) or partitions.get_first_partition_key()
    assert key is not None
    window = partitions.time_window_for_partition_key(key)
    return Window(window.start, window.end)

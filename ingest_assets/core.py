"""The ingestion core's public API: load a dataset's windows from a script, without Dagster.

The Dagster assets of this project are a thin shell over these functions::

    from ingest_assets.core import load_dataset, load_windows, open_destination, open_reader
    from ingest_assets.core import windows_for

    spec = load_dataset("ingest_assets/defs/demo/landing/defs.yaml", "orders")
    windows = windows_for(spec, ["2026-11-01"])
    reader, destination = open_reader(spec), open_destination(spec)
    reports = load_windows(spec, windows, reader, destination, run_id="manual")

Resources (an S3 client, a database, a warehouse) are passed by key, as Dagster would; a
dataset that needs none (local files into the DuckDB file of this machine) needs no argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ingest_assets.destinations.base import Destination
from ingest_assets.destinations.registry import DESTINATION_KINDS, DestinationKind
from ingest_assets.engine import load_window, load_windows
from ingest_assets.errors import (
    ConfigError,
    DestinationError,
    IngestError,
    SourceError,
    SpecError,
    ValidationFailed,
)
from ingest_assets.registry import Registry
from ingest_assets.report import LoadReport
from ingest_assets.sources.base import SourceReader
from ingest_assets.sources.registry import SOURCE_KINDS, SourceKind
from ingest_assets.spec.dataset import DatasetSpec
from ingest_assets.windows import Window, window_for

__all__ = [
    "DESTINATION_KINDS",
    "SOURCE_KINDS",
    "ConfigError",
    "DatasetSpec",
    "Destination",
    "DestinationError",
    "DestinationKind",
    "IngestError",
    "LoadReport",
    "Registry",
    "SourceError",
    "SourceKind",
    "SourceReader",
    "SpecError",
    "ValidationFailed",
    "Window",
    "load_dataset",
    "load_window",
    "load_windows",
    "open_destination",
    "open_reader",
    "windows_for",
]


def load_dataset(path: str | Path, name: str) -> DatasetSpec:
    """The dataset ``name`` declared in a ``defs.yaml``, validated.

    Raises:
        SpecError: the file declares no such dataset, or declares it wrongly.
    """
    document = yaml.safe_load(Path(path).read_text()) or {}
    for entry in document.get("attributes", {}).get("datasets", []):
        if isinstance(entry, dict) and entry.get("name") == name:
            try:
                return DatasetSpec.model_validate(entry)
            except ValueError as exc:
                raise SpecError(f"Dataset '{name}' in {path}: {exc}") from None
    raise SpecError(f"{path} declares no dataset '{name}'.", fix="Check the name and the file.")


def windows_for(spec: DatasetSpec, keys: list[str]) -> list[Window]:
    """The windows of partition keys, the same Dagster computes for the dataset's partitions.

    Raises:
        SpecError: a key is not a partition key of the dataset's cadence.
    """
    partitioning = spec.partitioning
    try:
        return [window_for(key, partitioning.cadence, partitioning.timezone) for key in keys]
    except ValueError as exc:
        raise SpecError(
            f"Dataset '{spec.name}': {exc}.",
            fix=f"Give {partitioning.cadence} keys as Dagster shows them, e.g. 2026-11-01.",
        ) from None


def open_reader(spec: DatasetSpec, resources: Mapping[str, Any] | None = None) -> SourceReader:
    """The dataset's source, opened from ``resources`` (by key) or its declaration alone."""
    kind = SOURCE_KINDS.of(spec.source)
    return kind.open(spec, spec.source, resources or {})


def open_destination(spec: DatasetSpec, resources: Mapping[str, Any] | None = None) -> Destination:
    """The dataset's destination, built from its resource in ``resources`` or the default.

    Raises:
        ConfigError: the destination's resource is not given and its kind has no default.
    """
    kind = DESTINATION_KINDS.of(spec.destination)
    key = kind.resource_key(spec.destination)
    given = dict(resources or {})
    try:
        resource = given[key] if key and key in given else kind.default_resource(spec.destination)
    except KeyError:
        raise ConfigError(
            f"Dataset '{spec.name}': no resource '{key}' for its {kind.name} destination.",
            fix=f"Pass resources={{'{key}': ...}}.",
        ) from None
    return kind.open(spec.destination, resource)

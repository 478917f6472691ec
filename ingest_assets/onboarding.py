"""Onboarding: the datasets a project declares, and whether their sources answer.

Plain functions behind the ``ingest-assets list`` and ``check`` commands. Declarations are
validated with Dagster's YAML source positions, so a wrong key gives the error ``dg check defs``
gives (file, line, key, what is allowed). Each source is then probed without reading data: an
object store is listed under the key template's prefix, a database answers a query for the
declared columns that returns no rows, and an API answers the first page of the latest
partition with the declared auth.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from dagster_shared.yaml_utils import parse_yaml_with_source_position
from pydantic import ValidationError

from ingest_assets.components.datasets import IngestDatasets, IngestDatasetsModel
from ingest_assets.destinations.base import AUDIT, ProbesTables, quarantine_table
from ingest_assets.destinations.registry import DESTINATION_KINDS
from ingest_assets.environment import resources as environment_resources
from ingest_assets.errors import DestinationError, IngestError, SourceError, SpecError
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec, LandingTrigger, ScheduleTrigger
from ingest_assets.triggers.partitions import latest_closed_partition, partitions_def
from ingest_assets.windows import Window

#: The component type of a datasets file.
COMPONENT_TYPE = "ingest_assets.components.IngestDatasets"


def defs_root() -> Path:
    """The project's ``defs`` folder."""
    return Path(__file__).parent / "defs"


@dataclass(frozen=True)
class Declared:
    """A dataset and the file that declares it.

    Attributes:
        spec: The dataset.
        file: Its ``defs.yaml``, relative to the defs folder.
        table_at: Where its ``destination.table`` is declared (``file:line``).
    """

    spec: DatasetSpec
    file: Path
    table_at: str = ""


def load_declared(root: Path | None = None) -> list[Declared]:
    """Every dataset declared under ``root`` (default: the project's defs folder).

    Raises:
        SpecError: a declaration is invalid. Each error names the file, line and key the way
            ``dg check defs`` does, e.g. ``attributes.datasets.0.partitioning.cadence at
            defs/shop/defs.yaml:13``, with what is allowed.
    """
    root = (root or defs_root()).resolve()
    declared: list[Declared] = []
    errors: list[str] = []
    for path in sorted(root.rglob("defs.yaml")):
        shown = str(path.relative_to(root.parent))
        try:
            parsed = parse_yaml_with_source_position(path.read_text(), shown)
        except yaml.YAMLError as exc:
            errors.append(f"{shown}: not valid YAML: {exc}")
            continue
        document = parsed.value
        if not isinstance(document, dict) or not _declares_datasets(document.get("type")):
            continue
        attributes = document.get("attributes") or {}
        try:
            model = IngestDatasetsModel.model_validate(attributes)
        except ValidationError as exc:
            tree = parsed.source_position_tree
            for error in exc.errors():
                where = ["attributes", *error["loc"]]
                position, _ = tree.lookup_closest_and_path(where, None)
                key = ".".join(str(part) for part in where)
                errors.append(f"{key} at {position}\n  {error['msg']}")
            continue
        tree = parsed.source_position_tree
        for index, spec in enumerate(model.datasets):
            where = ["attributes", "datasets", index, "destination", "table"]
            position, _ = tree.lookup_closest_and_path(where, None)
            declared.append(Declared(spec, path.relative_to(root), str(position)))
    errors += table_collisions(declared)
    if errors:
        raise SpecError(
            "\n".join(errors),
            fix="Correct the keys named above (the README's dataset reference lists every "
            "option), then run `ingest-assets check` again.",
        )
    return declared


def _declares_datasets(type_name: object) -> bool:
    """Whether a component type is IngestDatasets or a project's subclass of it (imported)."""
    if type_name == COMPONENT_TYPE:
        return True
    if not isinstance(type_name, str) or "." not in type_name:
        return False
    module, _, name = type_name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return False
    return isinstance(found, type) and issubclass(found, IngestDatasets)


def table_collisions(declared: list[Declared]) -> list[str]:
    """Datasets whose tables would overwrite each other's rows, as errors with file and line.

    Each dataset owns its table, its quarantine table ``<table>__rejected`` and nothing of the
    audit table; names are compared as the warehouse does (case-insensitive, schema ``main``
    when none is given).
    """
    owners: dict[tuple[str, str], tuple[Declared | None, str]] = {}
    errors: list[str] = []
    for entry in declared:
        destination = entry.spec.destination
        kind = DESTINATION_KINDS.of(destination)
        store = f"{kind.name}:{kind.resource_key(destination)}"  # tables of one warehouse
        owners.setdefault((store, AUDIT.table.lower()), (None, "audit"))
        claims = {
            "table": f"{destination.schema_name}.{destination.table_name}".lower(),
            "quarantine table": quarantine_table(destination).table.lower(),
        }
        for role, name in claims.items():
            taken = owners.get((store, name))
            if taken is None:
                owners[(store, name)] = (entry, role)
                continue
            other, other_role = taken
            what = (
                "the audit table of every load"
                if other is None
                else f"the {other_role} of dataset '{other.spec.name}' (destination.table at "
                f"{other.table_at})"
            )
            errors.append(
                f"attributes.datasets.destination.table at {entry.table_at}\n  dataset "
                f"'{entry.spec.name}': its {role} {name} is {what}; each load would delete "
                "the other's rows. Give each dataset a table of its own."
            )
    return errors


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


def source_label(spec: DatasetSpec) -> str:
    """The source as people name it: a location, a table on its variable, or a URL."""
    return SOURCE_KINDS.of(spec.source).label(spec.source)


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


def _available(wanted: set[str]) -> dict[str, Any]:
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
        available = _available({key})
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
    available = _available(wanted)
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


def describe(declared: Declared) -> dict[str, str]:
    """A dataset's row of ``ingest-assets list``."""
    spec = declared.spec
    trigger = spec.trigger
    if isinstance(trigger, ScheduleTrigger):
        when = f"schedule {trigger.cron}" if trigger.cron else f"schedule +{trigger.delay}"
    elif isinstance(trigger, LandingTrigger):
        when = "landing sensor"
    else:
        when = "on demand"
    return {
        "dataset": spec.name,
        "source": source_label(spec),
        "partitions": f"{spec.partitioning.cadence} from {spec.partitioning.start}",
        "trigger": when,
        "sla": f"by {spec.sla.deadline}" if spec.sla else "-",
        "owners": ", ".join(spec.owners) or "-",
        "file": str(declared.file),
    }

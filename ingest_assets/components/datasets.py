"""The ``IngestDatasets`` component: a ``defs.yaml`` that declares the datasets of one source."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Self

import dagster as dg
from pydantic import BaseModel, ConfigDict

from ingest_assets.components.assets import dataset_asset
from ingest_assets.components.scaffolder import IngestDatasetsScaffolder
from ingest_assets.components.translator import DatasetTranslator
from ingest_assets.declarations import FIX, IngestDatasetsModel, read_declaration
from ingest_assets.spec import ArrivalTrigger, DatasetSpec, LandingTrigger, ScheduleTrigger
from ingest_assets.triggers.alerts import sla_alert_sensor
from ingest_assets.triggers.arrivals import arrival_sensor
from ingest_assets.triggers.freshness import timeliness_check, timeliness_schedule
from ingest_assets.triggers.landing import landing_sensor
from ingest_assets.triggers.schedules import dataset_schedule

#: Set while the code location is served (``dg dev``, a code server): a defs.yaml that does not
#: validate then becomes a failed placeholder asset instead of taking every dataset down.
#: ``dg check defs`` and ``ingest-assets check`` still refuse it.
SERVING_LENIENTLY: ContextVar[bool] = ContextVar("ingest_assets_serving_leniently", default=False)


class _UncheckedModel(BaseModel):
    """Any attributes, to be validated by the component itself."""

    model_config = ConfigDict(extra="allow")


def invalid_declaration(origin: str, errors: list[str]) -> dg.AssetsDefinition:
    """A placeholder asset for a defs.yaml that does not validate.

    Its description shows the errors; materializing it fails with them.
    """
    message = f"{origin} does not load; its datasets are missing until it does:\n" + "\n".join(
        errors
    )
    folder = Path(origin).parent.name or "defs"
    dg.get_dagster_logger().error(message)

    @dg.asset(
        key=dg.AssetKey(["invalid_declaration", folder]),
        group_name="invalid_declarations",
        description=message + f"\nFix: {FIX}",
        metadata={
            "file": origin,
            "errors": dg.MetadataValue.md("\n".join(f"- `{e}`" for e in errors)),
        },
        kinds={"yaml"},
    )
    def _invalid() -> None:
        raise dg.Failure(description=message, metadata={"fix": FIX}, allow_retries=False)

    return _invalid


@dg.scaffold_with(IngestDatasetsScaffolder)
class IngestDatasets(dg.Component):
    """Datasets read from one source, each a time-partitioned asset with a blocking schema check.

    Declared in ``ingest_assets/defs/<source>/defs.yaml``::

        type: ingest_assets.components.IngestDatasets
        attributes:
          datasets:
            - name: orders
              source: {location: landing/orders, key_template: "dt={date}/*.csv"}
              partitioning: {cadence: daily, start: "2026-11-01"}
              schema: {columns: {order_id: {dtype: string, unique: true}}}
              destination: {table: raw.orders}

    The attributes are a plain pydantic model (no template strings), so that ``dg check yaml``
    reports a wrong value at its exact key, and every rule of the spec applies when loading.
    A subclass may set ``translator`` to change how datasets appear in Dagster (key prefix,
    group, tags, kinds, owners); ``dg scaffold defs ingest_assets.components.IngestDatasets
    <folder>`` writes a new file.

    Args:
        datasets: The declared datasets.
    """

    #: How each dataset becomes an asset spec.
    translator: DatasetTranslator = DatasetTranslator()

    def __init__(self, datasets: list[DatasetSpec], invalid: list[str] | None = None) -> None:
        self.datasets = datasets
        self.invalid = invalid or []

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The schema of the component's YAML attributes.

        While the location is served leniently, any mapping: :meth:`load` then validates the
        file itself and keeps its errors to its own placeholder asset.
        """
        return _UncheckedModel if SERVING_LENIENTLY.get() else IngestDatasetsModel

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> Self:
        """Build the component from its validated attributes."""
        if isinstance(attributes, IngestDatasetsModel):
            return cls(datasets=attributes.datasets)
        path = context.path / "defs.yaml"
        shown = str(path.relative_to(context.project_root))
        declared, errors = read_declaration(path, context.path.parent, shown)
        return cls(datasets=[entry.spec for entry in declared], invalid=errors)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """One asset (with its checks) per declared dataset, and its schedule or sensor."""
        origin = str((context.path / "defs.yaml").relative_to(context.project_root))
        if self.invalid:
            return dg.Definitions(assets=[invalid_declaration(origin, self.invalid)])
        schedules: list[dg.ScheduleDefinition] = []
        sensors: list[dg.SensorDefinition] = []
        checks: list[dg.AssetChecksDefinition] = []
        for spec in self.datasets:
            key = self.translator.asset_key(spec)
            if isinstance(spec.trigger, ScheduleTrigger):
                schedules.append(dataset_schedule(spec, spec.trigger, key))
            elif isinstance(spec.trigger, LandingTrigger):
                sensors.append(landing_sensor(spec, spec.trigger, key))
            elif isinstance(spec.trigger, ArrivalTrigger):
                sensors.append(arrival_sensor(spec, spec.trigger, key))
            if spec.sla is not None:
                checks.append(timeliness_check(spec, key))
                schedules.append(timeliness_schedule(spec, key))
                sensors.append(sla_alert_sensor(spec, key))
        return dg.Definitions(
            assets=[
                dataset_asset(spec, origin=origin, translator=self.translator)
                for spec in self.datasets
            ],
            asset_checks=checks,
            schedules=schedules,
            sensors=sensors,
        )

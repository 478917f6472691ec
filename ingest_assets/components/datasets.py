"""The ``IngestDatasets`` component: a ``defs.yaml`` that declares the datasets of one source."""

from __future__ import annotations

from typing import Self

import dagster as dg
from pydantic import BaseModel

from ingest_assets.components.assets import dataset_asset
from ingest_assets.components.scaffolder import IngestDatasetsScaffolder
from ingest_assets.components.translator import DatasetTranslator
from ingest_assets.declarations import IngestDatasetsModel
from ingest_assets.spec import DatasetSpec, LandingTrigger, ScheduleTrigger
from ingest_assets.triggers.alerts import sla_alert_sensor
from ingest_assets.triggers.freshness import timeliness_check, timeliness_schedule
from ingest_assets.triggers.landing import landing_sensor
from ingest_assets.triggers.schedules import dataset_schedule


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

    def __init__(self, datasets: list[DatasetSpec]) -> None:
        self.datasets = datasets

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The schema of the component's YAML attributes."""
        return IngestDatasetsModel

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> Self:
        """Build the component from its validated attributes."""
        assert isinstance(attributes, IngestDatasetsModel)
        return cls(datasets=attributes.datasets)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """One asset (with its checks) per declared dataset, and its schedule or sensor."""
        origin = str((context.path / "defs.yaml").relative_to(context.project_root))
        schedules: list[dg.ScheduleDefinition] = []
        sensors: list[dg.SensorDefinition] = []
        checks: list[dg.AssetChecksDefinition] = []
        for spec in self.datasets:
            key = self.translator.asset_key(spec)
            if isinstance(spec.trigger, ScheduleTrigger):
                schedules.append(dataset_schedule(spec, spec.trigger, key))
            elif isinstance(spec.trigger, LandingTrigger):
                sensors.append(landing_sensor(spec, spec.trigger, key))
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

"""The ``IngestDatasets`` component: a ``defs.yaml`` that declares the datasets of one source."""

from __future__ import annotations

import dagster as dg

from ingest_assets.components.assets import dataset_asset
from ingest_assets.spec import DatasetSpec


class IngestDatasets(dg.Component, dg.Resolvable, dg.Model):
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
    """

    datasets: list[DatasetSpec]

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """One asset (with its checks) per declared dataset."""
        origin = str((context.path / "defs.yaml").relative_to(context.project_root))
        return dg.Definitions(assets=[dataset_asset(spec, origin=origin) for spec in self.datasets])

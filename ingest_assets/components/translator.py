"""How a dataset appears in Dagster: its asset key, group, tags, kinds, owners and metadata.

Override :class:`DatasetTranslator` to change any of them for every dataset of a component
(a key prefix per environment, a group per team, extra tags), as with Dagster's own translators::

    class Prefixed(DatasetTranslator):
        def asset_key(self, spec: DatasetSpec) -> dg.AssetKey:
            return dg.AssetKey(["raw", spec.name])

    class MyDatasets(IngestDatasets):
        translator = Prefixed()
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from ingest_assets.destinations.registry import DESTINATION_KINDS
from ingest_assets.quality.schema import BatchValidator, rule_name
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import ColumnSpec, DatasetSpec
from ingest_assets.triggers.freshness import freshness_policy


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
                    other=column_rules(column) if column else [],
                ),
                tags=tags,
            )
        )
    return dg.TableSchema(columns=columns)


def column_rules(column: ColumnSpec) -> list[str]:
    """A column's declared rules as the YAML writes them (``ge: 0``, ``email: true (warn)``).

    Shown with the column's constraints in the UI; a rule of severity warn says so.
    """
    rules = [rule_name("dtype", column.dtype)]
    groups = column.checks if isinstance(column.checks, list) else [column.checks]
    for group in groups:
        severity = group.severity or column.severity
        suffix = " (warn)" if severity == "warn" else ""
        for key, value in group.model_dump(exclude_defaults=True, exclude={"severity"}).items():
            rules.append(rule_name(key, value) + suffix)
    return rules


def source_kind(spec: DatasetSpec) -> str:
    """The kind tag of a dataset's source, e.g. 'sql', 'api', 's3' or 'file'."""
    return SOURCE_KINDS.of(spec.source).tag(spec.source)


def source_pool(spec: DatasetSpec) -> str:
    """The concurrency pool of a dataset: declared, or one per source (database, bucket, API)."""
    if spec.pool:
        return spec.pool
    key = SOURCE_KINDS.of(spec.source).pool_key(spec.source)
    return "ingest_" + "".join(ch if ch.isalnum() else "_" for ch in key).lower()


class DatasetTranslator:
    """Turns a dataset's declaration into its Dagster asset spec; override any method."""

    def asset_key(self, spec: DatasetSpec) -> dg.AssetKey:
        """The asset key: the dataset's name."""
        return dg.AssetKey(spec.name)

    def group(self, spec: DatasetSpec) -> str:
        """The asset group: the declared one ('ingest' by default)."""
        return spec.group

    def owners(self, spec: DatasetSpec) -> list[str]:
        """The declared owners."""
        return list(spec.owners)

    def tags(self, spec: DatasetSpec) -> dict[str, str]:
        """Tags to filter by in the UI: the source's kind."""
        return {"ingest/source": source_kind(spec)}

    def kinds(self, spec: DatasetSpec) -> set[str]:
        """The icons shown on the asset: the source's kind and the destination's."""
        return {source_kind(spec), DESTINATION_KINDS.of(spec.destination).tag}

    def metadata(self, spec: DatasetSpec, origin: str) -> dict[str, Any]:
        """The declared columns, where the data comes from (no secrets) and how it loads."""
        declared = BatchValidator(spec.table_schema, spec.quality).arrow_schema
        return {
            "dagster/column_schema": table_schema(declared, spec),
            **SOURCE_KINDS.of(spec.source).metadata(spec.source),
            "load_mode": spec.load.mode,
            "declared_in": origin,
        }

    def asset_spec(self, spec: DatasetSpec, origin: str) -> dg.AssetSpec:
        """The asset spec of a dataset declared in ``origin`` (a YAML file)."""
        return dg.AssetSpec(
            self.asset_key(spec),
            description=spec.description or None,
            group_name=self.group(spec),
            owners=self.owners(spec),
            kinds=self.kinds(spec),
            metadata=self.metadata(spec, origin),
            tags=self.tags(spec),
            skippable=True,
            freshness_policy=freshness_policy(spec),
        )

"""The ``IngestDatasets`` component: a ``defs.yaml`` that declares the datasets of one source."""

from __future__ import annotations

from typing import Any, Literal, Self

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue

from ingest_assets.components.assets import dataset_asset
from ingest_assets.components.scaffolder import IngestDatasetsScaffolder
from ingest_assets.components.translator import DatasetTranslator
from ingest_assets.spec import DatasetSpec, LandingTrigger, ScheduleTrigger
from ingest_assets.spec.dataset import on_rebuild
from ingest_assets.triggers.alerts import sla_alert_sensor
from ingest_assets.triggers.freshness import timeliness_check, timeliness_schedule
from ingest_assets.triggers.landing import landing_sensor
from ingest_assets.triggers.schedules import dataset_schedule


class IngestDatasetsModel(BaseModel):
    """The ``attributes`` of an ``IngestDatasets`` defs.yaml."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[DatasetSpec] = Field(
        description="The datasets of this source; see ingest_assets.spec.DatasetSpec."
    )

    @classmethod
    def model_json_schema(
        cls,
        by_alias: bool | None = None,
        ref_template: str = "#/$defs/{model}",
        schema_generator: type[GenerateJsonSchema] = GenerateJsonSchema,
        mode: JsonSchemaMode = "validation",
        *,
        union_format: Literal["any_of", "primitive_type_array"] = "any_of",
    ) -> dict[str, Any]:
        """The JSON schema ``dg check yaml`` validates against, with optional keys not nullable.

        Optional keys are simply left out in YAML; dropping their ``null`` alternative removes
        the ``anyOf`` that would otherwise make the checker report the whole parent mapping
        instead of the wrong key.
        """
        schema = super().model_json_schema(
            by_alias, ref_template, schema_generator, mode, union_format=union_format
        )
        return _select_by_tag(_drop_null_alternatives(schema), schema.get("$defs", {}))


def _drop_null_alternatives(node: JsonSchemaValue) -> JsonSchemaValue:
    if isinstance(node, dict):
        node = {key: _drop_null_alternatives(value) for key, value in node.items()}
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [option for option in options if option != {"type": "null"}]
            if len(rest) == 1:
                node.pop("anyOf")
                node = {**rest[0], **node}
        return node
    if isinstance(node, list):
        return [_drop_null_alternatives(item) for item in node]
    return node


def _select_by_tag(node: Any, defs: dict[str, Any]) -> Any:
    """Turn unions told apart by ``kind`` or ``type`` into if/then choices.

    A ``oneOf`` of models reports one vague error when nothing matches; choosing the model by its
    tag (the default one when the tag is absent) lets the checker name the wrong key inside it,
    e.g. ``'table' is a required property`` for a destination that misspells it.
    """
    if isinstance(node, list):
        return [_select_by_tag(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _select_by_tag(value, defs) for key, value in node.items()}
    options = node.get("oneOf")
    if not isinstance(options, list) or not all("$ref" in option for option in options):
        return node
    models = [defs.get(option["$ref"].rsplit("/", 1)[-1], {}) for option in options]
    for tag in ("kind", "type"):
        consts = [m.get("properties", {}).get(tag, {}).get("const") for m in models]
        if None in consts:
            continue
        defaults = [
            c for c, m in zip(consts, models, strict=True) if tag not in m.get("required", [])
        ]
        choices: list[JsonSchemaValue] = [
            {"if": {"required": [tag], "properties": {tag: {"const": const}}}, "then": option}
            for const, option in zip(consts, options, strict=True)
        ]
        if defaults:
            default = options[consts.index(defaults[0])]
            choices.append({"if": {"not": {"required": [tag]}}, "then": default})
        node.pop("oneOf")
        return {
            **node,
            "type": "object",
            "properties": {tag: {"enum": consts}},
            "allOf": choices,
        }
    return node


on_rebuild(lambda: IngestDatasetsModel.model_rebuild(force=True))


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

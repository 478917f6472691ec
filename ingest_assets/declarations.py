"""The datasets a project declares: its ``defs.yaml`` files read, validated and described.

Nothing here imports Dagster, so that ``ingest-assets list`` and the first step of ``check``
answer quickly. Declarations are validated with their YAML source positions, so a wrong key
gives the error ``dg check defs`` gives (file, line, key, what is allowed).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from dagster_shared.yaml_utils import parse_yaml_with_source_position
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue

from ingest_assets.destinations.base import AUDIT, quarantine_table
from ingest_assets.destinations.registry import DESTINATION_KINDS
from ingest_assets.errors import SpecError
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import DatasetSpec, LandingTrigger, ScheduleTrigger
from ingest_assets.spec.dataset import on_rebuild
from ingest_assets.spec.quality import IMPORT_MODELS


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


#: A declaration still being written (see :func:`ingest_assets.templates.write`).
DRAFT = "defs.yaml.draft"

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

    @property
    def draft(self) -> bool:
        """Whether it is declared in a draft (which the code location does not load yet)."""
        return self.file.name == DRAFT


def load_declared(
    root: Path | None = None,
    *,
    skip_invalid: bool = False,
    drafts: bool = False,
    import_models: bool = True,
) -> list[Declared]:
    """Every dataset declared under ``root`` (default: the project's defs folder).

    Args:
        root: The defs folder.
        skip_invalid: Leave out the files that do not validate instead of failing on them
            (datasets that collide across files still fail).
        drafts: Read the drafts (``defs.yaml.draft``) too.
        import_models: Import the pandera DataFrameModels the schemas name, to check their
            columns (off for a quick listing).

    Raises:
        SpecError: a declaration is invalid. Each error names the file, line and key the way
            ``dg check defs`` does, e.g. ``attributes.datasets.0.partitioning.cadence at
            defs/shop/defs.yaml:13``, with what is allowed (and the key meant, for a typo).
    """
    root = (root or defs_root()).resolve()
    declared: list[Declared] = []
    errors: list[str] = []
    paths = [*root.rglob("defs.yaml"), *(root.rglob(DRAFT) if drafts else [])]
    for path in sorted(paths):
        found, wrong = read_declaration(path, root, import_models=import_models)
        declared += found
        errors += [] if skip_invalid else wrong
    errors += table_collisions(declared)
    if errors:
        raise SpecError("\n".join(errors), fix=FIX)
    return declared


#: What to do about an invalid declaration.
FIX = (
    "Correct the keys named above (the README's dataset reference lists every option), then "
    "run `ingest-assets check` again."
)


def read_declaration(
    path: Path, root: Path, shown: str | None = None, *, import_models: bool = True
) -> tuple[list[Declared], list[str]]:
    """The datasets one ``defs.yaml`` declares, or what is wrong with it (file, line, key).

    A file of another component type declares none and is not wrong.

    Args:
        path: The ``defs.yaml``.
        root: The defs folder.
        shown: The file as errors name it (default: its path from the defs folder's parent).
        import_models: Import the DataFrameModels the schemas name, to check their columns.
    """
    shown = shown or str(path.relative_to(root.parent))
    try:
        parsed = parse_yaml_with_source_position(path.read_text(), shown)
    except yaml.YAMLError as exc:
        return [], [f"{shown}: not valid YAML: {exc}"]
    document = parsed.value
    if not isinstance(document, dict) or not _declares_datasets(document.get("type")):
        return [], []
    tree = parsed.source_position_tree
    try:
        model = IngestDatasetsModel.model_validate(
            document.get("attributes") or {}, context={IMPORT_MODELS: import_models}
        )
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            where = ["attributes", *_in_document(document.get("attributes"), error["loc"])]
            position, _ = tree.lookup_closest_and_path(where, None)
            key = ".".join(str(part) for part in where)
            errors.append(f"{key} at {position}\n  {error['msg']}{_did_you_mean(error)}")
        return [], errors
    declared = []
    for index, spec in enumerate(model.datasets):
        where = ["attributes", "datasets", index, "destination", "table"]
        position, _ = tree.lookup_closest_and_path(where, None)
        declared.append(Declared(spec, path.relative_to(root), str(position)))
    return declared, []


def _in_document(node: Any, loc: tuple[int | str, ...]) -> list[int | str]:
    """An error's location as keys of the YAML document.

    Pydantic puts the name of the union member it tried (``object_store``) between a key and
    its fields; the file has no such key.
    """
    path: list[int | str] = []
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node:
            if part == loc[-1]:
                path.append(part)  # a missing key: named, though not in the file
            continue
        path.append(part)
        node = _child(node, part)
    return path


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _did_you_mean(error: Any) -> str:
    """For a key that is not allowed, the allowed key it most resembles."""
    if error.get("type") != "extra_forbidden" or not error.get("loc"):
        return ""
    meant = difflib.get_close_matches(str(error["loc"][-1]), known_keys(), n=1, cutoff=0.6)
    return f"; did you mean `{meant[0]}`?" if meant else ""


@cache
def known_keys() -> list[str]:
    """Every key a datasets file can use, at any depth."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(IngestDatasetsModel.model_json_schema())
    return sorted(keys)


def _declares_datasets(type_name: object) -> bool:
    """Whether a component type is IngestDatasets or a project's subclass of it (imported)."""
    if type_name == COMPONENT_TYPE:
        return True
    if not isinstance(type_name, str) or "." not in type_name:
        return False
    from ingest_assets.components.datasets import IngestDatasets  # a project's own type

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


def source_label(spec: DatasetSpec) -> str:
    """The source as people name it: a location, a table on its variable, or a URL."""
    return SOURCE_KINDS.of(spec.source).label(spec.source)


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

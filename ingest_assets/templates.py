"""The ``defs.yaml`` templates ``ingest-assets new`` writes: one per source kind.

A template fills the required keys with ``"<placeholder>"`` values and lists every other option
as a comment with its default and description. The option comments are generated from the spec's
pydantic models, so they always match what loading accepts.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pyarrow as pa
import yaml
from pydantic import BaseModel

from ingest_assets.declarations import DRAFT
from ingest_assets.errors import SourceError
from ingest_assets.quality.schema import type_family
from ingest_assets.sources.registry import SOURCE_KINDS
from ingest_assets.spec import (
    ColumnSpec,
    DedupSpec,
    LandingTrigger,
    LoadSpec,
    Partitioning,
    QualitySpec,
    RetrySpec,
    ScheduleTrigger,
    SlaSpec,
)

#: A value still to be filled in: ``"<...>"``.
PLACEHOLDER = re.compile(r"\"<[^\"<>]+>\"")


def render(kind: str, name: str, columns: dict[str, tuple[str, bool]] | None = None) -> str:
    """The commented ``defs.yaml`` of a new dataset of a source kind.

    Args:
        kind: The source kind.
        name: The dataset's name.
        columns: Columns to declare, each with its type and whether it may be null (inferred
            from a sample file); default: a placeholder column.

    Raises:
        KeyError: no source kind is called ``kind``.
    """
    source_kind = SOURCE_KINDS.get(kind)
    model, required = source_kind.model, source_kind.template
    shown = {line.split(":")[0].strip() for line in required.splitlines()}
    spoken = kind.replace("_", " ")
    article = "an" if spoken[:1] in "aeiou" else "a"
    return f"""# Dataset {name}, from {article} {spoken} source.
# Written by `ingest-assets new {kind} {name}`.
# 1. Replace every "<placeholder>" (the value, quotes included).
# 2. Run `uv run ingest-assets check {name}`: it validates this file the way `dg check defs`
#    does and tests that the source answers. Written as defs.yaml.draft, the file is ignored
#    by the code location until the check passes and renames it defs.yaml.
# 3. Materialize a partition in the UI (`./run dev`).
# Commented keys are the other options, with their defaults: uncomment to change one (with
# the section line above it, e.g. "load:", when it is in a section).
type: ingest_assets.components.IngestDatasets
attributes:
  datasets:
    - name: {name}
      description: "<what the dataset holds, shown in the UI>"
      owners: ["<team:name or an email>"]
      # group: ingest  # The asset group in the UI.
      # priority: 0  # Run priority (dagster/priority): higher runs are launched first.
      # pool: null  # Concurrency pool of its loads (default: one per source).
      source:
{required}{_options(model, 8, skip=shown)}
      partitioning:
        cadence: daily
        start: "<first partition, e.g. 2026-01-01>"
{_options(Partitioning, 8, skip={"cadence", "start"})}
      schema:
        columns:
          # One entry per column: its type, then rules. Options of a column:
{_options(ColumnSpec, 10, skip=set())}
{_columns(columns)}
      destination: {{table: "<schema.table in the warehouse, e.g. raw.{name}>"}}
      # load:  # How windows are written.
{_options(LoadSpec, 8)}
      # quality:  # Dataset-wide gates.
{_options(QualitySpec, 8)}
      # dedup:  # One row per key within a window.
{_options(DedupSpec, 8)}
      # trigger:  # When partitions load: a schedule after each partition closes...
{_options(ScheduleTrigger, 8)}
      # trigger:  # ...or as objects land (object stores only).
{_options(LandingTrigger, 8)}
      # sla:  # When each partition must have landed.
{_options(SlaSpec, 8)}
      # retry:  # Dagster's retries of a failed load.
{_options(RetrySpec, 8)}
"""


def _columns(columns: dict[str, tuple[str, bool]] | None) -> str:
    """The template's column entries: the inferred ones, or a placeholder."""
    if not columns:
        return '          "<column>": {dtype: string, nullable: false}'
    lines = [
        "          # Inferred from the sample file: check each type and whether it may be null."
    ]
    for column, (dtype, nullable) in columns.items():
        key = _yaml(column)
        lines.append(f"          {key}: {{dtype: {dtype}, nullable: {str(nullable).lower()}}}")
    return "\n".join(lines)


def infer_columns(sample: Path, source_format: str | None = None) -> dict[str, tuple[str, bool]]:
    """The columns of a sample file and their logical types, as the reader parses them.

    CSV, NDJSON or Parquet, optionally gzipped; a column with a null in the sample is nullable.

    Raises:
        SourceError: the file cannot be read or its format told.
    """
    from ingest_assets.sources.object_store.formats import read_object
    from ingest_assets.sources.object_store.spec import CsvOptions, ObjectStoreSource

    source = ObjectStoreSource.model_validate(
        {"location": str(sample.parent), "key_template": "{date}", "format": source_format}
    )
    try:
        fmt = source.format_for(sample.name)
    except ValueError as exc:
        raise SourceError(f"{sample}: {exc}", fix="Pass --format csv, ndjson or parquet.") from None
    batches = read_object(
        lambda seekable: sample.open("rb"),
        fmt,
        compressed=sample.name.lower().endswith(".gz"),
        arrow_types={},
        csv=CsvOptions(),
        where=f"Sample {sample}",
    )
    found: dict[str, tuple[str, bool]] = {}
    for _, batch in itertools.islice(batches, SAMPLE_BATCHES):
        for column, values in zip(batch.schema.names, batch.columns, strict=True):
            dtype = _logical(values.type)
            before = found.get(column, (dtype, False))
            merged = before[0] if before[0] == dtype else "string"
            found[column] = (merged, before[1] or values.null_count > 0)
    return found


#: Batches of a sample file read to infer its columns.
SAMPLE_BATCHES = 20


def _logical(arrow_type: pa.DataType) -> str:
    """The logical type of an Arrow type the reader inferred (text for anything else)."""
    family = type_family(arrow_type)
    return (
        {"integer": "int64", "float": "float64"}.get(family or "", family or "string")
        if (family in ("integer", "float", "boolean", "timestamp", "date"))
        else "string"
    )


def _options(model: type[BaseModel], indent: int, *, skip: set[str] | None = None) -> str:
    """Every field of ``model`` as a commented ``key: default  # description`` line."""
    lines: list[str] = []
    pad = " " * indent
    for name, field in model.model_fields.items():
        key = field.alias or name
        if skip is not None and key in skip:
            continue
        description = (field.description or "").replace("\n", " ")
        choices = _choices(field.annotation)
        if choices:
            description = f"{description} One of: {', '.join(choices)}.".strip()
        if field.is_required():
            value: Any = "(required)"
        else:
            value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}# {key}:  # {description}")
            nested = _options(type(value), indent + 2)
            lines.append(nested)
            lines += _alternatives(field.annotation, type(value), indent + 2)
            continue
        text = value if value == "(required)" else _yaml(value)
        comment = f"  # {description}" if description else ""
        lines.append(f"{pad}# {key}: {text}{comment}")
    return "\n".join(line for line in lines if line)


def _choices(annotation: Any) -> list[str]:
    """The allowed values of a field typed with ``Literal`` (inside Optional or list too)."""
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    found: list[str] = []
    for inner in get_args(annotation):
        found += [value for value in _choices(inner) if value not in found]
    return found


def _alternatives(annotation: Any, chosen: type[BaseModel], indent: int) -> list[str]:
    """The other models of a union field (auth schemes, paginators) and their keys."""
    models: list[type[BaseModel]] = []
    pending = [annotation]
    while pending:
        item = pending.pop(0)
        if isinstance(item, type) and issubclass(item, BaseModel):
            models.append(item)
        else:
            pending += list(get_args(item))
    pad = " " * indent
    lines = []
    for model in models:
        if model is chosen or "type" not in model.model_fields:
            continue
        keys = [
            f"{name}{'' if field.is_required() else '?'}"
            for name, field in model.model_fields.items()
            if name != "type"
        ]
        tag = model.model_fields["type"].annotation
        lines.append(f"{pad}# or type: {get_args(tag)[0]}  # keys: {', '.join(keys) or '-'}")
    return lines


def _yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("...").strip()


def write(
    kind: str,
    name: str,
    root: Path,
    *,
    force: bool = False,
    folder: str | None = None,
    draft: bool = False,
    columns: dict[str, tuple[str, bool]] | None = None,
) -> Path:
    """Write the template of a new dataset to ``<root>/<folder or name>/defs.yaml``.

    Args:
        kind: The source kind.
        name: The dataset's name.
        root: The defs folder.
        force: Overwrite an existing file.
        folder: The dataset's folder (default: its name).
        draft: Write ``defs.yaml.draft`` instead, which the code location ignores until
            ``ingest-assets check`` accepts it.
        columns: Columns to declare (see :func:`render`).

    Raises:
        FileExistsError: the file (or the dataset's defs.yaml) exists and ``force`` is false.
        KeyError: no source kind is called ``kind``.
    """
    target = root / (folder or name)
    path = target / (DRAFT if draft else "defs.yaml")
    if not force and (path.exists() or (target / "defs.yaml").exists()):
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(kind, name, columns))
    return path


def placeholders(root: Path) -> list[tuple[Path, int, str]]:
    """Placeholders still to be filled in, as (file, line, placeholder), under ``root``."""
    found: list[tuple[Path, int, str]] = []
    for path in sorted([*root.rglob("defs.yaml"), *root.rglob(DRAFT)]):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            found += [(path, number, match) for match in PLACEHOLDER.findall(line)]
    return found

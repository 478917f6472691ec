"""The ``defs.yaml`` templates ``ingest-assets new`` writes: one per source kind.

A template fills the required keys with ``"<placeholder>"`` values and lists every other option
as a comment with its default and description. The option comments are generated from the spec's
pydantic models, so they always match what loading accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from ingest_assets.spec import (
    ColumnSpec,
    DedupSpec,
    LandingTrigger,
    LoadSpec,
    ObjectStoreSource,
    Partitioning,
    QualitySpec,
    RestSource,
    RetrySpec,
    ScheduleTrigger,
    SlaSpec,
    SqlSource,
)

SourceKind = Literal["object_store", "sql", "rest"]
#: A value still to be filled in: ``"<...>"``.
PLACEHOLDER = re.compile(r"\"<[^\"<>]+>\"")

_SOURCES: dict[str, tuple[type[BaseModel], str]] = {
    "object_store": (
        ObjectStoreSource,
        """        location: "<s3://bucket/prefix, or a folder under INGEST_ASSETS_DATA_DIR>"
        key_template: "<keys of one period, e.g. dt={date}/*.csv>"
""",
    ),
    "sql": (
        SqlSource,
        """        kind: sql
        url_env: "<VARIABLE holding the database URL, e.g. APP_DB_URL>"
        table: "<schema.table>"
        time_column: "<timestamp column that places a row in its partition>"
""",
    ),
    "rest": (
        RestSource,
        """        kind: rest
        base_url: "<https://api.example.com/v1>"
        endpoint: "</orders>"
        params: {start: "{start}", end: "{end}"}
        records_path: "<path to the list of records in the body, e.g. data>"
""",
    ),
}


def render(kind: SourceKind, name: str) -> str:
    """The commented ``defs.yaml`` of a new dataset of a source kind."""
    model, required = _SOURCES[kind]
    shown = {line.split(":")[0].strip() for line in required.splitlines()}
    return f"""# Dataset {name}, from a {kind.replace("_", " ")} source.
# Written by `ingest-assets new {kind} {name}`.
# 1. Replace every "<placeholder>" (the value, quotes included).
# 2. Run `uv run ingest-assets check {name}`: it validates this file the way `dg check defs`
#    does and tests that the source answers.
# 3. Materialize a partition in the UI (`./run dev`).
# Commented keys are the other options, with their defaults: uncomment to change one.
type: ingest_assets.components.IngestDatasets
attributes:
  datasets:
    - name: {name}
      description: "<what the dataset holds, shown in the UI>"
      owners: ["<team:name or an email>"]
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
          "<column>": {{dtype: string, nullable: false}}
      destination: {{table: "<schema.table in the warehouse, e.g. raw.{name}>"}}
      # load:  How windows are written.
{_options(LoadSpec, 8)}
      # quality:  Dataset-wide gates.
{_options(QualitySpec, 8)}
      # dedup:  One row per key within a window.
{_options(DedupSpec, 8)}
      # trigger:  When partitions load: a schedule after each partition closes...
{_options(ScheduleTrigger, 8)}
      # trigger:  ...or as objects land (object stores only).
{_options(LandingTrigger, 8)}
      # sla:  When each partition must have landed.
{_options(SlaSpec, 8)}
      # retry:  Dagster's retries of a failed load.
{_options(RetrySpec, 8)}
"""


def _options(model: type[BaseModel], indent: int, *, skip: set[str] | None = None) -> str:
    """Every field of ``model`` as a commented ``key: default  # description`` line."""
    lines: list[str] = []
    pad = " " * indent
    for name, field in model.model_fields.items():
        key = field.alias or name
        if skip is not None and key in skip:
            continue
        description = (field.description or "").replace("\n", " ")
        if field.is_required():
            value: Any = "(required)"
        else:
            value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}# {key}:  {description}")
            nested = _options(type(value), indent + 2)
            lines.append(nested)
            continue
        text = value if value == "(required)" else _yaml(value)
        lines.append(f"{pad}# {key}: {text}  # {description}")
    return "\n".join(line for line in lines if line)


def _yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("...").strip()


def write(kind: SourceKind, name: str, root: Path, *, force: bool = False) -> Path:
    """Write the template of a new dataset to ``<root>/<name>/defs.yaml``.

    Raises:
        FileExistsError: the file exists and ``force`` is false.
    """
    path = root / name / "defs.yaml"
    if path.exists() and not force:
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(kind, name))
    return path


def placeholders(root: Path) -> list[tuple[Path, int, str]]:
    """Placeholders still to be filled in, as (file, line, placeholder), under ``root``."""
    found: list[tuple[Path, int, str]] = []
    for path in sorted(root.rglob("defs.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            found += [(path, number, match) for match in PLACEHOLDER.findall(line)]
    return found

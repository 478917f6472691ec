"""``dg scaffold defs ingest_assets.components.IngestDatasets <folder>``: a new dataset's file.

The file is the commented template of ``ingest-assets new`` (which runs this scaffolder too):
every required key with a ``"<placeholder>"`` value, every option as a comment with its default.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import BaseModel, Field

from ingest_assets.templates import infer_columns, write


class ScaffoldParams(BaseModel):
    """The options of ``dg scaffold defs ingest_assets.components.IngestDatasets``."""

    kind: str = Field(
        default="object_store", description="The source kind, e.g. object_store, sql or rest."
    )
    name: str | None = Field(
        default=None, description="The dataset's name (default: the target folder's name)."
    )
    force: bool = Field(default=False, description="Overwrite an existing defs.yaml.")
    sample: str | None = Field(
        default=None,
        description="A sample file (CSV, NDJSON, Parquet) whose columns and types the "
        "template declares.",
    )
    draft: bool = Field(
        default=False,
        description="Write defs.yaml.draft, which the code location ignores until "
        "`ingest-assets check` accepts it and renames it defs.yaml.",
    )


class IngestDatasetsScaffolder(dg.Scaffolder[ScaffoldParams]):
    """Writes ``<target>/defs.yaml`` declaring one dataset of a source kind."""

    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        """The scaffolder's options."""
        return ScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ScaffoldParams]) -> None:
        """Write the template (FileExistsError if the file exists and ``force`` is not set)."""
        params = request.params or ScaffoldParams()
        name = params.name or request.target_path.name
        columns = infer_columns(Path(params.sample)) if params.sample else None
        write(
            params.kind,
            name,
            request.target_path.parent,
            force=params.force,
            folder=request.target_path.name,
            draft=params.draft,
            columns=columns,
        )

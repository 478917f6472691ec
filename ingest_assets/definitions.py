"""The code location: every dataset under ``defs/`` plus the resources of this environment."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ingest_assets.environment import resources


@dg.definitions
def defs() -> dg.Definitions:
    """Load the datasets and bind the environment's resources; runs execute in process."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=resources(), executor=dg.in_process_executor),
    )

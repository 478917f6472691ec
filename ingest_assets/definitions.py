"""The code location: every dataset under ``defs/`` plus the resources of this environment."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ingest_assets.environment import resources
from ingest_assets.onboarding import load_declared
from ingest_assets.triggers.alerts import run_failure_alerts


@dg.definitions
def defs() -> dg.Definitions:
    """Load the datasets, bind the environment's resources, alert on failed runs.

    Declarations that could never load together (two datasets writing one table) are refused
    here, naming both files and lines. Runs execute in process (one process per run, steps in
    it).
    """
    datasets = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    load_declared()  # each file is valid on its own (Dagster reports it); now across files
    return dg.Definitions.merge(
        datasets,
        dg.Definitions(
            resources=resources(), sensors=[run_failure_alerts], executor=dg.in_process_executor
        ),
    )

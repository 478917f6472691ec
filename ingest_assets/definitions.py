"""The code location: every dataset under ``defs/`` plus the resources of this environment."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from ingest_assets.components.datasets import SERVING_LENIENTLY
from ingest_assets.declarations import load_declared
from ingest_assets.environment import resources
from ingest_assets.triggers.alerts import run_failure_alerts

# Dagster's own repository code rebuilds the checks of assets that carry check specs with a beta
# parameter (repository_data.get_asset_checks_defs_by_key), warning on every start of the
# webserver and daemon about a call this project does not make.
warnings.filterwarnings(
    "ignore",
    message="Parameter `execution_type` of function `AssetsDefinition.__init__`",
    category=dg.BetaWarning,
)


def code_location(defs_folder: Path) -> dg.Definitions:
    """The datasets of a dg project's defs folder, with this environment's resources.

    The failed-run alerts and the in-process executor come with them. Declarations that could
    never load together (two datasets writing one table) are refused here, naming both files
    and lines. A file that does not validate becomes a failed placeholder asset (group
    ``invalid_declarations``) showing its errors, so one typo hides no other dataset; under
    ``dg check defs`` it fails the check instead. A team whose datasets live in a dg project
    of its own (``[tool.dg.project]`` in its pyproject.toml) serves them with a module of a few
    lines::

        @dg.definitions
        def defs() -> dg.Definitions:
            return code_location(Path(__file__).parent / "defs")

    Args:
        defs_folder: The project's defs folder, whose subfolders hold ``defs.yaml`` files.
    """
    # Served (dg dev, a code server), a defs.yaml that does not validate becomes a failed
    # placeholder asset and the other datasets load; Dagster's own validation command
    # (`dg check defs`, which sets DAGSTER_IS_DEFS_VALIDATION_CLI) still fails on it.
    lenient = not os.environ.get("DAGSTER_IS_DEFS_VALIDATION_CLI")
    token = SERVING_LENIENTLY.set(lenient)
    try:
        datasets = dg.load_from_defs_folder(path_within_project=defs_folder)
    finally:
        SERVING_LENIENTLY.reset(token)
    load_declared(defs_folder, skip_invalid=lenient)  # each file is valid alone; now across files
    return dg.Definitions.merge(
        datasets,
        dg.Definitions(
            resources=resources(), sensors=[run_failure_alerts], executor=dg.in_process_executor
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The project's datasets (``ingest_assets/defs``), one process per run, steps in it."""
    return code_location(Path(__file__).parent / "defs")

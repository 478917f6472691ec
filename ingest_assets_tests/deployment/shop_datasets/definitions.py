"""The team's code location: its datasets with ingest_assets' resources and executor."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ingest_assets.definitions import code_location


@dg.definitions
def defs() -> dg.Definitions:
    """The datasets under ``defs/``."""
    return code_location(Path(__file__).parent / "defs")

"""Where data lives on this machine: the data folder and the embedded warehouse file.

Read from the environment when called, never at import time.

Variables:
    INGEST_ASSETS_DATA_DIR: folder for relative source locations and the warehouse (``./data``).
    INGEST_ASSETS_DUCKDB_PATH: the DuckDB warehouse file (``<data dir>/warehouse.duckdb``).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The folder relative source locations and the default warehouse live in."""
    return Path(os.environ.get("INGEST_ASSETS_DATA_DIR") or PROJECT_ROOT / "data").resolve()


def duckdb_path() -> Path:
    """The DuckDB warehouse file."""
    return Path(os.environ.get("INGEST_ASSETS_DUCKDB_PATH") or data_dir() / "warehouse.duckdb")

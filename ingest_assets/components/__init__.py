"""Dagster components: the YAML-declared datasets of this project."""

from ingest_assets.components.datasets import IngestDatasets

__all__ = ["IngestDatasets"]

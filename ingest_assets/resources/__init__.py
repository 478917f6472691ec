"""Dagster resources of the project (DuckDB and S3 come from dagster-duckdb and dagster-aws)."""

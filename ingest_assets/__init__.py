"""ingest_assets: declared datasets become time-partitioned, validated Dagster assets."""

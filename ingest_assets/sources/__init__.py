"""Sources of the ingestion core."""

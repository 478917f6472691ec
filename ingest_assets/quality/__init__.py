"""Quality of the ingestion core."""

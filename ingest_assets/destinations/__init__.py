"""Destinations of the ingestion core."""

"""Demo datasets that need no external service."""

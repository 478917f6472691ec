"""The object_store source kind."""

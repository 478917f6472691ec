"""The DuckDB destination kind: the embedded default warehouse, one file on local disk."""

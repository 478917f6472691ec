"""The PostgreSQL destination kind: a warehouse many runs can write at once."""

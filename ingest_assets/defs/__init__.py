"""The datasets: one folder per source, each with a ``defs.yaml``."""

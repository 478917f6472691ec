"""The datasets: one folder per source."""

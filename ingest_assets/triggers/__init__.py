"""Dagster triggers of the datasets: schedules, landing sensors, freshness and alerts."""

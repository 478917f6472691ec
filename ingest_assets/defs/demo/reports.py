"""A downstream asset of the demo: revenue per day and country, in EUR.

It runs only after ``orders`` and ``fx_rates`` have loaded and passed their blocking checks, so
the validation gate is visible: materialize the bad demo day and this asset does not run.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ingest_assets.windows import Window


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "daily_revenue",
            deps=["orders", "fx_rates"],
            group_name="demo",
            owners=["team:commerce"],
            kinds={"duckdb"},
            description="Revenue per day and country in EUR, from the day's paid and shipped "
            "orders.",
        )
    ],
    partitions_def=dg.DailyPartitionsDefinition(start_date="2026-11-01"),
    # The window covers a whole range in a single-run backfill, like the ingested datasets'.
    backfill_policy=dg.BackfillPolicy.multi_run(31),
)
def daily_revenue(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Replace the day's rows of ``reports.daily_revenue``."""
    window = Window(*context.partition_time_window)
    with duckdb.get_connection() as conn:
        conn.execute("BEGIN TRANSACTION")
        conn.execute("CREATE SCHEMA IF NOT EXISTS reports")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS reports.daily_revenue "
            "(day DATE, country VARCHAR, orders BIGINT, revenue_eur DOUBLE)"
        )
        conn.execute(
            "DELETE FROM reports.daily_revenue WHERE day >= ? AND day < ?",
            [window.start.date(), window.end.date()],
        )
        conn.execute(
            """
            INSERT INTO reports.daily_revenue
            SELECT CAST(o.ordered_at AT TIME ZONE 'UTC' AS DATE) AS day, o.country,
                   count(*) AS orders, round(sum(o.amount / fx.eur_rate), 2) AS revenue_eur
            FROM raw.orders o
            JOIN raw.fx_rates fx
              ON fx.currency = o.currency
             AND fx.rate_date = CAST(o.ordered_at AT TIME ZONE 'UTC' AS DATE)
            WHERE o.ordered_at >= ? AND o.ordered_at < ? AND o.status IN ('paid', 'shipped')
            GROUP BY ALL
            """,
            [window.start, window.end],
        )
        rows = conn.execute(
            "SELECT count(*) FROM reports.daily_revenue WHERE day >= ? AND day < ?",
            [window.start.date(), window.end.date()],
        ).fetchone()
        conn.execute("COMMIT")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows[0] if rows else 0,
            "dagster/table_name": "warehouse.reports.daily_revenue",
        }
    )

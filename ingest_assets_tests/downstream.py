"""A downstream asset for tests (no postponed annotations: Dagster reads the context's type)."""

import dagster as dg


def downstream_asset(ran: list[str]) -> dg.AssetsDefinition:
    """An asset downstream of ``orders`` that records the partitions it ran for."""

    @dg.multi_asset(
        specs=[dg.AssetSpec("orders_summary", deps=["orders"])],
        partitions_def=dg.DailyPartitionsDefinition(start_date="2026-10-01"),
        backfill_policy=dg.BackfillPolicy.multi_run(31),
    )
    def orders_summary(context: dg.AssetExecutionContext) -> None:
        ran.extend(context.partition_keys)

    return orders_summary

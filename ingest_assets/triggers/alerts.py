"""Alert sensors: failed runs (failed blocking checks included) and missed SLAs, once each.

A run that Dagster will retry is not an incident yet (its retry is): only the run that fails for
good alerts, and step retries happen inside one run. An SLA miss alerts once per partition; the
sensor's cursor remembers which partitions it already reported.
"""

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ingest_assets.resources.notifier import Alert, Notifier
from ingest_assets.spec import DatasetSpec
from ingest_assets.triggers.freshness import evaluate_timeliness, missed_partitions

_REMEMBERED = 200  # partitions an SLA sensor remembers having reported


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    failed = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        event = entry.dagster_event
        if event is None:
            continue
        evaluation = event.asset_check_evaluation_data
        if not evaluation.passed:
            failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return failed


def failure_alert(context: dg.RunFailureSensorContext, notifier: Notifier) -> Alert:
    """The alert for a failed run: the datasets whose steps failed, their errors, the checks."""
    run = context.dagster_run
    failures = context.get_step_failure_events()
    datasets = [event.step_key for event in failures if event.step_key]
    if not datasets:
        datasets = sorted(key.to_user_string() for key in run.asset_selection or [])
    errors = []
    for event in failures:
        error = event.step_failure_data.error
        parts = []
        while error is not None:  # after step retries the cause holds the last try's error
            parts.append(error.message.strip().removeprefix("dagster._core.definitions.events."))
            error = error.cause
        errors.append(": ".join(parts))
    message = "\n".join(errors) or (context.failure_event.message or "the run failed")
    return Alert(
        kind="run_failure",
        dataset=datasets[0] if datasets else run.job_name,
        datasets=datasets,
        partition=run.tags.get("dagster/partition"),
        error=message,
        failed_checks=_failed_checks(context.instance, run.run_id),
        run_id=run.run_id,
        run_url=notifier.run_url(run.run_id),
        occurred_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@dg.run_failure_sensor(
    name="ingest_run_failure_alerts",
    description="Sends one alert per failed run (after its last retry) to the notifier.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alerts(
    context: dg.RunFailureSensorContext, notifier: Notifier
) -> dg.SkipReason | None:
    """Alert on a run that failed for good."""
    run = context.dagster_run
    if run.tags.get("dagster/will_retry") == "true":
        return dg.SkipReason(f"run {run.run_id} will be retried; its last attempt alerts")
    alert = failure_alert(context, notifier)
    channels = notifier.send(alert)
    context.log.info(
        f"Alerted {', '.join(channels) or 'no channel (none configured)'} about run "
        f"{run.run_id} ({alert.dataset})"
    )
    return None


def sla_alert_sensor(
    spec: DatasetSpec, asset_key: dg.AssetKey | None = None
) -> dg.SensorDefinition:
    """A sensor that alerts once for each partition of ``spec`` that misses its deadline."""
    sla = spec.sla
    assert sla is not None

    @dg.sensor(
        name=f"{spec.name}_sla_alerts",
        description=f"Alerts once for each partition of {spec.name} not landed by its deadline.",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING
        if sla.running
        else dg.DefaultSensorStatus.STOPPED,
    )
    def _sla(context: dg.SensorEvaluationContext, notifier: Notifier) -> dg.SkipReason:
        # The cursor: the close time up to which partitions were judged for good, and the
        # partitions already reported (a list alone in cursors of earlier versions).
        loaded = json.loads(context.cursor) if context.cursor else {}
        state: dict[str, Any] = {"reported": loaded} if isinstance(loaded, list) else loaded
        reported: list[str] = state.get("reported", [])
        after = datetime.fromisoformat(state["after"]) if state.get("after") else None
        now = datetime.now(UTC)
        missed, judged_until = missed_partitions(
            spec, context.instance, now, after, asset_key=asset_key
        )
        missed = [p for p in missed if p.partition not in reported]
        for partition in missed:  # oldest first
            notifier.send(
                Alert(
                    kind="sla_missed",
                    dataset=spec.name,
                    datasets=[spec.name],
                    partition=partition.partition,
                    error=partition.describe(),
                    occurred_at=now.isoformat(timespec="seconds"),
                )
            )
            reported.append(partition.partition)
        context.update_cursor(
            json.dumps(
                {
                    "after": judged_until.isoformat() if judged_until else None,
                    "reported": reported[-_REMEMBERED:],
                }
            )
        )
        timeliness = evaluate_timeliness(spec, context.instance, now, asset_key=asset_key)
        return dg.SkipReason(
            f"{spec.name}: {timeliness.describe()}; {len(missed)} new miss(es) reported"
        )

    return _sla

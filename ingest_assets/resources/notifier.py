"""Alerts: a notifier resource that posts JSON to a webhook and, optionally, to Slack.

The webhook receives one ``POST`` with ``Content-Type: application/json`` per alert::

    {
      "kind": "run_failure",              # or "sla_missed"
      "severity": "error",
      "dataset": "orders",                # the dataset whose step failed (or is late)
      "datasets": ["orders"],             # every dataset concerned
      "partition": "2026-11-05",          # null for runs without a partition
      "error": "Dataset 'orders' ... failed validation ...",
      "failed_checks": ["orders:schema"], # blocking checks that failed in the run
      "run_id": "6f1c...",                # null for SLA alerts
      "run_url": "http://127.0.0.1:3000/runs/6f1c...",
      "occurred_at": "2026-11-21T02:05:00+00:00"
    }
"""

from typing import Literal

import dagster as dg
import requests
from dagster_slack import SlackResource
from pydantic import BaseModel, Field
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)


class Alert(BaseModel):
    """One incident to tell people about (the webhook's JSON payload)."""

    kind: Literal["run_failure", "sla_missed"]
    severity: Literal["error", "warn"] = "error"
    dataset: str
    datasets: list[str]
    partition: str | None = None
    error: str
    failed_checks: list[str] = Field(default_factory=list)
    run_id: str | None = None
    run_url: str | None = None
    occurred_at: str

    def text(self) -> str:
        """The alert as one line of text (for chat)."""
        where = f"{self.dataset}" + (f" [{self.partition}]" if self.partition else "")
        checks = f" (failed checks: {', '.join(self.failed_checks)})" if self.failed_checks else ""
        link = f" <{self.run_url}|run>" if self.run_url else ""
        title = "load failed" if self.kind == "run_failure" else "SLA missed"
        return f":rotating_light: {where}: {title}{checks}: {self.error[:500]}{link}"


class _Retryable(Exception):
    """A webhook answer worth another try (5xx, 429)."""


class Notifier(dg.ConfigurableResource):
    """Sends alerts to a JSON webhook and/or a Slack channel; does nothing when neither is set.

    Attributes:
        webhook_url: The webhook's URL (pass it as ``dg.EnvVar``; it is never logged).
        slack: A dagster-slack resource with the bot token, to post to ``slack_channel``.
        slack_channel: The Slack channel, e.g. ``#data-alerts``.
        slack_api_url: Slack's Web API base URL (for a proxy; default Slack's own).
        ui_url: The Dagster UI's address, for links to runs.
        timeout_seconds: Time allowed for each delivery attempt.
    """

    webhook_url: str | None = None
    slack: SlackResource | None = None
    slack_channel: str | None = None
    slack_api_url: str | None = None
    ui_url: str = "http://127.0.0.1:3000"
    timeout_seconds: float = 10.0

    def run_url(self, run_id: str) -> str:
        """The UI page of a run."""
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def send(self, alert: Alert) -> list[str]:
        """Deliver an alert to every configured channel.

        Returns:
            The channels it was delivered to ('webhook', 'slack').

        Raises:
            RuntimeError: a channel refused the alert after retries (the message names the
                channel and status, never the webhook's URL or the token).
        """
        delivered = []
        if self.webhook_url:
            self._post_webhook(alert)
            delivered.append("webhook")
        if self.slack is not None and self.slack_channel:
            client = self.slack.get_client()
            if self.slack_api_url:
                client.base_url = self.slack_api_url
            client.chat_postMessage(channel=self.slack_channel, text=alert.text())
            delivered.append("slack")
        return delivered

    def _post_webhook(self, alert: Alert) -> None:
        url = self.webhook_url
        assert url is not None

        @retry(
            retry=retry_if_exception_type((_Retryable, requests.ConnectionError, requests.Timeout)),
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.5, max=5),
            reraise=True,
        )
        def post() -> None:
            answer = requests.post(url, json=alert.model_dump(), timeout=self.timeout_seconds)
            if answer.status_code == 429 or answer.status_code >= 500:
                raise _Retryable(f"HTTP {answer.status_code}")
            if answer.status_code >= 400:
                raise RuntimeError(
                    f"The alert webhook refused the alert: HTTP {answer.status_code}. Check "
                    "INGEST_ALERT_WEBHOOK_URL."
                )

        try:
            post()
        except (_Retryable, requests.RequestException) as exc:
            reason = exc if isinstance(exc, _Retryable) else type(exc).__name__
            raise RuntimeError(
                f"The alert webhook did not take the alert after 3 tries ({reason}); the sensor "
                "tries again at its next tick. Check INGEST_ALERT_WEBHOOK_URL."
            ) from None

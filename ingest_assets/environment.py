"""The single place that decides where data lives and how services are reached.

Settings come from environment variables, read when definitions load (never at import time);
credentials are passed to resources as ``dg.EnvVar`` so that their values are resolved only in the
run, never stored in definitions, logs or metadata.

Variables:
    INGEST_ASSETS_DATA_DIR, INGEST_ASSETS_DUCKDB_PATH: where data lives (see ``paths``).
    INGEST_S3_ENDPOINT_URL: an S3-compatible endpoint such as MinIO (default: AWS).
    AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: the S3 client's
        region and credentials (default: boto3's own chain).
    INGEST_ALERT_WEBHOOK_URL: where alerts are posted as JSON (default: no webhook).
    INGEST_SLACK_TOKEN, INGEST_SLACK_CHANNEL: a Slack bot token and channel for alerts.
    INGEST_UI_URL: the Dagster UI's address, for links in alerts (``http://127.0.0.1:3000``).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from dagster_slack import SlackResource

from ingest_assets.paths import duckdb_path
from ingest_assets.resources.notifier import Notifier


def _env(name: str) -> Any:
    """``dg.EnvVar(name)`` when the variable is set, else None (the library's default applies)."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def s3_resource() -> S3Resource:
    """The S3 resource for s3:// sources; any S3-compatible endpoint via INGEST_S3_ENDPOINT_URL."""
    settings = {
        "endpoint_url": _env("INGEST_S3_ENDPOINT_URL"),
        "region_name": _env("AWS_REGION"),
        "aws_access_key_id": _env("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": _env("AWS_SECRET_ACCESS_KEY"),
        "aws_session_token": _env("AWS_SESSION_TOKEN"),
    }
    return S3Resource(**{key: value for key, value in settings.items() if value is not None})


def notifier() -> Notifier:
    """Where alerts go: a JSON webhook and/or Slack, as configured; nowhere by default."""
    slack = _env("INGEST_SLACK_TOKEN")
    return Notifier(
        webhook_url=_env("INGEST_ALERT_WEBHOOK_URL"),
        slack=SlackResource(token=slack) if slack else None,
        slack_channel=os.environ.get("INGEST_SLACK_CHANNEL"),
        ui_url=os.environ.get("INGEST_UI_URL") or "http://127.0.0.1:3000",
    )


def resources() -> dict[str, Any]:
    """The resources every dataset may need, keyed as the assets require them."""
    return {
        # The file's folder is made when a load opens it: loading definitions writes nothing.
        "duckdb": DuckDBResource(database=str(duckdb_path())),
        "s3": s3_resource(),
        "notifier": notifier(),
    }

"""A dataset's ingest API: ``ingest_api`` in its YAML turns on ``POST /ingest/<dataset>``."""

from __future__ import annotations

from pydantic import Field, field_validator

from ingest_assets.spec.base import NAME_KEY, Strict, check_identifier

#: Headers a client sends its token in.
TOKEN_HEADERS = ("Authorization: Bearer <token>", "X-API-Key: <token>")


class IngestApiSpec(Strict):
    """Records pushed over HTTP land as files where the dataset's source reads them.

    Each request's records are validated against the dataset's schema (the same rules as a
    load); the valid ones are journaled before the answer, then written in batches (by size or
    age) under the source's key template, in the partition of their event time. Invalid ones go
    to the dead letters with their reasons.
    """

    time_field: str | None = Field(
        default=None,
        description="The declared timestamp or date column whose value places a record in its "
        "partition; by default the time the record is received.",
    )
    token_env: str | None = Field(
        default=None,
        json_schema_extra=NAME_KEY,
        description="Environment variable holding the token clients send as 'Authorization: "
        "Bearer <token>' or 'X-API-Key: <token>' (default INGEST_TOKEN_<DATASET>, upper case).",
    )
    idempotency_field: str | None = Field(
        default=None,
        description="A declared column identifying a record: a record whose value was accepted "
        "before (within idempotency_days) is acknowledged and not written again. A request's "
        "Idempotency-Key header does the same for a whole request.",
    )
    idempotency_days: float = Field(
        default=7, gt=0, description="How long accepted idempotency keys are remembered."
    )
    dead_letters: str | None = Field(
        default=None,
        description="Where rejected records go, as NDJSON with their reasons: 's3://bucket/"
        "prefix' or a folder (default: '_dead_letters' under source.location).",
    )
    flush_rows: int = Field(
        default=50_000, gt=0, description="Journaled records that trigger a write of files."
    )
    flush_seconds: float = Field(
        default=10, gt=0, description="Age of the oldest journaled record that triggers a write."
    )
    max_pending_rows: int = Field(
        default=500_000,
        gt=0,
        description="Journaled records not yet written beyond which requests get 429.",
    )
    max_body_bytes: int = Field(
        default=10 * 2**20, gt=0, description="Largest request body accepted (413 beyond)."
    )

    @field_validator("time_field", "idempotency_field")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, "column")

    def token_variable(self, dataset: str) -> str:
        """The environment variable that holds the dataset's token."""
        return self.token_env or f"INGEST_TOKEN_{dataset.upper()}"

"""The stream source kind's declaration: a stream whose entries are cut into windows by time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ingest_assets.spec.base import NAME_KEY, Strict, check_identifier


class StreamSource(Strict):
    """Entries of a stream, each placed in the window of its time.

    A window reads the entries by ID range (an entry's ID begins with the milliseconds it was
    added at), so reading a window again reads the same entries as long as the stream keeps them.
    """

    kind: Literal["stream"] = Field(description="'stream'.")
    backend: Literal["redis"] = Field(description="The stream server: 'redis' (Redis Streams).")
    url_env: str = Field(
        json_schema_extra=NAME_KEY,
        description="Environment variable holding the server's URL, e.g. "
        "'redis://:password@host:6379/0' (rediss:// for TLS). The URL never goes in YAML.",
    )
    stream: str = Field(min_length=1, description="The stream's key.")
    time_field: str | None = Field(
        default=None,
        description="Entry field holding each entry's event time (ISO 8601, or epoch "
        "milliseconds); by default the time in the entry's ID (when it was added).",
    )
    lateness_seconds: float = Field(
        default=3600,
        ge=0,
        description="With time_field: how long after its event time an entry may be added "
        "(and how early); a window reads the IDs of its span widened by this much.",
    )
    payload_field: str | None = Field(
        default=None,
        description="An entry field holding the record as a JSON object; by default the "
        "entry's fields are the record's.",
    )
    id_field: str | None = Field(
        default=None,
        description="A column to hold each entry's ID (declare it in schema.columns).",
    )
    batch_entries: int = Field(default=10_000, gt=0, description="Entries read per request.")

    @field_validator("time_field", "payload_field", "id_field")
    @classmethod
    def _field(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, "field name")

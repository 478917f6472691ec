"""The REST source kind's declaration: a JSON HTTP API read page by page for a window."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ingest_assets.sources.rest.auth import Auth, NoAuth
from ingest_assets.sources.rest.paginators import NoPagination, Pagination
from ingest_assets.spec.base import NAME_KEY, Strict


class RestRetry(Strict):
    """Retries of 429, 5xx, timeouts and connection errors, with backoff and jitter."""

    attempts: int = Field(default=5, description="Tries per page, the first included.")
    backoff_seconds: float = Field(default=0.5, description="First wait; it doubles per try.")
    max_backoff_seconds: float = Field(default=30.0, description="Longest wait between tries.")
    retry_after_floor_seconds: float = Field(
        default=0.5, description="Shortest wait on a Retry-After answer (so 0 is no hot loop)."
    )
    retry_after_cap_seconds: float = Field(
        default=60.0, description="Longest wait a Retry-After answer may ask for."
    )


class RestSource(Strict):
    """A JSON HTTP API, read page by page for a window."""

    kind: Literal["rest"] = Field(description="'rest'.")
    base_url: str | None = Field(
        default=None,
        description="Scheme, host and base path, e.g. https://api.example.com/v1. Give this or "
        "'resource'.",
    )
    resource: str | None = Field(
        default=None,
        json_schema_extra=NAME_KEY,
        description="Key of a declared RestApi resource (its base_url and token, shared by every "
        "dataset of that API). Give this or 'base_url'.",
    )
    endpoint: str = Field(default="", description="Path below base_url, e.g. /orders.")
    method: Literal["GET", "POST"] = Field(default="GET", description="HTTP method.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Query parameters; strings may use {start} and {end}, the window's bounds "
        "(other braces are kept as they are, e.g. a JSON filter).",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    time_format: str = Field(
        default="iso",
        description="How {start}/{end} render: 'iso', 'epoch', 'epoch_ms' or a strftime pattern.",
    )
    records_path: str = Field(
        default="", description="Dotted path to the list of records in the body ('' = the body)."
    )
    nested: Literal["json", "flatten"] = Field(
        default="json",
        description="Nested objects: kept as JSON text, or flattened to parent_child columns.",
    )
    body: dict[str, Any] | None = Field(
        default=None,
        description="method POST: the JSON body; its strings may use {start} and {end}, the "
        "window's bounds.",
    )
    auth: Auth = Field(
        default_factory=lambda: NoAuth(),
        description="Authentication.",
    )
    paginator: Pagination = Field(
        default_factory=lambda: NoPagination(),
        description="Pagination.",
    )
    requests_per_second: float | None = Field(
        default=None, description="Rate limit shared by every request of this source."
    )
    concurrency: int = Field(default=4, description="Pages fetched at once when addressable.")
    timeout_seconds: float = Field(default=30.0, description="Per request.")
    retry: RestRetry = Field(default_factory=lambda: RestRetry(), description="Retries.")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("params", "body")
    @classmethod
    def _placeholders(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        for key, text in _strings(value, info.field_name or ""):
            unknown = [
                name for name in PARAM_PLACEHOLDER.findall(text) if name not in WINDOW_BOUNDS
            ]
            if unknown:
                raise ValueError(
                    f"{key}: unknown placeholder {{{unknown[0]}}}; the window's bounds "
                    "are {start} and {end}"
                )
        return value

    @model_validator(mode="after")
    def _body_needs_post(self) -> RestSource:
        if self.body is not None and self.method != "POST":
            raise ValueError("body is sent with method: POST only")
        if (self.base_url is None) == (self.resource is None):
            raise ValueError(
                "give exactly one of 'base_url' or 'resource' (a declared RestApi resource)"
            )
        return self

    @property
    def api(self) -> str:
        """The API as people name it: its base URL, or the resource it is reached through."""
        return self.base_url or f"resource {self.resource}"


def _strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with its dotted place (for placeholder checks)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}.{index}")


#: A placeholder in a REST parameter: an identifier in braces. Other braces are literal text.
PARAM_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: The placeholders a REST parameter may use.
WINDOW_BOUNDS = ("start", "end")

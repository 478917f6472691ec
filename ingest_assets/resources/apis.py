"""The HTTP APIs datasets read, as Dagster resources shared by every dataset of an API.

Declare one per API in a definitions file under ``defs/``, its token from an environment
variable, and name it in the datasets (``source: {kind: rest, resource: orders_api, endpoint:
/orders}``)::

    @dg.definitions
    def resources() -> dg.Definitions:
        api = RestApi(base_url="https://api.example.com/v1", token=dg.EnvVar("ORDERS_API_TOKEN"))
        return dg.Definitions(resources={"orders_api": api})
"""

import dagster as dg
from pydantic import Field


class RestApi(dg.ConfigurableResource):
    """A JSON HTTP API that datasets read; the token is sent to its base URL's origin only.

    Attributes:
        base_url: Scheme, host and base path, e.g. ``https://api.example.com/v1``.
        token: A bearer token, given as ``dg.EnvVar(...)`` (never shown in the UI).
        headers: Headers every request carries (no secrets: they may follow next links).
    """

    base_url: str = Field(description="Scheme, host and base path of the API.")
    token: str | None = Field(
        default=None, description="A bearer token (a secret: give it as an EnvVar)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers every request carries (not secrets)."
    )

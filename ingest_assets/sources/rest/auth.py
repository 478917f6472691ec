"""How a REST source's requests authenticate: one model (the YAML) and one class per scheme.

Secrets are named by environment variable in YAML and looked up when a request is made, through
the reader's :class:`Secrets` (which keeps every value out of messages and logs).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Annotated, Any, Literal, Protocol

import orjson
import requests
from pydantic import Discriminator, Field, Tag

from ingest_assets.errors import SourceError, SourceUnavailable
from ingest_assets.sources.object_store.formats import json_kind
from ingest_assets.spec.base import NAME_KEY, Strict, discriminator

#: HTTP answers of a token endpoint worth another try.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Secrets(Protocol):
    """What a scheme needs from the reader: secrets by variable, and where to report."""

    @property
    def dataset(self) -> str:
        """The dataset's name, for messages."""
        ...

    @property
    def timeout_seconds(self) -> float:
        """Per request."""
        ...

    def secret(self, variable: str) -> str:
        """The variable's value (a SourceError naming it when it is not set)."""
        ...

    def keep_secret(self, value: str) -> None:
        """Keep ``value`` out of every message and log from now on."""
        ...


class Authenticator(ABC):
    """Adds credentials to a request; one per reader (it may hold a token)."""

    @abstractmethod
    def apply(
        self, headers: dict[str, str], params: dict[str, Any], secrets: Secrets
    ) -> tuple[str, str] | None:
        """Add credentials to ``headers`` or ``params``; basic credentials are returned."""

    def refresh(self, secrets: Secrets) -> bool:
        """After an HTTP 401: renew the credentials; whether another try may succeed."""
        return False


class RestApiSettings(Protocol):
    """What a reader takes from an API resource (``RestApi`` in Dagster)."""

    @property
    def base_url(self) -> str:
        """Scheme, host and base path."""
        ...

    @property
    def token(self) -> str | None:
        """A bearer token (a secret), if the API wants one."""
        ...

    @property
    def headers(self) -> dict[str, str]:
        """Headers every request carries (no secrets: they may follow next links)."""
        ...


class TokenAuth(Authenticator):
    """A bearer token given as a value (by an API resource), sent to the API's origin only."""

    def __init__(self, token: str) -> None:
        self.token = token

    def apply(
        self, headers: dict[str, str], params: dict[str, Any], secrets: Secrets
    ) -> tuple[str, str] | None:
        """``Authorization: Bearer <token>``."""
        secrets.keep_secret(self.token)
        headers["Authorization"] = f"Bearer {self.token}"
        return None


class _NoCredentials(Authenticator):
    def apply(
        self, headers: dict[str, str], params: dict[str, Any], secrets: Secrets
    ) -> tuple[str, str] | None:
        return None


class _Bearer(Authenticator):
    def __init__(self, token_env: str) -> None:
        self.token_env = token_env

    def apply(
        self, headers: dict[str, str], params: dict[str, Any], secrets: Secrets
    ) -> tuple[str, str] | None:
        headers["Authorization"] = f"Bearer {secrets.secret(self.token_env)}"
        return None


class _ApiKey(Authenticator):
    def __init__(self, name: str, key_env: str, location: str) -> None:
        self.name, self.key_env, self.location = name, key_env, location

    def apply(
        self, headers: dict[str, str], params: dict[str, Any], secrets: Secrets
    ) -> tuple[str, str] | None:
        key = secrets.secret(self.key_env)
        (headers if self.location == "header" else params)[self.name] = key
        return None


class _Basic(Authenticator):
    def __init__(self, username_env: str, password_env: str) -> None:
        self.username_env, self.password_env = username_env, password_env

    def apply(
        self, headers: dict[str, str], params: dict[str, Any], secrets: Secrets
    ) -> tuple[str, str] | None:
        return (secrets.secret(self.username_env), secrets.secret(self.password_env))


class _ClientCredentials(Authenticator):
    """An OAuth2 token from the client-credentials grant, cached until it expires."""

    def __init__(self, settings: OAuth2ClientCredentials) -> None:
        self.settings = settings
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def apply(
        self, headers: dict[str, str], params: dict[str, Any], secrets: Secrets
    ) -> tuple[str, str] | None:
        headers["Authorization"] = f"Bearer {self._access_token(secrets)}"
        return None

    def refresh(self, secrets: Secrets) -> bool:
        """The token expired early: fetch a new one."""
        self._access_token(secrets, refresh=True)
        return True

    def _access_token(self, secrets: Secrets, *, refresh: bool = False) -> str:
        with self._lock:
            if self._token and not refresh and time.monotonic() < self._token[1]:
                return self._token[0]
            body = self._token_body(secrets)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                keys = ", ".join(sorted(body)) if isinstance(body, dict) else json_kind(body)
                raise SourceError(
                    f"Dataset '{secrets.dataset}': the OAuth2 token endpoint "
                    f"{self.settings.token_url} answered without an access_token (it gave: "
                    f"{keys or 'an empty object'}).",
                    fix="Check source.auth.token_url (it must be the client-credentials token "
                    "endpoint) and the scope.",
                )
            secrets.keep_secret(token)
            try:
                lifetime = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                lifetime = 3600.0
            self._token = (token, time.monotonic() + max(0.0, lifetime - 5))
            return token

    def _token_body(self, secrets: Secrets) -> Any:
        """Ask the token endpoint for a token; its JSON answer."""
        settings, where = self.settings, f"Dataset '{secrets.dataset}': the OAuth2 token endpoint"
        data = {"grant_type": "client_credentials"}
        if settings.scope:
            data["scope"] = settings.scope
        client = (
            secrets.secret(settings.client_id_env),
            secrets.secret(settings.client_secret_env),
        )
        try:
            response = requests.post(
                settings.token_url, data=data, auth=client, timeout=secrets.timeout_seconds
            )
        except requests.RequestException as exc:
            raise SourceUnavailable(
                f"{where} {settings.token_url} did not answer: {type(exc).__name__}.",
                fix="Check that source.auth.token_url is reachable; the load is safe to retry.",
            ) from None
        if response.status_code != 200:
            failed = SourceUnavailable if response.status_code in RETRY_STATUSES else SourceError
            raise failed(
                f"{where} {settings.token_url} answered HTTP {response.status_code}.",
                fix="Check the client id and secret variables and source.auth.token_url.",
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            kind = response.headers.get("Content-Type", "unknown content type")
            raise SourceError(
                f"{where} {settings.token_url} answered HTTP 200 with a body that is not JSON "
                f"({kind}).",
                fix="Check source.auth.token_url: it must be the token endpoint, not a login page.",
            ) from None


class NoAuth(Strict):
    """Requests carry no credentials."""

    type: Literal["none"] = Field(default="none", description="'none'.")

    def build(self) -> Authenticator:
        """The scheme's authenticator."""
        return _NoCredentials()


class BearerAuth(Strict):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"] = Field(description="'bearer'.")
    token_env: str = Field(json_schema_extra=NAME_KEY, description="Variable holding the token.")

    def build(self) -> Authenticator:
        """The scheme's authenticator."""
        return _Bearer(self.token_env)


class ApiKeyAuth(Strict):
    """A key in a header or a query parameter."""

    type: Literal["api_key"] = Field(description="'api_key'.")
    name: str = Field(description="The header or query parameter name.")
    key_env: str = Field(json_schema_extra=NAME_KEY, description="Variable holding the key.")
    location: Literal["header", "query"] = Field(
        default="header", description="Sent as a header or a query parameter."
    )

    def build(self) -> Authenticator:
        """The scheme's authenticator."""
        return _ApiKey(self.name, self.key_env, self.location)


class BasicAuth(Strict):
    """HTTP basic authentication."""

    type: Literal["basic"] = Field(description="'basic'.")
    username_env: str = Field(json_schema_extra=NAME_KEY, description="Variable, user name.")
    password_env: str = Field(json_schema_extra=NAME_KEY, description="Variable, password.")

    def build(self) -> Authenticator:
        """The scheme's authenticator."""
        return _Basic(self.username_env, self.password_env)


class OAuth2ClientCredentials(Strict):
    """An OAuth2 access token from the client-credentials grant, renewed as it expires."""

    type: Literal["oauth2_client_credentials"] = Field(description="'oauth2_client_credentials'.")
    token_url: str = Field(description="The token endpoint.")
    client_id_env: str = Field(json_schema_extra=NAME_KEY, description="Variable, client id.")
    client_secret_env: str = Field(
        json_schema_extra=NAME_KEY, description="Variable, client secret."
    )
    scope: str | None = Field(default=None, description="The requested scope.")

    def build(self) -> Authenticator:
        """The scheme's authenticator."""
        return _ClientCredentials(self)


#: How a REST source authenticates; ``type`` picks the scheme and defaults to ``none``.
Auth = Annotated[
    Annotated[NoAuth, Tag("none")]
    | Annotated[BearerAuth, Tag("bearer")]
    | Annotated[ApiKeyAuth, Tag("api_key")]
    | Annotated[BasicAuth, Tag("basic")]
    | Annotated[OAuth2ClientCredentials, Tag("oauth2_client_credentials")],
    Discriminator(discriminator("type", "none")),
]

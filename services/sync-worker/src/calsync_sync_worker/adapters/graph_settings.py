"""Where Graph and the connector are, how to authenticate to the connector, and the limits."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

_MIN_KEY_BYTES = 32  # the connector refuses shorter HS256 keys (RFC 7518 §3.2)
_DEVELOPMENT_KEY = "insecure-development-key-do-not-use-outside-development"


class GraphClientSettings(BaseModel):
    """Where Graph and the connector are, how to authenticate to the connector, and the limits."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    graph_url: str = "https://localhost:8443/v1.0"
    #: CA bundle Graph's certificate must chain to (the emulator's); None: the system store.
    ca_bundle: Path | None = Path(".run/msgraph/ca.pem")
    connector_url: str = "http://127.0.0.1:8081"
    #: The connector's development key (``AuthSettings.development()``), so ``make up`` works;
    #: the settings base refuses this "insecure…" value outside development.
    service_token_kid: str = "development"  # noqa: S105 (a key id, not a secret)
    service_token_secret: SecretStr = SecretStr(_DEVELOPMENT_KEY)
    service_token_issuer: str = "https://platform.calsync.dev"  # noqa: S105 (a claim)
    service_token_audience: str = "calsync-connector"  # noqa: S105 (a claim)
    service_name: str = "sync-worker"
    service_token_lifetime_s: int = Field(default=300, ge=60, le=3600)
    #: Cached access tokens are fetched anew this long before they expire.
    token_refresh_margin_s: float = Field(default=120.0, ge=0)
    #: Outlook: 4 concurrent requests per app + mailbox.
    mailbox_concurrency: int = Field(default=4, ge=1)
    #: Outlook: 10,000 requests per 10 minutes per app + mailbox; stay below it.
    mailbox_requests_per_window: int = Field(default=9000, ge=1)
    mailbox_window_s: float = Field(default=600.0, gt=0)
    #: Retries after the first attempt (so at most 1 + max_retries requests).
    max_retries: int = Field(default=5, ge=0)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    #: A Retry-After longer than this is not waited for: the request fails as throttled and the
    #: caller retries later (marks the calendar stale) instead of holding a worker.
    max_retry_after_s: float = Field(default=120.0, ge=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    token_timeout_s: float = Field(default=10.0, gt=0)
    #: Open connections in the client's own session (``open_graph_client``), all mailboxes.
    max_connections: int = Field(default=100, ge=1)

    @field_validator("graph_url", "connector_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = URL(value)
        if url.scheme not in ("http", "https") or not url.host or url.query_string:
            raise ValueError("must be an http(s) URL without a query")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _key_long_enough(self) -> Self:
        if len(self.service_token_secret.get_secret_value().encode()) < _MIN_KEY_BYTES:
            raise ValueError(f"service_token_secret is shorter than {_MIN_KEY_BYTES} bytes")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        if self.ca_bundle is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(self.ca_bundle))

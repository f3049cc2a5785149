"""Typed settings of the connector service (env prefix ``CONNECTOR_``, nested with ``__``).

Defaults run the sandbox: the Graph emulator's app registration and CA, development keys for
tokens and JWTs. Outside ``development`` the shared base refuses every placeholder secret (the
development keys are marked ``insecure``), so a forgotten key cannot reach production.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from calsync_common.http.auth import AuthSettings
from calsync_common.settings import HttpSettings, ServiceSettings
from calsync_connector.adapters.identity import MicrosoftSettings
from calsync_connector.adapters.token_cipher import TokenCipherSettings
from calsync_connector.service_layer.janitor import JanitorConfig


class ConnectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONNECTOR_", extra="ignore", frozen=True, env_nested_delimiter="__"
    )

    http: HttpSettings = HttpSettings(port=8081)
    #: How browsers reach this service: the OAuth redirect URI is ``{public_url}/oauth/callback``
    #: and must be registered with the app (the sandbox app has http://localhost:8081).
    public_url: str = "http://localhost:8081"
    #: Where a sign-in may send the browser back to (prefixes: scheme, host, port, path).
    return_url_prefixes: tuple[str, ...] = (
        "http://localhost:3000/",
        "http://127.0.0.1:3000/",
    )
    flow_ttl_s: int = Field(default=600, ge=60, le=3600)
    #: A disconnected connection is deleted, and tombstoned in Kafka, this long after.
    erase_disconnected_after_s: int = Field(default=7 * 24 * 3600, ge=0)
    janitor_every_s: float = Field(default=300.0, gt=0)
    microsoft: MicrosoftSettings = MicrosoftSettings()
    tokens: TokenCipherSettings = Field(default_factory=TokenCipherSettings.development)
    auth: AuthSettings = Field(default_factory=AuthSettings.development)

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url.rstrip('/')}/oauth/callback"

    @property
    def flow_ttl(self) -> timedelta:
        return timedelta(seconds=self.flow_ttl_s)

    @property
    def janitor(self) -> JanitorConfig:
        return JanitorConfig(
            every=timedelta(seconds=self.janitor_every_s),
            erase_after=timedelta(seconds=self.erase_disconnected_after_s),
        )

"""Settings base shared by the services: one typed object per service, built once in ``main()``.

Infrastructure shared by every process (environment, Kafka, telemetry) is read from ``CALSYNC_*``
variables; each service adds its own fields under its own prefix (``CONNECTOR_``, ...).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, PostgresDsn, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

#: Values that mean "nobody set this": refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "password", "dev", "development", "xxx"}
)


class PlatformSettings(BaseSettings):
    """What every calsync process shares, from ``CALSYNC_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="CALSYNC_", extra="ignore", frozen=True)

    environment: Environment = "development"
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: Replication factor of topics the services create at start (1 on the single local node).
    kafka_topic_replication: int = Field(default=1, ge=1)
    #: OTLP/HTTP endpoint for traces and metrics; telemetry export is off when unset.
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    #: Put before every topic name (the catalogue's names are logical): lets several stacks, or
    #: test sessions, share one cluster without reading each other's events.
    topic_prefix: str = Field(default="", pattern=r"^[a-z0-9._-]*$", max_length=100)

    def topic(self, logical: str) -> str:
        """The cluster's name of a catalogue topic."""
        return f"{self.topic_prefix}{logical}"

    def group(self, logical: str) -> str:
        """The cluster's name of a consumer group: a stack's groups share its topics' prefix, so
        stacks on one cluster never join (and rebalance) each other's groups."""
        return f"{self.topic_prefix}{logical}"


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    #: SO_REUSEPORT: several processes of the service (replicas on one host) listen on one port
    #: and the kernel spreads connections between them; one Python process uses one core.
    reuse_port: bool = False


def is_placeholder(secret: SecretStr) -> bool:
    value = secret.get_secret_value().strip().lower()
    return value in PLACEHOLDER_SECRETS or value.startswith(("dev-", "insecure"))


class ServiceSettings(BaseSettings):
    """Base of every service's settings. Subclasses set ``env_prefix`` and add their fields.

    Any ``SecretStr`` field holding a placeholder is refused unless the environment is
    ``development``, so a forgotten secret cannot reach production or a shared test stack.
    """

    # A refused start-up must not print the real secrets it was given beside the bad one.
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, env_nested_delimiter="__", hide_input_in_errors=True
    )

    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    http: HttpSettings
    database_url: PostgresDsn
    #: Apply the service's migrations at start-up (``make migrate`` does it explicitly).
    migrate_on_start: bool = True
    #: Connections of the service's pool (a request or a round holds one for its transaction).
    database_pool_size: int = Field(default=10, ge=1, le=500)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.platform.environment == "development":
            return self
        for name, value in _secrets(self):
            if is_placeholder(value):
                raise ValueError(
                    f"{name} holds a placeholder secret; set a real value for the "
                    f"{self.platform.environment} environment"
                )
        return self

    @property
    def dsn(self) -> str:
        return str(self.database_url)


def _secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, SecretStr]]:
    """Every SecretStr in ``model``, nested models, lists and dicts included, with its path."""
    found: list[tuple[str, SecretStr]] = []

    def walk(path: str, value: object) -> None:
        if isinstance(value, SecretStr):
            found.append((path, value))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(f"{path}.{name}" if path else name, getattr(value, name))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{path}[{key}]", item)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(f"{path}[{i}]", item)

    walk(prefix, model)
    return found

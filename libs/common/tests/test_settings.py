"""Settings refuse placeholder secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from calsync_common.settings import HttpSettings, PlatformSettings, ServiceSettings


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TEST_SVC_", extra="ignore", frozen=True)

    http: HttpSettings = HttpSettings(port=0)
    token_key: SecretStr = SecretStr("change-me")


def _make(environment: str, key: str) -> _Settings:
    return _Settings(
        platform=PlatformSettings(environment=environment),  # type: ignore[arg-type]
        database_url="postgresql://u:p@localhost/db",  # type: ignore[arg-type]
        token_key=SecretStr(key),
    )


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("key", ["change-me", "", "dev-key", "secret"])
def test_placeholder_secret_refused_outside_development(environment: str, key: str) -> None:
    with pytest.raises(ValidationError, match="token_key holds a placeholder secret"):
        _make(environment, key)


def test_placeholder_allowed_in_development() -> None:
    assert _make("development", "change-me").token_key.get_secret_value() == "change-me"


def test_real_secret_accepted_in_production() -> None:
    settings = _make("production", "9f1c2b7d0e5a4f3c8b6a1d2e3f4a5b6c")
    assert settings.platform.environment == "production"
    assert "9f1c" not in repr(settings)  # secrets never printed


def test_env_prefix_and_shared_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SVC_DATABASE_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("CALSYNC_KAFKA_BOOTSTRAP", "kafka:9092")
    settings = _Settings()  # type: ignore[call-arg]
    assert settings.dsn == "postgresql://u:p@db:5432/x"
    assert settings.platform.kafka_bootstrap == "kafka:9092"


def test_placeholder_secret_nested_in_a_model_or_dict_is_refused() -> None:
    from pydantic import BaseModel

    class _Keys(BaseModel):
        keys: dict[str, SecretStr]

    class _Nested(ServiceSettings):
        http: HttpSettings = HttpSettings(port=0)
        crypto: _Keys

    with pytest.raises(ValidationError, match=r"crypto.keys\[k1\] holds a placeholder secret"):
        _Nested(
            platform=PlatformSettings(environment="production"),
            database_url="postgresql://u:p@localhost/db",  # type: ignore[arg-type]
            crypto=_Keys(keys={"k1": SecretStr("change-me")}),
        )


async def test_a_topic_prefix_names_the_catalogue_topics_of_one_stack() -> None:
    from calsync_common.kafka.producer import EventPublisher
    from calsync_common.runtime import cluster_topics

    platform = PlatformSettings(topic_prefix="staging.")
    assert platform.topic("calsync.connections.v1") == "staging.calsync.connections.v1"
    assert all(t.name.startswith("staging.calsync.") for t in cluster_topics("staging."))
    publisher = EventPublisher("127.0.0.1:1", client_id="t", source="/t", topic_prefix="staging.")
    try:
        assert publisher.resolve("calsync.bookings.v1") == "staging.calsync.bookings.v1"
    finally:
        await publisher.stop()  # never started: closes what the constructor allocated
    with pytest.raises(ValidationError):
        PlatformSettings(topic_prefix="Bad Prefix/")

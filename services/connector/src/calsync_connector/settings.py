"""Typed settings of the connector service (env prefix ``CONNECTOR_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from calsync_common.settings import HttpSettings, ServiceSettings


class ConnectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONNECTOR_", extra="ignore", frozen=True, env_nested_delimiter="__"
    )

    http: HttpSettings = HttpSettings(port=8081)

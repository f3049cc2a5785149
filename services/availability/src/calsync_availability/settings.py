"""Typed settings of the availability service (env prefix ``AVAILABILITY_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from calsync_common.settings import HttpSettings, ServiceSettings


class AvailabilitySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AVAILABILITY_", extra="ignore", frozen=True, env_nested_delimiter="__"
    )

    http: HttpSettings = HttpSettings(port=8083)

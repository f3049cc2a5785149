"""Typed settings of the availability service (env prefix ``AVAILABILITY_``, nested with ``__``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from calsync_common.http.auth import AuthSettings
from calsync_common.settings import HttpSettings, ServiceSettings


def _development_auth() -> AuthSettings:
    return AuthSettings.development(audience="calsync-availability")


class AvailabilitySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AVAILABILITY_", extra="ignore", frozen=True, env_nested_delimiter="__"
    )

    http: HttpSettings = HttpSettings(port=8083)
    #: The connector's token rules, with this service's audience.
    auth: AuthSettings = Field(default_factory=_development_auth)

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
    # --- booking write path ---
    #: How long a POST /bookings answer is kept for retries with the same Idempotency-Key.
    idempotency_retention_s: float = Field(default=24 * 3600, gt=0)
    #: How often expired idempotency keys are swept.
    idempotency_sweep_every_s: float = Field(default=300, gt=0)
    #: GET .../busy marks a Conflict Calendar stale past this age (calendars have their own).
    busy_stale_after_s: float = Field(default=900, gt=0)

"""Typed settings of the sync-worker service (env prefix ``SYNC_WORKER_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from calsync_common.settings import HttpSettings, ServiceSettings


class SyncWorkerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SYNC_WORKER_", extra="ignore", frozen=True, env_nested_delimiter="__"
    )

    http: HttpSettings = HttpSettings(port=8082)

"""Typed settings of the sync-worker service (env prefix ``SYNC_WORKER_``, nested with ``__``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from calsync_common.settings import HttpSettings, ServiceSettings


class SyncWorkerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SYNC_WORKER_", extra="ignore", frozen=True, env_nested_delimiter="__"
    )

    http: HttpSettings = HttpSettings(port=8082)
    #: Graph waits about 3 s for an answer: a notification Kafka has not acked by then is 503.
    webhook_ack_timeout_s: float = Field(default=2.5, gt=0, le=10)

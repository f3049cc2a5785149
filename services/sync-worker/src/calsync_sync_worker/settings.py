"""Typed settings of the sync-worker service (env prefix ``SYNC_WORKER_``, nested with ``__``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from calsync_common.settings import HttpSettings, ServiceSettings
from calsync_sync_worker.adapters.graph_client import GraphClientSettings


class SyncWorkerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SYNC_WORKER_", extra="ignore", frozen=True, env_nested_delimiter="__"
    )

    http: HttpSettings = HttpSettings(port=8082)
    #: Graph waits about 3 s for an answer: a notification Kafka has not acked by then is 503.
    webhook_ack_timeout_s: float = Field(default=2.5, gt=0, le=10)
    #: How Microsoft Graph reaches this service's webhooks (``/webhooks/graph/...``). Graph
    #: needs HTTPS; the sandbox emulator accepts http:// on loopback.
    public_url: str = "http://127.0.0.1:8082"
    graph: GraphClientSettings = GraphClientSettings()
    #: Subscription upkeep: how often a replica looks for due calendars, and its lease.
    subscriptions_every_s: float = Field(default=5.0, gt=0)
    subscriptions_lease_s: float = Field(default=60.0, gt=0)

    @property
    def webhook_urls(self) -> tuple[str, str]:
        base = self.public_url.rstrip("/")
        return f"{base}/webhooks/graph/notifications", f"{base}/webhooks/graph/lifecycle"

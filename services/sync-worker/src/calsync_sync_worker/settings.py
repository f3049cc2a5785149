"""Typed settings of the sync-worker service (env prefix ``SYNC_WORKER_``, nested with ``__``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from calsync_common.settings import HttpSettings, ServiceSettings
from calsync_sync_worker.adapters.graph_client import GraphClientSettings
from calsync_sync_worker.service_layer.delta import DeltaConfig
from calsync_sync_worker.service_layer.write_back import WriteBackConfig


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
    subscriptions_lease_s: float = Field(default=45.0, gt=0)
    #: Delta rounds: the window read (days back and ahead), and the round every calendar gets
    #: at least this often, notification or not.
    window_back_days: int = Field(default=1, ge=0, le=30)
    window_ahead_days: int = Field(default=365, ge=1, le=1800)
    periodic_round_s: float = Field(default=900.0, gt=0)
    #: A read of the whole window from scratch at least this often (see ``DeltaConfig``).
    full_read_every_s: float = Field(default=6 * 3600.0, gt=0)
    delta_every_s: float = Field(default=1.0, gt=0)
    #: A replica's hold on a calendar's round: a replica killed mid-round has its calendars
    #: taken over once this passes, so it stays under the minute that scaling out promises.
    delta_lease_s: float = Field(default=45.0, gt=0)
    #: Delta rounds a replica runs at once (``DeltaConfig.batch``; each mailbox's gate still
    #: lets 4 requests through). Rounds wait on Graph most of their time: with 1,000 busy
    #: calendars, 50 at once left notifications 3.2 s from their round, 200 about 1 s (bench).
    delta_concurrency: int = Field(default=200, ge=1, le=1000)

    #: Write-back of bookings: how often a replica looks for due writes, and its lease on one.
    write_back_every_s: float = Field(default=1.0, gt=0)
    write_back_lease_s: float = Field(default=45.0, gt=0)

    @property
    def write_back(self) -> WriteBackConfig:
        return WriteBackConfig(every_s=self.write_back_every_s, lease_s=self.write_back_lease_s)

    @property
    def delta(self) -> DeltaConfig:
        return DeltaConfig(
            window_back=timedelta(days=self.window_back_days),
            window_ahead=timedelta(days=self.window_ahead_days),
            periodic=timedelta(seconds=self.periodic_round_s),
            rebase_after=timedelta(seconds=self.full_read_every_s),
            every_s=self.delta_every_s,
            lease_s=self.delta_lease_s,
            batch=self.delta_concurrency,
        )

    @property
    def webhook_urls(self) -> tuple[str, str]:
        base = self.public_url.rstrip("/")
        return f"{base}/webhooks/graph/notifications", f"{base}/webhooks/graph/lifecycle"

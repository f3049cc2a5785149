"""Typed settings of the emulator (env prefix ``MSGRAPH_EMU_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class EmulatorSettings(BaseSettings):
    """Everything the emulator process can be told; built once in ``main()``."""

    model_config = SettingsConfigDict(env_prefix="MSGRAPH_EMU_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8443
    #: Where the CA certificate (``ca.pem``), server key pair and state dumps are written.
    data_dir: Path = Path(".run/msgraph")
    #: Base URL clients use; defaults to ``https://{host}:{port}``.
    public_url: str | None = None
    #: JSON file with users, calendars and events loaded at start (the sandbox tenant).
    seed_file: Path | None = None
    #: Seed the built-in sandbox tenant when no seed file is given.
    seed_sandbox: bool = True

    # Identity platform
    access_token_lifetime_s: int = 3600
    refresh_token_inactivity_days: int = 90
    auth_code_lifetime_s: int = 600

    # Graph
    subscription_max_minutes: int = 4230
    notification_timeout_s: float = 3.0
    notification_retry_for_s: float = 4 * 3600
    mailbox_concurrency: int = 4
    mailbox_requests_per_10min: int = 10_000

    # Change notifications (see docs/notifications.md)
    #: Sandbox only: accept ``http://`` notification URLs whose host is a loopback address.
    allow_http_notification_urls: bool = True
    #: CA bundle trusted when delivering to ``https://`` notification URLs (None: system store).
    notification_ca_file: Path | None = None
    validation_timeout_s: float = 10.0
    notification_batch_max: int = 100
    #: Concurrent POSTs per notification URL.
    notification_senders_per_url: int = 4
    notification_backoff_initial_s: float = 2.0
    notification_backoff_max_s: float = 300.0
    #: ``reauthorizationRequired`` is sent this long before a subscription expires.
    reauthorization_notice_s: float = 600.0
    subscription_sweep_interval_s: float = 1.0
    deliveries_log_max: int = 10_000
    batch_max_requests: int = 20

    log_level: str = "INFO"

    @property
    def base_url(self) -> str:
        return self.public_url or f"https://{self.host}:{self.port}"
